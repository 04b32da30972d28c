// connect-node against portway with API keys (tests/interop/auth-keys.toml): the
// authentication matrix (no key, a wrong key, a key without the method, expired and replayed
// signatures, valid keys and signatures), the exempt health service, and a per-key rate limit
// that is hit and recovers, over gRPC-Web and Connect (JSON and proto), HTTP/1.1 and HTTP/2.
// Signatures are computed here from docs/auth.md.

import { createHash, createHmac, randomUUID } from "node:crypto";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import { transport } from "./transports.mjs";
import { check, codeName, here, main, startPortway } from "./harness.mjs";
import { Health, SimpleRequest, TestService } from "./schema.mjs";

const KEYS = path.join(here, "../auth-keys.toml");
const UNARY = "/grpc.testing.TestService/UnaryCall";
const TRANSPORTS = ["grpc-web/binary/h1", "grpc-web/binary/h2", "connect/json/h1", "connect/json/h2", "connect/proto/h2"];
const request = () => create(SimpleRequest, { responseSize: 3 });
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** The signature headers of one call, as docs/auth.md defines them. */
function signed(key, keyId, timestamp, content) {
  const secret = createHash("sha256").update(key).digest();
  const nonce = randomUUID();
  const text = `PORTWAY-HMAC-SHA256\n${timestamp}\n${nonce}\n${UNARY}\n${content}`;
  return {
    "x-portway-key-id": keyId,
    "x-portway-timestamp": String(timestamp),
    "x-portway-nonce": nonce,
    "x-portway-content-sha256": content,
    "x-portway-signature": createHmac("sha256", secret).update(text).digest("hex"),
  };
}

/** The call's code (and the error, if any). */
async function outcome(promise) {
  try {
    await promise;
    return { code: Code.Ok ?? 0 };
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, err };
  }
}

async function expect(code, promise) {
  const o = await outcome(promise);
  const got = o.code ?? 0;
  check(got === code, `expected ${codeName(code)}, got ${codeName(got)}: ${JSON.stringify(o.err?.rawMessage)}`);
  return o.err;
}

function cases(client, health, rateKey) {
  const unary = (headers) => client.unaryCall(request(), { headers });
  const digest = sha256(toBinary(SimpleRequest, request()));
  const now = () => Math.floor(Date.now() / 1000);
  return {
    none: () => expect(Code.Unauthenticated, unary({})),
    wrong_key: () => expect(Code.Unauthenticated, unary({ authorization: "Bearer not-a-key" })),
    no_permission: () => expect(Code.PermissionDenied, unary({ "x-api-key": "interop-digest-key" })),
    digest_key_on_its_method: () => expect(0, client.emptyCall({}, { headers: { "x-api-key": "interop-digest-key" } })),
    valid_bearer: () => expect(0, unary({ authorization: "Bearer interop-full-key" })),
    valid_x_api_key: () => expect(0, unary({ "x-api-key": "interop-full-key" })),
    unsigned_with_signing_key: () => expect(Code.Unauthenticated, unary({ "x-api-key": "interop-signer-key" })),
    expired_signature: () =>
      expect(Code.Unauthenticated, unary(signed("interop-signer-key", "signer", now() - 600, digest))),
    tampered_body: () =>
      expect(Code.Unauthenticated, unary(signed("interop-signer-key", "signer", now(), sha256("x")))),
    replayed_signature: async () => {
      const headers = signed("interop-signer-key", "signer", now(), digest);
      await expect(0, unary(headers));
      const err = await expect(Code.Unauthenticated, unary(headers));
      check(err.rawMessage.includes("already used"), err.rawMessage);
    },
    health_exempt: () => expect(0, health.check({})),
    rate_limit: async () => {
      const headers = { "x-api-key": rateKey };
      for (let i = 0; i < 2; i++) await expect(0, unary(headers));
      const err = await expect(Code.ResourceExhausted, unary(headers));
      const m = err.rawMessage.match(/retry in (\d+) ms/);
      check(m, `no retry hint in ${JSON.stringify(err.rawMessage)}`);
      const retry = err.metadata.get("retry-after");
      check(retry === "1", `retry-after ${retry}`);
      await sleep(Number(m[1]));
      await expect(0, unary(headers));
    },
  };
}

await main("connect-node-auth", async (results) => {
  const server = await startPortway(["--api-keys", KEYS]);
  try {
    let i = 0;
    for (const name of TRANSPORTS) {
      const { transport: t, close } = transport(server.addr, name);
      try {
        const all = cases(createClient(TestService, t), createClient(Health, t), `interop-rate-key-${i++}`);
        for (const [id, fn] of Object.entries(all)) {
          await results.run(`connect-node/auth/${name}/${id}`, async () => {
            await fn();
          });
        }
      } finally {
        close();
      }
    }
  } finally {
    await server.stop();
  }
});
