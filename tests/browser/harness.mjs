// The browser suite's parts: Debian's Chromium driven by playwright-core, real gateway
// processes, and a second origin (a small static server) for cross-origin pages.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const screenshots = path.join(root, "tests/browser/screenshots");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/**
 * Launches headless Chromium, with `extraArgs` before the usual flags; the flags keep it off
 * the network (without them its background connections are refused here and it stalls). playwright-core gives every launch a fresh
 * temporary profile (its own `--user-data-dir`), removed on close.
 */
export async function launch(extraArgs = []) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      ...extraArgs,
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    browser,
    close: () => browser.close(),
  };
}

/** A new page that fails the test on uncaught page errors (collected in `page.errors`). */
export async function newPage(browser, viewport = { width: 1280, height: 900 }) {
  const page = await browser.newPage({ viewport });
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  return page;
}

export async function screenshot(page, name) {
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: true });
}

/**
 * Starts `portway --interop` on `listen` (default: an ephemeral port) and resolves once it
 * listens. `dataDir`: durable storage there (else memory).
 */
export async function gateway({ args = [], listen = "127.0.0.1:0", dataDir } = {}) {
  const bin = process.env.PORTWAY_BIN ?? path.join(root, "target/debug/portway");
  const storage = dataDir ? ["--data-dir", dataDir] : ["--storage", "memory"];
  const child = spawn(bin, ["--interop", ...storage, "--listen", listen, ...args], {
    env: { ...process.env, NO_COLOR: "1", RUST_LOG: "info,h2=warn,hyper=warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let seen = "";
  const addr = await new Promise((resolve, reject) => {
    const onData = (chunk) => {
      seen += chunk.toString().replace(/\x1b\[[0-9;]*m/g, "");
      const m = seen.match(/portway listening address=(\S+)/);
      if (m) {
        child.stdout.resume();
        child.stderr.resume();
        resolve(m[1]);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`portway exited (${code}) before listening:\n${seen}`)));
    child.once("error", reject);
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  return {
    addr,
    origin: `http://${addr}`,
    /** What the process has logged so far (stdout and stderr, without colours). */
    log: () => seen,
    /** Kills the process (SIGKILL: no graceful shutdown) and waits for it to exit. */
    async kill() {
      child.kill("SIGKILL");
      await exited;
    },
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** A temporary directory, removed by the returned function. */
export function tempDir() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "portway-browser-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css" };

/**
 * A second origin: serves tests/browser/pages/, the client package from web/ and the npm
 * packages under /vendor/ (the layout the gateway uses), on 127.0.0.1 (the gateway's pages
 * are opened on localhost, so the two are different origins). Pages get the demo's own
 * import map, so they load the same modules the same way.
 */
export async function secondOrigin() {
  const importMap = readFileSync(path.join(root, "web/index.html"), "utf8").match(
    /<script type="importmap">[\s\S]*?<\/script>/,
  )[0];
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/portway.binpb" && handle.schemaFrom) {
      const schema = await fetch(`${handle.schemaFrom}/portway.binpb`);
      res.writeHead(schema.status).end(Buffer.from(await schema.arrayBuffer()));
      return;
    }
    let file;
    if (url.pathname.startsWith("/vendor/")) file = path.join(root, "node_modules", url.pathname.slice(8));
    else if (url.pathname.startsWith("/pages/")) file = path.join(root, "tests/browser", url.pathname);
    else file = path.join(root, "web", url.pathname);
    if (!file.startsWith(root) || file.includes("..")) {
      res.writeHead(403).end();
      return;
    }
    let body;
    try {
      body = readFileSync(file);
    } catch {
      res.writeHead(404).end("not found");
      return;
    }
    const type = TYPES[path.extname(file)] ?? "application/octet-stream";
    if (type === "text/html") body = body.toString().replace("<!-- importmap -->", importMap);
    res.writeHead(200, { "content-type": type, "cache-control": "no-store" }).end(body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const handle = {
    origin,
    /** A gateway origin whose /portway.binpb this origin relays (for pages the gateway refuses). */
    schemaFrom: undefined,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
  return handle;
}

/** Polls `f` (in Node) until it returns a truthy value. */
export async function eventually(what, f, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A Connect JSON unary call from Node, as curl would make it. */
export async function connectCall(origin, method, body) {
  const resp = await fetch(`${origin}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await resp.json();
  if (!resp.ok) throw new Error(`${method}: HTTP ${resp.status} ${JSON.stringify(json)}`);
  return json;
}
