// connect-node (@connectrpc/connect-node v2, schemas from protobuf-es v2's registry) against
// portway: every transport it has (gRPC; gRPC-Web binary and JSON; Connect JSON and proto;
// Connect GET), over HTTP/1.1 and HTTP/2, each with the same calls; the message limit in
// both directions; and the status matrix over gRPC-Web and Connect.

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { compressionGzip } from "@connectrpc/connect-node";
import { NotApplicable, check, codeName, main, matrix, matrixMessage, startPortway } from "./harness.mjs";
import { Health, TestService } from "./schema.mjs";
import { TRANSPORTS, transport } from "./transports.mjs";

// Small, so that the limit cases stay fast.
export const LIMIT = 64 * 1024;
const TIMEOUT_MS = 30000;
const zeros = (n) => ({ body: new Uint8Array(n) });

export async function expectCode(code, promise, message) {
  try {
    await promise;
  } catch (e) {
    const err = ConnectError.from(e);
    check(err.code === code, `expected ${codeName(code)}, got ${codeName(err.code)}: ${JSON.stringify(err.rawMessage)}`);
    if (message !== undefined) {
      check(err.rawMessage === message, `expected message ${JSON.stringify(message)}, got ${JSON.stringify(err.rawMessage)}`);
    }
    return;
  }
  throw new Error(`expected ${codeName(code)}, the call succeeded`);
}

const collect = async (iterable) => {
  const out = [];
  for await (const m of iterable) out.push(m);
  return out;
};

async function* messages(list) {
  yield* list;
}

function transportCases(name, transport, gzipTransport) {
  const client = createClient(TestService, transport);
  const health = createClient(Health, transport);
  const get = name.startsWith("connect-get");
  const h1 = name.endsWith("/h1");
  const opts = { timeoutMs: TIMEOUT_MS };
  const noStreamingOnGet = () => {
    if (get) throw new NotApplicable("useHttpGet applies to unary NO_SIDE_EFFECTS methods only; streams use POST");
  };
  const tooBigForUrl = () => {
    if (get) {
      throw new NotApplicable(
        "a GET carries the request in the URL, where the URI (414) and header-list limits apply first; connect-node has no POST fallback for large GETs",
      );
    }
  };
  const bidiOnH1 = () => {
    if (h1) throw new NotApplicable("connect-node needs HTTP/2 for bidi streams (full duplex)");
  };
  return {
    unary: async () => {
      // On a GET transport only NO_SIDE_EFFECTS methods use GET: CacheableUnaryCall does.
      const method = get ? client.cacheableUnaryCall : client.unaryCall;
      const res = await method({ responseSize: 1000, payload: zeros(1000) }, opts);
      check(res.payload?.body.length === 1000, `payload of ${res.payload?.body.length} bytes`);
    },
    health_check: async () => {
      // grpc.health.v1.Health/Check is NO_SIDE_EFFECTS too: GET on a GET transport.
      const res = await health.check({}, opts);
      check(res.status === 1, `health status ${res.status}`);
    },
    server_stream: async () => {
      noStreamingOnGet();
      const sizes = [31415, 9, 2653];
      const got = (await collect(client.streamingOutputCall({ responseParameters: sizes.map((size) => ({ size })) }, opts))).map(
        (m) => m.payload.body.length,
      );
      check(JSON.stringify(got) === JSON.stringify(sizes), `response sizes ${got}`);
    },
    client_stream: async () => {
      noStreamingOnGet();
      const res = await client.streamingInputCall(messages([{ payload: zeros(27182) }, { payload: zeros(8) }]), opts);
      check(res.aggregatedPayloadSize === 27190, `aggregated ${res.aggregatedPayloadSize}`);
    },
    bidi: async () => {
      noStreamingOnGet();
      bidiOnH1();
      const got = [];
      const reqs = (async function* () {
        yield { responseParameters: [{ size: 31415 }], payload: zeros(27182) };
        yield { responseParameters: [{ size: 9 }], payload: zeros(8) };
      })();
      for await (const m of client.fullDuplexCall(reqs, opts)) got.push(m.payload.body.length);
      check(JSON.stringify(got) === "[31415,9]", `response sizes ${got}`);
    },
    error: async () => {
      const method = get ? client.cacheableUnaryCall : client.unaryCall;
      await expectCode(Code.NotFound, method({ responseStatus: { code: 5, message: "no such thing" } }, opts), "no such thing");
    },
    metadata: async () => {
      let initial;
      let trailing;
      const method = get ? client.cacheableUnaryCall : client.unaryCall;
      await method(
        { responseSize: 10 },
        {
          ...opts,
          headers: { "x-grpc-test-echo-initial": "test_initial_metadata_value", "x-grpc-test-echo-trailing-bin": "q6ur" },
          onHeader: (h) => (initial = h),
          onTrailer: (t) => (trailing = t),
        },
      );
      check(initial?.get("x-grpc-test-echo-initial") === "test_initial_metadata_value", "initial metadata echo");
      check(trailing?.get("x-grpc-test-echo-trailing-bin") === "q6ur", `trailing metadata echo: ${trailing?.get("x-grpc-test-echo-trailing-bin")}`);
    },
    deadline: async () => {
      noStreamingOnGet();
      const call = collect(client.streamingOutputCall({ responseParameters: [{ size: 1, intervalUs: 2_000_000 }] }, { timeoutMs: 50 }));
      await expectCode(Code.DeadlineExceeded, call);
    },
    gzip: async () => {
      const zipped = createClient(TestService, gzipTransport);
      const method = get ? zipped.cacheableUnaryCall : zipped.unaryCall;
      const res = await method({ responseSize: 20000, payload: zeros(20000) }, opts);
      check(res.payload?.body.length === 20000, "payload size");
    },
    // "Over" is one byte over, counted on the protobuf message (--max-message-bytes is the
    // decoded message size on every protocol): SimpleRequest{response_size: 1, payload: N}
    // is N + 10 bytes and SimpleResponse{payload: N} is N + 8 bytes for these N.
    limit_request_under: async () => {
      tooBigForUrl();
      const method = get ? client.cacheableUnaryCall : client.unaryCall;
      const res = await method({ responseSize: 1, payload: zeros(LIMIT - 1024) }, opts);
      check(res.payload?.body.length === 1, "response");
    },
    limit_request_over: async () => {
      tooBigForUrl();
      const method = get ? client.cacheableUnaryCall : client.unaryCall;
      await expectCode(Code.ResourceExhausted, method({ responseSize: 1, payload: zeros(LIMIT - 9) }, opts));
    },
    limit_response_under: async () => {
      const method = get ? client.cacheableUnaryCall : client.unaryCall;
      const res = await method({ responseSize: LIMIT - 1024 }, opts);
      check(res.payload?.body.length === LIMIT - 1024, "response size");
    },
    limit_response_over: async () => {
      const method = get ? client.cacheableUnaryCall : client.unaryCall;
      await expectCode(Code.ResourceExhausted, method({ responseSize: LIMIT - 7 }, opts));
    },
    huge_response_size: async () => {
      // The service refuses what it cannot send before allocating it (not 2 GiB, then an error).
      const method = get ? client.cacheableUnaryCall : client.unaryCall;
      await expectCode(Code.ResourceExhausted, method({ responseSize: 2147483647 }, opts));
    },
    keepalive_after_early_answer: async () => {
      // The gateway answers an oversized request before reading all of its body; the same
      // connection must then carry the next call (HTTP/1.1: drained or `connection: close`).
      tooBigForUrl();
      await expectCode(Code.ResourceExhausted, client.unaryCall({ responseSize: 1, payload: zeros(4 * LIMIT) }, opts));
      const res = await client.unaryCall({ responseSize: 3 }, opts);
      check(res.payload?.body.length === 3, "the next call's response");
    },
    limit_stream_response_over: async () => {
      noStreamingOnGet();
      const call = collect(client.streamingOutputCall({ responseParameters: [{ size: 10 }, { size: LIMIT - 7 }] }, opts));
      await expectCode(Code.ResourceExhausted, call);
    },
  };
}

function matrixCase(client, code, kind, withDeadline) {
  const message = matrixMessage(code);
  const responseStatus = { code, message };
  const opts = withDeadline ? { timeoutMs: TIMEOUT_MS } : {};
  return () => {
    if (kind === "unary") return expectCode(code, client.unaryCall({ responseStatus }, opts), message);
    if (kind === "server_stream") return expectCode(code, collect(client.streamingOutputCall({ responseStatus }, opts)), message);
    return expectCode(code, collect(client.fullDuplexCall(messages([{ responseStatus }]), opts)), message);
  };
}

async function transportSuite(results) {
  const server = await startPortway(["--max-message-bytes", String(LIMIT)]);
  try {
    await Promise.all(
      TRANSPORTS.map(async ([name]) => {
        const names = Object.keys(transportCases(name, null, null));
        for (const c of names) {
          const plain = transport(server.addr, name);
          const gzip = transport(server.addr, name, { sendCompression: compressionGzip, acceptCompression: [compressionGzip] });
          try {
            await results.run(`connect-node/${name}/${c}`, transportCases(name, plain.transport, gzip.transport)[c]);
          } finally {
            plain.close();
            gzip.close();
          }
        }
      }),
    );
  } finally {
    await server.stop();
  }
}

async function matrixSuite(results) {
  const server = await startPortway([]);
  try {
    for (const [label, name] of [["connect-node-grpc-web", "grpc-web/binary/h2"], ["connect-node-connect", "connect/json/h2"]]) {
      const { transport: t, close } = transport(server.addr, name);
      const client = createClient(TestService, t);
      try {
        for (const kind of matrix.kinds) {
          for (const dl of ["deadline", "none"]) {
            for (const code of matrix.codes) {
              await results.run(`${label}/status/${kind}/${dl}/${code}`, matrixCase(client, code, kind, dl === "deadline"));
            }
          }
        }
      } finally {
        close();
      }
    }
  } finally {
    await server.stop();
  }
}

await main("connect-node", (results) => Promise.all([transportSuite(results), matrixSuite(results)]));
