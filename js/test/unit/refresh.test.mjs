// Unit tests of the token refresh over the live connection (hello and ack
// "expires", op "refresh") against the fake server. Real timers, as in
// client.test.mjs: the fake server says expiries a few seconds ahead (in
// fractional seconds, so that the client's schedule is known to the
// millisecond), and the tests wait for conditions, never for time. The
// tests run concurrently: each waits seconds for the client's schedule.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { Client } from "../../meshcast.js";
import { FakeServer } from "../fake-server.mjs";
import { WebSocket, until, next, record } from "../helpers.mjs";

// An expiry ms ahead, in unix seconds, as the hello and the ack say it.
const ahead = (ms) => (Date.now() + ms) / 1000;
// The client refreshes 5 s (its least margin) before an expiry < 50 s ahead.
const margin = 5000;

async function server(t, opts) {
  const s = await new FakeServer(opts).start();
  t.after(() => s.stop());
  return s;
}

function client(t, url, opts = {}) {
  const c = new Client(url, { WebSocket, minReconnectDelay: 20, maxReconnectDelay: 100, timeout: 2000, ...opts });
  t.after(() => c.close());
  return c;
}

async function connected(t, url, opts) {
  const c = client(t, url, opts);
  const hello = next(c, "connected");
  c.connect();
  await hello;
  return c;
}

const refreshes = (srv) => srv.received.filter((f) => f.op == "refresh");

describe("token refresh", { concurrency: true }, () => {
  test("sent before the expiry with getToken's token, over the same connection; the ack's expires schedules the next", async (t) => {
    const srv = await server(t, { tokens: new Set(["t1", "t2", "t3"]) });
    let hello;
    srv.expires = () => (hello ??= ahead(margin + 300)); // refresh due in 300 ms
    let n = 0;
    const asked = [];
    const c = client(t, srv.url, { getToken: async () => (asked.push(Date.now()), "t" + ++n) });
    const drops = record(c, "disconnected"), errors = record(c, "error"), gaps = record(c, "gap");
    c.connect();
    const info = await next(c, "connected");
    const t0 = Date.now();
    assert.equal(info.expires, hello);
    const got = [];
    const s = c.subscribe("room", (d) => got.push(d));
    await s.ready();
    const states = record(s, "subscribing");

    // The refresh is held unanswered: a publish meanwhile goes through.
    let held;
    srv.answer = (conn, f) => (f.op == "refresh" ? ((held = { conn, f }), false) : true);
    await until(() => held, "the refresh", 3000);
    const at = Date.now() - t0;
    assert.ok(at >= 250 && at < 1500, `refresh ${at} ms after the hello, want ~300`);
    assert.deepEqual(held.f, { op: "refresh", token: "t2", id: held.f.id });
    assert.equal(typeof held.f.id, "number");
    await c.publish("room", "during");
    await until(() => got.length == 1, "the message published during the refresh");

    // The ack's expiry, 3.5 s after the least margin: the next refresh in 3.5 s.
    srv.answer = () => true;
    const acked = ahead(margin + 3500);
    const t1 = Date.now();
    srv.send(held.conn, { op: "ack", id: held.f.id, expires: acked });
    await until(() => c.token == "t2", "the refreshed token taken");
    assert.equal(c.info.expires, acked);
    hello = ahead(3600 * 1000); // what the fake acks from now on
    await until(() => refreshes(srv).length == 2, "the second refresh", 6000);
    const again = Date.now() - t1;
    assert.ok(again >= 3300 && again < 5000, `second refresh ${again} ms after the ack, want ~3500`);
    assert.deepEqual(refreshes(srv).map((f) => f.token), ["t2", "t3"]);
    await until(() => c.token == "t3", "the second refreshed token taken");
    assert.equal(c.info.expires, hello);

    srv.publish("room", "after");
    await until(() => got.length == 2, "a message after the refreshes");
    assert.deepEqual(got, ["during", "after"]);
    assert.deepEqual([drops, errors, gaps, states], [[], [], [], []]);
    assert.equal(s.state, "subscribed");
    assert.equal(srv.upgrades.length, 1, "no reconnect");
    assert.equal(asked.length, 3);
  });

  test("an err answer is an error event, and the refresh is tried again before the expiry", async (t) => {
    const srv = await server(t);
    srv.expires = () => ahead(margin + 200);
    srv.failRefresh = [503];
    let n = 0;
    const c = client(t, srv.url, { getToken: async () => "t" + ++n });
    const errors = record(c, "error"), drops = record(c, "disconnected");
    c.connect();
    await next(c, "connected");
    const e = await next(c, "error", 3000);
    const t1 = Date.now();
    assert.deepEqual([e.code, e.reason], [503, "refresh refused by the test"]);
    await until(() => refreshes(srv).length == 2, "the retry", 6000);
    // Halfway to the expiry (2.5 s), but not sooner than 3 s after the last.
    const after = Date.now() - t1;
    assert.ok(after >= 2800 && after < 4500, `retry ${after} ms after the error, want ~3000`);
    assert.deepEqual(refreshes(srv).map((f) => f.token), ["t2", "t3"]);
    await until(() => c.token == "t3", "the retried refresh acked");
    assert.equal(errors.length, 1);
    assert.deepEqual(drops, []);
  });

  test("a 400 (nothing to refresh on this node) is an error event and is not asked again", async (t) => {
    const [refused, control] = [await server(t), await server(t)];
    refused.failRefresh = [400];
    control.failRefresh = [503]; // retried ~3 s later: when the 400 would have been
    for (const srv of [refused, control]) {
      srv.expires = () => ahead(margin + 200);
      let n = 0;
      client(t, srv.url, { getToken: async () => "t" + ++n }).connect();
    }
    await until(() => refreshes(control).length == 2, "the control's retry", 8000);
    assert.equal(refreshes(refused).length, 1);
  });

  test("refreshes refused until the expiry: the node's 4001 close, getToken and a reconnect take over", async (t) => {
    const srv = await server(t);
    let exp;
    srv.expires = (conn) => (conn.token == "t1" ? (exp ??= ahead(margin + 200)) : ahead(3600 * 1000));
    srv.failRefresh = [503, 401];
    let n = 0;
    const c = client(t, srv.url, { getToken: async () => "t" + ++n });
    const errors = record(c, "error"), drops = record(c, "disconnected");
    c.connect();
    await next(c, "connected");
    await until(() => errors.length == 2, "two refused refreshes", 6000);
    assert.deepEqual(errors.map((e) => e.code), [503, 401]);
    // As the node does at exp. The second retry would have come after it.
    await until(() => Date.now() >= exp * 1000, "the expiry", 6000);
    assert.deepEqual(refreshes(srv).map((f) => f.token), ["t2", "t3"]);
    const back = next(c, "connected");
    srv.closeAll(4001, "token expired");
    await back;
    assert.deepEqual(srv.upgrades.map((u) => u.token), ["t1", "t4"]);
    assert.deepEqual(drops.map((d) => [d.code, d.reconnect]), [[4001, true]]);
    assert.equal(errors.length, 2);
  });

  test("a getToken that fails or hangs at refresh time is an error event, and is asked again", async (t) => {
    const srv = await server(t);
    srv.expires = () => ahead(margin + 200);
    for (const [name, fail] of [
      ["throws", () => Promise.reject(new Error("backend down"))],
      ["hangs", () => new Promise(() => {})],
    ]) {
      let n = 0;
      const c = client(t, srv.url, { timeout: 300, getToken: () => (++n == 2 ? fail() : Promise.resolve(name + n)) });
      c.connect();
      await next(c, "connected");
      const e = await next(c, "error", 3000);
      if (name == "throws") assert.equal(e.message, "backend down");
      else assert.deepEqual([e.code, e.reason], ["timeout", "getToken did not answer within 300 ms"]);
      await until(() => c.token == name + 3, `the refresh after getToken ${name}`, 6000);
      assert.deepEqual(refreshes(srv).filter((f) => f.token.startsWith(name)).map((f) => f.token), [name + 3]);
      assert.equal(c.state, "connected");
    }
    assert.equal(srv.upgrades.length, 2, "no reconnect");
  });

  test("counted from the hello's ttl: a clock an hour behind the node's still refreshes before the expiry", async (t) => {
    const srv = await server(t, { tokens: new Set(["t1", "t2"]) });
    srv.expires = () => ahead(3600000 + margin + 300); // an hour and 5.3 s away, by this clock
    srv.ttl = () => (margin + 300) / 1000; // 5.3 s, by the node's
    let n = 0;
    await connected(t, srv.url, { getToken: async () => "t" + ++n });
    await until(() => refreshes(srv).length == 1, "a refresh", 3000);
  });

  test("no refresh without getToken, nor without expires in the hello", async (t) => {
    const srv = await server(t);
    srv.expires = (conn) => (conn.token == "no-expiry" ? undefined : ahead(margin + 300));
    const fixed = await connected(t, srv.url, { token: "fixed" });
    const never = await connected(t, srv.url, { getToken: async () => "no-expiry" });
    const control = await connected(t, srv.url, { getToken: async () => "control" });
    await until(() => refreshes(srv).length == 1, "the control client's refresh", 3000);
    assert.equal(refreshes(srv)[0].token, "control");
    // Both others had as long (they connected first): nothing from them.
    await control.publish("sync", 1); // every frame sent before it has arrived
    assert.deepEqual(refreshes(srv).map((f) => f.token), ["control"]);
    assert.equal(typeof fixed.info.expires, "number"); // its hello said one
    assert.equal(never.info.expires, undefined);
  });

  // setTimeout takes at most 2^31-1 ms (24.8 days): a longer delay fires
  // at once, in Node and in browsers. A node with --token-max-lifetime 0
  // (or an embedding authenticator) may hand out longer tokens.
  test("a token that lives longer than setTimeout's limit is not refreshed at once, nor in a loop", async (t) => {
    const srv = await server(t);
    srv.expires = (conn) => (conn.token.startsWith("long") ? ahead(40 * 86400 * 1000) : ahead(margin + 300));
    let n = 0;
    const long = await connected(t, srv.url, { getToken: async () => "long" + ++n });
    const control = await connected(t, srv.url, { getToken: async () => "control" });
    await until(() => refreshes(srv).length >= 1, "the control client's refresh", 3000);
    await long.publish("sync", 1); // every frame it sent before has arrived
    assert.deepEqual(refreshes(srv).map((f) => f.token), ["control"]);
    assert.equal(n, 1);
  });

  // As the Go client: one getToken at a time. A backend that rotates
  // refresh tokens may revoke a session that uses one twice at once.
  test("a reconnect while the refresh's getToken is pending does not call it again: it takes that token", async (t) => {
    const srv = await server(t);
    srv.expires = (conn) => (conn.token == "t1" ? ahead(margin + 200) : ahead(3600 * 1000));
    let n = 0, pending = 0, most = 0, release;
    const getToken = () => {
      most = Math.max(most, ++pending);
      const tok = "t" + ++n;
      return (n == 2 ? new Promise((ok) => (release = () => ok(tok))) : Promise.resolve(tok)).finally(() => pending--);
    };
    const c = await connected(t, srv.url, { getToken });
    await until(() => release, "the refresh's getToken", 3000);
    const drops = record(c, "disconnected");
    srv.kill();
    await until(() => drops.length == 1 && !c._next, "the reconnect's attempt"); // _next: its timer has fired
    assert.deepEqual([n, most], [2, 1]);
    const back = next(c, "connected");
    release();
    await back;
    assert.deepEqual(srv.upgrades.map((u) => u.token), ["t1", "t2"]);
    assert.deepEqual(refreshes(srv), []);
  });

  test("close() and a reconnect clear the schedule: no getToken for a connection that is gone", async (t) => {
    const srv = await server(t);
    srv.expires = () => ahead(margin + 400);
    const calls = { closed: 0, dropped: 0, control: 0 };
    const get = (k) => async () => k + ++calls[k];
    const closed = await connected(t, srv.url, { getToken: get("closed") });
    const dropped = await connected(t, srv.url, { getToken: get("dropped") });
    const control = await connected(t, srv.url, { getToken: get("control") });
    closed.close();
    // The dropped client's next connection (right away: its hello schedules
    // afresh) is said to expire in an hour.
    srv.expires = () => ahead(3600 * 1000);
    const back = next(dropped, "connected");
    for (const conn of srv.conns) if (conn.token == "dropped1") conn.ws.terminate();
    await back;
    await until(() => refreshes(srv).length == 1, "the control client's refresh", 3000);
    await control.publish("sync", 1);
    assert.deepEqual(refreshes(srv).map((f) => f.token), ["control2"]);
    assert.deepEqual(calls, { closed: 1, dropped: 2, control: 2 });
  });

  // A child process: a client whose refresh is scheduled an hour ahead (a
  // refresh was acked), or whose refresh waits for a getToken that never
  // answers (its deadline is timeout, a minute), then close(). Node must
  // exit at once: no timer of the client holds it.
  for (const mode of ["acked", "hanging"]) {
    test(`after close() no timer holds a Node process (refresh ${mode})`, async (t) => {
      const srv = await server(t);
      srv.expires = (conn) => (conn.refreshed ? ahead(3600 * 1000) : ahead(margin + 200));
      // After the refresh's ack: the token is taken once the ack is handled.
      srv.answer = (conn, f) => (f.op == "refresh" && mode == "acked" ? ((conn.refreshed = f.token), srv.send(conn, { op: "ack", id: f.id, expires: srv.expires(conn) }), false) : true);
      const src = `
        import { Client } from ${JSON.stringify(new URL("../../meshcast.js", import.meta.url).href)};
        import { WebSocket } from ${JSON.stringify(new URL("../helpers.mjs", import.meta.url).href)};
        let n = 0;
        const c = new Client(${JSON.stringify(srv.url)}, { WebSocket, timeout: 60000, heartbeat: 0,
          getToken: () => ++n == 1 ? "t1" : ${mode == "acked" ? 'Promise.resolve("t2")' : "(setTimeout(() => c.close()), new Promise(() => {}))"} });
        c.connect();
        ${mode == "acked" ? 'const w = setInterval(() => c.token == "t2" && (clearInterval(w), c.close()), 5);' : ""}
        c.on("disconnected", () => console.log("closed"));
      `;
      const child = spawn(process.execPath, ["--input-type=module", "-e", src], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      const exited = new Promise((resolve) => child.on("exit", resolve));
      t.after(() => child.kill("SIGKILL"));
      await until(() => out.includes("closed"), "the child's close()", 5000);
      const t1 = Date.now();
      const gone = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(r, 5000, false))]);
      assert.ok(gone, "the child process is still alive 5 s after close()");
      assert.ok(Date.now() - t1 < 3000);
      assert.equal(refreshes(srv).length, mode == "acked" ? 1 : 0);
    });
  }
});
