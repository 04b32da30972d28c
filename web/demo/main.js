// The demo page: loads the gateway's schema (/portway.binpb) with protobuf-es, opens one
// WebSocket (portway.js) shared by the live view, the Sync session and the streams panel, and
// writes through gRPC-Web with connect-web.

import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { PortwayClient } from "portway-client";
import { createPortwayTransport } from "portway-client/transport";

import { startLive, seenRevisions } from "./live.js";
import { startStreams } from "./streams.js";
import { startSync } from "./sync.js";
import { $ } from "./ui.js";
import { startWrite } from "./write.js";

const conn = $("conn");
function showState(state, text) {
  conn.dataset.state = state;
  conn.textContent = text;
}

async function main() {
  $("origin").textContent = location.origin;
  const resp = await fetch("/portway.binpb");
  if (!resp.ok) throw new Error(`GET /portway.binpb answered HTTP ${resp.status}`);
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, new Uint8Array(await resp.arrayBuffer())));

  const client = new PortwayClient(`${location.origin.replace(/^http/, "ws")}/ws`, {
    reconnect: { initialDelayMs: 250, maxDelayMs: 5_000 },
    onEvent: (e) => {
      if (e.type === "open") showState("open", "connected");
      else if (e.type === "reconnecting") {
        showState("reconnecting", `reconnecting in ${(e.delayMs / 1000).toFixed(1)} s (attempt ${e.attempt})`);
      } else if (e.type === "close") showState("idle", `disconnected: ${e.reason}`);
    },
  });
  window.portwayDemo = { client, registry, seenRevisions };

  startLive(client, (rev) => ($("revision").textContent = String(rev)));
  startWrite(registry);
  startSync(registry, createPortwayTransport({ client }));
  startStreams(client);
}

main().catch((err) => {
  const box = $("boot-error");
  box.hidden = false;
  box.textContent = `The demo could not start: ${err.message}`;
  showState("idle", "not connected");
});
