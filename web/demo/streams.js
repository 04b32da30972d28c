// Many server streams at once on the page's one WebSocket, each with its own flow-control
// window: consumers of different speeds, and each call's remaining credit drawn as a bar.

import { bufCurl, curlStream, showCommands } from "./commands.js";
import { $, el, errorBox } from "./ui.js";

const METHOD = "grpc.testing.TestService/StreamingOutputCall";
const STREAMS = 12;
const MESSAGES = 40;
const CREDIT = 4;

export function startStreams(client) {
  const grid = $("streams-grid");
  let calls = [];
  let timer = null;
  const request = { responseParameters: Array.from({ length: MESSAGES }, () => ({ size: 8, intervalUs: 10_000 })) };

  const three = { responseParameters: request.responseParameters.slice(0, 3) };
  showCommands($("streams-commands"), [
    ["a stream like these (3 messages) with curl (Connect streaming)", curlStream(METHOD, [three])],
    ["with buf curl (native gRPC)", bufCurl(METHOD, [three])],
  ]);

  function draw() {
    let open = 0;
    let received = 0;
    for (const c of calls) {
      const credit = c.call.done ? 0 : c.call.credit;
      c.bar.style.width = c.state === "done" ? "100%" : `${(100 * credit) / CREDIT}%`;
      c.meta.textContent = `${c.received}/${MESSAGES} received · credit ${credit}/${CREDIT} · buffered ${c.call.buffered}`;
      c.node.dataset.state = c.state;
      if (!c.call.done) open++;
      received += c.received;
    }
    const socket = client.state === "open" ? "1 socket" : client.state;
    $("streams-summary").textContent = `${open} calls open on ${socket} · ${received} messages`;
    if (open === 0) stop(false);
  }

  function stop(cancel) {
    clearInterval(timer);
    timer = null;
    if (cancel) for (const c of calls) c.call.cancel("cancelled from the page");
    $("streams-start").disabled = false;
    $("streams-stop").disabled = true;
    if (!cancel) draw();
  }

  $("streams-start").addEventListener("click", () => {
    grid.replaceChildren();
    calls = Array.from({ length: STREAMS }, (_, i) => {
      // Consumer delays from 0 to 330 ms per message: fast ones finish, slow ones run dry of credit.
      const delayMs = i * 30;
      const call = client.serverStream(`/${METHOD}`, request, { credit: CREDIT });
      const bar = el("span");
      const meta = el("div", { className: "meta" });
      const node = el(
        "div",
        { className: "stream" },
        el("header", {}, el("span", {}, `call ${i + 1}`), el("span", {}, `consumer ${delayMs} ms/msg`)),
        el("div", { className: "bar" }, bar),
        meta,
      );
      grid.append(node);
      const entry = { call, bar, meta, node, received: 0, state: "open" };
      (async () => {
        try {
          for await (const _ of call) {
            entry.received++;
            if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
          }
          entry.state = "done";
        } catch (err) {
          entry.state = "failed";
          if (err.code === "unimplemented") {
            meta.replaceWith(errorBox({ code: err.code, message: "grpc.testing.TestService is not mounted: start portway with --interop" }));
          } else if (err.code !== "canceled") {
            meta.after(errorBox(err));
          }
        }
      })();
      return entry;
    });
    $("streams-start").disabled = true;
    $("streams-stop").disabled = false;
    timer = setInterval(draw, 100);
  });
  $("streams-stop").addEventListener("click", () => stop(true));
}
