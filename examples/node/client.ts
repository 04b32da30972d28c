// Run with: npm run generate --prefix examples/node && npm run example --prefix examples/node -- http://127.0.0.1:8080
//
// A Node/TypeScript client of the state store with code generated from proto/ by buf and
// protoc-gen-es (`npm run generate`, into gen/): the same typed client over Connect's three
// Node transports (native gRPC over HTTP/2, gRPC-Web, Connect) and over portway's WebSocket
// protocol (portway-client), where client and bidi streaming work too.

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { PortwayClient } from "portway-client";
import { createPortwayTransport } from "portway-client/transport";
import WebSocket from "ws";

import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { ConflictDetailSchema, PutRequestSchema, StateService, SyncRequestSchema } from "./gen/portway/state/v1/state_pb";

type PutInit = MessageInitShape<typeof PutRequestSchema>;
type SyncInit = MessageInitShape<typeof SyncRequestSchema>;

const origin = process.argv[2] ?? "http://127.0.0.1:8080";
const value = (s: string) => create(ValueSchema, { kind: { case: "stringValue", value: s } });

async function exercise(name: string, transport: Transport, streamsBothWays: boolean): Promise<void> {
  const state = createClient(StateService, transport);
  const prefix = `examples/node/${process.pid}/${name}`;

  // Unary, and a compare-and-set conflict with its typed detail.
  const put = await state.put({ key: `${prefix}/doc`, value: value("hello") });
  const got = await state.get({ key: `${prefix}/doc` });
  console.log(`${name}: put at revision ${put.revision}, read back ${got.entry?.value?.kind.value}`);
  try {
    await state.put({ key: `${prefix}/doc`, expectedRevision: 0n });
    throw new Error("the conflicting put succeeded");
  } catch (err) {
    const e = ConnectError.from(err);
    const [detail] = e.findDetails(ConflictDetailSchema);
    if (e.code !== Code.FailedPrecondition || detail?.currentRevision !== put.revision) throw e;
    console.log(`${name}: ${Code[e.code]}: ${e.rawMessage} (ConflictDetail: current ${detail.currentRevision})`);
  }

  // Server streaming.
  const keys: string[] = [];
  for await (const page of state.list({ prefix: `${prefix}/` })) keys.push(...page.entries.map((e) => e.key));
  console.log(`${name}: list -> ${keys.join(", ")}`);

  if (!streamsBothWays) return;
  // Client streaming: puts applied as one revision.
  async function* puts(): AsyncGenerator<PutInit> {
    for (let i = 0; i < 3; i++) yield { key: `${prefix}/batch/${i}`, value: value(String(i)) };
  }
  const batch = await state.putMany(puts());
  console.log(`${name}: putMany -> ${batch.count} keys at revision ${batch.revision}`);

  // Bidi streaming: a Sync session, the same write twice, applied once.
  const write = { sequence: 1n, op: { case: "put" as const, value: { key: `${prefix}/sync`, value: value("once") } } };
  async function* session(): AsyncGenerator<SyncInit> {
    yield { request: { case: "open", value: { sessionId: `${prefix}/session` } } };
    yield { request: { case: "write", value: write } };
    yield { request: { case: "write", value: write } };
  }
  const acks: boolean[] = [];
  for await (const res of state.sync(session())) {
    if (res.response.case === "ack") acks.push(res.response.value.duplicate);
  }
  if (acks.join() !== "false,true") throw new Error(`unexpected acks: ${acks}`);
  console.log(`${name}: sync -> applied once, resend acknowledged as a duplicate`);
}

const ws = new PortwayClient(`${origin.replace(/^http/, "ws")}/ws`, { WebSocket });
await exercise("grpc", createGrpcTransport({ baseUrl: origin }), true);
await exercise("grpc-web", createGrpcWebTransport({ baseUrl: origin, httpVersion: "1.1" }), false);
await exercise("connect", createConnectTransport({ baseUrl: origin, httpVersion: "1.1" }), false);
await exercise("websocket", createPortwayTransport({ client: ws }), true);
ws.close();
console.log("ok");
