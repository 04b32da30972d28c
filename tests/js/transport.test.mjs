// The connect-es Transport over the WebSocket protocol (web/transport.js) against a real
// gateway: createClient(Service, createPortwayTransport({url})) with every RPC kind of the
// interop and state services, errors (codes, messages, typed details, metadata), headers and
// trailers, deadlines, cancellation and interceptors. Schemas come from the gateway's own
// /portway.binpb (no generated code).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createPortwayTransport } from "portway-client/transport";
import WebSocket from "ws";

import { startGateway } from "./gateway.mjs";
import { loadRegistry } from "./schema.mjs";

let gw;
let registry;
let transport;
let TestService;
let State;

before(async () => {
  gw = await startGateway(["--ws-initial-credit", "4"]);
  registry = await loadRegistry(gw.addr);
  transport = createPortwayTransport({ url: gw.url, WebSocket });
  TestService = createClient(registry.getService("grpc.testing.TestService"), transport);
  State = createClient(registry.getService("portway.state.v1.StateService"), transport);
});

after(() => gw?.stop());

const len = (m) => m.payload?.body?.length ?? 0;

describe("every RPC kind, typed", () => {
  test("unary", async () => {
    const reply = await TestService.unaryCall({ responseSize: 3 });
    assert.equal(reply.$typeName, "grpc.testing.SimpleResponse");
    assert.deepEqual([...reply.payload.body], [0, 0, 0]);
  });

  test("server streaming", async () => {
    const sizes = [];
    for await (const m of TestService.streamingOutputCall({ responseParameters: [1, 2, 3, 4, 5, 6].map((size) => ({ size })) })) {
      sizes.push(len(m));
    }
    assert.deepEqual(sizes, [1, 2, 3, 4, 5, 6]);
  });

  test("client streaming (more messages than the credit window)", async () => {
    async function* input() {
      for (let i = 0; i < 20; i++) yield { payload: { body: new Uint8Array(i) } };
    }
    const reply = await TestService.streamingInputCall(input());
    assert.equal(reply.aggregatedPayloadSize, 190);
  });

  test("bidi streaming, request and response interleaved", async () => {
    const requests = [];
    let wake;
    async function* input() {
      for (let n = 1; n <= 5; n++) {
        yield { responseParameters: [{ size: n }] };
        // Send the next request only after its answer came back: a true ping-pong.
        await new Promise((r) => (wake = r));
        requests.push(n);
      }
    }
    const sizes = [];
    for await (const m of TestService.fullDuplexCall(input())) {
      sizes.push(len(m));
      wake();
    }
    assert.deepEqual(sizes, [1, 2, 3, 4, 5]);
    assert.deepEqual(requests, [1, 2, 3, 4, 5]);
  });

  test("the state store: put, get, list, watch, PutMany and Sync", async () => {
    const key = `transport/${Date.now()}`;
    const put = await State.put({ key, value: { kind: { case: "stringValue", value: "a" } } });
    assert.ok(put.revision > 0n);
    const got = await State.get({ key });
    assert.equal(got.entry.value.kind.value, "a");
    assert.equal(got.entry.modRevision, put.revision);

    // connect-es streams stop through their signal (their iterators have no `return`).
    const stopWatch = new AbortController();
    const watch = State.watch({ key, startRevision: put.revision }, { signal: stopWatch.signal });
    const it = watch[Symbol.asyncIterator]();
    assert.equal((await it.next()).value.created, true);
    assert.equal((await it.next()).value.events[0].entry.modRevision, put.revision);

    async function* many() {
      yield { key: `${key}/x`, value: { kind: { case: "numberValue", value: 1 } } };
      yield { key: `${key}/y`, value: { kind: { case: "boolValue", value: true } } };
    }
    const batch = await State.putMany(many());
    assert.equal(batch.count, 2n);
    // The watch is for `key` alone: PutMany's keys are not its events. Write the key again.
    const again = await State.put({ key, value: { kind: { case: "stringValue", value: "b" } } });
    assert.equal((await it.next()).value.revision, again.revision);
    stopWatch.abort();
    await assert.rejects(it.next(), { code: Code.Canceled });

    const listed = [];
    for await (const page of State.list({ prefix: `${key}/` })) listed.push(...page.entries.map((e) => e.key));
    assert.deepEqual(listed, [`${key}/x`, `${key}/y`]);

    // Sync: open, a write, its ack, a duplicate resend acknowledged as such.
    const session = `s-${Date.now()}`;
    const write = { sequence: 1n, op: { case: "put", value: { key: `${key}/sync`, value: { kind: { case: "stringValue", value: "s" } } } } };
    let send;
    async function* sync() {
      yield { request: { case: "open", value: { sessionId: session } } };
      yield { request: { case: "write", value: write } };
      await new Promise((r) => (send = r));
      yield { request: { case: "write", value: write } };
    }
    const seen = [];
    const stopSync = new AbortController();
    for await (const m of State.sync(sync(), { signal: stopSync.signal })) {
      seen.push(m.response.case);
      if (m.response.case === "ack" && !m.response.value.duplicate) send();
      if (m.response.case === "ack" && m.response.value.duplicate) break;
    }
    stopSync.abort();
    assert.deepEqual(seen, ["opened", "ack", "ack"]);
  });

  test("many calls at once share one socket", async () => {
    const before = (await gw.metrics()).portway_websockets_open;
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => TestService.unaryCall({ responseSize: i })));
    assert.deepEqual(replies.map(len), Array.from({ length: 40 }, (_, i) => i));
    assert.equal((await gw.metrics()).portway_websockets_open, before);
  });
});

describe("errors, metadata, deadlines, cancellation", () => {
  test("a status is a ConnectError with its code, message and metadata", async () => {
    await assert.rejects(
      TestService.unaryCall(
        { responseStatus: { code: Code.NotFound, message: "no such thing" } },
        { headers: { "x-grpc-test-echo-initial": "v", "x-grpc-test-echo-trailing-bin": "q6ur" } },
      ),
      (err) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, Code.NotFound);
        assert.equal(err.rawMessage, "no such thing");
        assert.equal(err.metadata.get("x-grpc-test-echo-initial"), "v");
        assert.equal(err.metadata.get("x-grpc-test-echo-trailing-bin"), "q6ur");
        return true;
      },
    );
    await assert.rejects(
      (async () => {
        for await (const _ of TestService.streamingOutputCall({ responseStatus: { code: Code.PermissionDenied, message: "no" } }));
      })(),
      { code: Code.PermissionDenied },
    );
  });

  test("a compare-and-set conflict carries its typed ConflictDetail", async () => {
    const key = `cas/${Date.now()}`;
    const first = await State.put({ key, value: { kind: { case: "stringValue", value: "1" } } });
    const err = await State.put({ key, expectedRevision: first.revision + 100n }).then(
      () => assert.fail("the conflicting put succeeded"),
      (e) => e,
    );
    assert.equal(err.code, Code.FailedPrecondition);
    const [detail] = err.findDetails(registry.getMessage("portway.state.v1.ConflictDetail"));
    assert.equal(detail.key, key);
    assert.equal(detail.currentRevision, first.revision);
    assert.equal(detail.expectedRevision, first.revision + 100n);
  });

  test("response headers and trailers reach onHeader and onTrailer", async () => {
    let header;
    let trailer;
    await TestService.unaryCall(
      { responseSize: 1 },
      {
        headers: { "x-grpc-test-echo-initial": "hello", "x-grpc-test-echo-trailing-bin": "q6ur" },
        onHeader: (h) => (header = h),
        onTrailer: (t) => (trailer = t),
      },
    );
    assert.equal(header.get("x-grpc-test-echo-initial"), "hello");
    assert.equal(trailer.get("x-grpc-test-echo-trailing-bin"), "q6ur");
  });

  test("a deadline ends the call with DeadlineExceeded", async () => {
    await assert.rejects(
      (async () => {
        for await (const _ of TestService.streamingOutputCall(
          { responseParameters: [{ size: 1, intervalUs: 5_000_000 }] },
          { timeoutMs: 100 },
        ));
      })(),
      { code: Code.DeadlineExceeded },
    );
  });

  test("aborting cancels the call on the server", async () => {
    const controller = new AbortController();
    const stream = TestService.streamingOutputCall(
      { responseParameters: [{ size: 1 }, { size: 1, intervalUs: 30_000_000 }] },
      { signal: controller.signal },
    );
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    assert.ok((await gw.metrics()).portway_websocket_calls_open >= 1);
    controller.abort();
    await assert.rejects(it.next(), { code: Code.Canceled });
    const until = Date.now() + 5_000;
    while ((await gw.metrics()).portway_websocket_calls_open !== 0) {
      if (Date.now() > until) assert.fail("the server kept the cancelled call open");
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  test("interceptors see every call", async () => {
    const seen = [];
    const intercepted = createClient(
      registry.getService("grpc.testing.TestService"),
      createPortwayTransport({
        url: gw.url,
        WebSocket,
        interceptors: [
          (next) => async (req) => {
            seen.push(req.method.name);
            req.header.set("x-grpc-test-echo-initial", "from-interceptor");
            const res = await next(req);
            seen.push(res.header.get("x-grpc-test-echo-initial"));
            return res;
          },
        ],
      }),
    );
    await intercepted.emptyCall({});
    assert.deepEqual(seen, ["EmptyCall", "from-interceptor"]);
  });

  test("an unknown method is Unimplemented", async () => {
    const svc = registry.getService("grpc.testing.TestService");
    await assert.rejects(createClient(svc, transport).unimplementedCall({}), { code: Code.Unimplemented });
  });

  test("messages are built with protobuf-es", () => {
    // The request type the client encodes is the registry's, not a hand-written shape.
    const req = create(registry.getMessage("grpc.testing.SimpleRequest"), { responseSize: 2 });
    assert.equal(req.$typeName, "grpc.testing.SimpleRequest");
  });
});
