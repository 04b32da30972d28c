"""The status matrix's dimensions, shared by every client (the Node programs read matrix.json)."""

import json
import os

with open(os.path.join(os.path.dirname(__file__), "..", "matrix.json"), encoding="utf-8") as f:
    _M = json.load(f)

CODES = _M["codes"]
KINDS = _M["kinds"]


def matrix_message(code):
    return _M["message"].replace("{code}", str(code))
