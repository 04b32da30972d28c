// The official gRPC-Web runtime (npm grpc-web), text and binary mode, in Node with the xhr2
// XMLHttpRequest shim; messages are (de)serialised with protobuf-es schemas, since
// protoc-gen-grpc-web is not installable from a registry.

import XMLHttpRequest from "xhr2";
import { NotApplicable, SPECIAL, check, codeName, main, startPortway } from "./harness.mjs";
import { SimpleRequest, SimpleResponse, StreamingOutputCallRequest, StreamingOutputCallResponse, codec, message } from "./schema.mjs";

globalThis.XMLHttpRequest = XMLHttpRequest;
const grpcWeb = (await import("grpc-web")).default;

const TS = "/grpc.testing.TestService";
const Empty = message("grpc.testing.Empty");

function descriptor(method, type, req, res) {
  const [enc, dec] = [codec(req), codec(res)];
  return new grpcWeb.MethodDescriptor(`${TS}/${method}`, type, Object, Object, enc.encode, dec.decode);
}
const UNARY = descriptor("UnaryCall", grpcWeb.MethodType.UNARY, SimpleRequest, SimpleResponse);
const STREAM = descriptor("StreamingOutputCall", grpcWeb.MethodType.SERVER_STREAMING, StreamingOutputCallRequest, StreamingOutputCallResponse);
const UNIMPLEMENTED = descriptor("UnimplementedCall", grpcWeb.MethodType.UNARY, Empty, Empty);

/** A unary call: resolves { res, initial, trailing } or rejects with the RpcError. */
function unary(client, base, md, req, metadata = {}) {
  return new Promise((resolve, reject) => {
    let initial;
    let response;
    let status;
    const done = () => response !== undefined && status !== undefined && resolve({ res: response, initial, trailing: status.metadata });
    const call = client.rpcCall(`${base}${md.getName()}`, req, metadata, md, (err, res) => {
      if (err) reject(err);
      else {
        response = res;
        done();
      }
    });
    call.on("metadata", (m) => (initial = m));
    call.on("status", (st) => {
      status = st;
      done();
    });
  });
}

/** A server stream: resolves { msgs, status } once it ends, rejects with the RpcError. */
function stream(client, base, req, metadata = {}) {
  return new Promise((resolve, reject) => {
    const msgs = [];
    let status;
    const call = client.serverStreaming(`${base}${STREAM.getName()}`, req, metadata, STREAM);
    call.on("data", (m) => msgs.push(m));
    call.on("status", (st) => (status = st));
    call.on("error", reject);
    call.on("end", () => resolve({ msgs, status }));
  });
}

async function expectCode(code, promise, msg) {
  try {
    await promise;
  } catch (e) {
    check(e.code === code, `expected ${codeName(code)}, got ${codeName(e.code)}: ${JSON.stringify(e.message)}`);
    if (msg !== undefined) check(e.message === msg, `expected message ${JSON.stringify(msg)}, got ${JSON.stringify(e.message)}`);
    return;
  }
  throw new Error(`expected ${codeName(code)}, the call succeeded`);
}

function cases(client, base) {
  const zeros = (n) => ({ body: new Uint8Array(n) });
  return {
    large_unary: async () => {
      const { res } = await unary(client, base, UNARY, { responseSize: 314159, payload: zeros(271828) });
      check(res.payload.body.length === 314159, `payload of ${res.payload.body.length} bytes`);
    },
    server_streaming: async () => {
      const sizes = [31415, 9, 2653, 58979];
      const { msgs, status } = await stream(client, base, { responseParameters: sizes.map((size) => ({ size })) });
      const got = msgs.map((m) => m.payload.body.length);
      check(JSON.stringify(got) === JSON.stringify(sizes), `response sizes ${got}`);
      check(status?.code === 0, `status ${JSON.stringify(status)}`);
    },
    server_stream_incremental: () => {
      throw new NotApplicable(
        "xhr2 0.2.1 fills responseText/response only when the response ends (_parseResponse runs on 'end'), so the runtime sees every message at once; the browser suite checks messages as they arrive",
      );
    },
    custom_metadata: async () => {
      const metadata = { "x-grpc-test-echo-initial": "test_initial_metadata_value", "x-grpc-test-echo-trailing-bin": "q6ur" };
      const { initial, trailing } = await unary(client, base, UNARY, { responseSize: 10 }, metadata);
      check(initial?.["x-grpc-test-echo-initial"] === "test_initial_metadata_value", `initial ${JSON.stringify(initial)}`);
      check(trailing?.["x-grpc-test-echo-trailing-bin"] === "q6ur", `trailing ${JSON.stringify(trailing)}`);
    },
    status_code_and_message: () =>
      expectCode(5, unary(client, base, UNARY, { responseStatus: { code: 5, message: "test status message" } }), "test status message"),
    special_status_message: () => expectCode(2, unary(client, base, UNARY, { responseStatus: { code: 2, message: SPECIAL } }), SPECIAL),
    stream_error_after_messages: async () => {
      const req = { responseParameters: [{ size: 3 }], responseStatus: { code: 9, message: "after one" } };
      await expectCode(9, stream(client, base, req), "after one");
    },
    unimplemented_method: () => expectCode(12, unary(client, base, UNIMPLEMENTED, {})),
    deadline: async () => {
      // grpc-web turns a `deadline` metadata entry (ms since the epoch) into grpc-timeout.
      const metadata = { deadline: String(Date.now() + 100) };
      await expectCode(4, stream(client, base, { responseParameters: [{ size: 1, intervalUs: 2_000_000 }] }, metadata));
    },
  };
}

await main("grpc-web", async (results) => {
  const server = await startPortway([]);
  try {
    const base = `http://${server.addr}`;
    for (const format of ["text", "binary"]) {
      const client = new grpcWeb.GrpcWebClientBase({ format });
      for (const [name, fn] of Object.entries(cases(client, base))) await results.run(`grpc-web/${format}/${name}`, fn);
    }
  } finally {
    await server.stop();
  }
});
