// connect-node's transports, each on a connection of its own (shared by connect.mjs and
// connect_auth.mjs).

import http from "node:http";
import {
  Http2SessionManager,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";

/** Every transport: [name, factory(options), HTTP version, options]. */
export const TRANSPORTS = [
  ["grpc/h2", (o) => createGrpcTransport(o), "2", {}],
  ["grpc-web/binary/h1", (o) => createGrpcWebTransport(o), "1.1", { useBinaryFormat: true }],
  ["grpc-web/binary/h2", (o) => createGrpcWebTransport(o), "2", { useBinaryFormat: true }],
  ["grpc-web/json/h1", (o) => createGrpcWebTransport(o), "1.1", { useBinaryFormat: false }],
  ["grpc-web/json/h2", (o) => createGrpcWebTransport(o), "2", { useBinaryFormat: false }],
  ["connect/json/h1", (o) => createConnectTransport(o), "1.1", { useBinaryFormat: false }],
  ["connect/json/h2", (o) => createConnectTransport(o), "2", { useBinaryFormat: false }],
  ["connect/proto/h1", (o) => createConnectTransport(o), "1.1", { useBinaryFormat: true }],
  ["connect/proto/h2", (o) => createConnectTransport(o), "2", { useBinaryFormat: true }],
  ["connect-get/json/h1", (o) => createConnectTransport(o), "1.1", { useBinaryFormat: false, useHttpGet: true }],
  ["connect-get/proto/h2", (o) => createConnectTransport(o), "2", { useBinaryFormat: true, useHttpGet: true }],
];

/**
 * A fresh transport `name` to `addr` on its own connection (an HTTP/1.1 agent or an HTTP/2
 * session of its own), so that one case's broken connection cannot fail the next case.
 */
export function transport(addr, name, extra = {}) {
  const [, make, httpVersion, options] = TRANSPORTS.find((t) => t[0] === name);
  const baseUrl = `http://${addr}`;
  const opts = { baseUrl, httpVersion, ...options, ...extra };
  let close;
  if (httpVersion === "2") {
    const sessionManager = new Http2SessionManager(baseUrl);
    opts.sessionManager = sessionManager;
    close = () => sessionManager.abort();
  } else {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    opts.nodeOptions = { agent };
    close = () => agent.destroy();
  }
  return { transport: make(opts), close };
}

