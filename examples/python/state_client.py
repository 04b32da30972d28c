"""Run with: examples/python/setup.sh && examples/python/.venv/bin/python examples/python/state_client.py 127.0.0.1:8080

An asyncio grpcio client of portway's state store, with its modules generated from proto/ by
setup.sh. Errors become Python exceptions that carry the typed details the server sent:
a compare-and-set that does not hold raises Conflict (with the key's current revision), a
read or watch at a revision outside the log raises Compacted (with the oldest revision
still in the log).
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402
from google.rpc import status_pb2  # noqa: E402
from portway.state.v1 import state_pb2, state_pb2_grpc  # noqa: E402


class StateError(Exception):
    """A failed call: the gRPC code, its message, and the typed details."""

    def __init__(self, code, message, details):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.details = details


class Conflict(StateError):
    """FAILED_PRECONDITION: a compare-and-set did not hold (`detail`: a ConflictDetail)."""

    detail: state_pb2.ConflictDetail


class Compacted(StateError):
    """OUT_OF_RANGE: the revision is no longer in the log (`detail`: a CompactedDetail)."""

    detail: state_pb2.CompactedDetail


DETAIL_TYPES = {
    "portway.state.v1.ConflictDetail": state_pb2.ConflictDetail,
    "portway.state.v1.CompactedDetail": state_pb2.CompactedDetail,
    "portway.state.v1.WatchLaggedDetail": state_pb2.WatchLaggedDetail,
    "portway.state.v1.LimitDetail": state_pb2.LimitDetail,
}


def state_error(err: grpc.aio.AioRpcError) -> StateError:
    """Maps an RPC error to an exception, decoding `grpc-status-details-bin`."""
    details = []
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for any_ in status.details:
                cls = DETAIL_TYPES.get(any_.TypeName())
                if cls is not None:
                    detail = cls()
                    any_.Unpack(detail)
                    details.append(detail)
    kind = {grpc.StatusCode.FAILED_PRECONDITION: Conflict, grpc.StatusCode.OUT_OF_RANGE: Compacted}.get(err.code(), StateError)
    exc = kind(err.code(), err.details(), details)
    if kind is not StateError:
        exc.detail = next((d for d in details if type(d).__name__ == kind.__name__ + "Detail"), None)
    return exc


class State:
    """A thin wrapper whose calls raise StateError subclasses instead of AioRpcError."""

    def __init__(self, channel):
        self.stub = state_pb2_grpc.StateServiceStub(channel)

    async def put(self, key, value, expected_revision=None):
        req = state_pb2.PutRequest(key=key, value=to_value(value))
        if expected_revision is not None:
            req.expected_revision = expected_revision
        try:
            return await self.stub.Put(req)
        except grpc.aio.AioRpcError as err:
            raise state_error(err) from None

    async def get(self, key, revision=0):
        try:
            return await self.stub.Get(state_pb2.GetRequest(key=key, revision=revision))
        except grpc.aio.AioRpcError as err:
            raise state_error(err) from None

    async def watch(self, prefix, start_revision=0):
        try:
            async for msg in self.stub.Watch(state_pb2.WatchRequest(key=prefix, prefix=True, start_revision=start_revision)):
                yield msg
        except grpc.aio.AioRpcError as err:
            raise state_error(err) from None


def to_value(v):
    value = struct_pb2.Value()
    if isinstance(v, str):
        value.string_value = v
    elif isinstance(v, bool):
        value.bool_value = v
    elif isinstance(v, (int, float)):
        value.number_value = v
    else:
        raise TypeError(f"not a simple JSON value: {v!r}")
    return value


async def main(target):
    prefix = f"examples/python/{os.getpid()}/"
    async with grpc.aio.insecure_channel(target) as channel:
        state = State(channel)
        first = await state.put(prefix + "doc", "hello")
        print(f"put {prefix}doc at revision {first.revision}")

        # Watch from the first write: the log replays it, then live events follow.
        watch = state.watch(prefix, start_revision=first.revision)
        created = await watch.__anext__()
        print(f"watch created at revision {created.revision}")
        second = await state.put(prefix + "doc", "again", expected_revision=first.revision)
        seen = []
        while len(seen) < 2:
            msg = await watch.__anext__()
            seen += [e.entry.mod_revision for e in msg.events]
        print(f"watch saw revisions {seen}")
        assert seen == [first.revision, second.revision], seen
        await watch.aclose()

        try:
            await state.put(prefix + "doc", "stale", expected_revision=first.revision)
            raise SystemExit("the stale compare-and-set succeeded")
        except Conflict as err:
            print(f"Conflict: {err} -> key {err.detail.key!r} is at {err.detail.current_revision}, expected {err.detail.expected_revision}")
            assert err.detail.current_revision == second.revision

        # A read at a revision that is not in the log (compacted, or here not yet written):
        # OUT_OF_RANGE with a CompactedDetail.
        try:
            await state.get(prefix + "doc", revision=second.revision + 1_000_000)
            raise SystemExit("a read from the future succeeded")
        except Compacted as err:
            print(f"Compacted: {err} -> oldest {err.detail.oldest_revision}, current {err.detail.current_revision}")
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080"))
