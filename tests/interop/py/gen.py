"""Generates what the interop clients need from proto/, with protoc from grpcio-tools:

- Python stubs for grpc.testing in $INTEROP_GEN/py/ixpb/ ($INTEROP_GEN defaults to
  tests/interop/gen). The proto package `grpc.testing` would shadow the `grpc` module, so
  the stubs live under the `ixpb` prefix and their imports are rewritten to match;
- $INTEROP_GEN/protos.binpb, a FileDescriptorSet of every proto (with imports), which the Node
  programs turn into protobuf-es schemas at run time.

Run from the repository root: tests/interop/.venv/bin/python tests/interop/py/gen.py
"""

import os
import pathlib
import re
import shutil
import sys

import grpc_tools
from grpc_tools import protoc

ROOT = pathlib.Path("proto")
GEN = pathlib.Path(os.environ.get("INTEROP_GEN", "tests/interop/gen"))
PREFIX = "ixpb"


def run(args):
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    code = protoc.main(["protoc", f"-I{ROOT}", f"-I{include}", *args])
    if code != 0:
        sys.exit(f"protoc failed ({code}) for {args}")


def main():
    if GEN.exists():
        shutil.rmtree(GEN)
    py = GEN / "py" / PREFIX
    py.mkdir(parents=True)
    testing = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "grpc" / "testing").glob("*.proto"))
    run([f"--python_out={py}", f"--grpc_python_out={py}", *testing])
    for path in py.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"^from grpc\.testing import", f"from {PREFIX}.grpc.testing import", text, flags=re.M)
        path.write_text(text)
    every = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*.proto"))
    run([f"--descriptor_set_out={GEN / 'protos.binpb'}", "--include_imports", *every])


if __name__ == "__main__":
    main()
