"""A grpcio (Python) upstream for portway's proxy tests: gRPC's interop `TestService` (all four
RPC kinds, the interop metadata echo, any status on request), `portway.upstream.Echo`
(tests/upstream/proto/v1 or, with `--echo v2`, v2, which adds a method), server reflection
(grpcio-reflection serves v1alpha only), and health checking.

    python server.py [--port N | --unix PATH] [--echo v1|v2] [--tls-cert PEM --tls-key PEM]

Prints `listening PORT` (or `listening unix:PATH`) once it serves, and, for every message a
server stream sends, `sent N` (N counts that stream's messages), so a test can watch how far
a stream got, and `cancelled` when a server stream's client went away. A call with the
metadata `x-upstream-deadline-ms` gets back, in that initial metadata, the time it had left
(ms, or `none`). Stops on SIGTERM or when stdin closes.
"""

import argparse
import os
import pathlib
import signal
import sys
import tempfile
import threading
import time
from concurrent import futures

sys.path.insert(0, os.path.dirname(__file__))

import grpc  # noqa: E402
from google.protobuf import any_pb2  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection  # noqa: E402

import gen  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[3]
parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--unix")
parser.add_argument("--echo", default="v1", choices=["v1", "v2"])
parser.add_argument("--tls-cert", help="serve TLS with this certificate chain (PEM)")
parser.add_argument("--tls-key", help="and this private key (PEM)")
ARGS = parser.parse_args()
GEN = tempfile.mkdtemp(prefix="portway-upstream-py-")
gen.generate(
    GEN,
    ROOT / "proto",
    ["grpc/testing/empty.proto", "grpc/testing/messages.proto", "grpc/testing/test.proto", "google/rpc/status.proto"],
)
gen.generate(GEN, ROOT / "tests/upstream/proto" / ARGS.echo, ["portway/upstream/echo.proto"])
from uppb.google.rpc import status_pb2  # noqa: E402
from uppb.grpc.testing import empty_pb2, messages_pb2, test_pb2, test_pb2_grpc  # noqa: E402
from uppb.portway.upstream import echo_pb2  # noqa: E402

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
# Asks for a `google.rpc.Status` with one detail (a grpc.testing.Empty) on an error status.
WANT_DETAILS = "x-upstream-details"
# Asks for the call's remaining time (ms, or `none`) in this initial metadata key.
REPORT_DEADLINE = "x-upstream-deadline-ms"
OUT = threading.Lock()


def say(line):
    with OUT:
        print(line, flush=True)


def echo(context):
    md = dict(context.invocation_metadata())
    initial = []
    if ECHO_INITIAL in md:
        initial.append((ECHO_INITIAL, md[ECHO_INITIAL]))
    if REPORT_DEADLINE in md:
        remaining = context.time_remaining()
        # Without a deadline grpcio answers None, or a time of centuries.
        unbounded = remaining is None or remaining > 1e7
        initial.append((REPORT_DEADLINE, "none" if unbounded else str(int(remaining * 1000))))
    if initial:
        context.send_initial_metadata(tuple(initial))
    if ECHO_TRAILING in md:
        context.set_trailing_metadata(((ECHO_TRAILING, md[ECHO_TRAILING]),))
    return md


def fail(context, md, status):
    """Ends the call with `status` (an EchoStatus), with details if asked."""
    trailing = []
    if ECHO_TRAILING in md:
        trailing.append((ECHO_TRAILING, md[ECHO_TRAILING]))
    if WANT_DETAILS in md:
        detail = any_pb2.Any(type_url="type.googleapis.com/grpc.testing.Empty", value=b"\xde\xad\xbe\xef")
        rich = status_pb2.Status(code=status.code, message=status.message, details=[detail])
        trailing.append(("grpc-status-details-bin", rich.SerializeToString()))
    context.set_trailing_metadata(tuple(trailing))
    code = next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)
    context.abort(code, status.message)


def payload(size):
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


class TestService(test_pb2_grpc.TestServiceServicer):
    def EmptyCall(self, request, context):
        echo(context)
        return empty_pb2.Empty()

    def UnaryCall(self, request, context):
        md = echo(context)
        if request.response_status.code != 0:
            fail(context, md, request.response_status)
        return messages_pb2.SimpleResponse(payload=payload(request.response_size))

    def CacheableUnaryCall(self, request, context):
        return self.UnaryCall(request, context)

    def StreamingOutputCall(self, request, context):
        md = echo(context)
        finished = threading.Event()
        # Runs when the call ends, however it ends: not finished means the client left.
        context.add_callback(lambda: None if finished.is_set() else say("cancelled"))
        sent = 0
        for p in request.response_parameters:
            if p.interval_us:
                time.sleep(p.interval_us / 1e6)
            if not context.is_active():
                return
            yield messages_pb2.StreamingOutputCallResponse(payload=payload(p.size))
            sent += 1
            say(f"sent {sent}")
        finished.set()
        if request.response_status.code != 0:
            fail(context, md, request.response_status)

    def StreamingInputCall(self, request_iterator, context):
        echo(context)
        total = sum(len(r.payload.body) for r in request_iterator)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        md = echo(context)
        for request in request_iterator:
            if request.response_status.code != 0:
                fail(context, md, request.response_status)
            for p in request.response_parameters:
                if p.interval_us:
                    time.sleep(p.interval_us / 1e6)
                yield messages_pb2.StreamingOutputCallResponse(payload=payload(p.size))

    def HalfDuplexCall(self, request_iterator, context):
        md = echo(context)
        requests = list(request_iterator)
        for request in requests:
            if request.response_status.code != 0:
                fail(context, md, request.response_status)
            for p in request.response_parameters:
                yield messages_pb2.StreamingOutputCallResponse(payload=payload(p.size))


def echo_service():
    """`portway.upstream.Echo`; `Reflect` answers the request's bytes unchanged."""

    def say(request, context, shout=False):
        echo(context)
        text = request.text.upper() if shout else request.text
        return echo_pb2.SayResponse(text=text, length=len(request.text))

    def reflect(request, context):
        echo(context)
        return request

    unary = grpc.unary_unary_rpc_method_handler
    say_handler = unary(say, echo_pb2.SayRequest.FromString, echo_pb2.SayResponse.SerializeToString)
    handlers = {"Say": say_handler, "Reflect": unary(reflect)}
    if "Shout" in echo_pb2.DESCRIPTOR.services_by_name["Echo"].methods_by_name:
        handlers["Shout"] = unary(
            lambda r, c: say(r, c, shout=True), echo_pb2.SayRequest.FromString, echo_pb2.SayResponse.SerializeToString
        )
    return grpc.method_handlers_generic_handler("portway.upstream.Echo", handlers)


def main():
    args = ARGS
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    test_pb2_grpc.add_TestServiceServicer_to_server(TestService(), server)
    server.add_generic_rpc_handlers((echo_service(),))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    services = (
        test_pb2.DESCRIPTOR.services_by_name["TestService"].full_name,
        echo_pb2.DESCRIPTOR.services_by_name["Echo"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    for name in services[:3]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(services, server)
    if args.unix:
        server.add_insecure_port(f"unix:{args.unix}")
        where = f"unix:{args.unix}"
    elif args.tls_cert:
        with open(args.tls_key, "rb") as k, open(args.tls_cert, "rb") as c:
            credentials = grpc.ssl_server_credentials([(k.read(), c.read())])
        where = str(server.add_secure_port(f"127.0.0.1:{args.port}", credentials))
    else:
        where = str(server.add_insecure_port(f"127.0.0.1:{args.port}"))
    server.start()
    say(f"listening {where}")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    server.stop(grace=None)


if __name__ == "__main__":
    main()
