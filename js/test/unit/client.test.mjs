// Unit tests of meshcast.js against a fake server on real sockets.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Client, MeshcastError, defaults } from "../../meshcast.js";
import { FakeServer, Store } from "../fake-server.mjs";
import { WebSocket, until, next, record } from "../helpers.mjs";

const cleanup = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function server(opts) {
  const s = await new FakeServer(opts).start();
  cleanup.push(() => s.stop());
  return s;
}

// A client with short timings, closed after the test.
function client(url, opts = {}) {
  const c = new Client(url, { WebSocket, minReconnectDelay: 20, maxReconnectDelay: 100, timeout: 2000, ...opts });
  cleanup.push(() => c.close());
  return c;
}

async function connected(url, opts) {
  const c = client(url, opts);
  const hello = next(c, "connected");
  c.connect();
  await hello;
  return c;
}

test("connects, subscribes, publishes and receives with positions", async () => {
  const srv = await server();
  const c = client(srv.url);
  const hello = next(c, "connected");
  c.connect();
  assert.equal(c.state, "connecting");
  const info = await hello;
  assert.equal(info.node, "fake:" + srv.port);
  assert.equal(c.state, "connected");

  const got = [];
  const s = c.subscribe("chat:a", (data, ctx) => got.push([data, ctx]));
  assert.equal(s.state, "subscribing");
  const ctx = await next(s, "subscribed");
  assert.deepEqual(ctx, { recovered: false, resubscribe: false });
  await c.publish("chat:a", { text: "hi" });
  await until(() => got.length == 1, "the message");
  assert.deepEqual(got[0][0], { text: "hi" });
  assert.equal(got[0][1].ch, "chat:a");
  assert.equal(typeof got[0][1].pos, "string");
  assert.equal(s.pos, got[0][1].pos);
  assert.throws(() => c.subscribe("chat:a"), /already subscribed/);
});

test("publish rejects with the server's code, and is not retried", async () => {
  const srv = await server();
  const c = await connected(srv.url);
  srv.failPub = 503;
  const e = await c.publish("x", 1).then(() => null, (e) => e);
  assert.ok(e instanceof MeshcastError);
  assert.equal(e.code, 503);
  assert.match(e.reason, /cluster unavailable/);
  assert.equal(srv.received.filter((f) => f.op == "pub").length, 1);
  srv.failPub = 403;
  await assert.rejects(c.publish("x", 1), { code: 403 });
  await assert.rejects(c.publish("x", undefined), TypeError);
});

test("publish before connect() rejects at once", async () => {
  const c = client("ws://127.0.0.1:9/ws");
  await assert.rejects(c.publish("x", 1), { code: "disconnected" });
});

test("a publish made while disconnected waits and is sent, in order, after the reconnect", async () => {
  const srv = await server();
  srv.refuse = 3; // HTTP 503 + Retry-After, like a node that is not ready
  const c = client(srv.url);
  const drops = record(c, "disconnected");
  c.connect();
  const sent = [c.publish("q", 1), c.publish("q", 2), c.publish("q", 3)];
  await Promise.all(sent);
  assert.deepEqual(srv.received.filter((f) => f.op == "pub").map((f) => f.data), [1, 2, 3]);
  assert.equal(drops.length, 3);
  assert.ok(drops.every((d) => d.reconnect && d.code == 1006), JSON.stringify(drops));
});

test("a publish that finds no connection within its timeout rejects and is never sent", async () => {
  const srv = await server();
  srv.refuse = 1e9;
  const c = client(srv.url);
  c.connect();
  const t0 = Date.now();
  await assert.rejects(c.publish("q", "late", { timeout: 300 }), { code: "timeout", reason: /no connection within 300 ms/ });
  assert.ok(Date.now() - t0 >= 290);
  srv.refuse = 0;
  await next(c, "connected");
  await c.publish("q", "after");
  assert.deepEqual(srv.received.filter((f) => f.op == "pub").map((f) => f.data), ["after"]);
});

test("a publish in flight when the connection drops rejects with connection_lost", async () => {
  const srv = await server();
  const c = await connected(srv.url);
  srv.answer = (conn, f) => f.op != "pub";
  const p = c.publish("q", 1);
  await until(() => srv.received.some((f) => f.op == "pub"), "the pub at the server");
  srv.kill();
  await assert.rejects(p, { code: "connection_lost", reason: /may or may not/ });
});

test("a dropped connection reconnects to the next URL and recovers with since, exactly once and in order", async () => {
  const store = new Store();
  const a = await server({ store }), b = await server({ store });
  const c = await connected([a.url, b.url]);
  const got = [];
  const s = c.subscribe("h", (d) => got.push(d));
  const subs = record(s, "subscribed"), gaps = record(c, "gap");
  await next(s, "subscribed");
  for (let i = 0; i < 5; i++) a.publish("h", i);
  await until(() => got.length == 5, "5 live messages");

  const back = next(c, "connected");
  a.closeAll(1001, "going away");
  for (let i = 5; i < 10; i++) a.publish("h", i); // missed while away
  assert.equal((await back).node, "fake:" + b.port);
  await until(() => subs.length == 2, "the resubscribe");
  const since = b.received.find((f) => f.op == "sub");
  assert.equal(typeof since.since, "string");
  assert.deepEqual(subs[1], { recovered: true, resubscribe: true });
  for (let i = 10; i < 15; i++) b.publish("h", i);
  await until(() => got.length >= 15, "15 messages");
  assert.deepEqual(got, [...Array(15).keys()]);
  assert.deepEqual(gaps, []);
});

test("a resubscribe the server cannot complete is a gap, on the subscription and the client", async () => {
  const store = new Store(3); // a window of 3 messages
  const srv = await server({ store });
  const c = await connected(srv.url);
  const s = c.subscribe("h");
  await next(s, "subscribed");
  srv.publish("h", "first");
  await until(() => s.pos, "a position");
  const subGap = next(s, "gap"), clientGap = next(c, "gap");
  srv.kill();
  for (let i = 0; i < 5; i++) srv.publish("h", i); // the window loses "first"
  assert.deepEqual(await subGap, { ch: "h", reason: "reconnect" });
  assert.deepEqual(await clientGap, { ch: "h", reason: "reconnect" });
  assert.equal(s.state, "subscribed");
});

test("channels without history: a resubscribe is a gap; since refused is retried without it", async () => {
  const srv = await server({ history: false });
  const c = await connected(srv.url);
  const s = c.subscribe("plain");
  await next(s, "subscribed");
  const gap = next(s, "gap");
  srv.kill();
  assert.deepEqual(await gap, { ch: "plain", reason: "reconnect" });

  const r = c.subscribe("x", null, { since: "p42" });
  assert.deepEqual(await next(r, "gap"), { ch: "x", reason: "since refused" });
  await until(() => r.state == "subscribed", "subscribed without since");
  const subs = srv.received.filter((f) => f.op == "sub" && f.ch == "x");
  assert.deepEqual(subs.map((f) => f.since), ["p42", undefined]);
});

test("the server's gap frame reaches the subscription and the client", async () => {
  const srv = await server();
  const c = await connected(srv.url);
  const s = c.subscribe("g");
  await next(s, "subscribed");
  const both = Promise.all([next(s, "gap"), next(c, "gap")]);
  srv.gap("g");
  assert.deepEqual(await both, [{ ch: "g", reason: "server" }, { ch: "g", reason: "server" }]);
});

test("sub refused with 503 is retried with backoff; 403 ends the subscription", async () => {
  const srv = await server();
  const c = await connected(srv.url);
  srv.failSub.set("busy", [503, 503]);
  const s = c.subscribe("busy");
  const errors = record(s, "error");
  await s.ready();
  assert.deepEqual(errors.map((e) => e.code), [503, 503]);
  assert.equal(srv.received.filter((f) => f.op == "sub" && f.ch == "busy").length, 3);

  srv.failSub.set("no", [403]);
  const n = c.subscribe("no");
  const end = next(n, "unsubscribed");
  await assert.rejects(n.ready(), { code: 403 });
  assert.equal((await end).error.code, 403);
  assert.equal(c.subs.has("no"), false);
});

test("unsubscribe stops delivery and tells the server", async () => {
  const srv = await server();
  const c = await connected(srv.url);
  const got = [];
  const s = c.subscribe("u", (d) => got.push(d));
  await s.ready();
  srv.answer = (conn, f) => f.op != "unsub"; // the unsub reaches the server, the fake keeps sending
  s.unsubscribe();
  assert.equal(s.state, "unsubscribed");
  await until(() => srv.received.some((f) => f.op == "unsub" && f.ch == "u"), "the unsub");
  srv.publish("u", "after");
  await c.publish("other", 1); // a round trip after the message
  assert.deepEqual(got, []);
  const again = c.subscribe("u", (d) => got.push(d));
  await again.ready();
});

test("history answers oldest first, waits for the connection, and is sent again after a drop", async () => {
  const srv = await server();
  for (let i = 0; i < 5; i++) srv.publish("h", i);
  srv.refuse = 2;
  const c = client(srv.url);
  c.connect();
  const msgs = await c.history("h", { limit: 3 });
  assert.deepEqual(msgs.map((m) => m.data), [2, 3, 4]);
  assert.ok(msgs.every((m) => typeof m.pos == "string"));

  let swallow = true;
  srv.answer = (conn, f) => !(f.op == "history" && swallow);
  const h = c.history("h", { limit: 1 });
  await until(() => srv.received.filter((f) => f.op == "history").length == 2, "the second history request");
  swallow = false;
  srv.kill();
  assert.deepEqual((await h).map((m) => m.data), [4]);

  const old = await server({ history: false });
  const o = await connected(old.url);
  await assert.rejects(o.history("h"), { code: 400, reason: "unknown op" });
});

test("getToken: before each reconnect; after 4001; 4001 without it and 4003 stop", async () => {
  const srv = await server({ tokens: new Set(["t1", "t2", "t3"]) });
  let n = 0;
  const c = await connected(srv.url, { getToken: async () => "t" + ++n });
  assert.deepEqual(srv.upgrades.map((u) => u.token), ["t1"]);
  let back = next(c, "connected");
  srv.closeAll(4001, "token expired");
  await back;
  back = next(c, "connected");
  srv.kill();
  await back;
  assert.deepEqual(srv.upgrades.map((u) => u.token), ["t1", "t2", "t3"]);

  const fixed = await connected(srv.url, { token: "t1" });
  const stopped = next(fixed, "disconnected");
  const e = next(fixed, "error");
  srv.closeAll(4001, "token expired");
  assert.equal((await e).code, 4001);
  assert.deepEqual(await stopped, { code: 4001, reason: "token expired", reconnect: false });
  assert.equal(fixed.state, "disconnected");

  const d = await connected(srv.url, { getToken: async () => "t1" });
  const pending = d.publish("p", 1, { timeout: 60000 });
  srv.answer = () => false;
  const why = next(d, "error");
  srv.closeAll(4003, "disconnected");
  await assert.rejects(pending, { code: "connection_lost" });
  assert.equal((await why).code, 4003);
  assert.equal(d.state, "disconnected");
  await assert.rejects(d.publish("p", 2), { code: "disconnected" });
});

test("a failing getToken is an error event and is retried", async () => {
  const srv = await server();
  let n = 0;
  const c = client(srv.url, {
    getToken: async () => {
      if (++n < 3) throw new Error("backend down");
      return "ok";
    },
  });
  const errors = record(c, "error");
  c.connect();
  await next(c, "connected");
  assert.deepEqual(errors.map((e) => e.message), ["backend down", "backend down"]);
  assert.equal(srv.upgrades[0].token, "ok");
});

test("no hello within the timeout: drop and try again", async () => {
  const srv = await server();
  srv.silent = true;
  const c = client(srv.url, { timeout: 200 });
  c.connect();
  const d = await next(c, "disconnected");
  assert.deepEqual([d.code, d.reason, d.reconnect], [1006, "no hello in time", true]);
  srv.silent = false;
  await next(c, "connected");
});

test("reconnect delays: full jitter under a doubling cap", async () => {
  const c = new Client("ws://x/ws", { WebSocket, minReconnectDelay: 500, maxReconnectDelay: 20000 });
  const random = Math.random;
  try {
    Math.random = () => 0.999999;
    const caps = [0, 1, 2, 3, 4, 5, 6, 10].map((n) => Math.round(c._delay(n)));
    assert.deepEqual(caps, [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000]);
    Math.random = () => 0;
    assert.equal(c._delay(5), 0);
  } finally {
    Math.random = random;
  }
  assert.deepEqual(defaults, { minReconnectDelay: 500, maxReconnectDelay: 20000, timeout: 10000, maxQueue: 1000, heartbeat: 25000 });

  // And on the wire: refused attempts wait less than the cap of their attempt.
  const srv = await server();
  srv.refuse = 4;
  const w = client(srv.url, { minReconnectDelay: 10, maxReconnectDelay: 40 });
  const drops = record(w, "disconnected");
  w.connect();
  await next(w, "connected");
  assert.equal(drops.length, 4);
  drops.forEach((d, i) => assert.ok(d.delay >= 0 && d.delay < Math.min(40, 10 * 2 ** i), `attempt ${i}: ${d.delay}`));
});

test("close rejects what waits, stops reconnecting, and connect() resubscribes", async () => {
  const srv = await server();
  const c = await connected(srv.url);
  const s = c.subscribe("c");
  await s.ready();
  srv.answer = () => false;
  const p = c.publish("c", 1);
  const d = next(c, "disconnected");
  c.close();
  assert.deepEqual(await d, { code: 1000, reason: "client closed", reconnect: false });
  await assert.rejects(p, { code: "closed" });
  assert.equal(c.state, "disconnected");
  assert.equal(s.state, "subscribing");
  srv.answer = () => true;
  c.connect();
  await s.ready();
  assert.equal(srv.received.filter((f) => f.op == "sub").length, 2);
});

test("a URL that can never work is refused at once; one the WebSocket refuses is bad_url, without the token", async () => {
  assert.throws(() => new Client("ftp://example.invalid/ws", { WebSocket }), /want ws:\/\/host/);
  assert.throws(() => new Client(["ws://ok.invalid/ws", "a b"], { WebSocket }), /"a b"/);
  // A WebSocket that refuses what the URL check let through, naming the
  // URL with its token as real ones do.
  class Refusing {
    constructor(url) {
      const e = new Error("Invalid URL: " + url);
      e.name = "SyntaxError";
      throw e;
    }
  }
  const one = client("ws://x.invalid/ws", { WebSocket: Refusing, token: "SECRET123" });
  const failed = next(one, "error");
  const stopped = next(one, "disconnected");
  one.connect();
  const e = await failed;
  assert.equal(e.code, "bad_url");
  assert.doesNotMatch(e.message, /SECRET123/);
  assert.equal((await stopped).reconnect, false);
  // With other URLs the client goes on to the next.
  const two = client(["ws://x.invalid/ws", "ws://y.invalid/ws"], { WebSocket: Refusing, token: "SECRET123" });
  const gone = next(two, "disconnected");
  two.connect();
  assert.equal((await gone).reconnect, true);
});

test("malformed frames are errors, not crashes", async () => {
  const srv = await server();
  const c = await connected(srv.url);
  const e = next(c, "error");
  for (const conn of srv.conns) conn.ws.send("{nope");
  assert.equal((await e).code, "bad_frame");
  for (const conn of srv.conns) conn.ws.send("null"), conn.ws.send("[1]"), conn.ws.send('{"op":"ack","id":99}');
  await c.publish("still", "works");
});

test("presence: pages asked for in turn, stats, join and leave events with info, info sent again on resubscribe", async () => {
  const srv = await server();
  srv.presencePage = 2;
  const w = await connected(srv.url, { token: "watcher" });
  const ws = w.subscribe("room:1", undefined, { info: { name: "W" } });
  assert.deepEqual(ws.info, { name: "W" });
  const joins = record(ws, "join"), leaves = record(ws, "leave");
  await ws.ready();
  const others = [];
  for (const u of ["dan", "ann", "cat", "ann", "bob"]) {
    const c = await connected(srv.url, { token: u });
    await c.subscribe("room:1", undefined, { info: { u } }).ready();
    others.push(c);
  }
  const members = await w.presence("room:1");
  assert.deepEqual(members.map((m) => `${m.user}*${m.clients}`), ["ann*2", "bob*1", "cat*1", "dan*1", "watcher*1"]);
  assert.deepEqual(members[1].info, { u: "bob" });
  assert.equal(srv.received.filter((f) => f.op == "presence").length, 3, "three pages of two");
  assert.deepEqual(await w.presenceStats("room:1"), { users: 5, clients: 6 });
  assert.deepEqual(joins.map((j) => j.user), ["watcher", "dan", "ann", "cat", "bob"]);
  assert.deepEqual(joins[1], { ch: "room:1", user: "dan", info: { u: "dan" } });

  others[1].close(); // one of ann's two: no leave
  others[0].close();
  await until(() => leaves.length == 1, "dan's leave");
  assert.deepEqual(leaves, [{ ch: "room:1", user: "dan" }]);

  // A reconnect resubscribes with the same info.
  const back = next(ws, "subscribed");
  srv.closeAll(1001, "going away");
  await back;
  const subs = srv.received.filter((f) => f.op == "sub" && f.ch == "room:1" && f.info?.name == "W");
  assert.equal(subs.length, 2);
});

test("presence rejects with the server's code", async () => {
  const srv = await server();
  const c = await connected(srv.url);
  srv.answer = (conn, f) => {
    if (f.op != "presence") return true;
    srv.send(conn, { op: "err", id: f.id, code: 403, reason: "subscribing here needs a token" });
    return false;
  };
  await assert.rejects(c.presence("room:1"), { code: 403 });
});

test("a getToken that fails after 4001 is asked again: the expired token is never sent back", async () => {
  const srv = await server({ tokens: new Set(["t1", "t2"]) });
  let n = 0, fail = false;
  const c = await connected(srv.url, {
    getToken: async () => {
      if (fail) {
        fail = false;
        throw new Error("backend down");
      }
      return "t" + ++n;
    },
  });
  srv.tokens.delete("t1"); // t1 has expired
  fail = true;
  const failed = next(c, "error");
  const back = next(c, "connected");
  srv.closeAll(4001, "token expired");
  assert.equal((await failed).message, "backend down");
  await back;
  assert.deepEqual(srv.upgrades.map((u) => u.token), ["t1", "t2"]);
});

test("data and info that are not JSON fail at the call, not later or as something else", async () => {
  const srv = await server();
  srv.refuse = 1e9; // connecting: a valid publish would wait for the connection
  const c = client(srv.url);
  c.connect();
  const circular = {};
  circular.self = circular;
  for (const bad of [1n, { n: 2n }, circular, () => 1, Symbol("s")]) {
    const t0 = Date.now();
    await assert.rejects(c.publish("x", bad), (e) => e instanceof TypeError && /not JSON/.test(e.message));
    assert.ok(Date.now() - t0 < 1000, "rejected at once, not after the timeout");
    assert.throws(() => c.subscribe("room:1", null, { info: bad }), TypeError);
    assert.equal(c.subs.size, 0);
  }
  srv.refuse = 0;
  await next(c, "connected");
  await c.publish("x", null); // null is JSON
  assert.deepEqual(srv.received.filter((f) => f.op == "pub").map((f) => f.data), [null]);
});

test("ready() of a subscription the server refused rejects with the server's error, even when asked late", async () => {
  const srv = await server();
  const c = await connected(srv.url);
  srv.failSub.set("no", [403]);
  const s = c.subscribe("no");
  await next(s, "unsubscribed");
  await assert.rejects(s.ready(), { code: 403 });
});

test("close 1009: the biggest request not answered rejects with 1009 (not published), the others with connection_lost", async () => {
  const srv = await server();
  srv.answer = (conn, f) => f.op != "pub"; // nothing is answered before the close
  const c = await connected(srv.url);
  // In bytes, not UTF-16 code units: "é" is 2 bytes and 1 unit.
  const before = c.publish("x", "a".repeat(1500)), huge = c.publish("x", "é".repeat(1000)), after = c.publish("x", "b");
  await until(() => srv.received.filter((f) => f.op == "pub").length == 3, "the three pubs");
  srv.closeAll(1009, "message too big");
  await assert.rejects(huge, { code: 1009, reason: /not published/ });
  await assert.rejects(before, { code: "connection_lost" });
  await assert.rejects(after, { code: "connection_lost" });
});

test("a URL the page may never open (SecurityError: ws: from an https page) is bad_url and stops, not retried forever", async () => {
  // Firefox throws DOMException SecurityError "The operation is insecure."
  // for ws:// from an https page: no retry can succeed.
  class Insecure {
    constructor() {
      throw new DOMException("The operation is insecure.", "SecurityError");
    }
  }
  const c = client("ws://x.invalid/ws", { WebSocket: Insecure, token: "SECRET123" });
  const drops = record(c, "disconnected");
  const e = next(c, "error");
  c.connect();
  assert.equal((await e).code, "bad_url");
  await until(() => c.state == "disconnected", "the client to stop", 1000);
  assert.deepEqual(drops.map((d) => d.reconnect), [false]);
});

test("the window's online event: a reconnect waiting out its backoff goes at once; close() stops listening", async () => {
  const win = new EventTarget(); // what a browser's globalThis is
  const listening = new Set();
  globalThis.addEventListener = (ev, fn) => (listening.add(fn), win.addEventListener(ev, fn));
  globalThis.removeEventListener = (ev, fn) => (listening.delete(fn), win.removeEventListener(ev, fn));
  cleanup.push(() => {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  });
  const srv = await server();
  const c = await connected(srv.url, { minReconnectDelay: 60000, maxReconnectDelay: 60000 });
  const drop = next(c, "disconnected");
  srv.kill();
  assert.ok((await drop).delay > 0);
  const back = next(c, "connected", 2000);
  win.dispatchEvent(new Event("online"));
  await back;
  assert.equal(listening.size, 1);
  c.close();
  assert.equal(listening.size, 0, "no listener left after close()");
  c.connect();
  c.connect();
  assert.equal(listening.size, 1);
  c.close();
  assert.equal(listening.size, 0);
});

test("a getToken that never answers is given up after timeout and asked again, not waited for forever", async () => {
  const srv = await server();
  let n = 0;
  const c = client(srv.url, {
    timeout: 200,
    getToken: () => (++n == 1 ? new Promise(() => {}) : Promise.resolve("t" + n)), // the backend hangs once
  });
  const e = next(c, "error");
  const hello = next(c, "connected", 3000);
  c.connect();
  assert.deepEqual([(await e).code, (await e).reason], ["timeout", "getToken did not answer within 200 ms"]);
  await hello;
  assert.deepEqual(srv.upgrades.map((u) => u.token), ["t2"]);
});

test("messages received before a sub's ack, then a drop: the resubscribe says gap (channels without history)", async () => {
  const srv = await server({ history: false });
  const c = await connected(srv.url);
  // The node delivers as soon as the sub is in place, and acks once the
  // cluster has confirmed it: the connection drops in between.
  srv.answer = (conn, f) => {
    if (f.op != "sub") return true;
    srv.answer = () => true;
    conn.chans.add(f.ch);
    srv.subs.set(f.ch, new Set([conn]));
    return false; // no ack
  };
  const got = [];
  const s = c.subscribe("early", (d) => got.push(d));
  await until(() => srv.subs.get("early")?.size == 1, "the sub in place");
  srv.publish("early", 1);
  await until(() => got.length == 1, "the message before the ack");
  const gap = next(s, "gap");
  srv.kill();
  srv.publish("early", 2); // missed
  assert.deepEqual(await gap, { ch: "early", reason: "reconnect" });
  assert.equal(s.state, "subscribed");
});

test("close() with a server that never answers the close frame: the socket is gone within seconds, not ws's 30 s", async () => {
  const srv = await server();
  const c = await connected(srv.url);
  for (const conn of srv.conns) conn.ws._socket.pause(); // a frozen node: reads nothing, echoes no close
  const ws = c._ws;
  c.close();
  // An open socket keeps a Node process alive: with ws it stayed CLOSING
  // until its 30 s close timeout.
  await until(() => ws.readyState === 3, "the socket closed", 3000);
});

// pings counts the pings of each connection of srv, by its client id.
function pings(srv) {
  const n = new Map();
  srv.answer = (conn, f) => (f.op == "ping" && n.set(conn.id, (n.get(conn.id) || 0) + 1), true);
  return (c) => n.get(c.info?.client ?? c) || 0;
}

test("heartbeat: a quiet connection is pinged and kept while the server answers; messages stand in for pings", async () => {
  const srv = await server();
  const count = pings(srv);
  const c = await connected(srv.url, { heartbeat: 40 });
  const drops = record(c, "disconnected");
  await until(() => count(c) >= 5, "five pings");
  assert.equal(c.state, "connected");
  assert.deepEqual(drops, []);
  // A client hearing a message every 5 ms has nothing to ask.
  const busy = await connected(srv.url, { heartbeat: 250 });
  const s = busy.subscribe("busy");
  await s.ready();
  const before = count(busy);
  const t0 = Date.now();
  while (Date.now() - t0 < 1000) {
    srv.publish("busy", 1);
    await new Promise((r) => setTimeout(r, 5)); // the pace of the messages
  }
  assert.ok(count(busy) <= before + 1, `${count(busy) - before} pings while messages arrived`);
});

test("heartbeat: a server that stops answering (a frozen node) is left, and the resubscribe says gap", async () => {
  const srv = await server({ history: false });
  const c = await connected(srv.url, { heartbeat: 50, timeout: 300 });
  const s = c.subscribe("quiet");
  await s.ready();
  const gap = next(s, "gap", 5000);
  const drop = next(c, "disconnected", 5000);
  const back = next(c, "connected", 5000);
  // Frozen: the socket stays open, nothing is answered.
  srv.answer = (conn, f) => f.op != "ping";
  const d = await drop;
  assert.equal(d.code, 1006);
  assert.match(d.reason, /no answer to a ping within 300 ms/);
  srv.answer = () => true;
  await back;
  assert.deepEqual(await gap, { ch: "quiet", reason: "reconnect" });
});

test("heartbeat 0 sends no ping; close() stops the pings", async () => {
  const srv = await server();
  const count = pings(srv);
  const off = await connected(srv.url, { heartbeat: 0 });
  const on = await connected(srv.url, { heartbeat: 20 });
  const onID = on.info.client, offID = off.info.client;
  await until(() => count(on) >= 3, "pings of the client with a heartbeat");
  on.close();
  const n = count(onID);
  // A third client's pings are the clock: five of its heartbeats, and the
  // closed one would have pinged again.
  const clock = await connected(srv.url, { heartbeat: 20 });
  await until(() => count(clock) >= 5, "five heartbeats of another client");
  assert.equal(count(onID), n);
  assert.equal(count(offID), 0);
});

test("a refused resubscribe on a channel without history says gap at the first refusal, once", async () => {
  const srv = await server({ history: false });
  const c = await connected(srv.url);
  const s = c.subscribe("plain");
  await s.ready();
  const gaps = record(s, "gap");
  srv.failSub.set("plain", [503, 503, 503]); // a node that cannot take it for a while
  const refused = next(s, "error");
  srv.kill();
  assert.equal((await refused).code, 503);
  // Told at the first refusal, while still subscribing, not when a node
  // finally takes it.
  assert.deepEqual(gaps, [{ ch: "plain", reason: "reconnect" }]);
  assert.equal(s.state, "subscribing");
  await until(() => s.state == "subscribed", "the resubscribe taken");
  assert.deepEqual(gaps, [{ ch: "plain", reason: "reconnect" }]);
  // The next incident is told again.
  const again = next(s, "gap");
  srv.kill();
  assert.deepEqual(await again, { ch: "plain", reason: "reconnect" });
});

test("a node that says hello and closes at once: the backoff keeps growing; a connection that lasted resets it", async () => {
  const srv = await server();
  const random = Math.random;
  Math.random = () => 0.999999; // every wait is its cap
  cleanup.push(() => (Math.random = random));
  const c = await connected(srv.url, { minReconnectDelay: 10, maxReconnectDelay: 100000 });
  const drops = record(c, "disconnected");
  for (let i = 0; i < 4; i++) {
    const back = next(c, "connected");
    srv.kill();
    await back;
  }
  assert.deepEqual(drops.map((d) => Math.round(d.delay)), [10, 20, 40, 80]);
  c._up = Date.now() - 10000; // as if this connection had lasted 10 s
  const back = next(c, "connected");
  srv.kill();
  await back;
  assert.equal(Math.round(drops[4].delay), 10);
});

test("a request over the hello's max_message fails alone with 413, unsent: the connection and its subscriptions stay", async () => {
  const srv = await server({ maxMessage: 1000 });
  const c = await connected(srv.url);
  const drops = record(c, "disconnected");
  const s = c.subscribe("ch");
  await s.ready();
  const e = await c.publish("ch", "é".repeat(600)).then(() => null, (e) => e); // 600 characters, 1,200 bytes
  assert.equal(e?.code, 413, String(e));
  assert.match(e.reason, /at most 1000 bytes.*not published/);
  const big = c.subscribe("room", null, { info: "x".repeat(2000) });
  await assert.rejects(big.ready(), { code: 413 });
  assert.equal(srv.received.filter((f) => f.op == "pub" || f.ch == "room").length, 0);
  await c.publish("ch", "x".repeat(900)); // under the limit, frame and all: sent
  assert.deepEqual(drops, []);
  assert.equal(s.state, "subscribed");
});

test("an early gap, then messages, then another drop: the next ack says gap again", async () => {
  const srv = await server({ history: false });
  const c = await connected(srv.url);
  const got = [];
  const s = c.subscribe("plain", (d) => got.push(d));
  await s.ready();
  const gaps = record(s, "gap");
  // The next connection's sub is put in place but refused with 429 (the
  // node's "too many subscribes waiting"), and its retries go unanswered.
  let first = true;
  srv.answer = (conn, f) => {
    if (f.op != "sub") return true;
    if (first) {
      first = false;
      conn.chans.add(f.ch);
      if (!srv.subs.has(f.ch)) srv.subs.set(f.ch, new Set());
      srv.subs.get(f.ch).add(conn);
      srv.send(conn, { op: "err", id: f.id, code: 429, reason: "too many subscribes waiting" });
    }
    return false;
  };
  srv.kill();
  await until(() => gaps.length == 1, "the early gap");
  await until(() => !first, "the sub in place");
  srv.publish("plain", 1);
  await until(() => got.length == 1, "a message after the early gap");
  srv.answer = () => true;
  const again = next(s, "gap");
  srv.kill(); // a new incident: what is published until the resubscribe is missed
  assert.deepEqual(await again, { ch: "plain", reason: "reconnect" });
});

test("an unsub over max_message is sent anyway: the node must not keep the subscription", async () => {
  // The sub {"op":"sub","ch":"abc","id":1} is 30 bytes, its unsub 32.
  const srv = await server({ maxMessage: 30 });
  const c = await connected(srv.url);
  const s = c.subscribe("abc");
  await s.ready();
  s.unsubscribe();
  await until(() => srv.received.some((f) => f.op == "unsub" && f.ch == "abc"), "the unsub on the wire");
});
