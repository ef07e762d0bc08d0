// Real meshcast nodes for the integration and browser tests: the binary
// (MESHCAST_BIN, or built from this repository), every port chosen by the
// OS and read back from the "meshcast serving" log line, as
// cmd/meshcast/process_test.go does.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHmac } from "node:crypto";
import { until } from "./helpers.mjs";

const repo = new URL("../..", import.meta.url).pathname;
let built;

/** The path of the meshcast binary, built once per test process. */
export function binary() {
  if (process.env.MESHCAST_BIN) return process.env.MESHCAST_BIN;
  if (!built) {
    const dir = mkdtempSync(join(tmpdir(), "meshcast-js-"));
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    built = join(dir, "meshcast");
    execFileSync("go", ["build", "-o", built, "./cmd/meshcast"], { cwd: repo, stdio: "inherit" });
  }
  return built;
}

/** A running node. */
export class Node {
  /** Starts a node; opts.listen/gossip/peer pin ports (for a restart on the same ones). */
  static async start({ name, join: seeds, listen = "127.0.0.1:0", gossip = "127.0.0.1:0", peer = "127.0.0.1:0", args = [] } = {}) {
    const n = new Node();
    const argv = ["--listen", listen, "--gossip", gossip, "--peer", peer, "--log-format", "json", "--secret", "js-test", "--insecure"];
    if (name) argv.push("--name", name);
    if (seeds) argv.push("--join", seeds);
    n.proc = spawn(binary(), [...argv, ...args], { stdio: ["ignore", "ignore", "pipe"] });
    n.lines = [];
    n.exited = new Promise((resolve) => n.proc.on("exit", (code, signal) => resolve({ code, signal })));
    const serving = new Promise((resolve, reject) => {
      let buf = "";
      n.proc.stderr.on("data", (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          n.lines.push(line);
          try {
            const m = JSON.parse(line);
            if (m.msg == "meshcast serving") resolve(m);
          } catch {}
        }
      });
      n.exited.then(({ code, signal }) => reject(new Error(`meshcast exited (${code ?? signal}) before serving:\n${n.log()}`)));
    });
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("meshcast did not serve in 30 s")), 30000).unref());
    const m = await Promise.race([serving, timeout]);
    n.name = m.node;
    n.http = m.http.replace(/^http:\/\//, "");
    n.gossipPort = m.gossip_port;
    n.peerPort = m.peer_port;
    n.url = `ws://${n.http}/ws`;
    n.page = `http://${n.http}/`;
    return n;
  }

  log() {
    return this.lines.join("\n");
  }

  /** The flags that start this node again on the same ports. */
  samePorts() {
    return { name: this.name, listen: this.http, gossip: "127.0.0.1:" + this.gossipPort, peer: "127.0.0.1:" + this.peerPort };
  }

  /** kill -9 (or another signal), resolved once the process is gone. */
  async kill(signal = "SIGKILL") {
    if (this.proc.exitCode == null && this.proc.signalCode == null) this.proc.kill(signal);
    return this.exited;
  }

  async get(path, init) {
    const res = await fetch(`http://${this.http}${path}`, init);
    return { status: res.status, body: await res.text(), headers: res.headers };
  }
}

/** Starts count nodes joined to the first, and waits until every peer link is up. */
export async function startCluster(count, args = []) {
  const first = await Node.start({ name: "n0", args });
  const nodes = [first];
  for (let i = 1; i < count; i++) {
    nodes.push(await Node.start({ name: "n" + i, join: "127.0.0.1:" + first.gossipPort, args }));
  }
  await linksUp(nodes);
  return nodes;
}

/**
 * Waits until each node has an up link to each other one and is ready
 * (/readyz): a node that still counts a member killed by an earlier test
 * as alive is joining, refuses clients, and they go to another node.
 */
export async function linksUp(nodes, ms = 30000) {
  await until(async () => {
    for (const n of nodes) {
      const { status, body } = await n.get("/api/cluster").catch(() => ({}));
      if (status != 200) return false;
      const up = (JSON.parse(body).links || []).filter((l) => l.state == "up").length;
      if (up != nodes.length - 1) return false;
      if ((await n.get("/readyz").catch(() => ({}))).status != 200) return false;
    }
    return true;
  }, `${nodes.length} nodes with every link up, ready`, ms);
}

/** An HS256 JWT, as a backend would issue it. */
export function jwt(secret, claims) {
  const b64 = (v) => Buffer.from(typeof v == "string" ? v : JSON.stringify(v)).toString("base64url");
  const head = b64({ alg: "HS256", typ: "JWT" }) + "." + b64(claims);
  return head + "." + createHmac("sha256", secret).update(head).digest("base64url");
}
