// Compiled by `npm run types` (tsc --noEmit), never run: it uses the API
// the way the README does, so a wrong or missing type fails the build.
import {
  Client,
  MeshcastError,
  Subscription,
  defaults,
  type HistoryMessage,
  type JSONValue,
  type PresenceMember,
  type PresenceStats,
} from "meshcast";

declare const WS: new (url: string) => any;

async function example(): Promise<void> {
  const c = new Client(["ws://a:8080/ws", "ws://b:8080/ws"], {
    getToken: async () => "jwt",
    WebSocket: WS,
    timeout: defaults.timeout * 2,
  });
  c.on("connected", (info) => console.log(info.node, info.client, info.user ?? ""));
  c.on("connected", ({ expires }) => expires && console.log("token expires", new Date(expires * 1000)));
  c.on("disconnected", ({ code, reason, reconnect, delay }) => console.log(code, reason, reconnect, delay));
  c.on("gap", ({ ch, reason }) => console.log(ch, reason));
  c.on("error", (e) => console.log(e.message));
  c.connect();

  const s: Subscription = c.subscribe("chat:lobby", (data: JSONValue, { ch, pos }) => console.log(ch, data, pos), {
    since: "opaque",
  });
  s.on("subscribed", ({ recovered, resubscribe }) => console.log(recovered, resubscribe));
  s.on("gap", (g) => console.log(g.reason));
  s.on("error", (e) => console.log(e.code));
  await s.ready();
  const state: "subscribing" | "subscribed" | "unsubscribed" = s.state;
  console.log(state, s.pos);

  try {
    await c.publish("chat:lobby", { text: "hi" }, { timeout: 1000 });
  } catch (e) {
    if (e instanceof MeshcastError && e.code === 503) console.log("cluster unavailable, not published");
    if (e instanceof MeshcastError && e.code === "connection_lost") console.log("may have been published");
  }
  const msgs: HistoryMessage[] = await c.history("chat:lobby", { limit: 50 });
  console.log(msgs[0]?.pos, msgs[0]?.data);

  const room = c.subscribe("room:1", undefined, { info: { name: "Ann" } });
  room.on("join", ({ ch, user, info }) => console.log(ch, user, info));
  room.on("leave", ({ user }) => console.log(user));
  const members: PresenceMember[] = await c.presence("room:1");
  console.log(members[0]?.user, members[0]?.clients, members[0]?.info);
  const st: PresenceStats = await c.presenceStats("room:1", { timeout: 500 });
  console.log(st.users + st.clients);
  s.unsubscribe();
  c.close();
}
void example;

// @ts-expect-error: events are typed
new Client("ws://x/ws").on("nope", () => {});
// @ts-expect-error: the url is required
new Client();
// As the README calls it: no message callback, only presence info.
new Client("ws://x/ws").subscribe("room:1", null, { info: { name: "Alice" } });
