// The gateway's schema at run time: the descriptor set it serves at /portway.binpb, turned
// into protobuf-es descriptors (no generated code), as the demo page does.

import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

/** Fetches `http://addr/portway.binpb` and returns its registry. */
export async function loadRegistry(addr) {
  const resp = await fetch(`http://${addr}/portway.binpb`);
  if (!resp.ok) throw new Error(`GET /portway.binpb answered ${resp.status}`);
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, new Uint8Array(await resp.arrayBuffer())));
}
