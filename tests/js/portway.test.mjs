// web/portway.js against a real gateway process: every RPC kind, errors, metadata,
// backpressure both ways, cancellation, deadlines, reconnects and resumable streams.
// Run: npm ci --prefix tests/js && cargo build --bin portway && node --test tests/js/

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { PortwayClient, PortwayError } from "../../web/portway.js";
import { defect } from "./defects.mjs";
import { eventually, startGateway, startProxy } from "./gateway.mjs";

const TS = "/grpc.testing.TestService";
const bodyLen = (m) => Buffer.from(m?.payload?.body ?? "", "base64").length;

let gw;
const clients = [];
function client(options = {}, url = gw.url) {
  const c = new PortwayClient(url, { WebSocket, ...options });
  clients.push(c);
  return c;
}

before(async () => {
  // Heartbeats every 500 ms: the client takes the server for gone after 1.25 s of silence.
  gw = await startGateway(["--ws-initial-credit", "4", "--ws-heartbeat-ms", "500"]);
});

after(() => {
  for (const c of clients) c.close();
  gw?.stop();
});

describe("every RPC kind", () => {
  test("unary", async () => {
    const c = client();
    assert.deepEqual(await c.unary(`${TS}/UnaryCall`, { responseSize: 3 }), { payload: { body: "AAAA" } });
    assert.deepEqual(await c.unary(`${TS}/EmptyCall`, {}), {});
    assert.equal(c.limits.protocol, "portway.v1.json");
    assert.equal(c.limits.initialCredit, 4);
  });

  test("server streaming", async () => {
    const c = client();
    const sizes = [];
    const call = c.serverStream(`${TS}/StreamingOutputCall`, {
      responseParameters: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((size) => ({ size })),
    });
    for await (const m of call) sizes.push(bodyLen(m));
    assert.deepEqual(sizes, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(await call.trailers, {});
  });

  test("client streaming waits for credit", async () => {
    const c = client();
    const call = c.clientStream(`${TS}/StreamingInputCall`);
    // 25 messages through a credit window of 4: each send resolves once the server allows it.
    for (let i = 0; i < 25; i++) await call.send({ payload: { body: Buffer.alloc(10).toString("base64") } });
    call.end();
    assert.deepEqual(await call.response, { aggregatedPayloadSize: 250 });
  });

  test("bidi streaming", async () => {
    const c = client();
    const call = c.bidiStream(`${TS}/FullDuplexCall`);
    const it = call[Symbol.asyncIterator]();
    for (let n = 1; n <= 8; n++) {
      await call.send({ responseParameters: [{ size: n }] });
      const { value } = await it.next();
      assert.equal(bodyLen(value), n);
    }
    call.end();
    assert.deepEqual(await it.next(), { done: true, value: undefined });
  });

  // headers and status frames need no credit (docs/websocket-protocol.md, flow control).
  test("a unary call with credit 1 completes", defect("a unary call with credit 1 completes"), async () => {
    const c = client();
    assert.deepEqual(await c.unary(`${TS}/UnaryCall`, { responseSize: 2 }, { credit: 1, timeoutMs: 2_000 }), {
      payload: { body: "AAA=" },
    });
  });

  test("many calls at once on one socket", async () => {
    const c = client();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => c.unary(`${TS}/UnaryCall`, { responseSize: i })),
    );
    assert.deepEqual(results.map(bodyLen), Array.from({ length: 50 }, (_, i) => i));
  });
});

describe("status and metadata", () => {
  test("errors are PortwayErrors with the gRPC code, message and trailers", async () => {
    const c = client();
    for (const [grpc, name] of [
      [3, "invalid_argument"],
      [5, "not_found"],
      [7, "permission_denied"],
      [14, "unavailable"],
      [16, "unauthenticated"],
    ]) {
      await assert.rejects(
        c.unary(`${TS}/UnaryCall`, { responseStatus: { code: grpc, message: `no ${grpc}` } }, {
          metadata: { "x-grpc-test-echo-initial": "v" },
        }),
        (err) => {
          assert.ok(err instanceof PortwayError);
          assert.equal(err.code, name);
          assert.equal(err.grpcCode, grpc);
          assert.equal(err.message, `no ${grpc}`);
          assert.deepEqual(err.metadata["x-grpc-test-echo-initial"], ["v"]);
          return true;
        },
      );
    }
    await assert.rejects(c.unary("/no.Such/Method", {}), { code: "unimplemented" });
  });

  test("headers and trailers", async () => {
    const c = client();
    const call = c.serverStream(`${TS}/StreamingOutputCall`, { responseParameters: [{ size: 1 }] }, {
      metadata: { "x-grpc-test-echo-initial": "hello", "x-grpc-test-echo-trailing-bin": "q6ur" },
    });
    for await (const _ of call);
    assert.deepEqual(await call.headers, { "x-grpc-test-echo-initial": ["hello"] });
    const trailers = await call.trailers;
    assert.equal(Buffer.from(trailers["x-grpc-test-echo-trailing-bin"][0], "base64").toString("hex"), "ababab");
  });

  test("a deadline ends the call with deadline_exceeded", async () => {
    const c = client();
    const call = c.serverStream(
      `${TS}/StreamingOutputCall`,
      { responseParameters: [{ size: 1, intervalUs: 5_000_000 }] },
      { timeoutMs: 100 },
    );
    await assert.rejects(async () => {
      for await (const _ of call);
    }, { code: "deadline_exceeded" });
  });
});

describe("flow control and cancellation", () => {
  test("a consumer that stops pulling holds the server back", async () => {
    const c = client();
    const call = c.serverStream(
      `${TS}/StreamingOutputCall`,
      { responseParameters: Array.from({ length: 30 }, () => ({ size: 1 })) },
      { credit: 2 },
    );
    const it = call[Symbol.asyncIterator]();
    await it.next();
    await new Promise((r) => setTimeout(r, 300));
    // Never more buffered than granted.
    assert.ok(call.buffered <= 2, `buffered ${call.buffered}`);
    let n = 1;
    while (!(await it.next()).done) n++;
    assert.equal(n, 30);
  });

  test("aborting cancels the call on the server", async () => {
    const c = client();
    const controller = new AbortController();
    const call = c.bidiStream(`${TS}/FullDuplexCall`, { signal: controller.signal });
    await call.send({ responseParameters: [{ size: 1, intervalUs: 30_000_000 }] });
    await call.headers;
    await eventually("the call to open", async () => (await gw.metrics()).portway_websocket_calls_open >= 1);
    controller.abort(new Error("user went away"));
    await assert.rejects(async () => {
      for await (const _ of call);
    }, { code: "canceled", message: "user went away" });
    await eventually("the server to drop the call", async () => (await gw.metrics()).portway_websocket_calls_open === 0);
  });

  test("breaking out of for-await cancels", async () => {
    const c = client();
    const call = c.serverStream(`${TS}/StreamingOutputCall`, {
      responseParameters: Array.from({ length: 1000 }, () => ({ size: 1, intervalUs: 1000 })),
    });
    let n = 0;
    for await (const _ of call) if (++n === 3) break;
    await assert.rejects(call.trailers, { code: "canceled" });
  });

  test("ping", async () => {
    const c = client();
    const rtt = await c.ping();
    assert.equal(typeof rtt, "number");
  });
});

describe("reconnects", () => {
  test("a resumable stream survives a dropped connection", async () => {
    const proxy = await startProxy(gw.addr);
    const events = [];
    const c = client({ reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, onEvent: (e) => events.push(e.type) }, proxy.url);
    const total = 12;
    let received = 0;
    const resumes = [];
    const request = (n) => ({ responseParameters: Array.from({ length: n }, () => ({ size: 1, intervalUs: 20_000 })) });
    const call = c.serverStream(`${TS}/StreamingOutputCall`, request(total), {
      // Re-open with what is still missing, as a watch would re-open from its last revision.
      resume: ({ attempt }) => {
        resumes.push(attempt);
        return request(total - received);
      },
    });
    for await (const _ of call) {
      received++;
      if (received === 4) proxy.dropAll();
    }
    assert.equal(received, total);
    assert.deepEqual(resumes, [1]);
    assert.ok(events.includes("reconnecting"), events.join());
    // A call without a resume hook fails with unavailable when the connection drops.
    const plain = c.serverStream(`${TS}/StreamingOutputCall`, request(100));
    const it = plain[Symbol.asyncIterator]();
    await it.next();
    proxy.dropAll();
    await assert.rejects(async () => {
      while (!(await it.next()).done);
    }, { code: "unavailable" });
    // The client reconnects for the next call.
    assert.deepEqual(await c.unary(`${TS}/UnaryCall`, { responseSize: 1 }), { payload: { body: "AA==" } });
    proxy.close();
  });

  test("a server that goes silent is detected by its missing heartbeats", async () => {
    const proxy = await startProxy(gw.addr);
    const events = [];
    const c = client({ reconnect: { initialDelayMs: 20 }, onEvent: (e) => events.push(e) }, proxy.url);
    let received = 0;
    const request = (n) => ({ responseParameters: Array.from({ length: n }, () => ({ size: 1, intervalUs: 20_000 })) });
    const call = c.serverStream(`${TS}/StreamingOutputCall`, request(8), { resume: () => request(8 - received) });
    for await (const _ of call) {
      received++;
      // The path dies without a close: only the heartbeat watchdog can notice.
      if (received === 2) proxy.freezeAll();
    }
    assert.equal(received, 8);
    assert.ok(events.some((e) => e.type === "close" && /heartbeat/.test(e.reason)), JSON.stringify(events));
    proxy.close();
  });
});
