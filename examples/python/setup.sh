#!/usr/bin/env bash
# Sets up the Python example: a virtual environment in examples/python/.venv with the pinned
# requirements, and the state store's Python modules generated from proto/ into
# examples/python/gen/ (grpcio-tools' protoc; nothing generated is committed).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
python="${PYTHON:-python3}"
[ -x "$here/.venv/bin/python" ] || "$python" -m venv "$here/.venv"
"$here/.venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
rm -rf "$here/gen"
mkdir -p "$here/gen"
"$here/.venv/bin/python" -m grpc_tools.protoc -I "$root/proto" \
  --python_out="$here/gen" --grpc_python_out="$here/gen" \
  "$root/proto/portway/state/v1/state.proto" "$root/proto/google/rpc/status.proto"
