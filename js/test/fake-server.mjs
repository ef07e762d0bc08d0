// A fake meshcast for the unit tests: real sockets (node:http + the ws
// package), the v1 protocol, and what the real server is gaining (gap,
// err 503, history with pos/since/recovered), plus knobs to make it fail
// in the ways the client must survive. Several FakeServers may share one
// Store: positions are then valid on each, like nodes of one cluster.
import http from "node:http";
import { WebSocketServer } from "ws";

/** The cluster-wide state: every channel's history window. */
export class Store {
  constructor(window = 100) {
    this.window = window;
    this.seq = 0;
    this.logs = new Map(); // ch -> [{data, pos}]
    this.servers = new Set();
  }
  append(ch, data) {
    const pos = "p" + ++this.seq; // opaque to the client
    const log = this.logs.get(ch) || [];
    log.push({ data, pos });
    if (log.length > this.window) log.shift();
    this.logs.set(ch, log);
    return pos;
  }
}

export class FakeServer {
  constructor({ store = new Store(), history = true, tokens = null, maxMessage = 0 } = {}) {
    this.maxMessage = maxMessage; // said in the hello when set
    this.store = store;
    store.servers.add(this);
    this.history = history; // false: like today's server, unknown op "history", no pos
    this.tokens = tokens; // a Set of accepted tokens, or null for none needed
    this.refuse = 0; // refuse this many upgrades with HTTP 503 + Retry-After
    this.silent = false; // accept upgrades but never say hello
    this.answer = () => true; // (conn, frame) => false: swallow the request, no answer
    this.failSub = new Map(); // ch -> [code, ...] answered to the next subs
    this.failPub = null; // code answered to every pub while set
    this.expires = () => undefined; // the connection's expiry (unix seconds) said in the hello and in each refresh's ack
    this.ttl = () => undefined; // the hello's ttl (seconds left, whatever expires says)
    this.failRefresh = []; // codes answered to the next refreshes
    this.received = []; // every frame from every client
    this.upgrades = []; // {url, token} of every upgrade request
    this.conns = new Set();
    this.connIDs = 0;
    this.subs = new Map(); // ch -> Set of conns
    this.presencePage = Infinity; // members per presence answer (then "more")
    this.wss = new WebSocketServer({ noServer: true });
    this.http = http.createServer((req, res) => res.writeHead(404).end());
    this.http.on("upgrade", (req, sock, head) => this._upgrade(req, sock, head));
  }

  async start(port = 0) {
    await new Promise((resolve, reject) => {
      this.http.once("error", reject);
      this.http.listen(port, "127.0.0.1", resolve);
    });
    this.port = this.http.address().port;
    this.url = `ws://127.0.0.1:${this.port}/ws`;
    return this;
  }

  async stop() {
    this.kill();
    this.store.servers.delete(this);
    await new Promise((resolve) => this.http.close(resolve));
  }

  _upgrade(req, sock, head) {
    sock.on("error", () => {}); // a client that gives up resets the socket
    const token = new URL(req.url, "http://x").searchParams.get("token");
    this.upgrades.push({ url: req.url, token });
    const refuse = (status, reason, extra = "") =>
      sock.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\n${extra}Connection: close\r\n\r\n{"code":${status},"reason":"${reason}"}`);
    if (this.refuse > 0) {
      this.refuse--;
      return refuse(503, "node not ready", "Retry-After: 1\r\n");
    }
    if (this.tokens && !this.tokens.has(token)) return refuse(401, "bad token");
    this.wss.handleUpgrade(req, sock, head, (ws) => this._conn(ws, token));
  }

  _conn(ws, token) {
    const conn = { ws, token, chans: new Set(), infos: new Map(), id: "c" + ++this.connIDs }; // never reused, unlike a count of open ones
    this.conns.add(conn);
    ws.on("close", () => this._gone(conn));
    ws.on("error", () => {});
    ws.on("message", (buf) => this._frame(conn, JSON.parse(String(buf))));
    const expires = this.expires(conn);
    if (!this.silent) this.send(conn, { op: "hello", client: conn.id, node: "fake:" + this.port, ...(this.maxMessage && { max_message: this.maxMessage }), ...(expires && { expires }), ...(this.ttl(conn) != null && { ttl: this.ttl(conn) }) });
  }

  _gone(conn) {
    this.conns.delete(conn);
    for (const ch of conn.chans) this._leave(conn, ch);
  }

  // Presence, on this server only: every subscriber is present as its
  // token (or its client id), with the info of its sub; join and leave go
  // to the channel's subscribers, once per user.
  _user(conn) {
    return conn.token || conn.id;
  }
  _members(ch) {
    const users = new Map();
    for (const c of this.subs.get(ch) || []) {
      const u = users.get(this._user(c)) || { user: this._user(c), clients: 0 };
      u.clients++;
      if (c.infos.get(ch) !== undefined) u.info = c.infos.get(ch);
      users.set(u.user, u);
    }
    return [...users.values()].sort((a, b) => (a.user < b.user ? -1 : 1));
  }
  _event(ch, op, user, info) {
    for (const c of this.subs.get(ch) || []) this.send(c, { op, ch, user, ...(info !== undefined && { info }) });
  }
  _leave(conn, ch) {
    conn.chans.delete(ch);
    if (!this.subs.get(ch)?.delete(conn)) return;
    const user = this._user(conn);
    if (!this._members(ch).some((m) => m.user == user)) this._event(ch, "leave", user);
  }

  send(conn, obj) {
    if (conn.ws.readyState === 1) conn.ws.send(JSON.stringify(obj));
  }

  _frame(conn, f) {
    this.received.push(f);
    if (!this.answer(conn, f)) return;
    const reply = (obj) => f.id != null && this.send(conn, { id: f.id, ...obj });
    const fail = (code, reason) => this.send(conn, { op: "err", ...(f.id != null && { id: f.id }), code, reason });
    switch (f.op) {
      case "sub": {
        const codes = this.failSub.get(f.ch);
        if (codes?.length) return fail(codes.shift(), "refused by the test");
        let recovered;
        if (f.since != null) {
          if (!this.history) return fail(400, "channel has no history");
          const log = this.store.logs.get(f.ch) || [];
          const at = log.findIndex((m) => m.pos === f.since);
          const missed = at >= 0 ? log.slice(at + 1) : log;
          for (const m of missed) this.send(conn, { op: "msg", ch: f.ch, data: m.data, pos: m.pos });
          recovered = at >= 0;
        }
        const joined = !this._members(f.ch).some((m) => m.user == this._user(conn));
        conn.chans.add(f.ch);
        conn.infos.set(f.ch, f.info);
        if (!this.subs.has(f.ch)) this.subs.set(f.ch, new Set());
        this.subs.get(f.ch).add(conn);
        if (joined) this._event(f.ch, "join", this._user(conn), f.info);
        return reply({ op: "ack", ...(recovered !== undefined && { recovered }) });
      }
      case "unsub":
        this._leave(conn, f.ch);
        return reply({ op: "ack" });
      case "presence": {
        const all = this._members(f.ch).filter((m) => !f.after || m.user > f.after);
        const members = all.slice(0, this.presencePage);
        return reply({ op: "presence", ch: f.ch, members, ...(all.length > members.length && { more: true }) });
      }
      case "presence_stats": {
        const members = this._members(f.ch);
        return reply({ op: "presence_stats", ch: f.ch, users: members.length, clients: members.reduce((n, m) => n + m.clients, 0) });
      }
      case "pub":
        if (this.failPub) return fail(this.failPub, this.failPub === 503 ? "cluster unavailable: test" : "refused");
        this.publish(f.ch, f.data);
        return reply({ op: "ack" });
      case "ping":
        return reply({ op: "ack" });
      case "refresh": {
        // The user stays the connection's first token (presence); the
        // refreshed one is kept beside it.
        if (!f.token) return fail(400, "no token");
        if (this.failRefresh.length) return fail(this.failRefresh.shift(), "refresh refused by the test");
        if (this.tokens && !this.tokens.has(f.token)) return fail(401, "bad token");
        conn.refreshed = f.token;
        const expires = this.expires(conn);
        return reply({ op: "ack", ...(expires && { expires }) });
      }
      case "history":
        if (!this.history) return fail(400, "unknown op");
        return reply({ op: "history", ch: f.ch, msgs: (this.store.logs.get(f.ch) || []).slice(-(f.limit || 100)) });
      default:
        return fail(400, "unknown op");
    }
  }

  /** Publishes as the server API would: stored, then sent to the
   * subscribers of every server sharing the store. */
  publish(ch, data) {
    const pos = this.history ? this.store.append(ch, data) : undefined;
    for (const s of this.store.servers) {
      for (const conn of s.subs.get(ch) || []) s.send(conn, { op: "msg", ch, data, ...(pos && { pos }) });
    }
    return pos;
  }

  gap(ch) {
    for (const conn of this.subs.get(ch) || []) this.send(conn, { op: "gap", ch });
  }

  /** Closes every connection with a close frame. */
  closeAll(code, reason = "") {
    for (const c of this.conns) c.ws.close(code, reason);
  }

  /** Drops every connection with no close frame, as a killed node does. */
  kill() {
    for (const c of this.conns) c.ws.terminate();
  }
}
