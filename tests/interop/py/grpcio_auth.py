"""grpcio (Python, on gRPC C-core) against portway with API keys (tests/interop/auth-keys.toml):
the authentication matrix (no key, a wrong key, a key without the method, expired and
replayed signatures, valid keys and signatures), the exempt health service, and a per-key
rate limit that is hit and recovers. Signatures are computed here from docs/auth.md.

Run from the repository root with the venv's python, after gen.py.
"""

import hashlib
import hmac
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__)))
sys.path.insert(0, os.path.join(os.environ.get("INTEROP_GEN", "tests/interop/gen"), "py"))

import grpc  # noqa: E402

from harness import Portway, Results, check, main_guard  # noqa: E402
from ixpb.grpc.testing import empty_pb2, messages_pb2, test_pb2_grpc  # noqa: E402

KEYS = os.path.join(os.path.dirname(__file__), "..", "auth-keys.toml")
UNARY = "/grpc.testing.TestService/UnaryCall"
TIMEOUT = 30
S = grpc.StatusCode


def request():
    return messages_pb2.SimpleRequest(response_size=3)


def signed(key, key_id, path, timestamp, content):
    """The signature metadata of one call, as docs/auth.md defines it."""
    secret = hashlib.sha256(key.encode()).digest()
    nonce = uuid.uuid4().hex
    text = f"PORTWAY-HMAC-SHA256\n{timestamp}\n{nonce}\n{path}\n{content}"
    signature = hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()
    return [
        ("x-portway-key-id", key_id),
        ("x-portway-timestamp", str(timestamp)),
        ("x-portway-nonce", nonce),
        ("x-portway-content-sha256", content),
        ("x-portway-signature", signature),
    ]


def body_digest():
    return hashlib.sha256(request().SerializeToString()).hexdigest()


def expect(code, fn):
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, f"expected {code.name}, got {e.code().name}: {e.details()!r}")
        return e
    check(code == S.OK, f"expected {code.name}, the call succeeded")
    return None


def cases(stub, health):
    def unary(md):
        return lambda: stub.UnaryCall(request(), metadata=md, timeout=TIMEOUT)

    def replayed():
        md = signed("interop-signer-key", "signer", UNARY, int(time.time()), body_digest())
        expect(S.OK, unary(md))
        e = expect(S.UNAUTHENTICATED, unary(md))
        check("already used" in e.details(), e.details())

    def rate_limit():
        md = [("x-api-key", "interop-rate-key-0")]
        for _ in range(2):
            expect(S.OK, unary(md))
        e = expect(S.RESOURCE_EXHAUSTED, unary(md))
        m = re.search(r"retry in (\d+) ms", e.details())
        check(m, f"no retry hint in {e.details()!r}")
        retry = dict(e.trailing_metadata() or ()).get("retry-after")
        check(retry == "1", f"retry-after {retry!r}")
        time.sleep(int(m.group(1)) / 1000)
        expect(S.OK, unary(md))

    now = int(time.time())
    return {
        "none": lambda: expect(S.UNAUTHENTICATED, unary([])),
        "wrong_key": lambda: expect(S.UNAUTHENTICATED, unary([("authorization", "Bearer not-a-key")])),
        "no_permission": lambda: expect(S.PERMISSION_DENIED, unary([("x-api-key", "interop-digest-key")])),
        "digest_key_on_its_method": lambda: expect(
            S.OK, lambda: stub.EmptyCall(empty_pb2.Empty(), metadata=[("x-api-key", "interop-digest-key")])
        ),
        "valid_bearer": lambda: expect(S.OK, unary([("authorization", "Bearer interop-full-key")])),
        "valid_x_api_key": lambda: expect(S.OK, unary([("x-api-key", "interop-full-key")])),
        "unsigned_with_signing_key": lambda: expect(S.UNAUTHENTICATED, unary([("x-api-key", "interop-signer-key")])),
        "expired_signature": lambda: expect(
            S.UNAUTHENTICATED, unary(signed("interop-signer-key", "signer", UNARY, now - 600, body_digest()))
        ),
        "tampered_body": lambda: expect(
            S.UNAUTHENTICATED,
            unary(signed("interop-signer-key", "signer", UNARY, now, hashlib.sha256(b"x").hexdigest())),
        ),
        "replayed_signature": replayed,
        # An empty HealthCheckRequest is zero bytes: no stub needed.
        "health_exempt": lambda: expect(S.OK, lambda: health(b"", timeout=TIMEOUT)),
        "rate_limit": rate_limit,
    }


def main():
    results = Results("grpcio-auth")
    server = Portway("--api-keys", KEYS)
    try:
        with grpc.insecure_channel(server.addr) as channel:
            stub = test_pb2_grpc.TestServiceStub(channel)
            health = channel.unary_unary("/grpc.health.v1.Health/Check")
            for name, fn in cases(stub, health).items():
                # The case's result is its outcome, not a note.
                results.run(f"grpcio/auth/{name}", lambda fn=fn: (fn(), None)[1])
    finally:
        server.stop()
    results.write()


if __name__ == "__main__":
    main_guard(main)
