// transport.js — a connect-es Transport over portway's WebSocket protocol (portway.v1.json).
//
//   import { createClient } from "@connectrpc/connect";
//   import { createPortwayTransport } from "portway-client/transport";
//   const client = createClient(MyService, createPortwayTransport({ url: "wss://host/ws" }));
//
// Every RPC kind (unary, server, client and bidi streaming), typed, many calls on one socket,
// with the errors (ConnectError: code, message, details, metadata), headers, trailers,
// deadlines, cancellation and interceptors of connect-es's own transports. Messages travel as
// the protobuf canonical JSON of the method's types (protobuf-es `toJson` / `fromJson`).
// See README.md.

import { fromJson, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { runStreamingCall, runUnaryCall } from "@connectrpc/connect/protocol";
import { codeFromString } from "@connectrpc/connect/protocol-connect";

import { PortwayClient, PortwayError } from "./portway.js";

const KINDS = {
  unary: "unary",
  server_streaming: "server",
  client_streaming: "client",
  bidi_streaming: "bidi",
};

/**
 * A connect-es `Transport` whose calls share one portway WebSocket.
 * @param {import("./transport.js").PortwayTransportOptions} options
 * @returns {import("@connectrpc/connect").Transport}
 */
export function createPortwayTransport(options) {
  const client = options.client ?? new PortwayClient(options.url, options);
  const writeOptions = options.jsonOptions;
  const readOptions = { ignoreUnknownFields: true, ...options.jsonOptions };
  const deadline = (timeoutMs) =>
    timeoutMs === undefined ? options.defaultTimeoutMs : timeoutMs <= 0 ? undefined : timeoutMs;
  const start = (method, req, first) =>
    client.call(`/${method.parent.typeName}/${method.name}`, KINDS[method.methodKind], first, {
      metadata: toMetadata(req.header),
      timeoutMs: req.timeoutMs,
      signal: req.signal,
      credit: options.credit,
    });

  return {
    async unary(method, signal, timeoutMs, header, message, contextValues) {
      timeoutMs = deadline(timeoutMs);
      return await runUnaryCall({
        interceptors: options.interceptors,
        signal,
        timeoutMs,
        req: request(method, false, header, timeoutMs, contextValues, message),
        next: async (req) => {
          const call = start(method, req, toJson(method.input, req.message, writeOptions));
          try {
            const response = await call.response;
            return {
              stream: false,
              service: method.parent,
              method,
              header: toHeaders(await call.headers),
              message: fromJson(method.output, response, readOptions),
              trailer: toHeaders(await call.trailers),
            };
          } catch (err) {
            throw toConnectError(err, await call.headers);
          }
        },
      });
    },

    async stream(method, signal, timeoutMs, header, input, contextValues) {
      timeoutMs = deadline(timeoutMs);
      return await runStreamingCall({
        interceptors: options.interceptors,
        signal,
        timeoutMs,
        req: request(method, true, header, timeoutMs, contextValues, input),
        next: async (req) => {
          const kind = KINDS[method.methodKind];
          let call;
          if (kind === "server") {
            const first = await req.message[Symbol.asyncIterator]().next();
            if (first.done) throw new ConnectError("missing request message", Code.Internal);
            call = start(method, req, toJson(method.input, first.value, writeOptions));
          } else {
            call = start(method, req, undefined);
            pump(call, req.message, method, writeOptions);
          }
          const headers = await call.headers;
          const trailer = new Headers();
          async function* messages() {
            try {
              if (kind === "client") {
                yield fromJson(method.output, await call.response, readOptions);
              } else {
                for await (const json of call) yield fromJson(method.output, json, readOptions);
              }
              for (const [k, v] of toHeaders(await call.trailers)) trailer.append(k, v);
            } catch (err) {
              throw toConnectError(err, headers);
            }
          }
          return { ...req, header: toHeaders(headers), trailer, message: messages() };
        },
      });
    },
  };
}

function request(method, stream, header, timeoutMs, contextValues, message) {
  return {
    stream,
    service: method.parent,
    method,
    requestMethod: "POST",
    url: `/${method.parent.typeName}/${method.name}`,
    header: new Headers(header),
    contextValues: contextValues ?? createContextValues(),
    timeoutMs,
    message,
  };
}

/** Sends the request stream, each message once the server's credit allows it. */
function pump(call, input, method, writeOptions) {
  (async () => {
    for await (const message of input) {
      if (call.done) return;
      await call.send(toJson(method.input, message, writeOptions));
    }
    call.end();
  })().catch((err) => {
    // A send fails once the call has ended; the call's own error is what the caller sees.
    if (!call.done) call.cancel(err);
  });
}

/** Headers (connect-es) to portway metadata: one key to its values. */
function toMetadata(headers) {
  const out = {};
  for (const [key, value] of headers) out[key] = value;
  return out;
}

/** Portway metadata to Headers. */
function toHeaders(metadata) {
  const headers = new Headers();
  for (const [key, values] of Object.entries(metadata ?? {})) {
    for (const v of Array.isArray(values) ? values : [values]) headers.append(key, v);
  }
  return headers;
}

/** A PortwayError as the ConnectError connect-es's own transports would raise. */
function toConnectError(err, headers) {
  if (!(err instanceof PortwayError)) return ConnectError.from(err);
  const metadata = toHeaders(headers);
  for (const [k, v] of toHeaders(err.metadata)) metadata.append(k, v);
  const error = new ConnectError(err.message, codeFromString(err.code) ?? Code.Unknown, metadata, undefined, err);
  error.details = err.details.map((d) => ({ type: d.type, value: base64Decode(d.value) }));
  return error;
}

function base64Decode(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}
