// @grpc/grpc-js against portway: gRPC's interop test cases (doc/interop-test-descriptions.md
// in the gRPC repository), each against `--interop` with and without `--max-call-timeout-ms`,
// and the status matrix. Messages come from the protos through @grpc/proto-loader.

import path from "node:path";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import { SPECIAL, check, codeName, main, matrix, matrixMessage, root, startPortway } from "./harness.mjs";

const definition = protoLoader.loadSync("grpc/testing/test.proto", {
  includeDirs: [path.join(root, "proto")],
  defaults: true,
});
const pkg = grpc.loadPackageDefinition(definition).grpc.testing;
const TIMEOUT_MS = 30000;
// A local subchannel pool: closing a client closes its connection (the global pool keeps it
// for reuse, and the gateway then waits for it at shutdown).
const LOCAL = { "grpc.use_local_subchannel_pool": 1 };
const GZIP = { ...LOCAL, "grpc.default_compression_algorithm": grpc.compressionAlgorithms.gzip };
const NO_FLAG = "grpc-js does not expose the compressed-message flag; the flag is checked by raw-h2";

const zeros = (n) => ({ body: Buffer.alloc(n) });
const deadline = (ms = TIMEOUT_MS) => ({ deadline: Date.now() + ms });

function unary(client, method, req, { metadata = new grpc.Metadata(), options = deadline() } = {}) {
  return new Promise((resolve, reject) => {
    let initial;
    const call = client[method](req, metadata, options, (err, res) => {
      if (err) reject(err);
      else call.once("status", (st) => resolve({ res, initial, trailing: st.metadata }));
    });
    call.on("metadata", (md) => (initial = md));
  });
}

/** Reads a whole response stream; resolves with the messages, the metadata and the status. */
function drain(call) {
  return new Promise((resolve, reject) => {
    const msgs = [];
    let initial;
    call.on("metadata", (md) => (initial = md));
    call.on("data", (m) => msgs.push(m));
    call.on("error", reject);
    call.on("status", (st) => {
      if (st.code === grpc.status.OK) resolve({ msgs, initial, trailing: st.metadata });
    });
  });
}

function clientStream(client, reqs, { options = deadline(), flags = [] } = {}) {
  return new Promise((resolve, reject) => {
    const call = client.StreamingInputCall(options, (err, res) => (err ? reject(err) : resolve(res)));
    reqs.forEach((r, i) => call.write(r, flags[i]));
    call.end();
  });
}

async function expectError(code, promise, message) {
  try {
    await promise;
  } catch (e) {
    check(e.code === code, `expected ${codeName(code)}, got ${codeName(e.code)}: ${JSON.stringify(e.details)}`);
    if (message !== undefined) check(e.details === message, `expected message ${JSON.stringify(message)}, got ${JSON.stringify(e.details)}`);
    return;
  }
  throw new Error(`expected ${codeName(code)}, the call succeeded`);
}

/** Waits for the next `data` event of a duplex call. */
const nextMessage = (call) =>
  new Promise((resolve, reject) => {
    const onData = (m) => {
      call.off("error", onError);
      resolve(m);
    };
    const onError = (e) => {
      call.off("data", onData);
      reject(e);
    };
    call.once("data", onData);
    call.once("error", onError);
  });

const ended = (call) => new Promise((resolve) => call.once("status", resolve));

function cases(addr) {
  const creds = grpc.credentials.createInsecure();
  const client = new pkg.TestService(addr, creds, LOCAL);
  const gzipClient = new pkg.TestService(addr, creds, GZIP);
  const unimplemented = new pkg.UnimplementedService(addr, creds, LOCAL);
  const large = { responseSize: 314159, payload: zeros(271828) };
  const status = (message) => ({ responseStatus: { code: 2, message } });

  const statusCase = (message) => async () => {
    await expectError(grpc.status.UNKNOWN, unary(client, "UnaryCall", status(message)), message);
    const call = client.FullDuplexCall(new grpc.Metadata(), deadline());
    call.write(status(message));
    call.end();
    await expectError(grpc.status.UNKNOWN, drain(call), message);
  };

  return {
    clients: [client, gzipClient, unimplemented],
    cases: {
      empty_unary: async () => {
        const { res } = await unary(client, "EmptyCall", {});
        check(Object.keys(res).length === 0, `response ${JSON.stringify(res)}`);
      },
      large_unary: async () => {
        const { res } = await unary(client, "UnaryCall", large);
        check(res.payload.body.equals(Buffer.alloc(314159)), `payload of ${res.payload.body.length} bytes`);
      },
      client_compressed_unary: async () => {
        await expectError(grpc.status.INVALID_ARGUMENT, unary(client, "UnaryCall", { ...large, expectCompressed: { value: true } }));
        const a = await unary(gzipClient, "UnaryCall", { ...large, expectCompressed: { value: true } });
        const b = await unary(client, "UnaryCall", { ...large, expectCompressed: { value: false } });
        check(a.res.payload.body.length === 314159 && b.res.payload.body.length === 314159, "payload sizes");
      },
      server_compressed_unary: async () => {
        for (const value of [true, false]) {
          const { res } = await unary(client, "UnaryCall", { ...large, responseCompressed: { value } });
          check(res.payload.body.length === 314159, `payload of ${res.payload.body.length} bytes`);
        }
        return NO_FLAG;
      },
      client_streaming: async () => {
        const res = await clientStream(client, [27182, 8, 1828, 45904].map((n) => ({ payload: zeros(n) })));
        check(res.aggregatedPayloadSize === 74922, `aggregated ${res.aggregatedPayloadSize}`);
      },
      client_compressed_streaming: async () => {
        const probe = { expectCompressed: { value: true }, payload: zeros(27182) };
        await expectError(grpc.status.INVALID_ARGUMENT, clientStream(client, [probe]));
        // grpc-js compresses per message: the second is written with WriteFlags.NoCompress (2).
        const second = { expectCompressed: { value: false }, payload: zeros(45904) };
        const res = await clientStream(gzipClient, [probe, second], { flags: [undefined, 2] });
        check(res.aggregatedPayloadSize === 73086, `aggregated ${res.aggregatedPayloadSize}`);
      },
      server_streaming: async () => {
        const sizes = [31415, 9, 2653, 58979];
        const call = client.StreamingOutputCall({ responseParameters: sizes.map((size) => ({ size })) }, new grpc.Metadata(), deadline());
        const { msgs } = await drain(call);
        const got = msgs.map((m) => m.payload.body.length);
        check(JSON.stringify(got) === JSON.stringify(sizes), `response sizes ${got}`);
      },
      server_compressed_streaming: async () => {
        const responseParameters = [
          { size: 31415, compressed: { value: true } },
          { size: 92653, compressed: { value: false } },
        ];
        const { msgs } = await drain(client.StreamingOutputCall({ responseParameters }, new grpc.Metadata(), deadline()));
        const got = msgs.map((m) => m.payload.body.length);
        check(JSON.stringify(got) === "[31415,92653]", `response sizes ${got}`);
        return NO_FLAG;
      },
      ping_pong: async () => {
        const pairs = [[31415, 27182], [9, 8], [2653, 1828], [58979, 45904]];
        const call = client.FullDuplexCall(new grpc.Metadata(), deadline());
        const done = ended(call);
        for (const [size, body] of pairs) {
          const next = nextMessage(call);
          call.write({ responseParameters: [{ size }], payload: zeros(body) });
          const m = await next;
          check(m.payload.body.length === size, `response of ${m.payload.body.length} bytes, wanted ${size}`);
        }
        call.end();
        const st = await done;
        check(st.code === grpc.status.OK, `status ${codeName(st.code)}: ${st.details}`);
      },
      empty_stream: async () => {
        const call = client.FullDuplexCall(new grpc.Metadata(), deadline());
        call.end();
        const { msgs } = await drain(call);
        check(msgs.length === 0, `${msgs.length} responses`);
      },
      custom_metadata: async () => {
        const md = new grpc.Metadata();
        md.set("x-grpc-test-echo-initial", "test_initial_metadata_value");
        md.set("x-grpc-test-echo-trailing-bin", Buffer.from([0xab, 0xab, 0xab]));
        const verify = ({ initial, trailing }) => {
          check(initial?.get("x-grpc-test-echo-initial")[0] === "test_initial_metadata_value", `initial ${JSON.stringify(initial?.getMap())}`);
          const t = trailing?.get("x-grpc-test-echo-trailing-bin")[0];
          check(Buffer.isBuffer(t) && t.equals(Buffer.from([0xab, 0xab, 0xab])), `trailing ${JSON.stringify(trailing?.getMap())}`);
        };
        verify(await unary(client, "UnaryCall", large, { metadata: md }));
        const call = client.FullDuplexCall(md, deadline());
        call.write({ responseParameters: [{ size: 314159 }], payload: zeros(271828) });
        call.end();
        const got = await drain(call);
        check(got.msgs.length === 1 && got.msgs[0].payload.body.length === 314159, "stream response");
        verify(got);
      },
      status_code_and_message: statusCase("test status message"),
      special_status_message: statusCase(SPECIAL),
      unimplemented_method: () => expectError(grpc.status.UNIMPLEMENTED, unary(client, "UnimplementedCall", {})),
      unimplemented_service: () => expectError(grpc.status.UNIMPLEMENTED, unary(unimplemented, "UnimplementedCall", {})),
      cancel_after_begin: async () => {
        // grpc-js 1.14 opens the HTTP/2 stream and, cancelled this early, never resets it: the
        // gateway rightly keeps the stream until shutdown (the harness's stop() then kills it).
        const call = client.StreamingInputCall(deadline(), () => {});
        const st = ended(call);
        call.cancel();
        const { code } = await st;
        check(code === grpc.status.CANCELLED, `status ${codeName(code)}`);
      },
      cancel_after_first_response: async () => {
        const call = client.FullDuplexCall(new grpc.Metadata(), deadline());
        call.on("error", () => {});
        const st = ended(call);
        const first = nextMessage(call);
        call.write({ responseParameters: [{ size: 31415 }], payload: zeros(27182) });
        check((await first).payload.body.length === 31415, "first response size");
        call.cancel();
        const { code } = await st;
        check(code === grpc.status.CANCELLED, `status ${codeName(code)}`);
      },
      timeout_on_sleeping_server: async () => {
        const call = client.FullDuplexCall(new grpc.Metadata(), deadline(1));
        call.write({ payload: zeros(27182) });
        await expectError(grpc.status.DEADLINE_EXCEEDED, drain(call));
        call.end();
      },
    },
  };
}

function matrixCase(client, code, kind, withDeadline) {
  const message = matrixMessage(code);
  const responseStatus = { code, message };
  const options = withDeadline ? deadline() : {};
  return () => {
    if (kind === "unary") return expectError(code, unary(client, "UnaryCall", { responseStatus }, { options }), message);
    if (kind === "server_stream") {
      return expectError(code, drain(client.StreamingOutputCall({ responseStatus }, new grpc.Metadata(), options)), message);
    }
    const call = client.FullDuplexCall(new grpc.Metadata(), options);
    call.write({ responseStatus });
    call.end();
    return expectError(code, drain(call), message);
  };
}

async function suite(results, label, args) {
  const server = await startPortway(args);
  const { clients, cases: all } = cases(server.addr);
  try {
    for (const [name, fn] of Object.entries(all)) await results.run(`grpc-js/${name}${label}`, fn);
    if (!label) {
      for (const kind of matrix.kinds) {
        for (const dl of ["deadline", "none"]) {
          for (const code of matrix.codes) {
            await results.run(`grpc-js/status/${kind}/${dl}/${code}`, matrixCase(clients[0], code, kind, dl === "deadline"));
          }
        }
      }
    }
  } finally {
    clients.forEach((c) => c.close());
    await server.stop();
  }
}

await main("grpc-js", (results) =>
  Promise.all([suite(results, "", []), suite(results, "@capped", ["--max-call-timeout-ms", "60000"])]),
);
