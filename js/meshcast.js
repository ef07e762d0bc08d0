// meshcast client for browsers and Node >= 20: one ES module, no
// dependencies, no build step (cmd/meshcast serves this very file at
// /meshcast.js). Types: index.d.ts. Protocol: docs/protocol.md.
//
//   import { Client } from "meshcast";
//   const c = new Client("wss://rt.example.com/ws", { getToken });
//   c.subscribe("chat:lobby", (data) => console.log(data));
//   c.connect();
//   await c.publish("chat:lobby", { text: "hi" });

/** The defaults of the options of Client (index.d.ts documents each). */
export const defaults = {
  minReconnectDelay: 500, // first reconnect waits up to this (ms); doubles each failed attempt
  maxReconnectDelay: 20000, // the cap of that doubling; the actual wait is random in [0, cap) (full jitter)
  timeout: 10000, // a request (publish, history, sub, the hello) gives up after this (ms), connection wait included
  maxQueue: 1000, // requests held while disconnected; more are rejected at once
  heartbeat: 25000, // with nothing heard for this long (ms), a ping; none answered within timeout: reconnect (0: off)
};

/** An error of the server (numeric code: 400, 403, 413, 429, 503, close codes 1009, 4001, 4003)
 * or of the client ("timeout", "connection_lost", "closed", "disconnected",
 * "queue_full", "bad_frame"). */
export class MeshcastError extends Error {
  constructor(code, reason) {
    super("meshcast: " + (typeof code == "number" ? code + " " : "") + reason);
    this.name = "MeshcastError";
    this.code = code;
    this.reason = reason;
  }
}

const err = (code, reason) => new MeshcastError(code, reason);

// The size of a frame's text on the wire: servers count bytes.
const utf8Len = (text) => new TextEncoder().encode(text).length;

// A connection that lasted this long (ms) resets the reconnect backoff.
const stableAfter = 10000;

// A token refresh goes this long before the connection's expiry: 10% of
// what remains, within [5 s, 60 s] (ms); and never sooner than refreshGap
// after the previous one on the connection, even if it expires sooner.
const refreshMargin = (left) => Math.min(60000, Math.max(5000, left / 10));
// When a hello or a refresh's ack says the token expires, in unix seconds
// on this machine's clock: counted from its ttl (the node's seconds left),
// so that this clock's error does not move the refresh; from a node that
// does not say ttl, its expires.
const expiry = (m) => (m.expires > 0 && m.ttl != null ? Date.now() / 1000 + Math.max(m.ttl, 0) : m.expires);
const refreshGap = 3000;

// Throws a TypeError unless v is a JSON value (undefined, functions,
// symbols, BigInts and cycles are not), so a bad call fails at once
// instead of after waiting for the connection, or as a server 400.
function checkJSON(v, what) {
  let t;
  try {
    t = JSON.stringify(v);
  } catch (e) {
    throw new TypeError("meshcast: " + what + " is not JSON: " + e.message);
  }
  if (t === undefined) throw new TypeError("meshcast: " + what + " is not JSON: " + (v === undefined ? "undefined" : typeof v));
}

class Emitter {
  constructor() {
    this._on = {};
  }
  /** Calls fn on each event ev until off(ev, fn). */
  on(ev, fn) {
    (this._on[ev] ||= []).push(fn);
    return this;
  }
  off(ev, fn) {
    this._on[ev] = (this._on[ev] || []).filter((f) => f !== fn && f._fn !== fn);
    return this;
  }
  once(ev, fn) {
    const w = (...a) => (this.off(ev, w), fn(...a));
    w._fn = fn;
    return this.on(ev, w);
  }
  // A listener that throws must not break the client: its error is
  // rethrown from a timer, where it is reported like any uncaught error.
  _emit(ev, ...a) {
    for (const f of this._on[ev] || []) {
      try {
        f(...a);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}

/** One channel's subscription. States: "subscribing" (waiting for the
 * server's ack, or for the connection), "subscribed", "unsubscribed". */
export class Subscription extends Emitter {
  constructor(client, channel, since, info) {
    super();
    this.client = client;
    this.channel = channel;
    this.info = info; // presence info, sent with every sub
    /** The position of the last message received; before any, where the
     * subscription started (channels with history). */
    this.pos = since;
    this.state = "subscribing";
    this._was = false; // was subscribed before: the next sub is a resubscribe
    this._n = 0; // failed attempts, for the backoff of retries
    this._timer = 0;
  }

  /** Leaves the channel. No message is delivered after this returns. */
  unsubscribe() {
    const c = this.client;
    if (c.subs.get(this.channel) !== this) return;
    c.subs.delete(this.channel);
    clearTimeout(this._timer);
    if (c.state == "connected") c._call({ op: "unsub", ch: this.channel }, () => {});
    this._set("unsubscribed", {});
  }

  /** Resolves once subscribed; rejects if the subscription ends first. */
  ready() {
    return new Promise((resolve, reject) => {
      if (this.state == "subscribed") return resolve();
      if (this.state == "unsubscribed") return reject(this._error || err("closed", "unsubscribed"));
      const ok = () => (this.off("unsubscribed", no), resolve());
      const no = (ctx) => (this.off("subscribed", ok), reject(ctx.error || err("closed", "unsubscribed")));
      this.once("subscribed", ok).once("unsubscribed", no);
    });
  }

  _set(state, ctx) {
    this.state = state;
    this._emit(state, ctx);
  }

  _gap(reason) {
    const g = { ch: this.channel, reason };
    this._emit("gap", g);
    this.client._emit("gap", g);
  }

  // Sends the sub (with since = the last position, when there is one) and
  // handles its answer. Called on each hello and on retries.
  _sub() {
    const c = this.client, since = this.pos;
    clearTimeout(this._timer);
    if (c.state != "connected" || c.subs.get(this.channel) !== this) return;
    if (this.state != "subscribing") this._set("subscribing", {});
    const f = { op: "sub", ch: this.channel };
    if (since != null) f.since = since;
    if (this.info !== undefined) f.info = this.info;
    c._call(f, (e, m) => {
      if (c.subs.get(this.channel) !== this) return; // unsubscribed
      // A sub too big for the server (close 1009): sent again on every
      // hello, it would close every connection.
      if (e && e.code == 1009) return this._end(e);
      if (c.state != "connected") return; // resubscribed on the next hello
      if (!e) {
        // Where it starts (channels with history): with no message yet, the
        // next resubscribe resumes from it instead of a gap.
        if (this.pos == null && m.pos != null) this.pos = m.pos;
        const recovered = since != null && m.recovered === true, resubscribe = this._was, told = this._told;
        this._was = true;
        this._told = false;
        this._n = 0;
        this._set("subscribed", { recovered, resubscribe });
        if ((resubscribe || since != null) && !recovered && !told) this._gap(resubscribe ? "reconnect" : "not recovered");
      } else if (e.code == 400 && since != null) {
        // since refused (no history here, or a position the cluster does
        // not know): subscribe without it, and say what may be missing.
        this.pos = undefined;
        this._gap("since refused");
        this._sub();
      } else if (e.code == 503 || e.code == 429 || e.code == "timeout") {
        this._emit("error", e);
        // A resubscribe with no position cannot recover anything: say so
        // now, not once a node takes it (a partition may last minutes).
        if (this._was && since == null && !this._told) (this._told = true), this._gap("reconnect");
        this._timer = setTimeout(() => this._sub(), c._delay(this._n++));
      } else this._end(e);
    });
  }

  // The connection is gone. Messages it delivered before the ack (the node
  // delivers once the sub is in place, acks once the cluster confirmed
  // it) make the next sub a resubscribe too: what was missed is a gap.
  _down() {
    clearTimeout(this._timer);
    // An early gap covers what is missed until the next message; after
    // one came, this loss is a new incident and the ack must say gap.
    if (this._got) this._told = false;
    this._was ||= this._got;
    this._got = false;
    if (this.state == "subscribed") this._set("subscribing", {});
  }

  // A refusal that retrying cannot change: the subscription ends.
  _end(e) {
    this.client.subs.delete(this.channel);
    this._error = e; // for a ready() asked after the end
    this._emit("error", e);
    this._set("unsubscribed", { error: e });
  }
}

/** A meshcast connection that reconnects, resubscribes and recovers. */
export class Client extends Emitter {
  /** @param {string|string[]} url one or more ws(s)://host/ws URLs, tried in turn */
  constructor(url, opts = {}) {
    super();
    this.urls = [].concat(url);
    this.opts = { ...defaults, ...opts };
    this.WebSocket = opts.WebSocket || globalThis.WebSocket;
    if (!this.urls.length) throw new TypeError("meshcast: no URL");
    for (const u of this.urls) {
      // A URL that can never work is refused here, not retried forever.
      let p;
      try {
        p = new URL(u, globalThis.location?.href);
      } catch {}
      if (!p || !/^(wss?|https?):$/.test(p.protocol)) throw new TypeError("meshcast: URL " + JSON.stringify(String(u)) + ": want ws://host/path or wss://host/path");
    }
    if (!this.WebSocket) throw new TypeError("meshcast: no global WebSocket here (Node 20): pass the WebSocket option");
    this.token = opts.token;
    /** "disconnected", "connecting" or "connected". */
    this.state = "disconnected";
    /** The server's hello ({client, node, user}) while connected. */
    this.info = null;
    /** @type {Map<string, Subscription>} */
    this.subs = new Map();
    this._reqs = new Map(); // id -> request sent on this connection
    this._queue = []; // requests waiting for a connection, in order
    this._id = 0;
    this._n = 0; // failed connection attempts since the last hello
    this._url = 0;
    this._gen = 0; // bumped by close(): stale callbacks compare it
    this._ws = null;
    this._timer = 0;
  }

  /** Starts connecting (and reconnecting until close()). */
  connect() {
    if (this.state != "disconnected") return;
    this.state = "connecting";
    this._n = this._up = 0; // a new start: the backoff of before close() does not carry over
    // Browsers: when the network comes back, a reconnect waiting out its
    // backoff (up to maxReconnectDelay) goes at once.
    this._online ||= () => ((this._n = 0), this._next?.());
    globalThis.addEventListener?.("online", this._online);
    this._open(false);
  }

  /** Closes the connection and stops reconnecting; pending requests reject
   * with code "closed". connect() starts again and resubscribes. */
  close() {
    if (this.state == "disconnected") return;
    this._halt(1000, "client closed", err("closed", "client closed"));
  }

  /** Subscribes to ch; onMessage(data, {ch, pos}) gets each message.
   * opts.since resumes after a position (from history or a message);
   * opts.info is this client's presence info on a presence channel. */
  subscribe(ch, onMessage, opts = {}) {
    if (this.subs.has(ch)) throw new Error("meshcast: already subscribed to " + ch);
    if (opts.info !== undefined) checkJSON(opts.info, "presence info");
    const s = new Subscription(this, ch, opts.since, opts.info);
    if (onMessage) s.on("message", onMessage);
    this.subs.set(ch, s);
    s._sub();
    return s;
  }

  /** Resolves when the server acks the publish; rejects with a
   * MeshcastError. Never retried by the client: a rejected publish with a
   * server code was not published; with "connection_lost" or "timeout" it
   * may or may not have been. */
  publish(ch, data, opts) {
    try {
      checkJSON(data, "publish data");
    } catch (e) {
      return Promise.reject(e);
    }
    return this._ask({ op: "pub", ch, data }, opts).then(() => {});
  }

  /** The last messages of ch ({data, pos}, oldest first). */
  history(ch, opts = {}) {
    const f = { op: "history", ch };
    if (opts.limit != null) f.limit = opts.limit;
    return this._ask(f, opts).then((m) => m.msgs || []);
  }

  /** The users present on ch, cluster-wide ({user, clients, info}),
   * sorted by user; a big channel comes in pages, asked for in turn. */
  async presence(ch, opts = {}) {
    const out = [];
    for (let after = ""; ; ) {
      const m = await this._ask({ op: "presence", ch, after }, opts);
      out.push(...(m.members || []));
      if (!m.more || !out.length) return out;
      after = out[out.length - 1].user;
    }
  }

  /** How many users and connections are present on ch ({users, clients}). */
  presenceStats(ch, opts) {
    return this._ask({ op: "presence_stats", ch }, opts).then((m) => ({ users: m.users, clients: m.clients }));
  }

  _delay(n) {
    const o = this.opts;
    return Math.random() * Math.min(o.maxReconnectDelay, o.minReconnectDelay * 2 ** n);
  }

  async _open(fresh) {
    const gen = this._gen, get = this.opts.getToken;
    if (get && (fresh || this.token == null)) {
      try {
        this.token = await this._getToken("_timer");
      } catch (e) {
        // Still fresh: the token held may be the one the server expired.
        if (gen == this._gen) this._emit("error", e), this._retry(0, "getToken failed", fresh);
        return;
      }
      if (gen != this._gen) return;
    }
    let url = this.urls[this._url % this.urls.length];
    if (this.token) url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(this.token);
    let ws;
    try {
      ws = this._ws = new this.WebSocket(url);
    } catch (e) {
      // A URL the WebSocket refuses (SyntaxError), or that this page may
      // not open (SecurityError: ws: from an https page), never works:
      // stop, or go on with the others. Anything else may be passing.
      if (e && /^(Syntax|Security)Error$/.test(e.name)) {
        // Not e.message: it may repeat the URL with the token.
        const bad = err("bad_url", "the WebSocket refused the URL " + this.urls[this._url % this.urls.length]);
        if (this.urls.length == 1) return this._halt(1006, "invalid URL", bad);
        this._emit("error", bad);
        return this._retry(1006, "invalid URL", false); // the next URL
      }
      this._emit("error", e);
      return this._retry(1006, String(e.message || e), false);
    }
    this._timer = setTimeout(() => this._lost(1006, "no hello in time"), this.opts.timeout);
    ws.onmessage = (ev) => ((this._heard = Date.now()), this._frame(ev.data));
    ws.onclose = (ev) => this._lost(ev.code, ev.reason);
    ws.onerror = () => {}; // a close event follows with the code
  }

  // _getToken calls getToken. A backend that hangs must not hold the
  // reconnect (or the refresh) forever: it is given up after timeout. The
  // deadline is also this[k], so that close() (or the drop) clears it.
  // One call at a time: a reconnect while a refresh's call is pending
  // waits for its token (a backend that rotates refresh tokens may revoke
  // a session that uses one twice). One given up is not waited for again.
  async _getToken(k) {
    let t;
    const p = (this._tok ||= (async () => this.opts.getToken())());
    try {
      return await Promise.race([p, new Promise((_, no) => (t = this[k] = setTimeout(() => no(err("timeout", "getToken did not answer within " + this.opts.timeout + " ms")), this.opts.timeout)))]);
    } finally {
      clearTimeout(t);
      if (this._tok == p) this._tok = null;
    }
  }

  // _expiring schedules the refresh of the connection's token, which
  // expires at exp (unix seconds, from the hello or the last refresh's
  // ack), over the connection itself: no reconnect, no gap, no presence
  // leave and join. After a refresh (after: 1) none goes sooner than
  // refreshGap; after a failed one (after: 2) the next goes halfway to exp,
  // if there is time; else the node closes with 4001 at exp, and getToken
  // and a reconnect take over.
  _expiring(exp, after) {
    clearTimeout(this._rt);
    if (!(exp > 0) || !this.opts.getToken) return;
    const ws = this._ws, left = exp * 1000 - Date.now();
    let d = after > 1 ? left / 2 : left - refreshMargin(left);
    if (after) d = Math.max(d, refreshGap);
    if (d >= left) return;
    // setTimeout fires at once past 2^31-1 ms (24.8 days): a refresh early
    // is harmless, one in a loop is not.
    this._rt = setTimeout(async () => {
      let e, m, token;
      try {
        token = await this._getToken("_rt");
        if (this._ws == ws) m = await new Promise((ok, no) => this._call({ op: "refresh", token }, (e, m) => (e ? no(e) : ok(m))));
      } catch (x) {
        e = x;
      }
      if (this._ws != ws) return; // gone meanwhile: the next hello schedules afresh
      // 400: nothing to refresh here (an anonymous connection, a node
      // without tokens): asking again would change nothing.
      if (e) return this._emit("error", e), e.code != 400 && this._expiring(exp, 2);
      this.token = token;
      this.info.expires = m.expires;
      this._expiring(expiry(m), 1);
    }, Math.min(d, 2 ** 31 - 1));
    this._rt.unref?.(); // a Node process is held by the socket, not by this
  }

  // _drop detaches the current socket and closes it.
  _drop(code) {
    const ws = this._ws;
    this._ws = null;
    clearTimeout(this._timer);
    clearTimeout(this._rt);
    clearInterval(this._hb);
    if (!ws) return;
    ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    try {
      ws.close(code);
    } catch {}
    // The ws package (Node 20) waits 30 s for the server's close frame,
    // and its timer holds the process: a node that is gone gets a second.
    if (ws.terminate) setTimeout(() => ws.terminate(), 1000).unref?.();
  }

  // The socket closed or failed: fail or requeue what was in flight, then
  // reconnect or stop, by close code (docs/protocol.md).
  _lost(code, reason) {
    this._drop();
    // A node that says hello and then closes at once must not be hammered
    // by every client: only a connection that lasted resets the backoff.
    if (this._up && Date.now() - this._up >= stableAfter) this._n = 0;
    this._up = 0;
    this.state = "connecting";
    this.info = null;
    const again = [], big = code == 1009 && this._biggest();
    for (const r of this._reqs.values()) {
      if (r == big) r.cb(err(1009, "message too big: the server closed the connection on this " + r.f.op + ": not " + (r.f.op == "pub" ? "published" : "done")));
      else if (/^(history|presence)/.test(r.f.op)) again.push(r); // a read: safe to send again
      else r.cb(err("connection_lost", "connection lost before the answer: the " + r.f.op + " may or may not have been done"));
    }
    this._reqs.clear();
    this._queue.unshift(...again);
    for (const s of this.subs.values()) s._down();
    if (code == 4003) return this._halt(code, reason, err(4003, reason || "disconnected by the server"));
    if (code == 4001 && !this.opts.getToken) return this._halt(code, reason, err(4001, "token expired and no getToken option"));
    this._retry(code, reason, !!this.opts.getToken);
  }

  // Close 1009: the server stopped at the first frame over its limit. Every
  // frame sent before that one was smaller, so the biggest frame not
  // answered is that one or one sent after it: it was not done.
  _biggest() {
    let big, most = -1;
    for (const r of this._reqs.values()) {
      const n = utf8Len(JSON.stringify(r.f));
      if (n > most) (big = r), (most = n);
    }
    return big;
  }

  _retry(code, reason, fresh) {
    const delay = this._delay(this._n++);
    this.state = "connecting";
    this._url++;
    const gen = this._gen;
    const go = (this._next = () => {
      this._next = null;
      clearTimeout(this._timer);
      if (gen == this._gen) this._open(fresh);
    });
    this._timer = setTimeout(go, delay);
    this._emit("disconnected", { code, reason, reconnect: true, delay });
  }

  _halt(code, reason, e) {
    this._gen++;
    this._next = null;
    globalThis.removeEventListener?.("online", this._online);
    this._drop(1000);
    clearTimeout(this._timer);
    this.state = "disconnected";
    this.info = null;
    for (const r of [...this._reqs.values(), ...this._queue]) r.cb(e);
    this._reqs.clear();
    this._queue = [];
    for (const s of this.subs.values()) s._down();
    if (code != 1000) this._emit("error", e);
    this._emit("disconnected", { code, reason, reconnect: false });
  }

  _frame(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {}
    if (!m || typeof m != "object") return this._emit("error", err("bad_frame", "not a JSON object: " + String(text).slice(0, 100)));
    const s = this.subs.get(m.ch);
    switch (m.op) {
      case "hello":
        clearTimeout(this._timer);
        this._up = Date.now(); // the backoff resets once this connection has lasted (_lost)
        this.state = "connected";
        this.info = { client: m.client, node: m.node, user: m.user };
        if (m.expires) this.info.expires = m.expires;
        this._max = m.max_message > 0 ? m.max_message : 0; // older nodes do not say: then close 1009 tells
        this._beating(this._ws);
        this._expiring(expiry(m));
        for (const s of this.subs.values()) s._sub(); // resubscribe first,
        for (const r of this._queue.splice(0)) this._send(r); // then what waited, in order,
        this._emit("connected", this.info); // then the application
        break;
      case "msg":
        if (!s) return;
        if (m.pos != null) s.pos = m.pos;
        s._got = true;
        s._emit("message", m.data, { ch: m.ch, pos: m.pos });
        break;
      case "gap":
        if (s) s._gap("server");
        else this._emit("gap", { ch: m.ch, reason: "server" });
        break;
      case "join":
      case "leave":
        if (s) s._emit(m.op, m.info === undefined ? { ch: m.ch, user: m.user } : { ch: m.ch, user: m.user, info: m.info });
        break;
      case "err":
        if (!this._take(m.id, err(m.code, m.reason))) this._emit("error", err(m.code, m.reason));
        break;
      default: // ack, history, and ops of later versions
        this._take(m.id, null, m);
    }
  }

  // _beating watches ws for silence. A browser sees no WebSocket pings, so
  // a node that froze, or whose host vanished without closing TCP, looks
  // like a quiet channel: without this, a listener would miss messages and
  // never hear of it. A ping the server does not answer means it is gone;
  // the reconnect then recovers what was missed, or reports a gap.
  _beating(ws) {
    const hb = this.opts.heartbeat;
    clearInterval(this._hb);
    if (!(hb > 0)) return;
    let pinging = false;
    this._hb = setInterval(() => {
      if (pinging || this._ws != ws || Date.now() - this._heard < hb) return;
      pinging = true;
      this._call({ op: "ping" }, (e) => {
        pinging = false;
        // Any answer, even an err from a server without ping, is life.
        if (e?.code == "timeout" && this._ws == ws) this._lost(1006, "no answer to a ping within " + this.opts.timeout + " ms");
      });
    }, Math.max(hb / 4, 10));
  }

  _take(id, e, m) {
    const r = id != null && this._reqs.get(id);
    if (!r) return false;
    this._reqs.delete(id);
    r.cb(e, m);
    return true;
  }

  // _call sends f now (the caller checked the state) and calls cb(err, frame) once.
  _call(f, cb) {
    const r = { f, cb: (e, m) => (clearTimeout(r.t), cb(e, m)) };
    r.t = setTimeout(() => this._forget(r) && r.cb(err("timeout", f.op + " not answered in time")), this.opts.timeout);
    this._send(r);
  }

  // _ask is _call as a promise that waits for the connection first.
  _ask(f, opts = {}) {
    return new Promise((resolve, reject) => {
      if (this.state == "disconnected") return reject(err("disconnected", "not connected: call connect()"));
      if (this._queue.length >= this.opts.maxQueue) return reject(err("queue_full", "too many requests waiting for the connection"));
      const r = { f, cb: (e, m) => (clearTimeout(r.t), e ? reject(e) : resolve(m)) };
      const t = opts.timeout ?? this.opts.timeout;
      r.t = setTimeout(() => this._forget(r) && r.cb(err("timeout", (this.state == "connected" ? "no answer" : "no connection") + " within " + t + " ms")), t);
      this.state == "connected" ? this._send(r) : this._queue.push(r);
    });
  }

  _forget(r) {
    const q = this._queue.indexOf(r);
    if (q >= 0) return this._queue.splice(q, 1);
    return this._reqs.get(r.f.id) === r && this._reqs.delete(r.f.id);
  }

  _send(r) {
    let text;
    try {
      r.f.id = ++this._id;
      text = JSON.stringify(r.f);
      // Over the node's limit it would close the connection (1009), and
      // every subscription with it: refuse this request alone, after the
      // caller's listeners are on (subscribe() sends at once). A UTF-16
      // unit is at most 3 bytes, so most texts need no encoding to know.
      // An unsub goes anyway: refused here, the node would keep the
      // subscription; on the node's 1009 it ends with the connection.
      if (this._max && r.f.op != "unsub" && text.length * 3 > this._max && utf8Len(text) > this._max) {
        const e = err(413, "message too big: the node reads at most " + this._max + " bytes (its --max-message): " + (r.f.op == "pub" ? "not published" : "not sent"));
        return queueMicrotask(() => r.cb(e));
      }
      this._reqs.set(r.f.id, r);
      this._ws.send(text);
    } catch (e) {
      this._reqs.delete(r.f.id);
      r.cb(e);
    }
  }
}
