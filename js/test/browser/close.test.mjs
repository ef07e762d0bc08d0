// A close a node starts reaches the browser with its code. The node used
// to close its socket right after the close frame with what the browser
// had sent still unread, so the kernel answered with a reset, and Chromium
// (like any client on Windows) then reported 1006 instead of the code: 9
// times in 10 for a message over --max-message.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Node } from "../meshcast-proc.mjs";
import { launch } from "./chromium.mjs";

let node, browser, context;

before(async () => {
  node = await Node.start({ name: "close" });
  browser = await launch();
  context = browser.context;
});

after(async () => {
  await browser?.close();
  await node?.kill();
});

test("a message over --max-message closes with 1009 every time, not 1006", async () => {
  const page = await context.newPage();
  await page.goto(node.page);
  const codes = [];
  for (let i = 0; i < 10; i++) {
    codes.push(
      await page.evaluate(
        (url) =>
          new Promise((resolve) => {
            const ws = new WebSocket(url);
            ws.onopen = () => ws.send("x".repeat(1 << 20)); // the node reads at most 64 KiB
            ws.onclose = (e) => resolve(`${e.code} ${e.reason}`);
          }),
        node.url,
      ),
    );
  }
  assert.deepEqual(codes, Array(10).fill("1009 message too big"));
});
