"""The JSON oracle: protobuf's reference implementation of the canonical JSON mapping
(`google.protobuf.json_format`) judges what portway writes and reads.

Driven by tests/json_oracle.rs, which writes the descriptor set and a list of cases to a
directory and runs `python3 oracle.py DIR`; this script writes DIR/results.json. Message
classes are built from the descriptor set (no generated stubs, no protoc). For each case:

- "print": portway's JSON for a message. json_format must read it to the same message, and
  its own JSON for the message is compared with portway's, token by token (see `compare`).
- "accept": a JSON input the mapping allows. json_format must read it, to the same message
  as portway did (portway's binary is given).
- "refuse": a JSON input the mapping refuses. json_format must refuse it.
- "stricter": an input portway refuses on purpose that json_format accepts.
"""

import base64
import json
import struct
import sys
from decimal import Decimal, InvalidOperation

from google.protobuf import __version__ as PROTOBUF_VERSION
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

# The well-known types, so that the default pool has them before the corpus that imports them.
from google.protobuf import (  # noqa: F401
    any_pb2, duration_pb2, empty_pb2, field_mask_pb2, struct_pb2, timestamp_pb2, wrappers_pb2,
)


def load_classes(descriptor_set_path, wanted_files):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(descriptor_set_path, "rb") as f:
        fds.ParseFromString(f.read())
    pool = descriptor_pool.Default()
    for file in fds.file:
        if file.name in wanted_files:
            pool.Add(file)
    return lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


class Number:
    """A JSON number kept as the text it was written as."""

    def __init__(self, text):
        self.text = text


def tokens(text):
    """Parses JSON keeping numbers as text and objects as lists of pairs."""
    return json.loads(
        text,
        parse_float=Number,
        parse_int=Number,
        parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"{c} is not JSON")),
        object_pairs_hook=lambda pairs: ("object", pairs),
    )


def compare(a, b, notes, path="$"):
    """Compares two JSON trees. Allowed, and noted: objects whose members come in another
    order, and numbers spelled differently with the same decimal value (`1` and `1.0`,
    `1e+300` and `1e300`). Returns a description of the first other difference, or None."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        ka, kb = [k for k, _ in a[1]], [k for k, _ in b[1]]
        if len(set(ka)) != len(ka) or sorted(ka) != sorted(kb):
            return f"{path}: members {ka} vs {kb}"
        if ka != kb:
            notes.add("member order")
        db = dict(b[1])
        for k, v in a[1]:
            d = compare(v, db[k], notes, f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} elements vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = compare(x, y, notes, f"{path}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, Number) and isinstance(b, Number):
        if a.text == b.text:
            return None
        try:
            if Decimal(a.text) == Decimal(b.text):
                notes.add("number spelling")
                return None
            if as_float32(a.text) == as_float32(b.text):
                notes.add("float32 spelling")
                return None
        except (InvalidOperation, OverflowError):
            pass
        return f"{path}: {a.text} vs {b.text}"
    if type(a) is type(b) and a == b:
        return None
    return f"{path}: {a!r} vs {b!r}"


def as_float32(text):
    """The float32 nearest to the decimal `text` (two spellings of one `float` field value
    differ beyond the digits a float32 holds: `1e-45` and `1.4013e-45`)."""
    return struct.unpack("<f", struct.pack("<f", float(text)))[0]


def same_message(a, b):
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


def run(case, message_class):
    cls = message_class(case["type"])
    kind = case["kind"]
    result = {"id": case["id"]}
    if kind == "print":
        original = cls.FromString(base64.b64decode(case["binary"]))
        theirs = json_format.MessageToJson(original, indent=None)
        result["reference_json"] = theirs
        notes = set()
        try:
            read = json_format.Parse(case["json"], cls())
        except json_format.ParseError as e:
            try:
                json_format.Parse(theirs, cls())
                result["problem"] = f"json_format cannot read portway's JSON: {e}"
                return result
            except json_format.ParseError:
                # Its own JSON for the message fails the same way: the reference's defect.
                notes.add("the reference cannot read its own JSON either")
                read = original
        if not same_message(read, original):
            result["problem"] = f"json_format reads portway's JSON as a different message: {read}"
            return result
        diff = compare(tokens(case["json"]), tokens(theirs), notes)
        if diff:
            result["problem"] = f"the two printers differ at {diff}: portway {case['json']} reference {theirs}"
        result["notes"] = sorted(notes)
    elif kind == "accept":
        try:
            read = json_format.Parse(case["json"], cls())
        except json_format.ParseError as e:
            result["problem"] = f"json_format refuses an input portway accepts: {e}"
            return result
        ours = cls.FromString(base64.b64decode(case["binary"]))
        if not same_message(read, ours):
            result["problem"] = f"json_format reads it as {read!r}, portway as {ours!r}"
    elif kind == "refuse":
        try:
            read = json_format.Parse(case["json"], cls())
            result["problem"] = f"json_format accepts an input portway refuses, as {read!r}"
        except (json_format.ParseError, RecursionError) as e:
            result["reference_error"] = str(e)
    elif kind == "stricter":
        # Refused by portway on purpose, accepted by this reference (the reason is in the
        # corpus); if the reference starts refusing it too, the case belongs in "refuse".
        try:
            json_format.Parse(case["json"], cls())
        except (json_format.ParseError, RecursionError) as e:
            result["problem"] = f"the reference now refuses it too ({e}): move it to the refused inputs"
    return result


def main():
    work = sys.argv[1]
    with open(f"{work}/cases.json") as f:
        request = json.load(f)
    message_class = load_classes(f"{work}/descriptors.bin", set(request["files"]))
    results = [run(case, message_class) for case in request["cases"]]
    with open(f"{work}/results.json", "w") as f:
        json.dump({"protobuf": PROTOBUF_VERSION, "results": results}, f)


if __name__ == "__main__":
    main()
