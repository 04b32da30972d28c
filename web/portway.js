// portway.js — a client for portway's WebSocket protocol, portway.v1.json
// (docs/websocket-protocol.md). One ES module, no dependencies, no build step: it runs in
// browsers and in Node (pass a WebSocket constructor where there is no global one, e.g. the
// `ws` package on Node 20).
//
// All four RPC kinds over one socket, many calls at once:
//   const client = new PortwayClient("wss://example.com/ws");
//   const reply = await client.unary("/pkg.Svc/Get", { id: "1" });
//   for await (const m of client.serverStream("/pkg.Svc/Watch", {})) { ... }
//   const up = client.clientStream("/pkg.Svc/Upload"); await up.send(m); up.end(); await up.response;
//   const chat = client.bidiStream("/pkg.Svc/Chat"); await chat.send(m); for await (const r of chat) { ... }
// See web/README.md.

/** The subprotocol this client speaks. */
export const SUBPROTOCOL = "portway.v1.json";

/** Status code names, indexed by their gRPC number. */
export const CODES = Object.freeze([
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
]);

/**
 * A call that ended with a status other than `ok`: the same code, message, details and
 * trailing metadata a native gRPC client would see.
 */
export class PortwayError extends Error {
  /**
   * @param {string} code a name from CODES, e.g. "not_found"
   * @param {string} message the status message
   * @param {{details?: Array<{type: string, value: string}>, metadata?: Record<string, string[]>, cause?: unknown}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "PortwayError";
    /** The code's name, e.g. "not_found". */
    this.code = code;
    /** The gRPC code number (2, unknown, for a name this client does not know). */
    this.grpcCode = CODES.includes(code) ? CODES.indexOf(code) : 2;
    /** Error details: `{type, value}` with `value` the base64 of the binary message. */
    this.details = extra.details ?? [];
    /** Trailing metadata (keys to arrays of values). */
    this.metadata = extra.metadata ?? {};
  }
}

const DEFAULT_RECONNECT = Object.freeze({
  initialDelayMs: 250,
  maxDelayMs: 30_000,
  factor: 2,
  jitter: 0.5,
  maxAttempts: Infinity,
});

/**
 * One WebSocket to a portway gateway, reconnected when it drops, carrying any number of calls.
 */
export class PortwayClient {
  #url;
  #WebSocket;
  #protocols;
  #reconnect;
  #credit;
  #heartbeatTimeoutMs;
  #onEvent;
  #ws = null;
  #hello = null;
  #calls = new Map(); // id on the current socket -> Call
  #pending = new Set(); // calls waiting for a socket
  #nextId = 1;
  #attempt = 0;
  #reconnectTimer = null;
  #watchdog = null;
  #lastFrameAt = 0;
  #pings = new Map();
  #pingSeq = 0;
  #closed = false;
  #connecting = false;
  #state = "idle";

  /**
   * @param {string} url e.g. "wss://host/ws"; `?access_token=` works too, but prefer `token`
   * @param {object} [options]
   * @param {typeof WebSocket} [options.WebSocket] the constructor to use (default: the global one)
   * @param {string} [options.token] a bearer token, sent as the `portway.bearer.<token>` subprotocol
   * @param {false | {initialDelayMs?: number, maxDelayMs?: number, factor?: number, jitter?: number, maxAttempts?: number}} [options.reconnect]
   *   exponential backoff with jitter (defaults: 250 ms doubling to 30 s, ±50 %, forever); `false` disables
   * @param {number} [options.credit] response messages each call may have in flight (default 16)
   * @param {number} [options.heartbeatTimeoutMs] silence after which the server is taken for gone
   *   (default: 2.5 × the server's heartbeat interval)
   * @param {(event: {type: string, [k: string]: unknown}) => void} [options.onEvent] connection events
   *   (`open`, `close`, `reconnecting`, `error` frames from the server)
   */
  constructor(url, options = {}) {
    this.#url = url;
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WebSocket !== "function") {
      throw new TypeError("no WebSocket implementation: pass options.WebSocket (e.g. the `ws` package)");
    }
    this.#protocols = [SUBPROTOCOL];
    if (options.token) this.#protocols.push(`portway.bearer.${options.token}`);
    this.#reconnect = options.reconnect === false ? null : { ...DEFAULT_RECONNECT, ...(options.reconnect ?? {}) };
    this.#credit = Math.max(1, options.credit ?? 16);
    this.#heartbeatTimeoutMs = options.heartbeatTimeoutMs;
    this.#onEvent = options.onEvent ?? (() => {});
  }

  /** Resolves once a socket is open and the server's hello arrived (connecting if needed). */
  ready() {
    if (this.#closed) return Promise.reject(new PortwayError("canceled", "client closed"));
    if (this.#hello && this.#ws) return Promise.resolve(this.#hello);
    return new Promise((resolve, reject) => {
      const waiter = { _waiter: true, resolve, reject };
      this.#pending.add(waiter);
      this.#ensureConnecting();
    });
  }

  /**
   * Where the connection stands: `"idle"` (no socket, none needed yet), `"connecting"`,
   * `"open"`, `"reconnecting"` (waiting out a backoff delay) or `"closed"` (by `close()`).
   */
  get state() {
    return this.#state;
  }

  /** The limits the server announced (null before the first hello). */
  get limits() {
    return this.#hello;
  }

  /** Round-trip time to the server, in milliseconds. */
  async ping() {
    await this.ready();
    const id = ++this.#pingSeq;
    const started = Date.now();
    return new Promise((resolve, reject) => {
      this.#pings.set(id, { resolve: () => resolve(Date.now() - started), reject });
      this.#send({ type: "ping", data: { ping: id } });
    });
  }

  /** Closes the socket for good; every open call fails with `canceled`. */
  close() {
    this.#closed = true;
    this.#state = "closed";
    clearTimeout(this.#reconnectTimer);
    const err = new PortwayError("canceled", "client closed");
    for (const call of [...this.#calls.values(), ...this.#pending]) {
      if (call._waiter) call.reject(err);
      else call._fail(err);
    }
    this.#calls.clear();
    this.#pending.clear();
    for (const p of this.#pings.values()) p.reject(err);
    this.#pings.clear();
    this.#stopWatchdog();
    const ws = this.#ws;
    this.#ws = null;
    this.#hello = null;
    if (ws) {
      try {
        ws.close(1000, "client closed");
      } catch {
        // already closing
      }
    }
  }

  /**
   * A unary call. Resolves with the response message; rejects with a PortwayError.
   * @param {string} method "/package.Service/Method"
   * @param {object} request the request message (canonical protobuf JSON)
   * @param {CallOptions} [options]
   */
  unary(method, request, options = {}) {
    const call = new Call(this, method, "unary", options, request);
    return call.response;
  }

  /**
   * A server-streaming call: iterate it with `for await`. With `options.resume`, the stream
   * survives reconnects: `resume({lastMessage, attempt})` returns the request to re-open it
   * with (say, a watch from the last revision seen), or null to end it with `unavailable`.
   * @returns {Call}
   */
  serverStream(method, request, options = {}) {
    return new Call(this, method, "server", options, request);
  }

  /** A client-streaming call: `await call.send(m)` (waits for credit), `call.end()`, `await call.response`. */
  clientStream(method, options = {}) {
    return new Call(this, method, "client", options);
  }

  /**
   * A bidi call: `send`/`end` like a client stream, iterate responses with `for await`.
   * `options.resume({lastMessage, attempt})` may return an array of messages to re-open with.
   */
  bidiStream(method, options = {}) {
    return new Call(this, method, "bidi", options);
  }

  /**
   * Starts a call of any kind and returns its `Call`: what the four methods above do, for
   * code that picks the kind at run time (the connect-es transport in `transport.js`).
   * @param {string} method "/package.Service/Method"
   * @param {"unary" | "server" | "client" | "bidi"} kind
   * @param {object | undefined} request the request message of unary and server-streaming calls
   * @param {CallOptions} [options]
   * @returns {Call}
   */
  call(method, kind, request, options = {}) {
    if (!["unary", "server", "client", "bidi"].includes(kind)) throw new TypeError(`unknown call kind ${kind}`);
    return new Call(this, method, kind, options, request);
  }

  // ---- internals used by Call ---------------------------------------------------------

  _defaultCredit() {
    return this.#credit;
  }

  /** Registers a call; it is opened now or once the socket is ready. */
  _enqueue(call) {
    if (this.#closed) {
      call._fail(new PortwayError("canceled", "client closed"));
      return;
    }
    if (this.#hello && this.#ws) {
      this._openNow(call);
    } else {
      this.#pending.add(call);
      this.#ensureConnecting();
    }
  }

  _openNow(call) {
    const id = this.#nextId++;
    this.#calls.set(id, call);
    call._opened(id, this.#hello);
  }

  _forget(call) {
    this.#pending.delete(call);
    if (call.id !== undefined && this.#calls.get(call.id) === call) this.#calls.delete(call.id);
  }

  /** Sends a frame on the current socket; false if there is none. */
  _send(frame) {
    return this.#send(frame);
  }

  #send(frame) {
    const ws = this.#ws;
    if (!ws || !this.#hello || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  #ensureConnecting() {
    if (this.#ws || this.#connecting || this.#reconnectTimer || this.#closed) return;
    this.#connect();
  }

  #connect() {
    this.#connecting = true;
    this.#state = "connecting";
    let ws;
    try {
      ws = new this.#WebSocket(this.#url, this.#protocols);
    } catch (err) {
      this.#connecting = false;
      this.#scheduleReconnect(err);
      return;
    }
    this.#ws = ws;
    ws.onmessage = (event) => this.#onMessage(ws, event.data);
    ws.onclose = (event) => this.#lost(ws, `closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`);
    ws.onerror = () => {
      // A close event follows; it carries what there is to know.
    };
  }

  #onMessage(ws, data) {
    if (ws !== this.#ws) return;
    this.#lastFrameAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch {
      return;
    }
    switch (frame.type) {
      case "hello":
        this.#onHello(frame);
        return;
      case "heartbeat":
        return;
      case "pong": {
        const p = this.#pings.get(frame.data?.ping);
        if (p) {
          this.#pings.delete(frame.data.ping);
          p.resolve();
        }
        return;
      }
      case "error":
        this.#onEvent({ type: "error", frame });
        return;
      default: {
        const call = this.#calls.get(frame.id);
        if (call) call._frame(frame);
      }
    }
  }

  #onHello(hello) {
    this.#hello = hello;
    this.#connecting = false;
    this.#attempt = 0;
    this.#state = "open";
    this.#startWatchdog(hello);
    this.#onEvent({ type: "open", hello });
    const waiting = [...this.#pending];
    this.#pending.clear();
    for (const w of waiting) {
      if (w._waiter) w.resolve(hello);
      else w._resumeOrOpen();
    }
  }

  /** The socket is gone (closed, failed, or silent too long: then `closeIt`). */
  #lost(ws, why, closeIt = false) {
    if (ws !== this.#ws) return;
    this.#ws = null;
    this.#hello = null;
    this.#connecting = false;
    this.#stopWatchdog();
    ws.onmessage = ws.onclose = ws.onerror = null;
    if (closeIt) {
      try {
        ws.close(4001, "heartbeat timeout");
      } catch {
        // already closing
      }
    }
    if (this.#closed) return;
    this.#state = "idle";
    this.#onEvent({ type: "close", reason: why });
    const err = new PortwayError("unavailable", `connection lost: ${why}`);
    for (const p of this.#pings.values()) p.reject(err);
    this.#pings.clear();
    const calls = [...this.#calls.values()];
    this.#calls.clear();
    for (const call of calls) {
      if (call._canResume() && this.#reconnect) this.#pending.add(call);
      else call._fail(err);
    }
    if (this.#pending.size > 0) this.#scheduleReconnect(err);
  }

  #scheduleReconnect(err) {
    const r = this.#reconnect;
    if (!r || this.#attempt >= r.maxAttempts) {
      const failure = err instanceof PortwayError ? err : new PortwayError("unavailable", String(err?.message ?? err));
      const waiting = [...this.#pending];
      this.#pending.clear();
      for (const w of waiting) (w._waiter ? w.reject : (e) => w._fail(e))(failure);
      return;
    }
    const base = Math.min(r.maxDelayMs, r.initialDelayMs * r.factor ** this.#attempt);
    const delay = base * (1 - r.jitter * Math.random());
    this.#attempt++;
    this.#state = "reconnecting";
    this.#onEvent({ type: "reconnecting", attempt: this.#attempt, delayMs: delay });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#pending.size > 0 && !this.#closed) this.#connect();
    }, delay);
  }

  #startWatchdog(hello) {
    this.#stopWatchdog();
    const timeout = this.#heartbeatTimeoutMs ?? 2.5 * hello.heartbeatMs;
    const ws = this.#ws;
    this.#lastFrameAt = Date.now();
    this.#watchdog = setInterval(
      () => {
        if (Date.now() - this.#lastFrameAt > timeout) this.#lost(ws, "no heartbeat from the server", true);
      },
      Math.max(10, Math.min(timeout / 4, hello.heartbeatMs)),
    );
    // Never keep a Node process alive just to watch the socket.
    this.#watchdog.unref?.();
  }

  #stopWatchdog() {
    clearInterval(this.#watchdog);
    this.#watchdog = null;
  }
}

/**
 * @typedef {object} CallOptions
 * @property {Record<string, string | string[]>} [metadata] per-call metadata (`-bin` keys: base64 values)
 * @property {number} [timeoutMs] the deadline, enforced by the server (and by the client, shortly after)
 * @property {AbortSignal} [signal] aborting cancels the call
 * @property {number} [credit] response messages in flight (default: the client's `credit`)
 * @property {(ctx: {lastMessage: unknown, attempt: number}) => unknown} [resume] streams only: see PortwayClient
 */

/**
 * One call. `headers` and `trailers` are promises of metadata; `response` is the single
 * response of unary and client-streaming calls; streams are async-iterable.
 */
export class Call {
  /** The id on the current socket (changes when a call resumes on a new socket). */
  id = undefined;
  #client;
  #method;
  #kind;
  #options;
  #request;
  #window;
  // response side
  #queue = [];
  #pullers = [];
  #consumed = 0;
  #granted = 0;
  #received = 0;
  #lastMessage = undefined;
  #gotHeaders = false;
  // request side
  #sendCredit = 0;
  #outbox = [];
  #endRequested = false;
  #endSent = false;
  // lifecycle
  #done = false;
  #error = null;
  #attempt = 0;
  #deadline = null;
  #timer = null;
  #onAbort = null;
  #resolveHeaders;
  #resolveTrailers;
  #rejectTrailers;
  #resolveResponse;
  #rejectResponse;
  #responseMessage = undefined;

  constructor(client, method, kind, options, request) {
    this.#client = client;
    this.#method = method;
    this.#kind = kind;
    this.#options = options;
    this.#request = request;
    this.#window = Math.max(1, options.credit ?? client._defaultCredit());
    /** Response headers (initial metadata); `{}` if the call ended without any. */
    this.headers = new Promise((resolve) => (this.#resolveHeaders = resolve));
    /** Trailing metadata on success; rejects with the PortwayError otherwise. */
    this.trailers = new Promise((resolve, reject) => {
      this.#resolveTrailers = resolve;
      this.#rejectTrailers = reject;
    });
    /** Unary and client-streaming calls: the response message. */
    this.response = new Promise((resolve, reject) => {
      this.#resolveResponse = resolve;
      this.#rejectResponse = reject;
    });
    // Whoever does not await these must not see unhandled rejections.
    this.trailers.catch(() => {});
    this.response.catch(() => {});
    if (options.timeoutMs !== undefined) {
      this.#deadline = Date.now() + options.timeoutMs;
      // The server enforces the deadline and reports it; this timer only covers a server
      // that cannot answer in time.
      this.#timer = setTimeout(
        () => this.#finish(new PortwayError("deadline_exceeded", "deadline exceeded (client side)"), true),
        options.timeoutMs + 250,
      );
    }
    if (options.signal) {
      if (options.signal.aborted) {
        queueMicrotask(() => this.cancel(options.signal.reason));
      } else {
        this.#onAbort = () => this.cancel(options.signal.reason);
        options.signal.addEventListener("abort", this.#onAbort, { once: true });
      }
    }
    client._enqueue(this);
  }

  /** Messages received and not yet consumed (never more than the credit granted). */
  get buffered() {
    return this.#queue.length;
  }

  /** Response messages the server may still send on this call before the client grants more. */
  get credit() {
    return this.#granted - this.#received;
  }

  /** Request messages this client may still send before the server grants more. */
  get sendCredit() {
    return this.#sendCredit;
  }

  /** `"unary"`, `"server"`, `"client"` or `"bidi"`. */
  get kind() {
    return this.#kind;
  }

  /** Whether the call has ended (with its status, a cancel or a lost connection). */
  get done() {
    return this.#done;
  }

  /**
   * Sends one request message (client and bidi streams). Resolves once the server's credit
   * allowed it onto the socket: awaiting each send is backpressure.
   */
  send(message) {
    if (this.#kind === "unary" || this.#kind === "server") {
      return Promise.reject(new TypeError(`${this.#kind} calls take their request when they start`));
    }
    if (this.#done) return Promise.reject(this.#error ?? new PortwayError("failed_precondition", "call ended"));
    if (this.#endRequested) return Promise.reject(new PortwayError("failed_precondition", "send after end()"));
    return new Promise((resolve, reject) => {
      this.#outbox.push({ message, resolve, reject });
      this.#pump();
    });
  }

  /** Half-closes: no more messages (after those already passed to send). */
  end() {
    this.#endRequested = true;
    this.#pump();
  }

  /** Cancels the call; the server drops its handler. */
  cancel(reason) {
    if (this.#done) return;
    if (this.id !== undefined) this.#client._send({ type: "cancel", id: this.id });
    const message = reason instanceof Error ? reason.message : (reason ?? "cancelled by the client");
    this.#finish(new PortwayError("canceled", String(message)), false);
  }

  [Symbol.asyncIterator]() {
    return {
      next: () => this.#pull(),
      return: () => {
        // Leaving a for-await loop early cancels the call.
        this.cancel("the consumer stopped");
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  // ---- driven by the client -------------------------------------------------------------

  _canResume() {
    return !this.#done && typeof this.#options.resume === "function" && (this.#kind === "server" || this.#kind === "bidi");
  }

  /** Opens the call on a fresh socket: the first time, or resumed after a reconnect. */
  _resumeOrOpen() {
    if (this.#done) return;
    if (this.#attempt > 0) {
      let next;
      try {
        next = this.#options.resume({ lastMessage: this.#lastMessage, attempt: this.#attempt });
      } catch (err) {
        this.#finish(new PortwayError("unavailable", `resume failed: ${err?.message ?? err}`, { cause: err }), false);
        return;
      }
      if (next === null || next === undefined) {
        this.#finish(new PortwayError("unavailable", "connection lost; the stream was not resumed"), false);
        return;
      }
      if (this.#kind === "server") {
        this.#request = next;
      } else {
        // Bidi: the messages to open with go before any still waiting in the outbox.
        const first = Array.isArray(next) ? next : [next];
        this.#outbox.unshift(...first.map((message) => ({ message, resolve() {}, reject() {} })));
      }
    }
    this.#client._openNow(this);
  }

  _opened(id, hello) {
    this.id = id;
    this.#attempt++;
    this.#sendCredit = hello.initialCredit;
    this.#endSent = false;
    this.#consumed = 0;
    this.#received = 0;
    this.#granted = Math.max(0, this.#window - this.#queue.length);
    const frame = { type: "open", id, method: this.#method, credit: this.#granted };
    if (this.#options.metadata) frame.metadata = this.#options.metadata;
    if (this.#deadline !== null) frame.timeoutMs = Math.max(0, this.#deadline - Date.now());
    if (this.#kind === "unary" || this.#kind === "server") {
      frame.message = this.#request ?? {};
      frame.end = true;
      this.#sendCredit--;
      this.#endSent = true;
    }
    this.#client._send(frame);
    this.#pump();
  }

  _frame(frame) {
    if (this.#done) return;
    switch (frame.type) {
      case "headers":
        if (!this.#gotHeaders) {
          this.#gotHeaders = true;
          this.#resolveHeaders(frame.metadata ?? {});
        }
        return;
      case "message":
        this.#received++;
        this.#lastMessage = frame.message;
        if (this.#kind === "unary" || this.#kind === "client") {
          // One response message: the credit of the open frame covers it.
          this.#responseMessage = frame.message;
        } else if (this.#pullers.length > 0) {
          this.#consumed++;
          this.#pullers.shift().resolve({ done: false, value: frame.message });
          this.#grant();
        } else {
          this.#queue.push(frame.message);
        }
        return;
      case "credit":
        this.#sendCredit += frame.credit;
        this.#pump();
        return;
      case "status": {
        const trailers = frame.trailers ?? {};
        if (frame.code === "ok") {
          this.#finish(null, false, trailers);
        } else {
          const err = new PortwayError(frame.code, frame.message ?? "", { details: frame.details, metadata: trailers });
          this.#finish(err, false, trailers);
        }
        return;
      }
      default:
    }
  }

  _fail(err) {
    this.#finish(err, false);
  }

  // ---- internals ------------------------------------------------------------------------

  #pull() {
    if (this.#queue.length > 0) {
      const value = this.#queue.shift();
      this.#consumed++;
      this.#grant();
      return Promise.resolve({ done: false, value });
    }
    if (this.#done) {
      return this.#error ? Promise.reject(this.#error) : Promise.resolve({ done: true, value: undefined });
    }
    return new Promise((resolve, reject) => this.#pullers.push({ resolve, reject }));
  }

  /** Gives consumed messages back to the server as credit, half a window at a time. */
  #grant() {
    if (this.#done || this.id === undefined) return;
    if (this.#consumed >= Math.max(1, Math.floor(this.#window / 2))) {
      if (this.#client._send({ type: "credit", id: this.id, credit: this.#consumed })) {
        this.#granted += this.#consumed;
        this.#consumed = 0;
      }
    }
  }

  #pump() {
    if (this.#done || this.id === undefined || this.#endSent) return;
    while (this.#outbox.length > 0 && this.#sendCredit > 0) {
      const { message, resolve } = this.#outbox.shift();
      const last = this.#endRequested && this.#outbox.length === 0;
      const frame = { type: "message", id: this.id, message };
      if (last) frame.end = true;
      if (!this.#client._send(frame)) {
        this.#outbox.unshift({ message, resolve, reject() {} });
        return;
      }
      this.#sendCredit--;
      if (last) this.#endSent = true;
      resolve();
    }
    if (this.#endRequested && this.#outbox.length === 0 && !this.#endSent) {
      if (this.#client._send({ type: "half_close", id: this.id })) this.#endSent = true;
    }
  }

  #finish(err, sendCancel, trailers = {}) {
    if (this.#done) return;
    if (sendCancel && this.id !== undefined) this.#client._send({ type: "cancel", id: this.id });
    this.#done = true;
    this.#error = err;
    clearTimeout(this.#timer);
    if (this.#onAbort) this.#options.signal.removeEventListener("abort", this.#onAbort);
    this.#client._forget(this);
    if (!this.#gotHeaders) this.#resolveHeaders({});
    for (const { reject } of this.#outbox) reject(err ?? new PortwayError("failed_precondition", "call ended"));
    this.#outbox = [];
    if (err) {
      this.#rejectTrailers(err);
      this.#rejectResponse(err);
      // Messages already received are still delivered; the error comes after them.
      for (const p of this.#pullers.splice(0)) p.reject(err);
    } else {
      this.#resolveTrailers(trailers);
      if (this.#kind === "unary" || this.#kind === "client") {
        if (this.#responseMessage === undefined) {
          this.#rejectResponse(new PortwayError("internal", "the server sent no response message"));
        } else {
          this.#resolveResponse(this.#responseMessage);
        }
      } else {
        this.#resolveResponse(undefined);
      }
      for (const p of this.#pullers.splice(0)) p.resolve({ done: true, value: undefined });
    }
  }
}
