"""Python stubs for the upstream server, generated at start-up with protoc from grpcio-tools
(no system protoc) into a directory on sys.path.

The proto package `grpc.testing` would shadow the `grpc` module, so the stubs live under a
prefix (`uppb`) and their imports are rewritten to match (as tests/interop/py/gen.py does).
"""

import os
import pathlib
import re
import sys

import grpc_tools
from grpc_tools import protoc

PREFIX = "uppb"


def generate(out_dir, proto_root, files):
    """Writes `PREFIX/...` stubs for `files` (relative to `proto_root`) under `out_dir`."""
    out = pathlib.Path(out_dir) / PREFIX
    out.mkdir(parents=True, exist_ok=True)
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"-I{proto_root}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", *files]
    if protoc.main(args) != 0:
        sys.exit(f"protoc failed for {files}")
    packages = {str(pathlib.Path(f).parent).replace("/", ".") for f in files}
    for path in out.rglob("*.py"):
        text = path.read_text()
        for pkg in packages:
            text = re.sub(rf"^from {re.escape(pkg)} import", f"from {PREFIX}.{pkg} import", text, flags=re.M)
        path.write_text(text)
    for d in [out, *[p for p in out.rglob("*") if p.is_dir()]]:
        (d / "__init__.py").touch()
    sys.path.insert(0, str(out_dir))
