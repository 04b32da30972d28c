// Type declarations of portway.js: a client for portway's WebSocket protocol, portway.v1.json.

/** The subprotocol this client speaks. */
export declare const SUBPROTOCOL: "portway.v1.json";

/** Status code names (the Connect protocol's), indexed by their gRPC number. */
export declare const CODES: readonly Code[];

export type Code =
  | "ok"
  | "canceled"
  | "unknown"
  | "invalid_argument"
  | "deadline_exceeded"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "resource_exhausted"
  | "failed_precondition"
  | "aborted"
  | "out_of_range"
  | "unimplemented"
  | "internal"
  | "unavailable"
  | "data_loss"
  | "unauthenticated";

/** Metadata: lower-case keys to values (`-bin` keys: base64). The server always sends arrays. */
export type Metadata = Record<string, string | string[]>;

/** An error detail: the message's full name and the base64 of its binary encoding. */
export interface ErrorDetail {
  type: string;
  value: string;
}

/** A call that ended with a status other than `ok`. */
export declare class PortwayError extends Error {
  constructor(code: Code | string, message: string, extra?: { details?: ErrorDetail[]; metadata?: Record<string, string[]>; cause?: unknown });
  readonly name: "PortwayError";
  /** The code's name, e.g. "not_found". */
  readonly code: Code | string;
  /** The gRPC code number (2, unknown, for a name this client does not know). */
  readonly grpcCode: number;
  readonly details: ErrorDetail[];
  /** Trailing metadata. */
  readonly metadata: Record<string, string[]>;
}

/** What the server announced in its `hello` frame. */
export interface Limits {
  protocol: string;
  initialCredit: number;
  maxMessageBytes: number;
  maxCalls: number;
  heartbeatMs: number;
  idleTimeoutMs: number;
}

export interface ReconnectOptions {
  /** First delay (default 250 ms). */
  initialDelayMs?: number;
  /** Largest delay (default 30 s). */
  maxDelayMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Up to this fraction of each delay is taken off at random (default 0.5). */
  jitter?: number;
  /** Attempts before calls waiting for a socket fail with `unavailable` (default: forever). */
  maxAttempts?: number;
}

export type ConnectionEvent =
  | { type: "open"; hello: Limits }
  | { type: "close"; reason: string }
  | { type: "reconnecting"; attempt: number; delayMs: number }
  | { type: "error"; frame: { type: "error"; id?: number; reason: string; message: string } };

export interface ClientOptions {
  /** The WebSocket constructor (default: the global one; on Node 20 pass the `ws` package's). */
  WebSocket?: unknown;
  /** A bearer token, sent as the `portway.bearer.<token>` subprotocol. */
  token?: string;
  /** Exponential backoff with jitter; `false` disables reconnects. */
  reconnect?: false | ReconnectOptions;
  /** Response messages each call may have in flight (default 16). */
  credit?: number;
  /** Silence after which the server is taken for gone (default 2.5 × its heartbeat interval). */
  heartbeatTimeoutMs?: number;
  onEvent?: (event: ConnectionEvent) => void;
}

export interface CallOptions<Res = unknown, Req = unknown> {
  metadata?: Metadata;
  /** The deadline, enforced by the server (and by the client 250 ms later). */
  timeoutMs?: number;
  /** Aborting cancels the call on the server. */
  signal?: AbortSignal;
  /** Response messages in flight (default: the client's `credit`). */
  credit?: number;
  /**
   * Streams only: called after a reconnect; returns the request to re-open a server stream
   * with, the messages to re-open a bidi stream with, or null to end it with `unavailable`.
   */
  resume?: (ctx: { lastMessage: Res | undefined; attempt: number }) => Req | Req[] | null | undefined;
}

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";
export type CallKind = "unary" | "server" | "client" | "bidi";

/** One WebSocket to a portway gateway, reconnected when it drops, carrying any number of calls. */
export declare class PortwayClient {
  constructor(url: string, options?: ClientOptions);
  /** Connects if needed; resolves with the server's limits. */
  ready(): Promise<Limits>;
  readonly limits: Limits | null;
  readonly state: ConnectionState;
  /** Round-trip time in milliseconds. */
  ping(): Promise<number>;
  /** Closes the socket for good; open calls fail with `canceled`. */
  close(): void;
  unary<Res = any, Req = any>(method: string, request: Req, options?: CallOptions<Res, Req>): Promise<Res>;
  serverStream<Res = any, Req = any>(method: string, request: Req, options?: CallOptions<Res, Req>): Call<Req, Res>;
  clientStream<Res = any, Req = any>(method: string, options?: CallOptions<Res, Req>): Call<Req, Res>;
  bidiStream<Res = any, Req = any>(method: string, options?: CallOptions<Res, Req>): Call<Req, Res>;
  call<Res = any, Req = any>(method: string, kind: CallKind, request: Req | undefined, options?: CallOptions<Res, Req>): Call<Req, Res>;
}

/** One call: promises of its metadata and response, and an async iterator of its messages. */
export declare class Call<Req = any, Res = any> implements AsyncIterable<Res> {
  /** The id on the current socket (changes when a call resumes on a new socket). */
  readonly id: number | undefined;
  readonly headers: Promise<Record<string, string[]>>;
  /** Rejects with the PortwayError of a failed call. */
  readonly trailers: Promise<Record<string, string[]>>;
  /** Unary and client-streaming calls: the response message. */
  readonly response: Promise<Res>;
  /** Messages received and not yet consumed. */
  readonly buffered: number;
  /** Response messages the server may still send before the client grants more. */
  readonly credit: number;
  /** Request messages this client may still send before the server grants more. */
  readonly sendCredit: number;
  readonly kind: CallKind;
  readonly done: boolean;
  /** Resolves once the server's credit let the message onto the socket. */
  send(message: Req): Promise<void>;
  /** Half-closes, after the messages already passed to send. */
  end(): void;
  cancel(reason?: unknown): void;
  [Symbol.asyncIterator](): AsyncIterator<Res>;
}
