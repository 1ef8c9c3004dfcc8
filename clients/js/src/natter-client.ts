// natter-client: the TalkJS-Data-API-shaped and Webstrates-shaped client of natter, for browsers
// and Node 20+. No runtime dependencies: it uses the platform's fetch and WebSocket (or the
// WebSocket constructor it is given). Everything at run time lives in this one file, so the
// compiled dist/natter-client.js loads as it is in a browser's <script type="module">; the other
// modules hold types only.
import type {
  Access,
  ConversationSnapshot as FrameConversationSnapshot,
  ErrorBody,
  FrameConversation,
  FrameMessage,
  InboxMessageSnapshot,
  MessageSnapshot,
  ReactionSnapshot,
  ReferencedMessageSnapshot,
  ServerFrame,
  UserSnapshot,
} from "./protocol.js";
import type {
  ConversationSnapshot,
  ConversationUpdate,
  EditParams,
  SendParams,
  TypingSnapshot,
  UserUpdate,
} from "./types.js";

export type * from "./protocol.js";
export type * from "./types.js";
// Over HTTP and in callbacks a conversation's last message is whole (the frame's may be truncated).
export type { ConversationSnapshot } from "./types.js";

// ------------------------------------------------------------------------------------------------
// Errors

const STATUS_OF_CODE: { [code: string]: number } = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  limit_exceeded: 409,
  too_large: 413,
  internal: 500,
};

/** A refused or failed call: `code` is natter's stable error code, `status` the HTTP status. */
export class NatterError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, status: number, message: string) {
    super(message);
    this.name = "NatterError";
    this.code = code;
    this.status = status;
  }

  /** An error object of the HTTP API or of a frame; `status` when known (frames have none). */
  static from(body: ErrorBody, status?: number): NatterError {
    return new NatterError(body.code, status ?? STATUS_OF_CODE[body.code] ?? 500, body.message);
  }
}

/** The connection closed before the reply came; internal, never seen by callers. */
class Disconnected extends Error {
  constructor() {
    super("the WebSocket connection closed");
  }
}

// ------------------------------------------------------------------------------------------------
// Options and small helpers

/** The part of the WebSocket API the client uses (the browser's, Node's, or the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface SessionOptions {
  /** The HTTP API's base URL (without `/v1`), e.g. `http://127.0.0.1:8787`. */
  url: string;
  /** The WebSocket URL; by default `url` with `ws:`/`wss:` and the path `/ws` (natter-local's). */
  wsUrl?: string;
  /** A user token (an HS256 JWT whose `sub` is the user id). */
  token?: string;
  /** Gets a token: called at start when `token` is not given, and again after a 401. */
  tokenFetcher?: () => Promise<string>;
  /** For runtimes without a global WebSocket (Node 20: the `ws` package's). */
  WebSocket?: WebSocketConstructor;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** How often to ping, in ms (default 4 minutes; API Gateway closes idle connections after 10). */
  pingInterval?: number;
  /** How long a ping may wait for its pong before the connection counts as dead (default 30 s). */
  pongTimeout?: number;
  /** The first reconnect delay in ms (default 500); it doubles per failed attempt, jittered. */
  reconnectDelay?: number;
  /** The longest reconnect delay in ms (default 30 s). */
  maxReconnectDelay?: number;
}

const DEFAULT_PING_INTERVAL = 4 * 60 * 1000;
const DEFAULT_PONG_TIMEOUT = 30 * 1000;
const DEFAULT_RECONNECT_DELAY = 500;
const DEFAULT_MAX_RECONNECT_DELAY = 30 * 1000;
const DEFAULT_PAGE = 30;
const MAX_PAGE = 100;

function segment(s: string): string {
  return encodeURIComponent(s);
}

/** The `sub` claim of a JWT, without checking anything (the server does). */
function tokenSubject(token: string): string | null {
  const payload = token.split(".")[1];
  if (!payload) return null;
  try {
    const b64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return typeof claims?.sub === "string" ? claims.sub : null;
  } catch {
    return null;
  }
}

/** Structural equality of JSON values. */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!deepEqual((a as any)[k], (b as any)[k])) return false;
  }
  return true;
}

/** Newest first: message ids are `msg_` plus a time-sortable id. */
function newestFirst(a: string, b: string): number {
  return a < b ? 1 : a > b ? -1 : 0;
}

function isTruncated(m: FrameMessage): m is Extract<FrameMessage, { truncated: true }> {
  return (m as { truncated?: unknown }).truncated === true;
}

/** Calls a user's callback; an exception there is reported, never breaks the client. */
function callSafely(f: () => void): void {
  try {
    f();
  } catch (e) {
    const report = (globalThis as { reportError?: (e: unknown) => void }).reportError;
    if (report) report(e);
    else console.error("natter-client: a callback threw", e);
  }
}

// ------------------------------------------------------------------------------------------------
// Subscription states (TalkJS's shapes)

export interface PendingState {
  type: "pending";
}
export interface ActiveState<T> {
  type: "active";
  latestSnapshot: T;
  loadedAll: boolean;
}
export interface UnsubscribedState {
  type: "unsubscribed";
}
export interface ErrorState {
  type: "error";
  error: NatterError;
}
export type MessageSubscriptionState =
  | PendingState
  | ActiveState<MessageSnapshot[]>
  | UnsubscribedState
  | ErrorState;

// ------------------------------------------------------------------------------------------------
// The WebSocket connection: one per session, healing itself

type Waiter = { resolve: (frame: ServerFrame) => void; reject: (e: unknown) => void };

class Connection {
  private ws: WebSocketLike | null = null;
  /** Increases with every connection that opened; subscriptions note the one they live on. */
  epoch = 0;
  /** The socket is open (frames may be sent). */
  open = false;
  private wanted = false;
  private closed = false;
  private attempt = 0;
  private nextRequestId = 1;
  private pending = new Map<number, Waiter>();
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  /** How many sockets this connection has opened (1 plus the reconnects). */
  opened = 0;

  constructor(private session: Session) {}

  /** Connects unless connected or connecting. */
  ensure(): void {
    if (this.wanted || this.closed) return;
    this.wanted = true;
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed || !this.wanted || this.ws) return;
    let token: string;
    try {
      token = await this.session.currentToken();
    } catch (e) {
      if (e instanceof NatterError && e.status === 401) return this.fatal(e);
      return this.scheduleReconnect();
    }
    if (this.closed || !this.wanted || this.ws) return;
    const url = this.session.wsUrl;
    let ws: WebSocketLike;
    try {
      const WS = this.session.webSocketConstructor();
      ws = new WS(`${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`);
    } catch (e) {
      return this.scheduleReconnect();
    }
    this.ws = ws;
    let wasOpen = false;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      wasOpen = true;
      this.open = true;
      this.opened++;
      this.epoch++;
      this.startPinging(ws);
      this.session.connectionOpened(this.epoch);
    });
    ws.addEventListener("message", (event: { data: unknown }) => {
      if (this.ws !== ws || typeof event.data !== "string") return;
      let frame: ServerFrame & { requestId?: unknown };
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      const id = frame.requestId;
      if (typeof id === "number" && this.pending.has(id)) {
        const waiter = this.pending.get(id)!;
        this.pending.delete(id);
        waiter.resolve(frame);
        return;
      }
      this.session.frameReceived(frame);
    });
    ws.addEventListener("close", () => this.lost(ws, wasOpen));
    ws.addEventListener("error", () => {
      // A "close" follows; nothing to do here.
    });
  }

  /** The socket `ws` is gone (it closed, or it stopped answering pings). */
  private lost(ws: WebSocketLike, wasOpen: boolean): void {
    if (this.ws !== ws) return;
    this.ws = null;
    this.open = false;
    this.stopPinging();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const w of pending) w.reject(new Disconnected());
    try {
      ws.close();
    } catch {}
    if (this.closed || !this.wanted) return;
    if (wasOpen) {
      this.scheduleReconnect();
      return;
    }
    // Refused before it opened: a browser's WebSocket cannot tell why, so ask the HTTP API
    // whether the token is still good (which calls tokenFetcher on a 401).
    this.session.checkToken().then(
      () => this.scheduleReconnect(),
      (e) => {
        if (e instanceof NatterError && e.status === 401) this.fatal(e);
        else this.scheduleReconnect();
      },
    );
  }

  /** The token is refused and no new one can be had: end everything that needs the socket. */
  private fatal(error: NatterError): void {
    this.wanted = false;
    this.session.connectionFailed(error);
  }

  private scheduleReconnect(): void {
    if (this.closed || !this.wanted || this.reconnectTimer) return;
    const base = this.session.options.reconnectDelay ?? DEFAULT_RECONNECT_DELAY;
    const max = this.session.options.maxReconnectDelay ?? DEFAULT_MAX_RECONNECT_DELAY;
    const ceiling = Math.min(max, base * 2 ** Math.min(this.attempt, 30));
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect();
    }, delay);
  }

  /** A good hello: the next failure starts the backoff from the beginning again. */
  healthy(): void {
    this.attempt = 0;
  }

  private startPinging(ws: WebSocketLike): void {
    const interval = this.session.options.pingInterval ?? DEFAULT_PING_INTERVAL;
    const timeout = this.session.options.pongTimeout ?? DEFAULT_PONG_TIMEOUT;
    this.pingTimer = setInterval(() => {
      if (this.ws !== ws) return;
      const timer = setTimeout(() => this.lost(ws, true), timeout);
      this.request({ action: "ping" }).then(
        () => clearTimeout(timer),
        () => clearTimeout(timer),
      );
    }, interval);
  }

  private stopPinging(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /** Sends a frame with a fresh `requestId` and resolves with the reply that echoes it. */
  request(frame: { action: string; [key: string]: unknown }): Promise<ServerFrame> {
    const ws = this.ws;
    if (!ws || !this.open) return Promise.reject(new Disconnected());
    const requestId = this.nextRequestId++;
    return new Promise<ServerFrame>((resolve, reject) => {
      this.pending.set(requestId, { resolve, reject });
      try {
        ws.send(JSON.stringify({ ...frame, requestId }));
      } catch (e) {
        this.pending.delete(requestId);
        reject(new Disconnected());
      }
    });
  }

  /** Sends a frame that has no reply (no `requestId`); false when the socket is not open. */
  fire(frame: { action: string; [key: string]: unknown }): boolean {
    const ws = this.ws;
    if (!ws || !this.open) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** Sends a frame whose reply nobody waits for. */
  send(frame: { action: string; [key: string]: unknown }): void {
    this.request(frame).catch(() => {});
  }

  /** Stops wanting a connection until something needs it again. */
  close(): void {
    this.closed = true;
    this.wanted = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const ws = this.ws;
    if (ws) {
      this.lost(ws, this.open);
      try {
        ws.close(1000, "session closed");
      } catch {}
    }
  }

  /** For tests and debugging: cuts the current socket as a network failure would. */
  drop(): void {
    const ws = this.ws;
    if (ws) this.lost(ws, this.open);
  }
}

// ------------------------------------------------------------------------------------------------
// Refs

export class UserRef {
  constructor(
    private session: Session,
    readonly id: string,
  ) {}

  /** The user, or `null` when there is none. */
  get(): Promise<UserSnapshot | null> {
    return this.session.getOrNull<UserSnapshot>(`/v1/users/${segment(this.id)}`);
  }

  /** Creates or updates the user. */
  async set(update: UserUpdate): Promise<void> {
    await this.session.request("PUT", `/v1/users/${segment(this.id)}`, update);
  }
}

export class ParticipantRef {
  constructor(
    private session: Session,
    readonly conversationId: string,
    readonly userId: string,
  ) {}

  private path(): string {
    return `/v1/conversations/${segment(this.conversationId)}/participants/${segment(this.userId)}`;
  }

  /** Adds the user to the conversation, or changes their access (default `ReadWrite`). */
  async set(params: { access?: Access } = {}): Promise<void> {
    await this.session.request("PUT", this.path(), params);
  }

  /** Removes the user from the conversation. */
  async delete(): Promise<void> {
    await this.session.request("DELETE", this.path());
  }
}

export class ConversationRef {
  constructor(
    private session: Session,
    readonly id: string,
  ) {}

  private path(): string {
    return `/v1/conversations/${segment(this.id)}`;
  }

  /**
   * The conversation as the current user sees it, with their read state (`unreadMessageCount`,
   * `readUntil`, `isUnread`, ...), or `null` (missing, or not a participant).
   */
  async get(): Promise<ConversationSnapshot | null> {
    const c = await this.session.getOrNull<ConversationSnapshot>(this.path());
    if (c?.lastMessage) this.session.learnMessage(c.lastMessage);
    return c;
  }

  /** Creates or updates the conversation (its creator becomes a `ReadWrite` participant). */
  async set(update: ConversationUpdate): Promise<void> {
    await this.session.request("PUT", this.path(), update);
  }

  participant(userId: string): ParticipantRef {
    return new ParticipantRef(this.session, this.id, userId);
  }

  /** Sends a message: a string is text with chat formatting. Resolves to the new message. */
  async send(params: string | SendParams): Promise<MessageRef> {
    const p: SendParams = typeof params === "string" ? { text: params } : params;
    const body: { [key: string]: unknown } = {};
    if (p.text !== undefined) body.text = p.text;
    if (p.content !== undefined) body.content = p.content;
    if (p.custom !== undefined) body.custom = p.custom;
    if (p.idempotencyKey !== undefined) body.idempotencyKey = p.idempotencyKey;
    if (p.referencedMessage !== undefined) {
      body.referencedMessageId =
        typeof p.referencedMessage === "string" ? p.referencedMessage : p.referencedMessage.id;
    }
    const snapshot = await this.session.request<MessageSnapshot>("POST", `${this.path()}/messages`, body);
    this.session.typingEnded(this.id);
    this.session.learnMessage(snapshot);
    return new MessageRef(this.session, this.id, snapshot.id);
  }

  /** Marks every message sent until now as read by the current user (`readUntil`, no unread). */
  async markAsRead(): Promise<void> {
    await this.session.request("POST", `${this.path()}/read`);
  }

  /** Marks the conversation unread for the current user: `isUnread` until the next read. */
  async markAsUnread(): Promise<void> {
    await this.session.request("POST", `${this.path()}/unread`);
  }

  /**
   * Tells the others that the current user is typing here. It lasts 10 s: call it again (on every
   * keystroke, say) to extend it; the client sends at most one frame per conversation per 3 s,
   * and sending a message ends it. Fire and forget: a `Read` participant's is refused silently.
   */
  markAsTyping(): void {
    this.session.markTyping(this.id);
  }

  /**
   * Who else is typing here, typing longest first, as `{users: [UserSnapshot]}`: called once
   * when active (usually with nobody) and whenever it changes. Never lists the current user.
   */
  subscribeTyping(onSnapshot?: (typing: TypingSnapshot) => void): TypingSubscription {
    return this.session.subscribeTyping(this.id, onSnapshot);
  }

  message(id: string): MessageRef {
    return new MessageRef(this.session, this.id, id);
  }

  /**
   * A live window onto the conversation's messages, newest first: the newest 30, older ones
   * with `loadMore`, and every change to them. It survives reconnects without losing changes.
   */
  subscribeMessages(
    onSnapshot?: (messages: MessageSnapshot[], loadedAll: boolean) => void,
  ): MessageSubscription {
    return this.session.subscribe(this.id, onSnapshot);
  }
}

export class MessageRef {
  constructor(
    private session: Session,
    readonly conversationId: string,
    readonly id: string,
  ) {}

  private path(): string {
    return `/v1/conversations/${segment(this.conversationId)}/messages/${segment(this.id)}`;
  }

  /** The message, or `null` when it is missing, expired, or not visible to the user. */
  get(): Promise<MessageSnapshot | null> {
    return this.session.getOrNull<MessageSnapshot>(this.path());
  }

  /** Edits the text or content, and patches `custom` (a `null` value removes a key). */
  async edit(params: string | EditParams): Promise<void> {
    await this.session.request("PATCH", this.path(), typeof params === "string" ? { text: params } : params);
  }

  /** Deletes the message (deleting a missing one succeeds). */
  async delete(): Promise<void> {
    await this.session.request("DELETE", this.path());
  }

  reaction(emoji: string): ReactionRef {
    return new ReactionRef(this.session, this.conversationId, this.id, emoji);
  }
}

export class ReactionRef {
  constructor(
    private session: Session,
    readonly conversationId: string,
    readonly messageId: string,
    readonly emoji: string,
  ) {}

  private path(): string {
    return `/v1/conversations/${segment(this.conversationId)}/messages/${segment(this.messageId)}/reactions/${segment(this.emoji)}`;
  }

  /** Adds the current user's reaction (idempotent). */
  async add(): Promise<void> {
    await this.session.request("PUT", this.path());
  }

  /** Removes the current user's reaction (idempotent). */
  async remove(): Promise<void> {
    await this.session.request("DELETE", this.path());
  }
}

// ------------------------------------------------------------------------------------------------
// Message subscriptions

/** The reply's copy of a referenced message, brought up to date with the message itself. */
function referencedFrom(old: ReferencedMessageSnapshot, m: MessageSnapshot): ReferencedMessageSnapshot | null {
  if (!m.sender) return null;
  return {
    id: m.id,
    conversationId: m.conversationId,
    type: old.type,
    sender: m.sender,
    content: m.content,
    plaintext: m.plaintext,
    custom: m.custom,
    createdAt: m.createdAt,
    editedAt: m.editedAt,
    origin: m.origin,
    referencedMessageId: old.referencedMessageId,
    reactions: m.reactions,
  };
}

/** Whole messages for a frame's, fetching truncated ones over HTTP (`gone`: no longer there). */
async function resolveMessages(
  session: Session,
  messages: FrameMessage[],
): Promise<Array<MessageSnapshot | { id: string; gone: true }>> {
  const whole = await Promise.all(
    messages.map(async (m) => {
      if (!isTruncated(m)) return m;
      const fetched = await session.conversation(m.conversationId).message(m.id).get();
      return fetched ?? { id: m.id, gone: true as const };
    }),
  );
  for (const m of whole) if (!("gone" in m)) session.learnMessage(m);
  return whole;
}

/** What the session routes frames to: a subscription the server holds on the connection. */
interface WireSubscription {
  readonly subscriptionId: string;
  /** A new connection is open (its `epoch`): subscribe again. */
  restore(epoch: number): void;
  /** A push for this subscription id. */
  pushed(frame: ServerFrame): void;
  end(state: UnsubscribedState | ErrorState): void;
}

/**
 * The life of a live subscription with a window (messages, conversations): its states, the
 * `connected` and `terminated` promises, frames and window reads applied one at a time in order,
 * and `loadMore`'s bounds and coalescing. Subclasses read the window and apply pushes.
 */
abstract class LiveSubscription<T> implements WireSubscription {
  /** The subscription's state: `pending`, `active` (with the window), `unsubscribed` or `error`. */
  state: PendingState | ActiveState<T> | UnsubscribedState | ErrorState = { type: "pending" };
  /** Resolves with the first active state; rejects if the subscription ends before that. */
  readonly connected: Promise<ActiveState<T>>;
  /** Resolves when the subscription ends (unsubscribed, or an error). */
  readonly terminated: Promise<UnsubscribedState | ErrorState>;

  private resolveConnected!: (s: ActiveState<T>) => void;
  private rejectConnected!: (e: unknown) => void;
  private resolveTerminated!: (s: UnsubscribedState | ErrorState) => void;
  private wasActive = false;
  protected ended = false;
  protected loadedAll = false;

  /** The connection epoch on which the server holds this subscription with our window. */
  protected liveEpoch = -1;
  private liveWaiters: Array<() => void> = [];
  /** Frames and window reads are applied one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();
  private loading: Promise<void> | null = null;

  /** @internal */
  constructor(
    protected session: Session,
    /** @internal */ readonly subscriptionId: string,
  ) {
    this.connected = new Promise((resolve, reject) => {
      this.resolveConnected = resolve;
      this.rejectConnected = reject;
    });
    this.connected.catch(() => {});
    this.terminated = new Promise((resolve) => (this.resolveTerminated = resolve));
  }

  /**
   * Loads `count` (1..100, default 30) older entries into the window. Calls made while one is
   * loading share its page. Resolves once they are in `state` (and the callback has run).
   */
  loadMore(count: number = DEFAULT_PAGE): Promise<void> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_PAGE) {
      return Promise.reject(new RangeError(`loadMore takes a whole number from 1 to ${MAX_PAGE}, got ${count}`));
    }
    if (this.ended) return Promise.resolve();
    if (!this.loading) {
      this.loading = this.runLoadMore(count).finally(() => {
        this.loading = null;
      });
    }
    return this.loading;
  }

  /** Stops the subscription; its state becomes `unsubscribed`. */
  unsubscribe(): void {
    if (this.ended) return;
    if (this.isLive()) {
      this.session.connection.send({ action: "unsubscribe", subscriptionId: this.subscriptionId });
    }
    this.end({ type: "unsubscribed" });
  }

  // --- internal ----------------------------------------------------------------------------------

  protected isLive(): boolean {
    const c = this.session.connection;
    return c.open && this.liveEpoch === c.epoch;
  }

  private untilLive(): Promise<void> {
    if (this.isLive() || this.ended) return Promise.resolve();
    return new Promise((resolve) => this.liveWaiters.push(resolve));
  }

  protected wakeWaiters(): void {
    const waiters = this.liveWaiters;
    this.liveWaiters = [];
    for (const w of waiters) w();
  }

  protected enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task);
    this.queue = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  /** @internal Ends the subscription with `state`. */
  end(state: UnsubscribedState | ErrorState): void {
    if (this.ended) return;
    this.ended = true;
    this.state = state;
    this.session.forget(this);
    if (!this.wasActive) {
      this.rejectConnected(
        state.type === "error" ? state.error : new NatterError("unsubscribed", 0, "the subscription ended before it was active"),
      );
    }
    this.resolveTerminated(state);
    this.wakeWaiters();
  }

  /** The window is now `snapshot`: the state becomes active, and `connected` resolves the first time. */
  protected activate(snapshot: T): ActiveState<T> {
    const state: ActiveState<T> = { type: "active", latestSnapshot: snapshot, loadedAll: this.loadedAll };
    this.state = state;
    if (!this.wasActive) {
      this.wasActive = true;
      this.resolveConnected(state);
    }
    return state;
  }

  /** @internal A new connection is open: subscribe again with at least the window we had. */
  restore(epoch: number): void {
    this.enqueue(() => this.readWindow(epoch)).catch((e) => {
      if (e instanceof Disconnected) return; // the next connection restores it
      this.end({ type: "error", error: e instanceof NatterError ? e : new NatterError("internal", 0, String(e)) });
    });
  }

  /** @internal A push for this subscription. */
  pushed(frame: ServerFrame): void {
    this.enqueue(() => this.applyPush(frame)).catch((e) => {
      if (e instanceof Disconnected) return;
      callSafely(() => {
        throw e;
      });
    });
  }

  /** A frame on connection `epoch` (only while it is the current one), and its reply of `type`. */
  protected async requestOn<R extends ServerFrame["type"]>(
    type: R,
    frame: { action: string; [key: string]: unknown },
    epoch: number,
  ): Promise<Extract<ServerFrame, { type: R }>> {
    const c = this.session.connection;
    if (this.ended) throw new Disconnected();
    if (c.epoch !== epoch || !c.open) throw new Disconnected();
    const reply = await c.request(frame);
    if (reply.type === "error") throw NatterError.from(reply.error);
    if (reply.type !== type) {
      throw new NatterError("internal", 0, `unexpected reply ${reply.type} to ${frame.action}`);
    }
    return reply as Extract<ServerFrame, { type: R }>;
  }

  private async runLoadMore(count: number): Promise<void> {
    for (;;) {
      await this.untilLive();
      if (this.ended || this.loadedAll) return;
      const epoch = this.liveEpoch;
      try {
        await this.enqueue(async () => {
          if (this.ended || this.loadedAll) return;
          if (this.liveEpoch !== epoch) throw new Disconnected();
          await this.readMore(count, epoch);
        });
        return;
      } catch (e) {
        if (e instanceof Disconnected) continue; // load again once the window is restored
        throw e;
      }
    }
  }

  /** (Re)subscribes on connection `epoch` and reads back as far as the window reached. */
  protected abstract readWindow(epoch: number): Promise<void>;
  /** One `loadMore` of `count` on connection `epoch`, into the window. */
  protected abstract readMore(count: number, epoch: number): Promise<void>;
  protected abstract applyPush(frame: ServerFrame): Promise<void>;
}

export class MessageSubscription extends LiveSubscription<MessageSnapshot[]> {
  /** The window: every message with an id at or after `windowStart` (all of them when `loadedAll`). */
  private byId = new Map<string, MessageSnapshot>();
  private windowStart: string | null = null;
  private hasWindow = false;
  private lastEmitted: MessageSnapshot[] | null = null;
  private lastLoadedAll = false;

  /** @internal */
  constructor(
    session: Session,
    subscriptionId: string,
    readonly conversationId: string,
    private onSnapshot: ((messages: MessageSnapshot[], loadedAll: boolean) => void) | undefined,
  ) {
    super(session, subscriptionId);
  }

  private resolve(messages: FrameMessage[]): Promise<Array<MessageSnapshot | { id: string; gone: true }>> {
    return resolveMessages(this.session, messages);
  }

  private request(frame: { action: string; [key: string]: unknown }, epoch: number) {
    return this.requestOn("subscription", frame, epoch);
  }

  protected async readWindow(epoch: number): Promise<void> {
    if (this.ended) return;
    const hadWindow = this.hasWindow;
    const previousStart = this.windowStart;
    const previousAll = this.loadedAll;
    const limit = hadWindow ? Math.max(1, Math.min(MAX_PAGE, this.byId.size)) : DEFAULT_PAGE;
    const fresh = new Map<string, MessageSnapshot>();
    let start: string | null = null;
    let all = false;
    let frame: { action: string; [key: string]: unknown } = {
      action: "subscribe",
      subscriptionId: this.subscriptionId,
      conversationId: this.conversationId,
      limit,
    };
    for (;;) {
      const reply = await this.request(frame, epoch);
      if (reply.state === "error") return this.end({ type: "error", error: NatterError.from(reply.error) });
      if (reply.state !== "active") return this.end({ type: "unsubscribed" });
      for (const m of reply.messages) if (start === null || m.id < start) start = m.id;
      for (const m of await this.resolve(reply.messages)) if (!("gone" in m)) fresh.set(m.id, m);
      all = reply.loadedAll;
      const reached = previousAll ? false : previousStart === null || (start !== null && start <= previousStart);
      if (!hadWindow || all || reached) break;
      // As many as the old window held beyond what was read (30 more when some were deleted).
      let missing = 0;
      for (const old of this.byId.keys()) if (start !== null && old < start) missing++;
      const count = previousAll ? MAX_PAGE : missing > 0 ? Math.min(MAX_PAGE, missing) : DEFAULT_PAGE;
      frame = { action: "loadMore", subscriptionId: this.subscriptionId, count };
    }
    if (this.ended) return;
    // Replace the window with what was read, keeping the objects of unchanged messages.
    const next = new Map<string, MessageSnapshot>();
    for (const [id, m] of fresh) {
      const old = this.byId.get(id);
      next.set(id, old && deepEqual(old, m) ? old : m);
    }
    this.byId = next;
    this.windowStart = start;
    this.loadedAll = all;
    this.hasWindow = true;
    this.liveEpoch = epoch;
    this.emit();
    this.wakeWaiters();
  }

  protected async readMore(count: number, epoch: number): Promise<void> {
    const reply = await this.request({ action: "loadMore", subscriptionId: this.subscriptionId, count }, epoch);
    if (reply.state === "error") return this.end({ type: "error", error: NatterError.from(reply.error) });
    if (reply.state !== "active") return this.end({ type: "unsubscribed" });
    for (const m of reply.messages) {
      if (this.windowStart === null || m.id < this.windowStart) this.windowStart = m.id;
    }
    for (const m of await this.resolve(reply.messages)) {
      if ("gone" in m) continue;
      const old = this.byId.get(m.id);
      this.byId.set(m.id, old && deepEqual(old, m) ? old : m);
    }
    this.loadedAll = reply.loadedAll;
    this.emit();
  }

  private inWindow(id: string): boolean {
    return this.loadedAll || this.windowStart === null || id >= this.windowStart;
  }

  /** Puts a message into the window; replies to it get its new state in `referencedMessage`. */
  private upsert(m: MessageSnapshot): void {
    const old = this.byId.get(m.id);
    if (old && deepEqual(old, m)) return;
    this.byId.set(m.id, m);
    if (old) this.updateReplies(m.id, (ref) => referencedFrom(ref, m));
  }

  private updateReplies(id: string, update: (ref: ReferencedMessageSnapshot) => ReferencedMessageSnapshot | null): void {
    for (const [rid, r] of this.byId) {
      if (r.referencedMessage?.id !== id) continue;
      const referencedMessage = update(r.referencedMessage);
      if (!deepEqual(referencedMessage, r.referencedMessage)) this.byId.set(rid, { ...r, referencedMessage });
    }
  }

  protected async applyPush(frame: ServerFrame): Promise<void> {
    if (this.ended || !this.hasWindow) return;
    switch (frame.type) {
      case "message.created":
      case "message.edited": {
        const [m] = await this.resolve([frame.message]);
        if (this.ended || !m) return;
        if ("gone" in m) {
          this.remove(m.id);
        } else if (this.inWindow(m.id) && (frame.type === "message.created" || this.byId.has(m.id))) {
          this.upsert(m);
        }
        break;
      }
      case "message.deleted":
        this.remove(frame.messageId);
        break;
      case "reaction.added":
      case "reaction.removed": {
        const m = this.byId.get(frame.messageId);
        if (!m) return;
        const mine = frame.userId === this.session.userId;
        const reactions: ReactionSnapshot[] = [];
        let found = false;
        for (const r of m.reactions) {
          if (r.emoji !== frame.emoji) {
            reactions.push(r);
            continue;
          }
          found = true;
          if (frame.count > 0) {
            reactions.push({
              emoji: r.emoji,
              count: frame.count,
              currentUserReacted: mine ? frame.type === "reaction.added" : r.currentUserReacted,
            });
          }
        }
        if (!found && frame.count > 0) {
          reactions.push({ emoji: frame.emoji, count: frame.count, currentUserReacted: mine && frame.type === "reaction.added" });
        }
        this.upsert({ ...m, reactions });
        break;
      }
      default:
        return;
    }
    this.emit();
  }

  private remove(id: string): void {
    if (!this.byId.delete(id)) return;
    this.updateReplies(id, () => null);
  }

  /** Calls back when the window differs from the last one shown: a new array, old objects kept. */
  private emit(): void {
    if (this.ended) return;
    const ids = [...this.byId.keys()].sort(newestFirst);
    const messages = ids.map((id) => this.byId.get(id)!);
    const last = this.lastEmitted;
    const same =
      last !== null &&
      last.length === messages.length &&
      last.every((m, i) => m === messages[i]) &&
      this.lastLoadedAll === this.loadedAll;
    if (same) return;
    this.lastEmitted = messages;
    this.lastLoadedAll = this.loadedAll;
    const state = this.activate(messages);
    const callback = this.onSnapshot;
    if (callback) callSafely(() => callback(messages, state.loadedAll));
  }
}

// ------------------------------------------------------------------------------------------------
// Conversation lists

/** When a conversation last saw activity for its viewer: its last message or their joining. */
function activityOf(c: ConversationSnapshot): number {
  return Math.max(c.lastMessage?.createdAt ?? -Infinity, c.joinedAt ?? -Infinity);
}

/** Latest activity first; equal activity by id, descending (the server's order). */
function latestActivityFirst(a: ConversationSnapshot, b: ConversationSnapshot): number {
  const d = activityOf(b) - activityOf(a);
  if (d !== 0 && !Number.isNaN(d)) return d;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** A conversation of a frame made whole: a truncated one or last message fetched over HTTP (null: gone). */
async function resolveConversation(session: Session, c: FrameConversation): Promise<ConversationSnapshot | null> {
  if ((c as { truncated?: unknown }).truncated === true) return session.conversation(c.id).get();
  const full = c as FrameConversationSnapshot;
  const last = full.lastMessage;
  if (last === null) return full as ConversationSnapshot;
  const [m] = await resolveMessages(session, [last]);
  const lastMessage = !m || "gone" in m ? null : m;
  return lastMessage === last ? (full as ConversationSnapshot) : { ...full, lastMessage };
}

export type ConversationSubscriptionState =
  | PendingState
  | ActiveState<ConversationSnapshot[]>
  | UnsubscribedState
  | ErrorState;

/** The first window of a conversation list, and `loadMore`'s default page, as the server's. */
const DEFAULT_CONVERSATION_PAGE = 20;

/**
 * A live window onto the user's conversations, latest activity first: `session.subscribeConversations`.
 * Its states, `connected`, `terminated`, `loadMore` and `unsubscribe` are a message
 * subscription's; after a reconnect it holds at least as many conversations as before.
 */
export class ConversationSubscription extends LiveSubscription<ConversationSnapshot[]> {
  private byId = new Map<string, ConversationSnapshot>();
  private hasWindow = false;
  private lastEmitted: ConversationSnapshot[] | null = null;
  private lastLoadedAll = false;

  /** @internal */
  constructor(
    session: Session,
    subscriptionId: string,
    private onSnapshot: ((conversations: ConversationSnapshot[], loadedAll: boolean) => void) | undefined,
  ) {
    super(session, subscriptionId);
  }

  /** Loads `count` (1..100, default 20) conversations of older activity into the window. */
  override loadMore(count: number = DEFAULT_CONVERSATION_PAGE): Promise<void> {
    return super.loadMore(count);
  }

  private request(frame: { action: string; [key: string]: unknown }, epoch: number) {
    return this.requestOn("conversations", frame, epoch);
  }

  private async resolveAll(conversations: FrameConversation[]): Promise<ConversationSnapshot[]> {
    const whole = await Promise.all(conversations.map((c) => resolveConversation(this.session, c)));
    return whole.filter((c): c is ConversationSnapshot => c !== null);
  }

  /** `c`, or the object the window holds for it when nothing changed. */
  private kept(c: ConversationSnapshot): ConversationSnapshot {
    const old = this.byId.get(c.id);
    return old && deepEqual(old, c) ? old : c;
  }

  protected async readWindow(epoch: number): Promise<void> {
    if (this.ended) return;
    const hadWindow = this.hasWindow;
    const previous = this.byId.size;
    const previousAll = this.loadedAll;
    const limit = hadWindow ? Math.max(1, Math.min(MAX_PAGE, previous)) : DEFAULT_CONVERSATION_PAGE;
    const fresh = new Map<string, ConversationSnapshot>();
    let all = false;
    let frame: { action: string; [key: string]: unknown } = {
      action: "subscribeConversations",
      subscriptionId: this.subscriptionId,
      limit,
    };
    for (;;) {
      const reply = await this.request(frame, epoch);
      if (reply.state === "error") return this.end({ type: "error", error: NatterError.from(reply.error) });
      if (reply.state !== "active") return this.end({ type: "unsubscribed" });
      for (const c of await this.resolveAll(reply.conversations)) fresh.set(c.id, c);
      all = reply.loadedAll;
      // At least as many as the window held (all of them when it held all).
      if (!hadWindow || all || (!previousAll && fresh.size >= previous) || reply.conversations.length === 0) break;
      const count = previousAll ? MAX_PAGE : Math.max(1, Math.min(MAX_PAGE, previous - fresh.size));
      frame = { action: "loadMore", subscriptionId: this.subscriptionId, count };
    }
    if (this.ended) return;
    const next = new Map<string, ConversationSnapshot>();
    for (const [id, c] of fresh) next.set(id, this.kept(c));
    this.byId = next;
    this.loadedAll = all;
    this.hasWindow = true;
    this.liveEpoch = epoch;
    this.emit();
    this.wakeWaiters();
  }

  protected async readMore(count: number, epoch: number): Promise<void> {
    const reply = await this.request({ action: "loadMore", subscriptionId: this.subscriptionId, count }, epoch);
    if (reply.state === "error") return this.end({ type: "error", error: NatterError.from(reply.error) });
    if (reply.state !== "active") return this.end({ type: "unsubscribed" });
    for (const c of await this.resolveAll(reply.conversations)) this.byId.set(c.id, this.kept(c));
    this.loadedAll = reply.loadedAll;
    this.emit();
  }

  protected async applyPush(frame: ServerFrame): Promise<void> {
    if (this.ended || !this.hasWindow) return;
    switch (frame.type) {
      case "conversation.updated": {
        const c = await resolveConversation(this.session, frame.conversation);
        if (this.ended) return;
        if (c) this.byId.set(c.id, this.kept(c));
        else this.byId.delete(frame.conversation.id);
        break;
      }
      case "conversation.removed":
        this.byId.delete(frame.conversationId);
        break;
      default:
        return;
    }
    this.emit();
  }

  /** Calls back when the list differs from the last one shown: a new array, old objects kept. */
  private emit(): void {
    if (this.ended) return;
    const conversations = [...this.byId.values()].sort(latestActivityFirst);
    const last = this.lastEmitted;
    const same =
      last !== null &&
      last.length === conversations.length &&
      last.every((c, i) => c === conversations[i]) &&
      this.lastLoadedAll === this.loadedAll;
    if (same) return;
    this.lastEmitted = conversations;
    this.lastLoadedAll = this.loadedAll;
    const state = this.activate(conversations);
    const callback = this.onSnapshot;
    if (callback) callSafely(() => callback(conversations, state.loadedAll));
  }
}

// ------------------------------------------------------------------------------------------------
// Typing

/** How long a `typing` frame counts on the server. */
const TYPING_LASTS = 10 * 1000;
/** The client sends at most one `typing` frame per conversation this often. */
const TYPING_THROTTLE = 3 * 1000;

export type TypingSubscriptionState = PendingState | ActiveState<TypingSnapshot> | UnsubscribedState | ErrorState;

/**
 * Who else is typing in a conversation: `conversation.subscribeTyping`. `state` is `pending`
 * until the session listens to the conversation, then `active` with the latest
 * `{users}` (typing longest first); `unsubscribe()` ends it.
 */
export class TypingSubscription {
  state: TypingSubscriptionState = { type: "pending" };
  /** Resolves with the first active state; rejects if the subscription ends before that. */
  readonly connected: Promise<ActiveState<TypingSnapshot>>;
  /** Resolves when the subscription ends (unsubscribed, or an error). */
  readonly terminated: Promise<UnsubscribedState | ErrorState>;
  private resolveConnected!: (s: ActiveState<TypingSnapshot>) => void;
  private rejectConnected!: (e: unknown) => void;
  private resolveTerminated!: (s: UnsubscribedState | ErrorState) => void;
  private ended = false;

  /** @internal */
  constructor(
    private channel: TypingChannel | null,
    readonly conversationId: string,
    private onSnapshot: ((typing: TypingSnapshot) => void) | undefined,
  ) {
    this.connected = new Promise((resolve, reject) => {
      this.resolveConnected = resolve;
      this.rejectConnected = reject;
    });
    this.connected.catch(() => {});
    this.terminated = new Promise((resolve) => (this.resolveTerminated = resolve));
  }

  unsubscribe(): void {
    if (this.ended) return;
    this.channel?.release(this);
    this.end({ type: "unsubscribed" });
  }

  /** @internal */
  show(snapshot: TypingSnapshot): void {
    if (this.ended) return;
    const first = this.state.type === "pending";
    const state: ActiveState<TypingSnapshot> = { type: "active", latestSnapshot: snapshot, loadedAll: true };
    this.state = state;
    if (first) this.resolveConnected(state);
    const callback = this.onSnapshot;
    if (callback) callSafely(() => callback(snapshot));
  }

  /** @internal */
  end(state: UnsubscribedState | ErrorState): void {
    if (this.ended) return;
    this.ended = true;
    const wasActive = this.state.type === "active";
    this.state = state;
    this.channel = null;
    if (!wasActive) {
      this.rejectConnected(
        state.type === "error" ? state.error : new NatterError("unsubscribed", 0, "the subscription ended before it was active"),
      );
    }
    this.resolveTerminated(state);
  }
}

/**
 * The session's ear in one conversation for its typing pushes: a message subscription of its own
 * with a window of one message (the server pushes `typing` only to message subscriptions), shared
 * by every `subscribeTyping` of the conversation and ended with the last of them. Its message
 * pushes are ignored. The server says who types only when that changes, and not again on
 * subscribing, so a push missed while reconnecting cannot be read back: whoever was shown typing
 * before a reconnect is shown until the next push, but at most 10 s (a spell's length) after the
 * push that last listed them.
 */
class TypingChannel implements WireSubscription {
  private listeners = new Set<TypingSubscription>();
  private snapshot: TypingSnapshot = { users: [] };
  /** When a push last listed each user shown. */
  private confirmed = new Map<string, number>();
  /** Since a reconnect, no push came: the users shown may have stopped while we were away. */
  private uncertain = false;
  private expiry: ReturnType<typeof setTimeout> | null = null;
  private liveEpoch = -1;
  private ended = false;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private session: Session,
    readonly subscriptionId: string,
    readonly conversationId: string,
  ) {}

  add(sub: TypingSubscription): void {
    this.listeners.add(sub);
    // Never from within subscribeTyping itself: after it returned, as a push would.
    this.enqueue(async () => {
      if (this.liveEpoch >= 0 && this.listeners.has(sub) && sub.state.type === "pending") sub.show(this.snapshot);
    });
  }

  release(sub: TypingSubscription): void {
    if (!this.listeners.delete(sub) || this.listeners.size > 0 || this.ended) return;
    const c = this.session.connection;
    if (c.open && this.liveEpoch === c.epoch) {
      c.send({ action: "unsubscribe", subscriptionId: this.subscriptionId });
    }
    this.end({ type: "unsubscribed" });
  }

  private enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(task).catch((e) => {
      if (e instanceof Disconnected) return; // the next connection subscribes again
      if (e instanceof NatterError) this.end({ type: "error", error: e });
      else callSafely(() => {
        throw e;
      });
    });
  }

  restore(epoch: number): void {
    this.enqueue(async () => {
      const c = this.session.connection;
      if (this.ended || c.epoch !== epoch || !c.open) return;
      const reply = await c.request({
        action: "subscribe",
        subscriptionId: this.subscriptionId,
        conversationId: this.conversationId,
        limit: 1,
      });
      if (this.ended) {
        // Released while subscribing: the server holds it now, so let it go.
        if (reply.type === "subscription" && reply.state === "active") c.send({ action: "unsubscribe", subscriptionId: this.subscriptionId });
        return;
      }
      if (reply.type === "error") throw NatterError.from(reply.error);
      if (reply.type !== "subscription") throw new NatterError("internal", 0, `unexpected reply ${reply.type} to subscribe`);
      if (reply.state === "error") throw NatterError.from(reply.error);
      if (reply.state !== "active") return this.end({ type: "unsubscribed" });
      for (const m of reply.messages) if (!isTruncated(m)) this.session.learnMessage(m);
      const first = this.liveEpoch < 0;
      this.liveEpoch = epoch;
      if (first) return this.publish(this.snapshot.users, true);
      this.uncertain = true;
      this.expireUncertain();
    });
  }

  /** After a reconnect and until the next push: drops those not listed for 10 s. */
  private expireUncertain(): void {
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = null;
    if (!this.uncertain || this.ended) return;
    const now = Date.now();
    const users = this.snapshot.users.filter((u) => (this.confirmed.get(u.id) ?? 0) + TYPING_LASTS > now);
    this.publish(users, false);
    if (users.length === 0) return;
    const next = Math.min(...users.map((u) => this.confirmed.get(u.id)! + TYPING_LASTS));
    this.expiry = setTimeout(() => this.enqueue(async () => this.expireUncertain()), Math.max(0, next - now));
  }

  pushed(frame: ServerFrame): void {
    const f = frame as { type: string; conversationId?: unknown; users?: unknown };
    if (f.type !== "typing" || !Array.isArray(f.users)) return;
    const me = this.session.userId;
    const ids = (f.users as unknown[]).filter((u): u is string => typeof u === "string" && u !== me);
    this.enqueue(async () => {
      if (this.ended || this.liveEpoch !== this.session.connection.epoch) return;
      const users = await Promise.all(ids.map((id) => this.session.typingUser(id, this.conversationId)));
      if (this.ended) return;
      const now = Date.now();
      this.confirmed = new Map(ids.map((id) => [id, now]));
      this.uncertain = false;
      if (this.expiry) clearTimeout(this.expiry);
      this.expiry = null;
      this.publish(users, false);
    });
  }

  /** Shows `users` to every listener when they differ from what was shown (or `always`). */
  private publish(users: UserSnapshot[], always: boolean): void {
    const old = this.snapshot.users;
    const same = old.length === users.length && old.every((u, i) => u === users[i]);
    if (same && !always) return;
    if (!same) this.snapshot = { users };
    for (const l of [...this.listeners]) l.show(this.snapshot);
  }

  end(state: UnsubscribedState | ErrorState): void {
    if (this.ended) return;
    this.ended = true;
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = null;
    this.session.forgetTyping(this);
    for (const l of [...this.listeners]) l.end(state);
    this.listeners.clear();
  }
}

// ------------------------------------------------------------------------------------------------
// The session

type InboxListener = (message: unknown, senderId: string, messageId: string) => void;

export class Session {
  /** @internal */ readonly options: SessionOptions;
  /** @internal */ readonly connection: Connection;
  readonly url: string;
  readonly wsUrl: string;
  private token: string | null = null;
  private tokenPromise: Promise<string> | null = null;
  private tokenError: unknown = null;
  private nextSubscription = 1;
  private subscriptions = new Map<string, WireSubscription>();
  /** The typing channel of each conversation someone called subscribeTyping on. */
  private typingChannels = new Map<string, TypingChannel>();
  /** When the last `typing` frame went out, per conversation (for the throttle). */
  private typingSent = new Map<string, number>();
  /** markAsTyping calls made while offline, per conversation: sent on connecting when still fresh. */
  private typingWanted = new Map<string, number>();
  /** The latest UserSnapshot seen of each user (senders of the messages this session saw). */
  private users = new Map<string, UserSnapshot>();
  /** Users looked up and not found: what is shown for them until a real snapshot comes along. */
  private guessedUsers = new Map<string, UserSnapshot>();
  private userLookups = new Map<string, Promise<UserSnapshot>>();

  private inbox = new Map<string, InboxMessageSnapshot>();
  private inboxList: InboxMessageSnapshot[] | null = [];
  /** Every inbox message id `on("message")` has fired for: it fires once per id. */
  private announced = new Set<string>();
  private listeners: InboxListener[] = [];
  /** While a hello replay pages through the inbox: the ids it (or a push) showed, and the deleted. */
  private replay: { seen: Set<string>; deleted: Set<string> } | null = null;
  private closed = false;
  /** The connection id from the latest `hello` (usable as an inbox recipient), or null. */
  clientId: string | null = null;

  constructor(options: SessionOptions) {
    if (!options || typeof options.url !== "string") throw new TypeError("new Session({url, ...}) needs a url");
    if (!options.token && !options.tokenFetcher) throw new TypeError("new Session needs a token or a tokenFetcher");
    this.options = options;
    this.url = options.url.replace(/\/+$/, "");
    this.wsUrl = options.wsUrl ?? `${this.url.replace(/^http(s?):/i, "ws$1:")}/ws`;
    this.connection = new Connection(this);
    if (options.token) {
      this.token = options.token;
    } else {
      // Called at start; a failure is kept for the first call to report.
      this.fetchToken().catch((e) => (this.tokenError = e));
    }
  }

  /** The user id: the current token's `sub` (null while the first token is being fetched). */
  get userId(): string | null {
    return this.token ? tokenSubject(this.token) : null;
  }

  user(id: string): UserRef {
    return new UserRef(this, id);
  }

  conversation(id: string): ConversationRef {
    return new ConversationRef(this, id);
  }

  // --- the inbox (Webstrates' shape) ------------------------------------------------------------

  /** Sends any JSON value to users (ids, or client ids); resolves to the stored message ids. */
  async message(message: unknown, recipients: string | string[]): Promise<string[]> {
    const reply = await this.request<{ messageIds: string[] }>("POST", "/v1/inbox", { message, recipients });
    return reply.messageIds;
  }

  /**
   * `"message"`: `(message, senderId, messageId)` for each inbox message that arrives (pushed, or
   * replayed by the server's hello), once per `messageId` however often reconnects replay it.
   * Registering the first listener connects the session's WebSocket.
   */
  on(event: "message", listener: InboxListener): void {
    if (event !== "message") throw new TypeError(`unknown event ${String(event)}`);
    this.webSocketConstructor();
    this.listeners.push(listener);
    if (!this.closed) this.connection.ensure();
  }

  off(event: "message", listener: InboxListener): void {
    if (event !== "message") return;
    this.listeners = this.listeners.filter((l) => l !== listener);
  }

  /** The inbox as last known, oldest first. */
  get messages(): InboxMessageSnapshot[] {
    if (!this.inboxList) {
      this.inboxList = [...this.inbox.values()].sort((a, b) =>
        a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0,
      );
    }
    return this.inboxList;
  }

  async deleteMessage(messageId: string): Promise<void> {
    await this.request("DELETE", `/v1/inbox/${segment(messageId)}`);
    this.dropInbox(messageId);
  }

  async deleteMessages(): Promise<void> {
    await this.request("DELETE", "/v1/inbox");
    for (const id of [...this.inbox.keys()]) this.dropInbox(id);
  }

  /**
   * A live window onto the user's conversations, latest activity first (the later of the last
   * message and the user's joining): the first 20, more with `loadMore`, and every change: a new
   * message, a read, a mark-unread, a join, a change of access, subject, photo or custom. A
   * conversation the user joins or that gets a message enters it; one the user leaves goes.
   */
  subscribeConversations(
    onSnapshot?: (conversations: ConversationSnapshot[], loadedAll: boolean) => void,
  ): ConversationSubscription {
    this.webSocketConstructor();
    const sub = new ConversationSubscription(this, `c${this.nextSubscription++}`, onSnapshot);
    return this.wire(sub);
  }

  /** Closes the connection and ends every subscription. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.connection.close();
    for (const s of [...this.subscriptions.values()]) s.end({ type: "unsubscribed" });
  }

  /** How many WebSocket connections this session has opened (1 plus its reconnects). */
  get connectionCount(): number {
    return this.connection.opened;
  }

  // --- internal: HTTP and tokens -----------------------------------------------------------------

  private fetchToken(): Promise<string> {
    const fetcher = this.options.tokenFetcher;
    if (!fetcher) return Promise.reject(new NatterError("unauthorized", 401, "the token was refused and there is no tokenFetcher"));
    if (!this.tokenPromise) {
      this.tokenPromise = Promise.resolve()
        .then(fetcher)
        .then((token) => {
          if (typeof token !== "string" || !token) throw new NatterError("unauthorized", 401, "tokenFetcher gave no token");
          this.token = token;
          this.tokenError = null;
          return token;
        })
        .finally(() => {
          this.tokenPromise = null;
        });
    }
    return this.tokenPromise;
  }

  /** @internal */
  async currentToken(): Promise<string> {
    if (this.tokenPromise) return this.tokenPromise;
    if (this.token) return this.token;
    if (this.tokenError && !this.options.tokenFetcher) throw this.tokenError;
    return this.fetchToken();
  }

  /** After `used` was refused with 401: a new token, or null when there is none to be had. */
  private async renewToken(used: string): Promise<string | null> {
    if (!this.options.tokenFetcher) return null;
    if (this.tokenPromise) return this.tokenPromise;
    if (this.token && this.token !== used) return this.token;
    const token = await this.fetchToken();
    return token === used ? null : token;
  }

  /** @internal An HTTP call; a 401 gets a new token from tokenFetcher and one more try. */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const doFetch = this.options.fetch ?? globalThis.fetch;
    let token = await this.currentToken();
    for (let attempt = 0; ; attempt++) {
      const headers: { [key: string]: string } = { authorization: `Bearer ${token}` };
      if (body !== undefined) headers["content-type"] = "application/json";
      let response: Response;
      try {
        response = await doFetch(`${this.url}${path}`, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (e) {
        throw new NatterError("network", 0, `${method} ${path}: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (response.status === 401 && attempt === 0) {
        await response.text().catch(() => "");
        const next = await this.renewToken(token);
        if (next) {
          token = next;
          continue;
        }
        throw new NatterError("unauthorized", 401, "the token was refused");
      }
      const text = await response.text();
      let json: any = null;
      if (text) {
        try {
          json = JSON.parse(text);
        } catch {
          json = null;
        }
      }
      if (!response.ok) {
        const error = json?.error;
        if (error && typeof error.code === "string") throw NatterError.from(error, response.status);
        throw new NatterError("http_" + response.status, response.status, text || response.statusText);
      }
      return json as T;
    }
  }

  /** @internal A GET whose 404 is `null`. */
  async getOrNull<T>(path: string): Promise<T | null> {
    try {
      return await this.request<T>("GET", path);
    } catch (e) {
      if (e instanceof NatterError && e.status === 404) return null;
      throw e;
    }
  }

  /** @internal Asks the HTTP API whether the token is good (after a refused connect). */
  async checkToken(): Promise<void> {
    const token = await this.currentToken();
    const me = tokenSubject(token) ?? "-";
    await this.getOrNull(`/v1/users/${segment(me)}`);
  }

  /** @internal */
  webSocketConstructor(): WebSocketConstructor {
    const WS = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError("no WebSocket in this runtime: pass one as the WebSocket option (e.g. the ws package's)");
    return WS;
  }

  // --- internal: subscriptions and frames --------------------------------------------------------

  /** @internal */
  subscribe(
    conversationId: string,
    onSnapshot?: (messages: MessageSnapshot[], loadedAll: boolean) => void,
  ): MessageSubscription {
    this.webSocketConstructor();
    const sub = new MessageSubscription(this, `m${this.nextSubscription++}`, conversationId, onSnapshot);
    return this.wire(sub);
  }

  /** Puts a subscription on the connection (subscribing now when it is open). */
  private wire<S extends WireSubscription>(sub: S): S {
    if (this.closed) {
      sub.end({ type: "unsubscribed" });
      return sub;
    }
    this.subscriptions.set(sub.subscriptionId, sub);
    this.connection.ensure();
    if (this.connection.open) sub.restore(this.connection.epoch);
    return sub;
  }

  /** @internal */
  forget(sub: WireSubscription): void {
    if (this.subscriptions.get(sub.subscriptionId) === sub) this.subscriptions.delete(sub.subscriptionId);
  }

  /** @internal `conversation.subscribeTyping`: shares the conversation's typing channel. */
  subscribeTyping(conversationId: string, onSnapshot?: (typing: TypingSnapshot) => void): TypingSubscription {
    this.webSocketConstructor();
    let channel = this.typingChannels.get(conversationId);
    if (!channel && !this.closed) {
      channel = new TypingChannel(this, `t${this.nextSubscription++}`, conversationId);
      this.typingChannels.set(conversationId, channel);
      this.wire(channel);
    }
    const sub = new TypingSubscription(channel ?? null, conversationId, onSnapshot);
    if (channel) channel.add(sub);
    else sub.end({ type: "unsubscribed" });
    return sub;
  }

  /** @internal */
  forgetTyping(channel: TypingChannel): void {
    this.forget(channel);
    if (this.typingChannels.get(channel.conversationId) === channel) this.typingChannels.delete(channel.conversationId);
  }

  /** @internal `conversation.markAsTyping`: a `typing` frame, at most one per conversation per 3 s. */
  markTyping(conversationId: string): void {
    if (this.closed) return;
    this.webSocketConstructor();
    const now = Date.now();
    const last = this.typingSent.get(conversationId);
    if (last !== undefined && now - last < TYPING_THROTTLE) return;
    this.connection.ensure();
    if (this.connection.fire({ action: "typing", conversationId })) {
      this.typingSent.set(conversationId, now);
      this.typingWanted.delete(conversationId);
    } else {
      this.typingWanted.set(conversationId, now);
    }
  }

  /** @internal The user sent a message there: the server ended their typing, so the next call sends. */
  typingEnded(conversationId: string): void {
    this.typingSent.delete(conversationId);
    this.typingWanted.delete(conversationId);
  }

  /** @internal Remembers the users a message shows (its sender, and its reply's). */
  learnMessage(m: MessageSnapshot): void {
    this.learnUser(m.sender);
    this.learnUser(m.referencedMessage?.sender ?? null);
  }

  private learnUser(u: UserSnapshot | null): void {
    if (!u || typeof u.id !== "string") return;
    const old = this.users.get(u.id);
    if (!old || !deepEqual(old, u)) this.users.set(u.id, u);
    this.guessedUsers.delete(u.id);
  }

  /**
   * @internal A typing user's snapshot: the latest one this session saw; else the user's own
   * (for the session's user) or one from the conversation's latest 100 messages; else one with
   * only the id (a user token may read no other user, so there is nothing more to be had).
   */
  typingUser(userId: string, conversationId: string): Promise<UserSnapshot> {
    const known = this.users.get(userId) ?? this.guessedUsers.get(userId);
    if (known) return Promise.resolve(known);
    let lookup = this.userLookups.get(userId);
    if (!lookup) {
      lookup = (async () => {
        try {
          if (userId === this.userId) {
            this.learnUser(await this.user(userId).get());
          } else {
            const page = await this.request<{ data: MessageSnapshot[] }>(
              "GET",
              `/v1/conversations/${segment(conversationId)}/messages?limit=${MAX_PAGE}`,
            );
            for (const m of page.data) this.learnMessage(m);
          }
        } catch {
          // Shown with its id only, as below.
        }
        const found = this.users.get(userId);
        if (found) return found;
        const guess: UserSnapshot = { id: userId, name: null, photoUrl: null, role: "default", custom: {} };
        this.guessedUsers.set(userId, guess);
        return guess;
      })().finally(() => this.userLookups.delete(userId));
      this.userLookups.set(userId, lookup);
    }
    return lookup;
  }

  /** @internal A socket opened: hello (and the inbox replay), and every subscription again. */
  connectionOpened(epoch: number): void {
    for (const sub of this.subscriptions.values()) sub.restore(epoch);
    // Typing that was asked for while offline, if it would still be on.
    const now = Date.now();
    for (const [conversationId, at] of [...this.typingWanted]) {
      this.typingWanted.delete(conversationId);
      if (now - at < TYPING_LASTS && this.connection.fire({ action: "typing", conversationId })) {
        this.typingSent.set(conversationId, now);
      }
    }
    this.helloAndReplay().catch((e) => {
      if (!(e instanceof Disconnected)) callSafely(() => {
        throw e;
      });
    });
  }

  /** @internal The token is refused for good: subscriptions end in state `error`. */
  connectionFailed(error: NatterError): void {
    for (const s of [...this.subscriptions.values()]) s.end({ type: "error", error });
  }

  private async helloAndReplay(): Promise<void> {
    const replay = { seen: new Set<string>(), deleted: new Set<string>() };
    this.replay = replay;
    try {
      let reply = await this.connection.request({ action: "hello" });
      if (reply.type === "error") throw NatterError.from(reply.error);
      if (reply.type !== "hello") throw new NatterError("internal", 0, `unexpected reply ${reply.type} to hello`);
      this.clientId = reply.clientId;
      this.connection.healthy();
      let page: { messages: InboxMessageSnapshot[]; hasMore: boolean } = reply;
      for (;;) {
        for (const m of page.messages) {
          replay.seen.add(m.messageId);
          if (!replay.deleted.has(m.messageId)) this.addInbox(m);
        }
        if (!page.hasMore || page.messages.length === 0) break;
        const after = page.messages[page.messages.length - 1]!.messageId;
        reply = await this.connection.request({ action: "inboxMore", after });
        if (reply.type === "error") throw NatterError.from(reply.error);
        if (reply.type !== "inbox") throw new NatterError("internal", 0, `unexpected reply ${reply.type} to inboxMore`);
        page = reply;
      }
      // The whole inbox was read: what it no longer holds was deleted while we were away.
      for (const id of [...this.inbox.keys()]) if (!replay.seen.has(id)) this.dropInbox(id);
    } finally {
      if (this.replay === replay) this.replay = null;
    }
  }

  private addInbox(m: InboxMessageSnapshot): void {
    const snapshot: InboxMessageSnapshot = {
      messageId: m.messageId,
      message: m.message,
      senderId: m.senderId,
      createdAt: m.createdAt,
    };
    if (!this.inbox.has(m.messageId)) {
      this.inbox.set(m.messageId, snapshot);
      this.inboxList = null;
    }
    if (!this.announced.has(m.messageId)) {
      this.announced.add(m.messageId);
      for (const l of [...this.listeners]) callSafely(() => l(snapshot.message, snapshot.senderId, snapshot.messageId));
    }
  }

  private dropInbox(id: string): void {
    if (this.inbox.delete(id)) this.inboxList = null;
  }

  /** @internal A frame that is not a reply: a push. */
  frameReceived(frame: ServerFrame): void {
    switch (frame.type) {
      case "inbox.message":
        this.replay?.seen.add(frame.messageId);
        this.addInbox(frame);
        return;
      case "inbox.deleted":
        this.replay?.deleted.add(frame.messageId);
        this.dropInbox(frame.messageId);
        return;
      case "message.created":
      case "message.edited":
      case "message.deleted":
      case "reaction.added":
      case "reaction.removed":
      case "conversation.updated":
      case "conversation.removed":
        this.subscriptions.get(frame.subscriptionId)?.pushed(frame);
        return;
      default: {
        // `typing` (not in every server's schema yet): for the typing channels.
        const f = frame as { type: string; subscriptionId?: unknown };
        if (f.type === "typing" && typeof f.subscriptionId === "string") {
          this.subscriptions.get(f.subscriptionId)?.pushed(frame);
        }
        return;
      }
    }
  }
}
