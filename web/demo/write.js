// Writes through gRPC-Web with connect-web (binary protobuf, message types from the gateway's
// descriptor set). A compare-and-set conflict is shown as the typed ConflictDetail it carries.

import { fromJson, toJson } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { bufCurl, curlUnary, showCommands } from "./commands.js";
import { $, el, errorBox } from "./ui.js";

const SVC = "portway.state.v1.StateService";

export function startWrite(registry) {
  const service = registry.getService(SVC);
  const schema = (name) => registry.getMessage(`portway.state.v1.${name}`);
  const state = createClient(service, createGrpcWebTransport({ baseUrl: location.origin }));
  const result = $("write-result");

  /** The request the form describes, as canonical JSON (or an error a person can read). */
  function request(kind) {
    const key = $("key").value;
    const expected = $("expected").value.trim();
    const req = { key };
    if (expected !== "") {
      if (!/^\d+$/.test(expected)) throw new Error("expected revision must be a whole number (or empty)");
      req.expectedRevision = expected;
    }
    if (kind === "Put") {
      try {
        req.value = JSON.parse($("value").value);
      } catch (e) {
        throw new Error(`value is not valid JSON: ${e.message}`);
      }
    }
    return req;
  }

  function commands(kind) {
    let req;
    try {
      req = request(kind);
    } catch {
      return;
    }
    showCommands($("write-commands"), [
      [`${kind} with curl (Connect, JSON)`, curlUnary(`${SVC}/${kind}`, req)],
      [`with buf curl (gRPC-Web, as this page)`, bufCurl(`${SVC}/${kind}`, [req], "grpcweb")],
    ]);
  }

  async function send(kind) {
    result.replaceChildren();
    let req;
    try {
      req = request(kind);
    } catch (err) {
      result.append(errorBox({ code: "invalid input", message: err.message }));
      return;
    }
    commands(kind);
    try {
      const method = kind === "Put" ? state.put : state.delete;
      const res = await method(fromJson(schema(`${kind}Request`), req));
      const text =
        kind === "Put"
          ? `Written at revision ${res.revision} (version ${res.entry?.version ?? "?"}).`
          : res.deleted
            ? `Deleted at revision ${res.revision}.`
            : `Nothing to delete (revision ${res.revision}).`;
      result.append(el("div", { className: "ok" }, text));
    } catch (e) {
      const err = ConnectError.from(e);
      const details = [];
      for (const d of err.findDetails(schema("ConflictDetail"))) {
        details.push(["ConflictDetail (compare-and-set did not hold)", toJson(schema("ConflictDetail"), d, { alwaysEmitImplicit: true })]);
      }
      for (const d of err.findDetails(schema("LimitDetail"))) details.push(["LimitDetail", toJson(schema("LimitDetail"), d)]);
      result.append(errorBox({ codeName: codeToString(err.code), rawMessage: err.rawMessage }, details));
    }
  }

  $("write-form").addEventListener("submit", (e) => {
    e.preventDefault();
    send("Put");
  });
  $("delete").addEventListener("click", () => send("Delete"));
  $("write-form").addEventListener("input", () => commands("Put"));
  commands("Put");
}
