"""grpcio (Python, on gRPC C-core) over TLS against portway: `ssl_channel_credentials` with a
test CA (made with the openssl command line), every RPC kind; mutual TLS accepted and
refused; and `--tls-self-signed`, whose certificate (fetched with Python's `ssl`) must have
the fingerprint the server logged.

Run from the repository root with the venv's python, after gen.py.
"""

import hashlib
import os
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__)))
sys.path.insert(0, os.path.join(os.environ.get("INTEROP_GEN", "tests/interop/gen"), "py"))

import grpc  # noqa: E402

from harness import Portway, Results, check, main_guard  # noqa: E402
from ixpb.grpc.testing import messages_pb2, test_pb2_grpc  # noqa: E402

M = messages_pb2
TIMEOUT = 30


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A CA, a server certificate for localhost and 127.0.0.1, and a client certificate."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2", "-subj", "/CN=interop test CA", cwd=d)
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                      ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN={name}-1", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w", encoding="utf-8") as f:
            f.write(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


def read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


def channel(addr, credentials):
    # The certificate is for localhost; connect to the address, check the name.
    return grpc.secure_channel(addr, credentials, options=[("grpc.ssl_target_name_override", "localhost")])


def every_kind(stub):
    r = stub.UnaryCall(M.SimpleRequest(response_size=10), timeout=TIMEOUT)
    check(len(r.payload.body) == 10, "unary answer")
    params = [M.ResponseParameters(size=n) for n in (1, 2, 3)]
    sizes = [len(m.payload.body) for m in stub.StreamingOutputCall(
        M.StreamingOutputCallRequest(response_parameters=params), timeout=TIMEOUT)]
    check(sizes == [1, 2, 3], f"server stream sizes {sizes}")
    reqs = [M.StreamingOutputCallRequest(response_parameters=[M.ResponseParameters(size=n)]) for n in (4, 5)]
    sizes = [len(m.payload.body) for m in stub.FullDuplexCall(iter(reqs), timeout=TIMEOUT)]
    check(sizes == [4, 5], f"bidi sizes {sizes}")


def with_ca(results, d):
    server = Portway("--tls-cert", f"{d}/server.pem", "--tls-key", f"{d}/server-key.pem")
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=read(d, "ca.pem"))
        with channel(server.addr, creds) as ch:
            results.run("grpcio-tls/ca/every-kind", lambda: every_kind(test_pb2_grpc.TestServiceStub(ch)))
    finally:
        server.stop()


def mutual(results, d):
    server = Portway("--tls-cert", f"{d}/server.pem", "--tls-key", f"{d}/server-key.pem",
                     "--tls-client-ca", f"{d}/ca.pem")
    try:
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(d, "ca.pem"),
            private_key=read(d, "client-key.pem"),
            certificate_chain=read(d, "client.pem"))
        with channel(server.addr, creds) as ch:
            results.run("grpcio-tls/mtls/accepted", lambda: every_kind(test_pb2_grpc.TestServiceStub(ch)))

        def refused():
            creds = grpc.ssl_channel_credentials(root_certificates=read(d, "ca.pem"))
            with channel(server.addr, creds) as ch:
                try:
                    test_pb2_grpc.TestServiceStub(ch).UnaryCall(M.SimpleRequest(), timeout=10)
                except grpc.RpcError as e:
                    check(e.code() == grpc.StatusCode.UNAVAILABLE, f"expected UNAVAILABLE, got {e.code().name}")
                    return
                raise AssertionError("a client without a certificate was served")
        results.run("grpcio-tls/mtls/refused-without-certificate", refused)
    finally:
        server.stop()


def self_signed(results):
    server = Portway("--tls-self-signed")
    try:
        def case():
            host, port = server.addr.rsplit(":", 1)
            pem = ssl.get_server_certificate((host, int(port)))
            der = ssl.PEM_cert_to_DER_cert(pem)
            served = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
            logged = [line for line in server.seen if "TLS ready" in line]
            check(logged and f"fingerprint={served}" in logged[0], f"fingerprint {served} not in {logged}")
            # Trusting the one certificate, as a user who checked the fingerprint would.
            creds = grpc.ssl_channel_credentials(root_certificates=pem.encode())
            with channel(server.addr, creds) as ch:
                every_kind(test_pb2_grpc.TestServiceStub(ch))
        results.run("grpcio-tls/self-signed/fingerprint-and-calls", case)
    finally:
        server.stop()


def main():
    results = Results("grpcio-tls")
    with tempfile.TemporaryDirectory() as d:
        make_pki(d)
        with_ca(results, d)
        mutual(results, d)
        self_signed(results)
    results.write()


if __name__ == "__main__":
    main_guard(main)
