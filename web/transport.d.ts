// Type declarations of transport.js: a connect-es Transport over portway's WebSocket protocol.

import type { JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import type { Interceptor, Transport } from "@connectrpc/connect";
import type { ClientOptions, PortwayClient } from "./portway.js";

export interface PortwayTransportOptions extends ClientOptions {
  /** The gateway's WebSocket URL, e.g. "wss://example.com/ws" (unless `client` is given). */
  url?: string;
  /** An existing client whose socket the transport's calls share. */
  client?: PortwayClient;
  /** Interceptors, as for connect-es's own transports. */
  interceptors?: Interceptor[];
  /** Options of the canonical JSON the messages travel as (e.g. a registry for Any). */
  jsonOptions?: Partial<JsonReadOptions & JsonWriteOptions>;
  /** The deadline of calls that set none. */
  defaultTimeoutMs?: number;
  /** Response messages each call may have in flight (the flow-control window). */
  credit?: number;
}

/** A connect-es Transport whose calls (every RPC kind) share one portway WebSocket. */
export declare function createPortwayTransport(options: PortwayTransportOptions): Transport;
