// Integration tests of meshcast.js against real meshcast processes: a
// cluster of two, node kills and restarts, tokens, the server's errors.
// History tests skip, saying why, while the server has no history.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Client } from "../../meshcast.js";
import { Node, startCluster, linksUp, jwt } from "../meshcast-proc.mjs";
import { WebSocket, until, next, record } from "../helpers.mjs";

const opts = { WebSocket, minReconnectDelay: 50, maxReconnectDelay: 500, timeout: 5000 };
const cleanup = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function client(url, o = {}) {
  const c = new Client(url, { ...opts, ...o });
  cleanup.push(() => c.close());
  return c;
}

async function connected(url, o) {
  const c = client(url, o);
  const hello = next(c, "connected", 10000);
  c.connect();
  await hello;
  return c;
}

let nodes = [];
before(async () => {
  nodes = await startCluster(2);
});
after(async () => {
  for (const n of nodes) await n.kill();
});

test("a publish on one node reaches a subscriber on the other; server errors carry their code", async () => {
  const [a, b] = nodes;
  const sub = await connected(a.url);
  const pub = await connected(b.url);
  assert.equal(sub.info.node, a.name);
  const got = [];
  const s = sub.subscribe("across", (d) => got.push(d));
  await s.ready();
  for (let i = 0; i < 20; i++) await pub.publish("across", { i });
  await until(() => got.length == 20, "20 messages across nodes");
  assert.deepEqual(got.map((d) => d.i), [...Array(20).keys()]);

  await assert.rejects(pub.publish("bad name", 1), { code: 400 });
  await assert.rejects(pub.publish("$sys:x", 1), { code: 403 });
  const big = "x".repeat(40000);
  await assert.rejects(pub.publish("across", big), { code: 413 });
  const r = sub.subscribe("$nope");
  await assert.rejects(r.ready(), { code: 403 });
});

test("kill -9 of the subscriber's node: reconnect to the other, resubscribe, say gap, keep receiving", async () => {
  const a = await Node.start({ name: "victim", join: "127.0.0.1:" + nodes[0].gossipPort });
  cleanup.push(() => a.kill());
  await linksUp([...nodes, a]);
  const b = nodes[1];
  const c = await connected([a.url, b.url]);
  assert.equal(c.info.node, "victim");
  const got = [];
  const s = c.subscribe("kill", (d) => got.push(d));
  const gaps = record(s, "gap");
  await s.ready();
  const pub = await connected(b.url);
  await pub.publish("kill", "before");
  await until(() => got.length == 1, "the first message");

  const drop = next(c, "disconnected", 10000);
  const back = next(c, "connected", 15000);
  await a.kill("SIGKILL");
  assert.equal((await drop).code, 1006);
  assert.equal((await back).node, b.name);
  await until(() => s.state == "subscribed", "the resubscribe", 10000);
  await pub.publish("kill", "after");
  await until(() => got.length == 2, "the message after the reconnect");
  assert.deepEqual(got, ["before", "after"]);
  // The client's gap (resubscribed without history), and maybe the
  // server's (the other node saw this one die).
  assert.ok(gaps.some((g) => g.reason == "reconnect"), JSON.stringify(gaps));
  assert.ok(gaps.every((g) => g.ch == "kill" && ["reconnect", "server"].includes(g.reason)), JSON.stringify(gaps));
});

test("SIGSTOP of the subscriber's node: the heartbeat finds it frozen, the client moves to the other node and says gap", async () => {
  const a = await Node.start({ name: "frozen", join: "127.0.0.1:" + nodes[0].gossipPort });
  cleanup.push(() => a.kill()); // SIGKILL ends a stopped process too
  await linksUp([...nodes, a]);
  await until(async () => (await a.get("/readyz").catch(() => ({}))).status == 200, "the node ready", 20000);
  const b = nodes[1];
  // The timeout is over the node's 2 s interest wait: the other node acks a
  // sub only once the frozen one has confirmed it or that wait is over.
  const c = await connected([a.url, b.url], { heartbeat: 300, timeout: 4000 });
  assert.equal(c.info.node, "frozen");
  const got = [];
  const s = c.subscribe("stopped", (d) => got.push(d));
  const gaps = record(s, "gap");
  await s.ready();
  const pub = await connected(b.url);
  await pub.publish("stopped", "before");
  await until(() => got.length == 1, "the first message");

  // The node's socket stays open and its kernel keeps ACKing: only a ping
  // that is never answered tells the client.
  const drop = next(c, "disconnected", 15000);
  const back = next(c, "connected", 20000);
  a.proc.kill("SIGSTOP");
  const d = await drop;
  assert.equal(d.code, 1006);
  assert.match(d.reason, /no answer to a ping/);
  assert.equal((await back).node, b.name);
  await until(() => s.state == "subscribed", "the resubscribe", 10000);
  await pub.publish("stopped", "after");
  await until(() => got.includes("after"), "the message after the move");
  assert.ok(gaps.some((g) => g.reason == "reconnect"), JSON.stringify(gaps));
});

test("SIGTERM: the client sees 1001 going away and moves to the other node", async () => {
  const a = await Node.start({ name: "leaver", join: "127.0.0.1:" + nodes[0].gossipPort });
  cleanup.push(() => a.kill());
  await linksUp([...nodes, a]);
  // After the previous test's kill -9, a joining node waits for the dead
  // member until it is declared dead (or --join-timeout): until then it
  // refuses clients, and this one would start on nodes[0] instead.
  await until(async () => (await a.get("/readyz").catch(() => ({}))).status == 200, "the leaver ready", 20000);
  const c = await connected([a.url, nodes[0].url]);
  const s = c.subscribe("term");
  await s.ready();
  const drop = next(c, "disconnected", 10000);
  const back = next(c, "connected", 15000);
  a.proc.kill("SIGTERM");
  const d = await drop;
  assert.deepEqual([d.code, d.reason, d.reconnect], [1001, "going away", true]);
  assert.equal((await back).node, nodes[0].name);
  await s.ready();
  assert.deepEqual((await a.exited).code, 0);
});

test("a publish typed while the node is down is sent once it is back, after the resubscribe", async () => {
  const a = await Node.start({ name: "restart", join: "127.0.0.1:" + nodes[0].gossipPort });
  cleanup.push(() => a.kill());
  const c = await connected(a.url);
  const got = [];
  const s = c.subscribe("later", (d) => got.push(d));
  await s.ready();
  const ports = a.samePorts();
  await a.kill("SIGKILL");
  await until(() => c.state == "connecting", "the client to notice");
  const p = c.publish("later", "typed while down", { timeout: 30000 });
  const again = await Node.start({ ...ports, join: "127.0.0.1:" + nodes[0].gossipPort });
  cleanup.push(() => again.kill());
  try {
    await p;
  } catch (e) {
    // A node that is not yet a member in good standing refuses with 503
    // (hub work on main): not published, and the application decides.
    if (e.code !== 503) throw e;
    await linksUp([...nodes, again]);
    await c.publish("later", "typed while down");
  }
  // The client resubscribed before it sent what waited, on one connection:
  // the publisher's own subscription sees its message.
  await until(() => got.length == 1, "the delayed message", 10000);
  assert.deepEqual(got, ["typed while down"]);
  await s.ready(); // the sub's ack waits for the cluster, so it may come after the message
});

test("tokens: getToken before every connection and after 4001 (a refused refresh); 4003 stops", async () => {
  const secret = "js-token-secret";
  const [t] = [await Node.start({ name: "tokens", args: ["--token-hmac-secret", secret, "--api-key", "k3y"] })];
  cleanup.push(() => t.kill());
  let issued = 0;
  const getToken = async () => {
    issued++;
    // The first token expires in a second. The client refreshes it at
    // once, with a token for another user: refused (403), and no time is
    // left to try again, so the node closes with 4001.
    const exp = Math.floor(Date.now() / 1000) + (issued == 1 ? 1 : 3600);
    return jwt(secret, { sub: issued == 2 ? "mallory" : "alice", exp });
  };
  const c = client(t.url, { getToken });
  const drops = record(c, "disconnected"), errors = record(c, "error");
  c.connect();
  const first = await next(c, "connected", 10000);
  assert.equal(first.user, "alice");
  await until(() => drops.length == 1, "the close for the expired token", 10000);
  assert.deepEqual([drops[0].code, drops[0].reason, drops[0].reconnect], [4001, "token expired", true]);
  assert.deepEqual(errors.map((e) => e.code), [403], "the refused refresh");
  await until(() => c.state == "connected", "the reconnect with a fresh token", 10000);
  assert.equal(issued, 3);

  const stop = next(c, "error", 10000);
  const res = await t.get("/api/disconnect", {
    method: "POST",
    headers: { Authorization: "Bearer k3y", "Content-Type": "application/json" },
    body: JSON.stringify({ user: "alice" }),
  });
  assert.equal(res.status, 200, res.body);
  assert.equal((await stop).code, 4003);
  assert.equal(c.state, "disconnected");
  assert.equal(drops.at(-1).reconnect, false);
  assert.equal(issued, 3);

  const anon = client(t.url, { maxReconnectDelay: 100 });
  anon.connect();
  const refused = await next(anon, "disconnected", 10000); // HTTP 401: a browser sees only 1006
  assert.equal(refused.code, 1006);
  assert.equal(refused.reconnect, true);
});

test("token refresh: tokens that live 7 s, a connection that outlives several of them with no disconnect and no gap", async () => {
  const secret = "js-refresh-secret";
  const t = await Node.start({ name: "refresh", args: ["--token-hmac-secret", secret] });
  cleanup.push(() => t.kill());
  const life = 7; // s: the node closes with 4001 at exp unless a refresh moved it
  const issued = [];
  const getToken = async () => {
    const exp = Math.floor(Date.now() / 1000) + life;
    issued.push(exp);
    return jwt(secret, { sub: "alice", exp });
  };
  const c = client(t.url, { getToken });
  const drops = record(c, "disconnected"), errors = record(c, "error"), gaps = record(c, "gap");
  c.connect();
  const hello = await next(c, "connected", 10000);
  assert.equal(hello.user, "alice");
  assert.equal(hello.expires, issued[0]);
  const got = [];
  const s = c.subscribe("refresh:room", (d) => got.push(d.i)); // no history: a reconnect would be a gap
  await s.ready();
  const states = record(s, "subscribing");

  // Another user publishes every 100 ms throughout, with a token that outlives the test.
  const pub = await connected(t.url, { token: jwt(secret, { sub: "bob", exp: Math.floor(Date.now() / 1000) + 3600 }) });
  const start = Date.now();
  let sent = 0;
  while (Date.now() - start < 3.5 * life * 1000) {
    await pub.publish("refresh:room", { i: sent++ });
    await new Promise((r) => setTimeout(r, 100)); // the pace of the publisher, not a synchronisation
  }
  await until(() => got.length == sent, `all ${sent} messages`, 10000);
  assert.deepEqual(got, [...Array(sent).keys()], "every message, in order, none missing");
  assert.deepEqual({ drops, errors, gaps, states }, { drops: [], errors: [], gaps: [], states: [] });
  assert.equal(c.info.client, hello.client, "the same connection");
  assert.ok(issued.length >= 4, `${issued.length} tokens issued in ${3.5 * life} s, want a refresh per lifetime at least`);
  assert.equal(c.info.expires, issued.at(-1), "the connection's expiry is the last token's");
  assert.ok(c.info.expires * 1000 > Date.now(), "and is ahead");
});

// History (issue 11). Until the server has it, these skip with the reason.
async function historyNodes() {
  let hist;
  try {
    hist = await startCluster(2, ["--namespace", "hist:history=1000"]);
  } catch (e) {
    return { skip: "the server has no history yet (issue 11): --namespace hist:history=1000 refused: " + e.message.split("\n").at(-1).slice(0, 200) };
  }
  const c = await connected(hist[0].url);
  try {
    await c.history("hist:probe", { limit: 1 });
  } catch (e) {
    for (const n of hist) await n.kill();
    return { skip: `the server has no history yet (issue 11): history answered ${e.code} ${e.reason}` };
  } finally {
    c.close();
  }
  cleanup.push(async () => {
    for (const n of hist) await n.kill();
  });
  return { hist };
}

test("history: a subscriber whose node is killed mid-stream gets every message exactly once, in order", async (t) => {
  const { hist, skip } = await historyNodes();
  if (skip) return t.skip(skip);
  const [a, b] = hist;
  const sub = await connected([a.url, b.url]);
  const got = [];
  const s = sub.subscribe("hist:stream", (d) => got.push(d));
  const subscribed = record(s, "subscribed");
  await s.ready();
  const pub = await connected(b.url);
  const total = 300;
  let killed;
  for (let i = 0; i < total; i++) {
    await pub.publish("hist:stream", i);
    if (i == 100) killed = a.kill("SIGKILL");
  }
  await killed;
  await until(() => got.length >= total, `${total} messages`, 20000);
  assert.deepEqual(got, [...Array(total).keys()]);
  assert.equal(subscribed.at(-1).resubscribe, true);
  assert.equal(subscribed.at(-1).recovered, true);
});

test("history: a subscriber that got no message yet resumes from where it subscribed: its node killed, what was published meanwhile is recovered, no gap", async (t) => {
  const { hist, skip } = await historyNodes();
  if (skip) return t.skip(skip);
  const [a, b] = hist;
  const sub = await connected([a.url, b.url]);
  const got = [], gaps = [];
  const s = sub.subscribe("hist:quiet", (d) => got.push(d));
  s.on("gap", (g) => gaps.push(g));
  const subscribed = record(s, "subscribed");
  await s.ready();
  assert.ok(s.pos, "the ack on a channel with history gives a position");
  const drop = next(sub, "disconnected", 10000);
  await a.kill("SIGKILL");
  await drop;
  const pub = await connected(b.url);
  for (let i = 0; i < 10; i++) await pub.publish("hist:quiet", i);
  await until(() => got.length >= 10, "10 messages", 20000);
  assert.deepEqual(got, [...Array(10).keys()]);
  assert.deepEqual(gaps, []);
  assert.equal(subscribed.at(-1).resubscribe, true);
  assert.equal(subscribed.at(-1).recovered, true);
});

test("history: the last messages, oldest first, with positions that resume a subscription", async (t) => {
  const { hist, skip } = await historyNodes();
  if (skip) return t.skip(skip);
  const c = await connected(hist[0].url);
  for (let i = 0; i < 10; i++) await c.publish("hist:read", i);
  const msgs = await c.history("hist:read", { limit: 5 });
  assert.deepEqual(msgs.map((m) => m.data), [5, 6, 7, 8, 9]);
  const got = [];
  const s = c.subscribe("hist:read", (d) => got.push(d), { since: msgs[2].pos });
  assert.equal((await next(s, "subscribed")).recovered, true);
  assert.deepEqual(got, [8, 9]);
  await assert.rejects(c.history("nohist:x"), { code: 400 });
});

test("a publish over --max-message: the node's hello says its limit, and the publish fails alone with 413, unsent; the connection stays", async () => {
  const c = await connected(nodes[0].url);
  const drops = record(c, "disconnected");
  const got = [];
  const s = c.subscribe("big", (d) => got.push(d));
  await s.ready();
  const e = await c.publish("big", "x".repeat(70 * 1024)).then(() => null, (e) => e); // over the default 64 KiB
  assert.equal(e?.code, 413, `rejected with ${e?.code}: ${e?.message}`);
  assert.match(e.reason, /at most 65536 bytes.*not published/);
  await c.publish("big", "small");
  await until(() => got.length == 1, "the small message", 10000);
  assert.deepEqual(got, ["small"]);
  assert.deepEqual(drops, []);
});

test("a sub over --max-message (a 70 KiB presence info) ends with 413, unsent; the connection and the other subscriptions stay", async () => {
  const c = await connected(nodes[0].url);
  const drops = record(c, "disconnected");
  const ok = c.subscribe("fine");
  await ok.ready();
  const big = c.subscribe("room:big", null, { info: { avatar: "x".repeat(70 * 1024) } });
  const end = next(big, "unsubscribed", 10000);
  await assert.rejects(big.ready(), { code: 413 });
  assert.equal((await end).error.code, 413);
  assert.equal(c.subs.has("room:big"), false);
  await c.publish("fine", "after");
  assert.deepEqual(drops, []);
  assert.equal(ok.state, "subscribed");
});
