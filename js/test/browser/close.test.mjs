// A close a node starts reaches the browser with its code. The node used
// to close its socket right after the close frame with what the browser
// had sent still unread, so the kernel answered with a reset, and Chromium
// (like any client on Windows) then reported 1006 instead of the code: 9
// times in 10 for a message over --max-message.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { Node } from "../meshcast-proc.mjs";

const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
let node, context, profile;

before(async () => {
  node = await Node.start({ name: "close" });
  profile = mkdtempSync(join(tmpdir(), "meshcast-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await context?.close();
  await node?.kill();
  if (profile) rmSync(profile, { recursive: true, force: true });
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
