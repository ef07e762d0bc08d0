// Presence against real meshcast processes: two nodes with a presence
// namespace and token auth.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Client } from "../../meshcast.js";
import { startCluster, jwt } from "../meshcast-proc.mjs";
import { WebSocket, until, next, record } from "../helpers.mjs";

const secret = "js-presence-test-secret-32-bytes";
const opts = { WebSocket, minReconnectDelay: 50, maxReconnectDelay: 500, timeout: 5000 };
const cleanup = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const token = (user) => jwt(secret, { sub: user, exp: Math.floor(Date.now() / 1000) + 3600 });

async function as(node, user) {
  const c = new Client(node.url, { ...opts, token: token(user) });
  cleanup.push(() => c.close());
  const hello = next(c, "connected", 10000);
  c.connect();
  await hello;
  return c;
}

let nodes = [];
before(async () => {
  nodes = await startCluster(2, ["--token-hmac-secret", secret, "--namespace", "room:presence=on,join_leave=on"]);
});
after(async () => {
  for (const n of nodes) await n.kill();
});

test("a user's tabs on two nodes are one join and one leave; presence is cluster-wide from either node", async () => {
  const [a, b] = nodes;
  const w = await as(b, "watcher");
  const s = w.subscribe("room:js");
  const joins = record(s, "join"), leaves = record(s, "leave");
  await s.ready();
  const tabA = await as(a, "alice"), tabB = await as(b, "alice");
  await tabA.subscribe("room:js", undefined, { info: { name: "Alice" } }).ready();
  await tabB.subscribe("room:js", undefined, { info: { name: "Alice" } }).ready();
  await until(async () => (await w.presenceStats("room:js")).clients == 3, "alice's tabs counted on b", 10000);
  for (const c of [w, tabA]) {
    const m = await c.presence("room:js");
    assert.deepEqual(m, [{ user: "alice", clients: 2, info: { name: "Alice" } }, { user: "watcher", clients: 1 }]);
  }
  assert.deepEqual(joins.map((j) => j.user), ["watcher", "alice"]);
  assert.deepEqual(joins[1].info, { name: "Alice" });

  tabA.close();
  await until(async () => (await w.presenceStats("room:js")).clients == 2, "one tab gone", 10000);
  assert.equal(leaves.length, 0);
  tabB.close();
  await until(() => leaves.length == 1, "alice's leave", 10000);
  assert.deepEqual(leaves, [{ ch: "room:js", user: "alice" }]);
  assert.deepEqual(await w.presenceStats("room:js"), { users: 1, clients: 1 });
});

test("presence errors: no presence in the namespace, a personal channel of another user, a too large info", async () => {
  const c = await as(nodes[0], "bob");
  await assert.rejects(c.presence("plain"), { code: 400 });
  await assert.rejects(c.presence("room:#alice"), { code: 403 });
  const s = c.subscribe("room:big", undefined, { info: "x".repeat(1100) });
  await assert.rejects(s.ready(), { code: 413 });
});
