"""grpcio (Python, on gRPC C-core) against portway: gRPC's interop test cases
(doc/interop-test-descriptions.md in the gRPC repository), each against `--interop` with and
without `--max-call-timeout-ms`, and the status matrix.

Run from the repository root with the venv's python, after gen.py.
"""

import os
import queue
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__)))
sys.path.insert(0, os.path.join(os.environ.get("INTEROP_GEN", "tests/interop/gen"), "py"))

import grpc  # noqa: E402

from harness import Portway, Results, check, main_guard  # noqa: E402
from ixpb.grpc.testing import empty_pb2, messages_pb2, test_pb2_grpc  # noqa: E402
from matrix import CODES, KINDS, matrix_message  # noqa: E402

M = messages_pb2
GZIP = grpc.Compression.Gzip
NONE = grpc.Compression.NoCompression
# Long enough that no case runs out of time on a loaded machine; `deadline` variants only
# need a deadline to be present.
TIMEOUT = 30
SPECIAL = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
NO_FLAG = "grpcio does not expose the compressed-message flag; the flag is checked by raw-h2"


def zeros(n):
    return M.Payload(body=bytes(n))


def expect_error(code, fn, message=None):
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, f"expected {code.name}, got {e.code().name}: {e.details()!r}")
        if message is not None:
            check(e.details() == message, f"expected message {message!r}, got {e.details()!r}")
        return
    raise AssertionError(f"expected {code.name}, the call succeeded")


class Requests:
    """A request iterator the test feeds one message at a time (for ping-pong)."""

    def __init__(self):
        self.q = queue.Queue()

    def send(self, msg):
        self.q.put(msg)

    def close(self):
        self.q.put(None)

    def __iter__(self):
        while (msg := self.q.get()) is not None:
            yield msg


def cases(stub, unimplemented):
    def empty_unary():
        check(stub.EmptyCall(empty_pb2.Empty(), timeout=TIMEOUT) == empty_pb2.Empty(), "response is not Empty")

    def large_unary():
        r = stub.UnaryCall(M.SimpleRequest(response_size=314159, payload=zeros(271828)), timeout=TIMEOUT)
        check(r.payload.body == bytes(314159), f"payload of {len(r.payload.body)} bytes")

    def client_compressed_unary():
        def req(expect):
            return M.SimpleRequest(
                expect_compressed=M.BoolValue(value=expect), response_size=314159, payload=zeros(271828)
            )

        expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.UnaryCall(req(True), timeout=TIMEOUT, compression=NONE)
        )
        for expect, compression in ((True, GZIP), (False, NONE)):
            r = stub.UnaryCall(req(expect), timeout=TIMEOUT, compression=compression)
            check(len(r.payload.body) == 314159, f"payload of {len(r.payload.body)} bytes")

    def server_compressed_unary():
        for flag in (True, False):
            r = stub.UnaryCall(
                M.SimpleRequest(response_compressed=M.BoolValue(value=flag), response_size=314159, payload=zeros(271828)),
                timeout=TIMEOUT,
            )
            check(r.payload.body == bytes(314159), f"payload of {len(r.payload.body)} bytes")
        return NO_FLAG

    def client_streaming():
        sizes = (27182, 8, 1828, 45904)
        r = stub.StreamingInputCall(iter([M.StreamingInputCallRequest(payload=zeros(n)) for n in sizes]), timeout=TIMEOUT)
        check(r.aggregated_payload_size == 74922, f"aggregated {r.aggregated_payload_size}")

    def client_compressed_streaming():
        probe = M.StreamingInputCallRequest(expect_compressed=M.BoolValue(value=True), payload=zeros(27182))
        expect_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            lambda: stub.StreamingInputCall(iter([probe]), timeout=TIMEOUT, compression=NONE),
        )
        second = M.StreamingInputCallRequest(expect_compressed=M.BoolValue(value=False), payload=zeros(45904))
        r = stub.StreamingInputCall(iter([probe, second]), timeout=TIMEOUT, compression=GZIP)
        check(r.aggregated_payload_size == 73086, f"aggregated {r.aggregated_payload_size}")
        return "grpcio compresses per call, not per message: the second message is compressed too"

    def server_streaming():
        sizes = [31415, 9, 2653, 58979]
        req = M.StreamingOutputCallRequest(response_parameters=[M.ResponseParameters(size=n) for n in sizes])
        got = [len(r.payload.body) for r in stub.StreamingOutputCall(req, timeout=TIMEOUT)]
        check(got == sizes, f"response sizes {got}")

    def server_compressed_streaming():
        req = M.StreamingOutputCallRequest(
            response_parameters=[
                M.ResponseParameters(size=31415, compressed=M.BoolValue(value=True)),
                M.ResponseParameters(size=92653, compressed=M.BoolValue(value=False)),
            ]
        )
        got = [len(r.payload.body) for r in stub.StreamingOutputCall(req, timeout=TIMEOUT)]
        check(got == [31415, 92653], f"response sizes {got}")
        return NO_FLAG

    def ping_pong():
        pairs = [(31415, 27182), (9, 8), (2653, 1828), (58979, 45904)]
        reqs = Requests()
        responses = stub.FullDuplexCall(iter(reqs), timeout=TIMEOUT)
        got = []
        for size, body in pairs:
            reqs.send(M.StreamingOutputCallRequest(response_parameters=[M.ResponseParameters(size=size)], payload=zeros(body)))
            got.append(len(next(responses).payload.body))
        reqs.close()
        rest = list(responses)
        check(got == [p[0] for p in pairs] and not rest, f"response sizes {got}, then {len(rest)} more")

    def empty_stream():
        got = list(stub.FullDuplexCall(iter([]), timeout=TIMEOUT))
        check(got == [], f"{len(got)} responses")

    def custom_metadata():
        md = (("x-grpc-test-echo-initial", "test_initial_metadata_value"), ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab"))

        def verify(initial, trailing):
            initial, trailing = dict(initial), dict(trailing)
            check(initial.get("x-grpc-test-echo-initial") == "test_initial_metadata_value", f"initial metadata {initial}")
            check(trailing.get("x-grpc-test-echo-trailing-bin") == b"\xab\xab\xab", f"trailing metadata {trailing}")

        r, call = stub.UnaryCall.with_call(
            M.SimpleRequest(response_size=314159, payload=zeros(271828)), metadata=md, timeout=TIMEOUT
        )
        check(len(r.payload.body) == 314159, "unary payload size")
        verify(call.initial_metadata(), call.trailing_metadata())
        req = M.StreamingOutputCallRequest(response_parameters=[M.ResponseParameters(size=314159)], payload=zeros(271828))
        responses = stub.FullDuplexCall(iter([req]), metadata=md, timeout=TIMEOUT)
        got = [len(r.payload.body) for r in responses]
        check(got == [314159], f"stream response sizes {got}")
        verify(responses.initial_metadata(), responses.trailing_metadata())

    def status_with(message):
        def run():
            status = M.EchoStatus(code=2, message=message)
            expect_error(
                grpc.StatusCode.UNKNOWN, lambda: stub.UnaryCall(M.SimpleRequest(response_status=status), timeout=TIMEOUT), message
            )
            req = M.StreamingOutputCallRequest(response_status=status)
            expect_error(grpc.StatusCode.UNKNOWN, lambda: list(stub.FullDuplexCall(iter([req]), timeout=TIMEOUT)), message)

        return run

    def unimplemented_method():
        expect_error(grpc.StatusCode.UNIMPLEMENTED, lambda: stub.UnimplementedCall(empty_pb2.Empty(), timeout=TIMEOUT))

    def unimplemented_service():
        expect_error(grpc.StatusCode.UNIMPLEMENTED, lambda: unimplemented.UnimplementedCall(empty_pb2.Empty(), timeout=TIMEOUT))

    def cancel_after_begin():
        reqs = Requests()  # never sends: the call is cancelled before its first message
        future = stub.StreamingInputCall.future(iter(reqs), timeout=TIMEOUT)
        future.cancel()
        reqs.close()
        check(future.cancelled(), "the future is not cancelled")
        check(future.code() == grpc.StatusCode.CANCELLED, f"status {future.code()}")

    def cancel_after_first_response():
        reqs = Requests()
        responses = stub.FullDuplexCall(iter(reqs), timeout=TIMEOUT)
        reqs.send(M.StreamingOutputCallRequest(response_parameters=[M.ResponseParameters(size=31415)], payload=zeros(27182)))
        first = next(responses)
        check(len(first.payload.body) == 31415, "first response size")
        responses.cancel()
        reqs.close()
        check(responses.code() == grpc.StatusCode.CANCELLED, f"status {responses.code()}")

    def timeout_on_sleeping_server():
        reqs = Requests()
        reqs.send(M.StreamingOutputCallRequest(payload=zeros(27182)))
        try:
            expect_error(grpc.StatusCode.DEADLINE_EXCEEDED, lambda: list(stub.FullDuplexCall(iter(reqs), timeout=0.001)))
        finally:
            reqs.close()

    return {
        "empty_unary": empty_unary,
        "large_unary": large_unary,
        "client_compressed_unary": client_compressed_unary,
        "server_compressed_unary": server_compressed_unary,
        "client_streaming": client_streaming,
        "client_compressed_streaming": client_compressed_streaming,
        "server_streaming": server_streaming,
        "server_compressed_streaming": server_compressed_streaming,
        "ping_pong": ping_pong,
        "empty_stream": empty_stream,
        "custom_metadata": custom_metadata,
        "status_code_and_message": status_with("test status message"),
        "special_status_message": status_with(SPECIAL),
        "unimplemented_method": unimplemented_method,
        "unimplemented_service": unimplemented_service,
        "cancel_after_begin": cancel_after_begin,
        "cancel_after_first_response": cancel_after_first_response,
        "timeout_on_sleeping_server": timeout_on_sleeping_server,
    }


def matrix_case(stub, code, kind, deadline):
    timeout = TIMEOUT if deadline else None
    message = matrix_message(code)
    status = M.EchoStatus(code=code, message=message)
    if kind == "unary":
        call = lambda: stub.UnaryCall(M.SimpleRequest(response_status=status), timeout=timeout)  # noqa: E731
    elif kind == "server_stream":
        call = lambda: list(stub.StreamingOutputCall(M.StreamingOutputCallRequest(response_status=status), timeout=timeout))  # noqa: E731
    else:
        req = M.StreamingOutputCallRequest(response_status=status)
        call = lambda: list(stub.FullDuplexCall(iter([req]), timeout=timeout))  # noqa: E731
    expected = next(c for c in grpc.StatusCode if c.value[0] == code)
    return lambda: expect_error(expected, call, message)


def suite(results, label, *server_args):
    server = Portway(*server_args)
    try:
        with grpc.insecure_channel(server.addr) as channel:
            stub = test_pb2_grpc.TestServiceStub(channel)
            unimplemented = test_pb2_grpc.UnimplementedServiceStub(channel)
            for name, fn in cases(stub, unimplemented).items():
                results.run(f"grpcio/{name}{label}", fn)
            if not label:
                for kind in KINDS:
                    for deadline in (True, False):
                        for code in CODES:
                            dl = "deadline" if deadline else "none"
                            results.run(f"grpcio/status/{kind}/{dl}/{code}", matrix_case(stub, code, kind, deadline))
    finally:
        server.stop()


def main():
    results = Results("grpcio")
    threads = [
        threading.Thread(target=suite, args=(results, "")),
        threading.Thread(target=suite, args=(results, "@capped", "--max-call-timeout-ms", "60000")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.write()


if __name__ == "__main__":
    main_guard(main)
