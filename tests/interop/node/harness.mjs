// Shared by the Node interop programs: a real portway process on port 0, and results.
// Every case records `ID<TAB>OUTCOME<TAB>DETAIL` in $INTEROP_RESULTS/<program>.tsv, where
// OUTCOME is pass, fail or n/a (the client library cannot do the case; DETAIL says why).
// check.py compares the lines with expected-failures.txt.

import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, "../../..");
export const matrix = JSON.parse(readFileSync(path.join(here, "../matrix.json"), "utf8"));
export const matrixMessage = (code) => matrix.message.replace("{code}", String(code));
export const SPECIAL = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \u{1f608}\t\n";

/** Starts `portway --interop --storage memory --listen 127.0.0.1:0 ...args`. */
export async function startPortway(args = []) {
  const bin = process.env.PORTWAY_BIN ?? path.join(root, "target/debug/portway");
  const child = spawn(bin, ["--interop", "--storage", "memory", "--listen", "127.0.0.1:0", ...args], {
    env: { ...process.env, NO_COLOR: "1", RUST_LOG: "info,h2=warn,hyper=warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const addr = await new Promise((resolve, reject) => {
    let seen = "";
    const onData = (chunk) => {
      seen += chunk.toString().replace(/\x1b\[[0-9;]*m/g, "");
      const m = seen.match(/portway listening address=(\S+)/);
      if (m) {
        child.stdout.off("data", onData);
        child.stderr.off("data", onData);
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
    /** SIGTERM; SIGKILL if the gateway is still waiting for a client's open stream after 2 s. */
    async stop() {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A case the client library cannot do; the message says why. */
export class NotApplicable extends Error {}

export function check(cond, what) {
  if (!cond) throw new Error(what);
}

export class Results {
  constructor(program) {
    this.program = program;
    this.lines = [];
  }

  record(id, outcome, detail = "") {
    const text = String(detail).split(/\s+/).join(" ").slice(0, 400);
    this.lines.push(`${id}\t${outcome}\t${text}`);
  }

  /** Runs `fn`; a throw fails the case, NotApplicable marks it n/a. `fn` may return a note. */
  async run(id, fn, { timeoutMs = 20000 } = {}) {
    const start = performance.now();
    let timer;
    try {
      const note = await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no result after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      this.record(id, "pass", note ?? `${Math.round(performance.now() - start)} ms`);
    } catch (e) {
      if (e instanceof NotApplicable) this.record(id, "n/a", e.message);
      else {
        this.record(id, "fail", describe(e));
        if (process.env.INTEROP_VERBOSE) console.error(id, e);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  write() {
    const dir = process.env.INTEROP_RESULTS ?? path.join(root, "tests/interop/results");
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `${this.program}.tsv`), this.lines.join("\n") + "\n");
  }
}

/** One line for a failure: the status a client reports, or the error. */
export function describe(e) {
  if (e && typeof e.code === "number" && "rawMessage" in e) return `${codeName(e.code)}: ${JSON.stringify(e.rawMessage)}`;
  if (e && typeof e.code === "number" && "details" in e) return `${codeName(e.code)}: ${JSON.stringify(e.details)}`;
  return `${e?.name ?? "Error"}: ${e?.message ?? e}`;
}

const NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
  "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];
export const codeName = (c) => NAMES[c] ?? `code ${c}`;

/** Runs `programs` (each `async (results) => {}`), writes the results. */
export async function main(program, body) {
  const results = new Results(program);
  try {
    await body(results);
  } catch (e) {
    console.error(`${program}: the harness failed:`, e);
    process.exitCode = 2;
  }
  results.write();
}
