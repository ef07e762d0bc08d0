// The client in a real browser (Debian's headless Chromium) when the
// network comes back: the window's "online" event ends a reconnect's
// backoff wait at once, instead of up to maxReconnectDelay later.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Node } from "../meshcast-proc.mjs";
import { launch } from "./chromium.mjs";

let node, browser, context;

before(async () => {
  node = await Node.start({ name: "online", args: ["--api-key", "k3y"] });
  browser = await launch();
  context = browser.context;
});

after(async () => {
  await browser?.close();
  await node?.kill();
});

test("back online: a reconnect waiting out a long backoff goes at once, and the subscription is back", async () => {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(node.page);
  await page.evaluate(async (url) => {
    const { Client } = await import("/meshcast.js");
    // The longest wait, every time: without the online event the reconnect
    // comes a minute later.
    Math.random = () => 0.999;
    const c = (window.c = new Client(url, { minReconnectDelay: 60000, maxReconnectDelay: 60000 }));
    window.got = [];
    window.drops = [];
    c.on("disconnected", (d) => window.drops.push(d));
    window.sub = c.subscribe("online", (d) => window.got.push(d));
    c.connect();
    await window.sub.ready();
  }, node.url);

  const ports = node.samePorts();
  await node.kill("SIGKILL");
  await page.waitForFunction(() => window.drops.length == 1 && window.c.state == "connecting", null, { timeout: 10000 });
  const delay = await page.evaluate(() => window.drops[0].delay);
  assert.ok(delay > 50000, `a long backoff: ${delay} ms`);
  node = await Node.start({ ...ports, args: ["--api-key", "k3y"] });

  // The laptop's network goes and comes back.
  await context.setOffline(true);
  await context.setOffline(false);
  await page.waitForFunction(() => window.c.state == "connected" && window.sub.state == "subscribed", null, { timeout: 10000 });
  const r = await node.get("/api/publish", {
    method: "POST",
    headers: { Authorization: "Bearer k3y", "Content-Type": "application/json" },
    body: JSON.stringify({ ch: "online", data: "back" }),
  });
  assert.equal(r.status, 200, r.body);
  await page.waitForFunction(() => window.got.includes("back"), null, { timeout: 10000 });
  assert.deepEqual(errors, []);
  await page.evaluate(() => window.c.close());
  await page.close();
});
