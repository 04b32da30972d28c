"""Shared by the Python interop programs: a real portway process on port 0, and results.

Every case records one line `ID<TAB>OUTCOME<TAB>DETAIL` in `$INTEROP_RESULTS/<program>.tsv`,
where OUTCOME is `pass`, `fail` or `n/a` (the client library cannot do the case; DETAIL says
why). `check.py` compares the lines with `expected-failures.txt`.
"""

import os
import re
import subprocess
import sys
import threading
import time
import traceback

LISTENING = re.compile(r"portway listening address=(\S+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Portway:
    """`portway --interop --storage memory --listen 127.0.0.1:0 ARGS`, stopped on exit."""

    def __init__(self, *args):
        binary = os.environ.get("PORTWAY_BIN", "target/debug/portway")
        env = dict(os.environ, NO_COLOR="1", RUST_LOG="info,h2=warn,hyper=warn")
        self.args = list(args)
        self.proc = subprocess.Popen(
            [binary, "--interop", "--storage", "memory", "--listen", "127.0.0.1:0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        seen = self.seen = []
        for raw in self.proc.stdout:
            line = ANSI.sub("", raw.decode("utf-8", "replace"))
            seen.append(line)
            m = LISTENING.search(line)
            if m:
                self.addr = m.group(1)
                break
        else:
            raise RuntimeError("portway exited before listening:\n" + "".join(seen))
        # Keep reading, or a chatty gateway would block on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Results:
    """Collects case outcomes and writes them where `check.py` reads them."""

    def __init__(self, program):
        out_dir = os.environ.get("INTEROP_RESULTS", "tests/interop/results")
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, f"{program}.tsv")
        self.lines = []
        self.lock = threading.Lock()

    def record(self, case_id, outcome, detail=""):
        detail = " ".join(str(detail).split())[:400]
        with self.lock:
            self.lines.append(f"{case_id}\t{outcome}\t{detail}")

    def run(self, case_id, fn):
        """Runs `fn()`; an exception fails the case. `fn` may return a note, or raise NotApplicable."""
        start = time.monotonic()
        try:
            note = fn()
        except NotApplicable as e:
            self.record(case_id, "n/a", str(e))
        except Exception as e:  # noqa: BLE001 - any failure of the case is its result
            self.record(case_id, "fail", describe(e))
            if os.environ.get("INTEROP_VERBOSE"):
                traceback.print_exc()
        else:
            self.record(case_id, "pass", note or f"{(time.monotonic() - start) * 1000:.0f} ms")

    def write(self):
        with open(self.path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.lines) + "\n")


class NotApplicable(Exception):
    """The client library cannot do this case; the message says why."""


def describe(e):
    code = getattr(e, "code", None)
    details = getattr(e, "details", None)
    if callable(code) and callable(details):
        return f"{code().name}: {details()!r}"
    return f"{type(e).__name__}: {e}"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main_guard(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - a harness failure must show and fail the run
        traceback.print_exc()
        sys.exit(2)
