// protobuf-es schemas for the protos, from the FileDescriptorSet that gen.py writes with
// protoc (no generated code): the registry's services and messages are what the Connect
// and gRPC-Web clients are built from.

import { readFileSync } from "node:fs";
import path from "node:path";
import { createFileRegistry, fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { root } from "./harness.mjs";

const gen = process.env.INTEROP_GEN ?? path.join(root, "tests/interop/gen");
const bytes = readFileSync(path.join(gen, "protos.binpb"));
export const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));

export function service(name) {
  const s = registry.getService(name);
  if (!s) throw new Error(`no service ${name} in the descriptor set`);
  return s;
}

export function message(name) {
  const m = registry.getMessage(name);
  if (!m) throw new Error(`no message ${name} in the descriptor set`);
  return m;
}

export const TestService = service("grpc.testing.TestService");
export const UnimplementedService = service("grpc.testing.UnimplementedService");
export const Health = service("grpc.health.v1.Health");
export const SimpleRequest = message("grpc.testing.SimpleRequest");
export const SimpleResponse = message("grpc.testing.SimpleResponse");
export const StreamingOutputCallRequest = message("grpc.testing.StreamingOutputCallRequest");
export const StreamingOutputCallResponse = message("grpc.testing.StreamingOutputCallResponse");

/** serialize/deserialize functions (for grpc-web's MethodDescriptor) over a schema. */
export function codec(schema) {
  return {
    encode: (msg) => toBinary(schema, create(schema, msg)),
    decode: (bytes) => fromBinary(schema, bytes),
  };
}
