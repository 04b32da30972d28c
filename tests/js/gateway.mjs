// Test helpers: a real portway gateway process on an ephemeral port, and a TCP proxy in
// front of it that can cut or freeze connections (to test reconnects and dead peers).

import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Starts `portway --interop --storage memory --listen 127.0.0.1:0 ...args`; resolves once it listens. */
export async function startGateway(args = []) {
  const bin = process.env.PORTWAY_BIN ?? path.join(root, "target/debug/portway");
  const child = spawn(bin, ["--interop", "--storage", "memory", "--listen", "127.0.0.1:0", ...args], {
    env: { ...process.env, NO_COLOR: "1", RUST_LOG: "info,h2=warn,hyper=warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  // The log goes to stderr; read both streams to be safe.
  const addr = await new Promise((resolve, reject) => {
    let seen = "";
    const onData = (chunk) => {
      // Strip colours in case the logger adds them anyway.
      seen += chunk.toString().replace(/\x1b\[[0-9;]*m/g, "");
      const m = seen.match(/portway listening address=(\S+)/);
      if (m) {
        child.stdout.off("data", onData);
        child.stderr.off("data", onData);
        // Keep draining, or a chatty gateway would block on a full pipe.
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
  return {
    addr,
    url: `ws://${addr}/ws`,
    /** The gateway's /metrics as a map of name -> value. */
    async metrics() {
      const text = await (await fetch(`http://${addr}/metrics`)).text();
      const out = {};
      for (const line of text.split("\n")) {
        const m = line.match(/^(portway_\w+) (\d+)$/);
        if (m) out[m[1]] = Number(m[2]);
      }
      return out;
    },
    stop() {
      child.kill("SIGTERM");
    },
  };
}

/** A TCP proxy to `addr` ("host:port"). */
export async function startProxy(addr) {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))];
  const pairs = new Set();
  const frozen = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    const pair = { client, upstream };
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `ws://127.0.0.1:${server.address().port}/ws`,
    /** Cuts every connection (both ends see the socket close). */
    dropAll() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    /** Silently stops forwarding on every open connection: a dead network path. */
    freezeAll() {
      for (const { client, upstream } of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
        frozen.push(client, upstream);
      }
      pairs.clear();
    },
    close() {
      this.dropAll();
      for (const s of frozen) s.destroy();
      server.close();
    },
  };
}

/** Polls `f` until it returns true (for state that has no event to wait on). */
export async function eventually(what, f, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
