// The live view: a snapshot (List), then one Watch of every key from the snapshot's revision,
// over the WebSocket protocol with portway.js (JSON). After a reconnect the watch resumes from
// the last revision seen + 1, so no event is missed and none arrives twice.

import { curlStream, curlUnary, bufCurl, showCommands } from "./commands.js";
import { $, el, errorBox, json, logLine } from "./ui.js";

const SVC = "portway.state.v1.StateService";

/** Every revision the page has shown an event of, in order (read by the browser tests). */
export const seenRevisions = [];

export function startLive(client, onRevision) {
  const rows = new Map();
  const tbody = $("entries");
  const events = $("events");
  let last = 0;

  function render(entry, flash) {
    let tr = rows.get(entry.key);
    if (!tr) {
      tr = el("tr");
      tr.dataset.key = entry.key;
      rows.set(entry.key, tr);
      const keys = [...rows.keys()].sort();
      const next = rows.get(keys[keys.indexOf(entry.key) + 1]);
      tbody.querySelector("tr.empty")?.remove();
      tbody.insertBefore(tr, next ?? null);
    }
    tr.replaceChildren(
      el("td", {}, entry.key),
      el("td", { className: "value" }, json(entry.value ?? null)),
      el("td", { className: "num" }, entry.modRevision ?? ""),
      el("td", { className: "num" }, entry.version ?? ""),
    );
    if (flash) {
      tr.classList.remove("flash");
      void tr.offsetWidth;
      tr.classList.add("flash");
    }
  }

  function remove(key) {
    rows.get(key)?.remove();
    rows.delete(key);
    if (rows.size === 0) tbody.replaceChildren(el("tr", { className: "empty" }, el("td", { colSpan: 4 }, "No keys.")));
  }

  function onEvent(ev) {
    const rev = Number(ev.entry.modRevision);
    seenRevisions.push(rev);
    const type = ev.type === "DELETE" ? "delete" : "put";
    const li = logLine(
      events,
      500,
      el("span", { className: "rev" }, `r${rev}`),
      el("span", { className: type }, type.toUpperCase()),
      ` ${ev.entry.key}`,
      type === "put" ? ` = ${json(ev.entry.value ?? null)}` : "",
    );
    li.dataset.revision = String(rev);
    if (type === "delete") remove(ev.entry.key);
    else render(ev.entry, true);
  }

  async function run() {
    // The snapshot, at one revision.
    rows.clear();
    tbody.replaceChildren(el("tr", { className: "empty" }, el("td", { colSpan: 4 }, "No keys yet. Write one →")));
    let snapshot = 0;
    for await (const page of client.serverStream(`/${SVC}/List`, { prefix: "" })) {
      snapshot = Number(page.revision ?? 0);
      for (const entry of page.entries ?? []) render(entry, false);
    }
    last = Math.max(last, snapshot);
    onRevision(last);
    logLine(events, 500, el("span", { className: "note" }, `snapshot at revision ${snapshot}; watching from ${snapshot + 1}`));
    const from = () => ({ key: "", prefix: true, startRevision: String(last + 1) });
    const watch = client.serverStream(`/${SVC}/Watch`, from(), {
      resume: ({ attempt }) => {
        logLine(events, 500, el("span", { className: "note" }, `reconnected (attempt ${attempt}); resuming from revision ${last + 1}`));
        return from();
      },
    });
    for await (const msg of watch) {
      for (const ev of msg.events ?? []) onEvent(ev);
      if (msg.events?.length) {
        last = Number(msg.revision);
        onRevision(last);
      }
    }
  }

  showCommands($("live-commands"), [
    ["the same watch with curl (Connect streaming; Ctrl-C to stop)", curlStream(`${SVC}/Watch`, [{ key: "", prefix: true }])],
    ["with buf curl (native gRPC)", bufCurl(`${SVC}/Watch`, [{ key: "", prefix: true }])],
    ["one key with curl", curlUnary(`${SVC}/Get`, { key: "doc/1" })],
  ]);

  (async function loop() {
    for (;;) {
      try {
        await run();
        return;
      } catch (err) {
        const box = errorBox(err);
        box.prepend("The live view stopped: ");
        logLine(events, 500, box);
        // A compacted start (out_of_range) or a lost, unresumable stream: take a new snapshot.
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  })();
}
