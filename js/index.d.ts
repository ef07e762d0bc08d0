// Types of meshcast.js, written by hand (the module is plain JavaScript so
// that the binary serves it without a build step); `npm run types` checks
// them against test/types.ts with tsc --noEmit.

/** Codes the client itself gives, beside the server's numeric ones. */
export type ClientErrorCode =
  | "timeout" // no answer (or no connection) within the timeout: a publish may or may not have been published
  | "connection_lost" // the connection closed before the answer: likewise
  | "closed" // close() was called, or the subscription ended
  | "disconnected" // the client is not connecting (connect() was not called, or it stopped)
  | "queue_full" // more than maxQueue requests waiting for the connection
  | "bad_frame" // the server sent something that is not JSON
  | "bad_url"; // the WebSocket refused a URL (SyntaxError, or SecurityError: ws: from an https page): the client stops if it was the only one

/** An error of the server (err frames: 400, 403, 413, 429, 503; close
 * codes 4001, 4003, and 1009 for the request over the server's
 * --max-message that made it close the connection) or of the client
 * (413 too for a request over the max_message the node's hello gave,
 * refused before it was sent). */
export class MeshcastError extends Error {
  constructor(code: number | ClientErrorCode, reason: string);
  readonly name: "MeshcastError";
  readonly code: number | ClientErrorCode;
  readonly reason: string;
}

/** Any JSON value. */
export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };

/** A WebSocket constructor with the browser's API (Node 22's global, or the ws package's). */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** A connection token (JWT), sent as the `token` query parameter. */
  token?: string;
  /** Called for a fresh token before every reconnect, after close 4001
   * (token expired), and before the first connect when `token` is not
   * given. A rejection, or no answer within `timeout` (code "timeout"),
   * is reported as an `error` event and retried with backoff.
   *
   * Also called to refresh the token over the live connection when the
   * node's hello says when it expires (`info.expires`): 10% of the
   * remaining lifetime before that (at least 5 s, at most 60 s; at once
   * if less remains), and again before each new expiry the node acks,
   * never sooner than 3 s after the previous refresh. So the connection
   * never closes with 4001: no reconnect, no gap, no presence leave and
   * join. A failed refresh (getToken rejects or times out, or the node
   * refuses the token: 401, 403, 429, 503) is an `error` event and is
   * tried again halfway to the expiry while there is time; if none is
   * left, the node's 4001 and a reconnect take over. The user must stay
   * the same (the token's `sub`).
   *
   * Never called while a call is pending: a reconnect meanwhile takes
   * that call's token (unless it timed out). */
  getToken?: () => string | Promise<string>;
  /** The WebSocket class, where there is no global one (Node 20: the ws package's). */
  WebSocket?: WebSocketConstructor;
  /** First reconnect delay cap in ms; default 500. Each failed attempt
   * doubles it up to maxReconnectDelay; the wait is random in [0, cap). */
  minReconnectDelay?: number;
  /** Largest reconnect delay cap in ms; default 20000. */
  maxReconnectDelay?: number;
  /** Request timeout in ms, waiting for the connection included; also the
   * longest wait for the server's hello and for getToken(). Default 10000. */
  timeout?: number;
  /** Requests (publish, history) held while disconnected; default 1000. */
  maxQueue?: number;
  /** With nothing heard from the server for this long (ms), the client
   * sends a ping; one not answered within `timeout` means the node froze or
   * its host vanished (a browser sees no WebSocket pings): the client
   * reconnects, and subscriptions recover or say gap. Default 25000; 0 off. */
  heartbeat?: number;
}

export const defaults: Required<Pick<ClientOptions, "minReconnectDelay" | "maxReconnectDelay" | "timeout" | "maxQueue" | "heartbeat">>;

/** The server's hello. */
export interface ServerInfo {
  client: string;
  node: string;
  user?: string;
  /** When the connection's token expires (Unix seconds, the server's
   * clock), if it does; moved by each refresh (see getToken). */
  expires?: number;
}

export interface DisconnectedContext {
  /** The close code (1006 when the connection failed or dropped). */
  code: number;
  reason: string;
  /** Whether the client will try again (after `delay` ms). False after
   * close(), 4003, or 4001 without getToken. */
  reconnect: boolean;
  delay?: number;
}

export interface GapContext {
  ch: string;
  /** "server": the server's gap frame; "reconnect": resubscribed after a
   * reconnect without a complete recovery; "not recovered": subscribed
   * with `since` but the server could not guarantee completeness; "since
   * refused": the server refused `since` (err 400) and the client
   * subscribed without it. */
  reason: "server" | "reconnect" | "not recovered" | "since refused";
}

export interface MessageContext {
  ch: string;
  /** Set on channels with history: pass it as `since` to resume after it. */
  pos?: string;
}

export interface SubscribedContext {
  /** The server replayed everything since the last position (`since`). */
  recovered: boolean;
  /** This is a resubscribe after a reconnect (of a subscription that was
   * acked, or that had received messages before its ack). */
  resubscribe: boolean;
}

export type SubscriptionState = "subscribing" | "subscribed" | "unsubscribed";

/** A user's first connection on a presence channel anywhere in the
 * cluster (channels whose namespace has join_leave=on). */
export interface JoinContext {
  ch: string;
  user: string;
  /** The info the user gave (its sub's, or its token's "info" claim). */
  info?: JSONValue;
}

/** The end of a user's last connection on the channel, on every node. */
export interface LeaveContext {
  ch: string;
  user: string;
}

/** A user present on a channel, cluster-wide. */
export interface PresenceMember {
  user: string;
  /** Its connections subscribed to the channel, on every node. */
  clients: number;
  info?: JSONValue;
}

export interface PresenceStats {
  users: number;
  clients: number;
}

export interface SubscriptionEvents {
  message: (data: JSONValue, ctx: MessageContext) => void;
  subscribing: (ctx: {}) => void;
  subscribed: (ctx: SubscribedContext) => void;
  unsubscribed: (ctx: { error?: MeshcastError }) => void;
  /** A failed sub: final (then `unsubscribed`) unless its code is 503, 429 or "timeout", which are retried with backoff. 413 or 1009: the sub itself was over the server's --max-message. */
  error: (err: MeshcastError) => void;
  gap: (ctx: GapContext) => void;
  join: (ctx: JoinContext) => void;
  leave: (ctx: LeaveContext) => void;
}

declare class Emitter<E> {
  on<K extends keyof E>(ev: K, fn: E[K]): this;
  off<K extends keyof E>(ev: K, fn: E[K]): this;
  once<K extends keyof E>(ev: K, fn: E[K]): this;
}

export class Subscription extends Emitter<SubscriptionEvents> {
  readonly client: Client;
  readonly channel: string;
  readonly state: SubscriptionState;
  /** The position of the last message received; before any, where the subscription started (channels with history). */
  readonly pos: string | undefined;
  /** The presence info sent with every sub of this subscription. */
  readonly info: JSONValue | undefined;
  /** Leaves the channel; no message is delivered after this returns. */
  unsubscribe(): void;
  /** Resolves once subscribed; rejects if the subscription ends first
   * (with the server's error that ended it, e.g. 403, even when asked
   * after the end; "closed" after unsubscribe()). */
  ready(): Promise<void>;
}

export interface ClientEvents {
  connected: (info: ServerInfo) => void;
  disconnected: (ctx: DisconnectedContext) => void;
  gap: (ctx: GapContext) => void;
  /** A failed getToken (at connect or refresh), a refused token refresh
   * (a MeshcastError with the server's code), a stop (4001 without
   * getToken, 4003, bad_url), a bad frame. */
  error: (err: MeshcastError | Error) => void;
}

export type ClientState = "disconnected" | "connecting" | "connected";

export interface HistoryMessage {
  data: JSONValue;
  pos: string;
}

export class Client extends Emitter<ClientEvents> {
  /** @param url one or more ws(s)://host/ws URLs, tried in turn on each reconnect. */
  constructor(url: string | string[], opts?: ClientOptions);
  readonly state: ClientState;
  /** The server's hello while connected, else null. */
  readonly info: ServerInfo | null;
  readonly subs: ReadonlyMap<string, Subscription>;
  /** Starts connecting; reconnects until close(). In a browser, the
   * window's "online" event ends a reconnect's backoff wait at once. */
  connect(): void;
  /** Closes and stops reconnecting; pending requests reject with "closed".
   * Leaves no timer or socket behind after a second at most (a node that
   * does not answer the close frame is cut off), so a Node process exits. */
  close(): void;
  /** Subscribes; throws if `ch` already has a subscription on this
   * client, and a TypeError if `info` is not a JSON value. */
  subscribe(
    ch: string,
    onMessage?: ((data: JSONValue, ctx: MessageContext) => void) | null,
    opts?: { since?: string; info?: JSONValue },
  ): Subscription;
  /** Resolves on the server's ack. Waits for the connection while
   * connecting, up to `timeout`. Never retried: on a numeric code the
   * message was not published; on "timeout" or "connection_lost" it may
   * or may not have been. Rejects at once with a TypeError when `data`
   * is not a JSON value (undefined, a function, a BigInt, a cycle). */
  publish(ch: string, data: unknown, opts?: { timeout?: number }): Promise<void>;
  /** The channel's last messages, oldest first (err 400 where the channel
   * has no history or the server does not support it). */
  history(ch: string, opts?: { limit?: number; timeout?: number }): Promise<HistoryMessage[]>;
  /** The users present on a presence channel, cluster-wide, sorted by
   * user (err 400 where the namespace has no presence, 403 without the
   * subscribe permission, 503 from a node not in good standing). */
  presence(ch: string, opts?: { timeout?: number }): Promise<PresenceMember[]>;
  /** How many users and connections are present on the channel. */
  presenceStats(ch: string, opts?: { timeout?: number }): Promise<PresenceStats>;
}
