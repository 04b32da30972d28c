// A @grpc/grpc-js (Node) upstream for portway's proxy tests: gRPC's interop `TestService` (all
// four RPC kinds, the interop metadata echo, any status on request), `portway.upstream.Echo`
// (tests/upstream/proto/v1 or, with `--echo v2`, v2, which adds a method), server reflection
// (@grpc/reflection: v1 and v1alpha) and health checking (grpc-health-check). Schemas are
// loaded from the .proto files at start-up by @grpc/proto-loader.
//
//     node server.mjs [--port N | --unix PATH] [--echo v1|v2]
//
// Prints `listening PORT` (or `listening unix:PATH`) once it serves, `sent N` for every
// message a server stream sends, and `cancelled` when a server stream's client went away. A
// call with the metadata `x-upstream-deadline-ms` gets back, in that initial metadata, the
// time it had left (ms, or `none`). Stops on SIGTERM or when stdin closes.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../../..");
const { values: args } = parseArgs({
  options: { port: { type: "string", default: "0" }, unix: { type: "string" }, echo: { type: "string", default: "v1" } },
});

const ECHO_INITIAL = "x-grpc-test-echo-initial";
const ECHO_TRAILING = "x-grpc-test-echo-trailing-bin";
const WANT_DETAILS = "x-upstream-details";
// Asks for the call's remaining time (ms, or `none`) in this initial metadata key.
const REPORT_DEADLINE = "x-upstream-deadline-ms";

const definition = protoLoader.loadSync(
  ["grpc/testing/test.proto", "portway/upstream/echo.proto"],
  {
    includeDirs: [path.join(root, "proto"), path.join(root, "tests/upstream/proto", args.echo)],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  },
);
const loaded = grpc.loadPackageDefinition(definition);

/// Sends the interop echo: the initial value at once, the trailing one with the status.
function echo(call) {
  const initial = call.metadata.get(ECHO_INITIAL);
  const md = new grpc.Metadata();
  if (initial.length > 0) md.set(ECHO_INITIAL, initial[0]);
  if (call.metadata.get(REPORT_DEADLINE).length > 0) {
    const deadline = call.getDeadline();
    // A Date or a time in ms since the epoch; Infinity without a deadline.
    const left = (deadline instanceof Date ? deadline.getTime() : Number(deadline)) - Date.now();
    md.set(REPORT_DEADLINE, Number.isFinite(left) ? String(Math.floor(left)) : "none");
  }
  if (Object.keys(md.getMap()).length > 0) call.sendMetadata(md);
  const trailers = new grpc.Metadata();
  const trailing = call.metadata.get(ECHO_TRAILING);
  if (trailing.length > 0) trailers.set(ECHO_TRAILING, trailing[0]);
  return trailers;
}

/// The error for an EchoStatus, with the trailing echo and, if asked, details.
function failure(call, trailers, status) {
  if (call.metadata.get(WANT_DETAILS).length > 0) {
    const detail = Buffer.concat([
      field(1, Buffer.from("type.googleapis.com/grpc.testing.Empty")),
      field(2, Buffer.from([0xde, 0xad, 0xbe, 0xef])),
    ]);
    const rich = Buffer.concat([varintField(1, status.code), field(2, Buffer.from(status.message || "")), field(3, detail)]);
    trailers.set("grpc-status-details-bin", rich);
  }
  return { code: status.code, details: status.message, metadata: trailers };
}

// A google.rpc.Status is three fields; written by hand rather than through a second schema
// library (proto-loader does not expose message encoders).
const varint = (n) => {
  const out = [];
  for (; n > 0x7f; n >>>= 7) out.push((n & 0x7f) | 0x80);
  out.push(n);
  return Buffer.from(out);
};
const field = (number, bytes) => Buffer.concat([varint((number << 3) | 2), varint(bytes.length), bytes]);
const varintField = (number, n) => Buffer.concat([varint(number << 3), varint(n)]);

const payload = (size) => ({ type: "COMPRESSABLE", body: Buffer.alloc(size) });
const sleep = (us) => new Promise((resolve) => setTimeout(resolve, us / 1000));

const testService = {
  emptyCall(call, callback) {
    callback(null, {}, echo(call));
  },
  unaryCall(call, callback) {
    const trailers = echo(call);
    const s = call.request.responseStatus;
    if (s && s.code) return callback(failure(call, trailers, s));
    callback(null, { payload: payload(call.request.responseSize || 0) }, trailers);
  },
  cacheableUnaryCall(call, callback) {
    testService.unaryCall(call, callback);
  },
  async streamingOutputCall(call) {
    const trailers = echo(call);
    call.on("cancelled", () => console.log("cancelled"));
    let sent = 0;
    for (const p of call.request.responseParameters || []) {
      if (p.intervalUs) await sleep(p.intervalUs);
      if (call.cancelled) return;
      // Waits for the transport to take the message (backpressure).
      await new Promise((resolve) => {
        if (call.write({ payload: payload(p.size || 0) })) resolve();
        else call.once("drain", resolve);
      });
      sent += 1;
      console.log(`sent ${sent}`);
    }
    const s = call.request.responseStatus;
    if (s && s.code) return call.emit("error", failure(call, trailers, s));
    call.end(trailers);
  },
  streamingInputCall(call, callback) {
    const trailers = echo(call);
    let total = 0;
    call.on("data", (r) => (total += r.payload?.body?.length ?? 0));
    call.on("end", () => callback(null, { aggregatedPayloadSize: total }, trailers));
  },
  fullDuplexCall(call) {
    const trailers = echo(call);
    let chain = Promise.resolve();
    call.on("data", (r) => {
      chain = chain.then(async () => {
        if (r.responseStatus && r.responseStatus.code) {
          call.emit("error", failure(call, trailers, r.responseStatus));
          return;
        }
        for (const p of r.responseParameters || []) {
          if (p.intervalUs) await sleep(p.intervalUs);
          call.write({ payload: payload(p.size || 0) });
        }
      });
    });
    call.on("end", () => chain.then(() => call.end(trailers)));
  },
  halfDuplexCall(call) {
    const trailers = echo(call);
    const requests = [];
    call.on("data", (r) => requests.push(r));
    call.on("end", () => {
      for (const r of requests) {
        if (r.responseStatus && r.responseStatus.code) return call.emit("error", failure(call, trailers, r.responseStatus));
        for (const p of r.responseParameters || []) call.write({ payload: payload(p.size || 0) });
      }
      call.end(trailers);
    });
  },
};

const echoService = {
  say(call, callback) {
    callback(null, { text: call.request.text, length: [...(call.request.text || "")].length }, echo(call));
  },
  shout(call, callback) {
    callback(null, { text: (call.request.text || "").toUpperCase(), length: [...(call.request.text || "")].length }, echo(call));
  },
  reflect(call, callback) {
    callback(null, call.request, echo(call));
  },
};

// `Reflect` answers the request's bytes unchanged: its request and response are raw buffers.
const echoDefinition = { ...loaded.portway.upstream.Echo.service };
echoDefinition.Reflect = {
  ...echoDefinition.Reflect,
  requestDeserialize: (b) => b,
  responseSerialize: (b) => b,
};

const server = new grpc.Server();
server.addService(loaded.grpc.testing.TestService.service, testService);
server.addService(echoDefinition, echoService);
const health = new HealthImplementation({
  "": "SERVING",
  "grpc.testing.TestService": "SERVING",
  "portway.upstream.Echo": "SERVING",
});
health.addToServer(server);
new ReflectionService(definition).addToServer(server);

const where = args.unix ? `unix:${args.unix}` : `127.0.0.1:${args.port}`;
server.bindAsync(where, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(`cannot listen on ${where}: ${err.message}`);
    process.exit(1);
  }
  console.log(`listening ${args.unix ? where : port}`);
});

const stop = () => server.forceShutdown();
process.on("SIGTERM", () => {
  stop();
  process.exit(0);
});
process.stdin.on("end", () => {
  stop();
  process.exit(0);
});
process.stdin.resume();
