// A Sync session: one bidi stream over the WebSocket protocol, typed, through the connect-es
// Transport of portway-client (createPortwayTransport): writes with sequence numbers and their
// acks, and the events of the session's own watch, pushed on the same stream.

import { fromJson, toJson } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";

import { bufCurl, curlStream, showCommands } from "./commands.js";
import { $, el, errorBox, json, logLine } from "./ui.js";

const SVC = "portway.state.v1.StateService";

/** An async iterable fed by `push`, ended by `end`: the request side of a bidi call. */
class Queue {
  #items = [];
  #wake = null;
  #ended = false;
  push(item) {
    this.#items.push(item);
    this.#wake?.();
  }
  end() {
    this.#ended = true;
    this.#wake?.();
  }
  async *[Symbol.asyncIterator]() {
    for (;;) {
      if (this.#items.length > 0) yield this.#items.shift();
      else if (this.#ended) return;
      else await new Promise((r) => (this.#wake = r));
    }
  }
}

export function startSync(registry, transport) {
  const state = createClient(registry.getService(SVC), transport);
  const Req = registry.getMessage("portway.state.v1.SyncRequest");
  const Status = registry.getMessage("google.rpc.Status");
  const log = $("sync-log");
  const buttons = ["sync-write", "sync-resend", "sync-close"].map($);
  let queue = null;
  let abort = null;
  let seq = 1;
  let last = null;
  let sent = [];

  const line = (...parts) => logLine(log, 200, ...parts);
  const setOpen = (open) => {
    $("sync-open").disabled = open;
    for (const b of buttons) b.disabled = !open;
    $("sync-resend").disabled = !open || !last;
  };
  function send(json) {
    sent.push(json);
    queue.push(fromJson(Req, json));
    showCommands($("sync-commands"), [
      ["this session with buf curl (native gRPC, bidi)", bufCurl(`${SVC}/Sync`, sent)],
      ["with curl (Connect over HTTP/2: the whole request, then the answers)", curlStream(`${SVC}/Sync`, sent, { http2: true })],
    ]);
  }

  $("sync-open").addEventListener("click", async () => {
    const id = [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, "0")).join("");
    $("sync-session").textContent = id;
    queue = new Queue();
    abort = new AbortController();
    seq = 1;
    last = null;
    sent = [];
    $("sync-seq").textContent = "1";
    setOpen(true);
    send({ open: { sessionId: id } });
    send({ watch: { watchId: "1", watch: { key: "sync/", prefix: true } } });
    try {
      for await (const res of state.sync(queue, { signal: abort.signal })) {
        const r = res.response;
        if (r.case === "opened") line(`opened session at revision ${r.value.revision} (last sequence ${r.value.lastSequence})`);
        else if (r.case === "watchCreated") line(`watch ${r.value.watchId} on sync/* from revision ${r.value.revision}`);
        else if (r.case === "ack" && r.value.error) {
          const e = toJson(Status, r.value.error);
          line(el("span", { className: "delete" }, `ack #${r.value.sequence}: `), errorBox({ codeName: e.code, rawMessage: e.message }));
        } else if (r.case === "ack") {
          line(
            el("span", { className: "rev" }, `r${r.value.revision}`),
            `ack #${r.value.sequence}`,
            r.value.duplicate ? el("b", {}, " duplicate: already applied, not applied again") : "",
          );
        } else if (r.case === "events") {
          for (const ev of r.value.events) {
            line(el("span", { className: "rev" }, `r${ev.entry.modRevision}`), `pushed ${ev.type === 2 ? "DELETE" : "PUT"} ${ev.entry.key}`);
          }
        } else if (r.case === "watchCanceled") line(`watch ${r.value.watchId} ended`);
      }
      line(el("span", { className: "note" }, "session stream closed"));
    } catch (e) {
      const err = ConnectError.from(e);
      if (err.code !== 1) line(errorBox({ codeName: codeToString(err.code), rawMessage: err.rawMessage }));
      else line(el("span", { className: "note" }, "session cancelled"));
    } finally {
      setOpen(false);
    }
  });

  $("sync-form").addEventListener("submit", (e) => {
    e.preventDefault();
    let value;
    try {
      value = JSON.parse($("sync-value").value);
    } catch (err) {
      line(errorBox({ code: "invalid input", message: `value is not valid JSON: ${err.message}` }));
      return;
    }
    last = { write: { sequence: String(seq), put: { key: $("sync-key").value, value } } };
    send(last);
    line(el("span", { className: "note" }, `→ write #${seq} ${$("sync-key").value} = ${json(value)}`));
    seq++;
    $("sync-seq").textContent = String(seq);
    $("sync-resend").disabled = false;
  });
  $("sync-resend").addEventListener("click", () => {
    if (!last) return;
    line(el("span", { className: "note" }, `→ resend write #${last.write.sequence}`));
    send(last);
  });
  $("sync-close").addEventListener("click", () => {
    queue?.end();
    abort?.abort();
  });
}
