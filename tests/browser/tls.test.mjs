// The demo over TLS in headless Chromium: `portway --tls-self-signed`, its certificate trusted
// by its key alone (`--ignore-certificate-errors-spki-list`, the SHA-256 of the public key this
// test reads from the server and checks against the fingerprint portway logs), so the browser
// sees a valid certificate. The page must come over HTTP/2, and its WebSocket calls must work.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import https from "node:https";
import tls from "node:tls";
import { after, before, test } from "node:test";

import { gateway, launch, newPage } from "./harness.mjs";

let gw;
let chrome;
let port;

/** The server's certificate, as a TLS client sees it (no verification: this is what we pin). */
function peerCertificate(host, port) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, servername: "localhost", rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      resolve(cert);
    });
    socket.once("error", reject);
  });
}

/** `/metrics` as a map of series -> value, over HTTPS with the pinned certificate. */
function metrics(ca) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: "127.0.0.1", port, path: "/metrics", servername: "localhost", ca, agent: false }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => {
        const out = {};
        for (const line of text.split("\n")) {
          const m = line.match(/^(\S+) (\S+)$/);
          if (m) out[m[1]] = Number(m[2]);
        }
        resolve(out);
      });
    });
    req.once("error", reject);
  });
}

before(async () => {
  gw = await gateway({ args: ["--tls-self-signed"] });
  port = Number(gw.addr.split(":").pop());
  const cert = await peerCertificate("127.0.0.1", port);
  // The certificate the browser will trust is the one portway says it generated.
  const logged = gw.log().match(/fingerprint=(\S+)/)[1];
  assert.equal(cert.fingerprint256, logged);
  const spki = createHash("sha256").update(cert.publicKey.export({ type: "spki", format: "der" })).digest("base64");
  chrome = await launch([`--ignore-certificate-errors-spki-list=${spki}`]);
  chrome.cert = cert;
});
after(async () => {
  await chrome?.close();
  await gw?.stop();
});

test("the demo over https: HTTP/2, gRPC-Web writes and WebSocket watches", async () => {
  const page = await newPage(chrome.browser);
  // WebSocket handshakes as Chromium reports them: 101 for an HTTP/1.1 upgrade, 200 for an
  // RFC 8441 extended CONNECT on the page's HTTP/2 connection.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  const handshakes = [];
  cdp.on("Network.webSocketHandshakeResponseReceived", (e) => handshakes.push(e.response.status));

  const before = (await metrics(chrome.cert.toString())).portway_connections_total;
  await page.goto(`https://localhost:${port}/`);
  await page.locator('#conn[data-state="open"]').waitFor({ timeout: 15_000 });
  const protocol = await page.evaluate(() => performance.getEntries()[0].nextHopProtocol);
  assert.equal(protocol, "h2", "the page came over HTTP/2");
  assert.equal(await page.evaluate(() => window.isSecureContext), true);

  // A write through gRPC-Web, seen back through the watch on the WebSocket.
  await page.fill("#key", "tls/hello");
  await page.fill("#value", '{"over": "tls"}');
  await page.click("#put");
  await page.locator("#write-result .ok").waitFor();
  await page.locator('#entries tr[data-key="tls/hello"] td.value', { hasText: '{"over":"tls"}' }).waitFor();
  // Twelve calls multiplexed on the socket, each with its own credit.
  await page.click("#streams-start");
  await page.locator('.stream[data-state="done"]').first().waitFor({ timeout: 20_000 });
  assert.match(await page.locator("#streams-summary").innerText(), /calls open on 1 socket/);
  await page.click("#streams-stop");

  const resources = await page.evaluate(() =>
    performance.getEntriesByType("resource").map((r) => [r.name, r.nextHopProtocol]),
  );
  for (const [name, hop] of resources) assert.equal(hop, "h2", name);

  // The gateway's side: one WebSocket open, on the one connection the browser opened (the
  // scrape's own connection aside), so on the page's HTTP/2 connection.
  const seen = await metrics(chrome.cert.toString());
  assert.equal(seen.portway_websockets_open, 1);
  assert.equal(seen.portway_connections_total - before - 1, 1, "the browser used one connection for everything");
  assert.deepEqual(handshakes, [200], "the WebSocket rode the HTTP/2 connection (RFC 8441 CONNECT: 200, not 101)");
  assert.deepEqual(page.errors, []);
  await page.close();
});
