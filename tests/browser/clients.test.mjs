// The browser clients in headless Chromium against real gateways: every RPC kind over the
// WebSocket protocol (portway.js, and typed through its connect-es transport), unary and
// server streaming over gRPC-Web with the official grpc-web runtime (binary and text; messages
// serialized with protobuf-es) and over Connect with connect-web, from a page of another
// origin: allowed through CORS, and refused when its origin is not in --cors-origin.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { gateway, launch, newPage, secondOrigin } from "./harness.mjs";

let chrome;
let other;
before(async () => {
  chrome = await launch();
  other = await secondOrigin();
});
after(async () => {
  await chrome?.close();
  await other?.close();
});

/** A page of the second origin with every client loaded (window.clients). */
async function clientsPage() {
  const page = await newPage(chrome.browser);
  await page.goto(`${other.origin}/pages/clients.html`);
  await page.waitForFunction(() => window.clients !== undefined);
  return page;
}

/** Runs `body(gatewayOrigin)` in the page with the gateway's schema loaded as `window.registry`. */
async function inPage(page, gwOrigin, body) {
  return page.evaluate(
    async ([origin, source]) => {
      const { protobuf, wkt } = window.clients;
      if (!window.registry) {
        const bytes = new Uint8Array(await (await fetch(`${origin}/portway.binpb`).catch(() => fetch("/portway.binpb"))).arrayBuffer());
        window.registry = protobuf.createFileRegistry(protobuf.fromBinary(wkt.FileDescriptorSetSchema, bytes));
      }
      // eslint-disable-next-line no-new-func
      return await new Function("origin", "clients", "registry", `return (async () => { ${source} })();`)(
        origin,
        window.clients,
        window.registry,
      );
    },
    [gwOrigin, body],
  );
}

describe("from another origin, allowed through CORS", () => {
  let gw;
  let page;
  before(async () => {
    gw = await gateway({ args: ["--cors-origin", other.origin] });
    page = await clientsPage();
  });
  after(async () => {
    await page?.close();
    await gw?.stop();
  });

  test("every RPC kind over WebSocket with portway.js", async () => {
    const out = await inPage(
      page,
      gw.origin,
      `
      const { PortwayClient } = clients.portway;
      const c = new PortwayClient(origin.replace(/^http/, "ws") + "/ws");
      const TS = "/grpc.testing.TestService";
      const unary = await c.unary(TS + "/UnaryCall", { responseSize: 3 });
      const server = [];
      for await (const m of c.serverStream(TS + "/StreamingOutputCall", { responseParameters: [{ size: 1 }, { size: 2 }] })) server.push(m.payload.body);
      const up = c.clientStream(TS + "/StreamingInputCall");
      for (let i = 0; i < 20; i++) await up.send({ payload: { body: btoa("ab") } });
      up.end();
      const client = await up.response;
      const chat = c.bidiStream(TS + "/FullDuplexCall");
      const it = chat[Symbol.asyncIterator]();
      const bidi = [];
      for (let n = 1; n <= 3; n++) {
        await chat.send({ responseParameters: [{ size: n }] });
        bidi.push((await it.next()).value.payload.body);
      }
      chat.end();
      const end = await it.next();
      let error;
      try { await c.unary(TS + "/UnaryCall", { responseStatus: { code: 5, message: "nope" } }); } catch (e) { error = [e.code, e.message]; }
      c.close();
      return { unary, server, client, bidi, end: end.done, error };
    `,
    );
    assert.deepEqual(out, {
      unary: { payload: { body: "AAAA" } },
      server: ["AA==", "AAA="],
      client: { aggregatedPayloadSize: 40 },
      bidi: ["AA==", "AAA=", "AAAA"],
      end: true,
      error: ["not_found", "nope"],
    });
  });

  test("every RPC kind typed, through createPortwayTransport, on the state and interop services", async () => {
    const out = await inPage(
      page,
      gw.origin,
      `
      const { createClient, ConnectError } = clients.connect;
      const t = clients.transport.createPortwayTransport({ url: origin.replace(/^http/, "ws") + "/ws" });
      const state = createClient(registry.getService("portway.state.v1.StateService"), t);
      const ts = createClient(registry.getService("grpc.testing.TestService"), t);
      const v = (s) => ({ kind: { case: "stringValue", value: s } });
      const put = await state.put({ key: "browser/a", value: v("1") });
      const stop = new AbortController();
      const watch = state.watch({ key: "browser/", prefix: true, startRevision: put.revision }, { signal: stop.signal })[Symbol.asyncIterator]();
      const created = (await watch.next()).value.created;
      const event = (await watch.next()).value.events[0].entry.key;
      stop.abort();
      async function* puts() { yield { key: "browser/b", value: v("2") }; yield { key: "browser/c", value: v("3") }; }
      const many = await state.putMany(puts());
      const listed = [];
      for await (const p of state.list({ prefix: "browser/" })) listed.push(...p.entries.map((e) => e.key));
      async function* pings() { for (let n = 1; n <= 3; n++) yield { responseParameters: [{ size: n }] }; }
      const sizes = [];
      for await (const m of ts.fullDuplexCall(pings())) sizes.push(m.payload.body.length);
      let conflict;
      try { await state.put({ key: "browser/a", expectedRevision: 0n }); } catch (e) {
        const d = ConnectError.from(e).findDetails(registry.getMessage("portway.state.v1.ConflictDetail"))[0];
        conflict = [e.code, d.key, String(d.currentRevision)];
      }
      let deadline;
      try { for await (const _ of ts.streamingOutputCall({ responseParameters: [{ size: 1, intervalUs: 5000000 }] }, { timeoutMs: 100 })); } catch (e) { deadline = e.code; }
      return { created, event, count: String(many.count), listed, sizes, conflict, putRevision: String(put.revision), deadline };
    `,
    );
    assert.equal(out.created, true);
    assert.equal(out.event, "browser/a");
    assert.equal(out.count, "2");
    assert.deepEqual(out.listed, ["browser/a", "browser/b", "browser/c"]);
    assert.deepEqual(out.sizes, [1, 2, 3]);
    assert.deepEqual(out.conflict, [9, "browser/a", out.putRevision]);
    assert.equal(out.deadline, 4);
  });

  for (const format of ["binary", "text"]) {
    test(`the official grpc-web runtime, ${format} mode: unary and server streaming`, async () => {
      const out = await inPage(
        page,
        gw.origin,
        `
        const { GrpcWebClientBase, MethodDescriptor, MethodType } = clients.grpcWeb;
        const { create, toBinary, fromBinary } = clients.protobuf;
        const m = (n) => registry.getMessage("grpc.testing." + n);
        const desc = (name, type, req, res) => new MethodDescriptor("/grpc.testing.TestService/" + name, type, Object, Object,
          (msg) => toBinary(m(req), create(m(req), msg)), (bytes) => fromBinary(m(res), bytes));
        const client = new GrpcWebClientBase({ format: "${format}" });
        const unaryDesc = desc("UnaryCall", MethodType.UNARY, "SimpleRequest", "SimpleResponse");
        const unary = await new Promise((resolve, reject) =>
          client.rpcCall(origin + "/grpc.testing.TestService/UnaryCall", { responseSize: 5 }, { "x-grpc-test-echo-initial": "hi" }, unaryDesc,
            (err, res) => (err ? reject(err) : resolve(res.payload.body.length))));
        const failed = await new Promise((resolve) =>
          client.rpcCall(origin + "/grpc.testing.TestService/UnaryCall", { responseStatus: { code: 7, message: "denied" } }, {}, unaryDesc,
            (err) => resolve(err && [err.code, err.message])));
        const streamDesc = desc("StreamingOutputCall", MethodType.SERVER_STREAMING, "StreamingOutputCallRequest", "StreamingOutputCallResponse");
        const sizes = await new Promise((resolve, reject) => {
          const got = [];
          const s = client.serverStreaming(origin + "/grpc.testing.TestService/StreamingOutputCall",
            { responseParameters: [{ size: 1 }, { size: 2 }, { size: 3 }] }, {}, streamDesc);
          s.on("data", (r) => got.push(r.payload.body.length));
          s.on("error", reject);
          s.on("end", () => resolve(got));
        });
        return { unary, failed, sizes };
      `,
      );
      assert.deepEqual(out, { unary: 5, failed: [7, "denied"], sizes: [1, 2, 3] });
    });
  }

  test("connect-web: the Connect protocol (JSON and binary) and gRPC-Web, unary and server streaming", async () => {
    const out = await inPage(
      page,
      gw.origin,
      `
      const { createClient } = clients.connect;
      const { createConnectTransport, createGrpcWebTransport } = clients.connectWeb;
      const svc = registry.getService("grpc.testing.TestService");
      const results = {};
      for (const [name, t] of [
        ["connect-json", createConnectTransport({ baseUrl: origin })],
        ["connect-binary", createConnectTransport({ baseUrl: origin, useBinaryFormat: true })],
        ["grpc-web", createGrpcWebTransport({ baseUrl: origin })],
      ]) {
        const c = createClient(svc, t);
        const unary = (await c.unaryCall({ responseSize: 4 })).payload.body.length;
        const sizes = [];
        for await (const r of c.streamingOutputCall({ responseParameters: [{ size: 2 }, { size: 1 }] })) sizes.push(r.payload.body.length);
        let code;
        try { await c.unaryCall({ responseStatus: { code: 16, message: "who" } }); } catch (e) { code = e.code; }
        results[name] = { unary, sizes, code };
      }
      return results;
    `,
    );
    for (const name of ["connect-json", "connect-binary", "grpc-web"]) {
      assert.deepEqual(out[name], { unary: 4, sizes: [2, 1], code: 16 }, name);
    }
  });
});

describe("from an origin that is not allowed", () => {
  let gw;
  let page;
  before(async () => {
    gw = await gateway({ args: ["--cors-origin", "http://allowed.example"] });
    // The gateway refuses this page its schema too: the page's own origin relays it.
    other.schemaFrom = gw.origin;
    page = await clientsPage();
  });
  after(async () => {
    await page?.close();
    await gw?.stop();
  });

  test("fetch, gRPC-Web and the WebSocket are refused", async () => {
    const out = await inPage(
      page,
      gw.origin,
      `
      const { createClient } = clients.connect;
      const { createGrpcWebTransport } = clients.connectWeb;
      const { PortwayClient } = clients.portway;
      const out = {};
      try {
        await fetch(origin + "/grpc.health.v1.Health/Check", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
        out.fetch = "allowed";
      } catch (e) { out.fetch = e.name; }
      try {
        await createClient(registry.getService("grpc.testing.TestService"), createGrpcWebTransport({ baseUrl: origin })).emptyCall({});
        out.grpcWeb = "allowed";
      } catch (e) { out.grpcWeb = "refused"; }
      const ws = new PortwayClient(origin.replace(/^http/, "ws") + "/ws", { reconnect: false });
      try { await ws.unary("/grpc.testing.TestService/EmptyCall", {}); out.ws = "allowed"; } catch (e) { out.ws = e.code; }
      return out;
    `,
    ).catch((e) => ({ error: e.message }));
    assert.deepEqual(out, { fetch: "TypeError", grpcWeb: "refused", ws: "unavailable" });
  });
});
