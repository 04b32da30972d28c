// What no client library shows: the compressed-message flag (the interop spec's
// server_compressed_unary / server_compressed_streaming assert it; grpcio, grpc-js and
// connect-node hide it), and whether Connect responses are compressed when the client
// accepts it. Node's own http/http2 clients, messages from protobuf-es schemas.

import http from "node:http";
import http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { check, main, startPortway } from "./harness.mjs";
import { SimpleRequest, SimpleResponse, StreamingOutputCallRequest, StreamingOutputCallResponse, codec } from "./schema.mjs";

const TS = "/grpc.testing.TestService";

function frames(buf) {
  const out = [];
  for (let i = 0; i + 5 <= buf.length; ) {
    const len = buf.readUInt32BE(i + 1);
    out.push({ flags: buf[i], payload: buf.subarray(i + 5, i + 5 + len) });
    i += 5 + len;
  }
  return out;
}

const frame = (bytes) => {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([head, Buffer.from(bytes)]);
};

/** One HTTP/2 gRPC call: resolves { headers, body, trailers }. */
function grpcCall(session, path, body, headers) {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    const chunks = [];
    let head;
    let trailers = {};
    req.on("response", (h) => (head = h));
    req.on("trailers", (t) => (trailers = t));
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve({ headers: head, body: Buffer.concat(chunks), trailers }));
    req.on("error", reject);
    req.end(body);
  });
}

/** One HTTP/1.1 request: resolves { status, headers, body }. */
function post(addr, path, body, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(`http://${addr}${path}`, { method: "POST", headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

function decodeFrame(f, schema) {
  return codec(schema).decode(f.flags & 1 ? gunzipSync(f.payload) : f.payload);
}

await main("raw-wire", async (results) => {
  const server = await startPortway([]);
  const session = http2.connect(`http://${server.addr}`);
  const accept = { "grpc-accept-encoding": "gzip" };
  try {
    await results.run("raw-h2/server_compressed_unary", async () => {
      for (const value of [true, false]) {
        const req = codec(SimpleRequest).encode({ responseCompressed: { value }, responseSize: 314159, payload: { body: new Uint8Array(271828) } });
        const { headers, body, trailers } = await grpcCall(session, `${TS}/UnaryCall`, frame(req), accept);
        check(String(trailers["grpc-status"] ?? headers["grpc-status"]) === "0", `status ${trailers["grpc-status"]}`);
        const [f, ...rest] = frames(body);
        check(f && rest.length === 0, `${frames(body).length} messages`);
        check((f.flags & 1) === (value ? 1 : 0), `response_compressed ${value}: flag ${f.flags}`);
        if (value) check(headers["grpc-encoding"] === "gzip", `grpc-encoding ${headers["grpc-encoding"]}`);
        check(decodeFrame(f, SimpleResponse).payload.body.length === 314159, "payload size");
      }
    });
    await results.run("raw-h2/server_compressed_streaming", async () => {
      const req = codec(StreamingOutputCallRequest).encode({
        responseParameters: [
          { size: 31415, compressed: { value: true } },
          { size: 92653, compressed: { value: false } },
        ],
      });
      const { body } = await grpcCall(session, `${TS}/StreamingOutputCall`, frame(req), accept);
      const got = frames(body);
      check(JSON.stringify(got.map((f) => f.flags & 1)) === "[1,0]", `flags ${got.map((f) => f.flags)}`);
      const sizes = got.map((f) => decodeFrame(f, StreamingOutputCallResponse).payload.body.length);
      check(JSON.stringify(sizes) === "[31415,92653]", `sizes ${sizes}`);
    });
    await results.run("raw-http/connect_unary_response_gzip", async () => {
      const res = await post(server.addr, `${TS}/UnaryCall`, JSON.stringify({ responseSize: 20000 }), {
        "content-type": "application/json",
        "accept-encoding": "gzip",
      });
      check(res.status === 200, `HTTP ${res.status}`);
      check(res.headers["content-encoding"] === "gzip", `content-encoding ${res.headers["content-encoding"]} (${res.body.length} bytes)`);
    });
    await results.run("raw-http/connect_stream_response_gzip", async () => {
      const msg = Buffer.from(JSON.stringify({ responseParameters: [{ size: 20000 }] }));
      const res = await post(server.addr, `${TS}/StreamingOutputCall`, frame(msg), {
        "content-type": "application/connect+json",
        "connect-accept-encoding": "gzip",
      });
      check(res.status === 200, `HTTP ${res.status}`);
      check(res.headers["connect-content-encoding"] === "gzip", `connect-content-encoding ${res.headers["connect-content-encoding"]}`);
      check((frames(res.body)[0]?.flags & 1) === 1, "the message is flagged compressed");
    });
  } finally {
    session.close();
    await server.stop();
  }
});
