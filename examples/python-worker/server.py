"""A Python gRPC worker: runs commands and streams their progress, keeps sessions with state,
serves health checking and server reflection. Nothing in it knows about portway.

    python server.py [--port N]     (prints `listening PORT`)
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent import futures

import grpc
import grpc_tools
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent


def generate():
    """Compiles proto/ with grpcio-tools' protoc into a temporary directory on sys.path."""
    out = tempfile.mkdtemp(prefix="python-worker-")
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"-I{HERE / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main([*args, "worker/v1/worker.proto"]) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)


generate()
from worker.v1 import worker_pb2, worker_pb2_grpc  # noqa: E402

PROGRAMS = {"echo", "printenv", "date", "uname", "seq"}
MAX_RUN_SECONDS = 30


class Worker(worker_pb2_grpc.WorkerServicer):
    def __init__(self):
        self.sessions = {}
        self.lock = threading.Lock()

    def session(self, session_id, context):
        with self.lock:
            s = self.sessions.get(session_id)
        if s is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no session {session_id!r}")
        return s

    def CreateSession(self, request, context):
        created = timestamp_pb2.Timestamp()
        created.GetCurrentTime()
        s = worker_pb2.Session(id=uuid.uuid4().hex[:12], name=request.name, created=created)
        with self.lock:
            self.sessions[s.id] = s
        return s

    def SetVariable(self, request, context):
        if not request.name or not request.name.replace("_", "").isalnum():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a variable name is letters, digits and _")
        s = self.session(request.session_id, context)
        with self.lock:
            s.variables[request.name] = request.value
            return worker_pb2.Session().FromString(s.SerializeToString())

    def GetSession(self, request, context):
        s = self.session(request.session_id, context)
        with self.lock:
            return worker_pb2.Session().FromString(s.SerializeToString())

    def Run(self, request, context):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        if request.session_id:
            s = self.session(request.session_id, context)
            with self.lock:
                env.update(s.variables)
                s.runs += 1
        if request.command == "countdown":
            yield from self.countdown(request, context)
        elif request.command in PROGRAMS:
            yield from self.program(request, env, context)
        else:
            allowed = ", ".join(sorted(PROGRAMS | {"countdown"}))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown command {request.command!r}: use one of {allowed}")

    def countdown(self, request, context):
        try:
            total = int(request.args[0]) if request.args else 5
        except ValueError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "countdown takes a number of steps")
        total = max(0, min(total, 100))
        for done in range(total + 1):
            if not context.is_active():
                return
            yield worker_pb2.RunEvent(progress=worker_pb2.Progress(done=done, total=total))
            if done < total:
                yield worker_pb2.RunEvent(output=f"{total - done}...")
                time.sleep(0.1)
        yield worker_pb2.RunEvent(output="liftoff")
        yield worker_pb2.RunEvent(exit_code=0)

    def program(self, request, env, context):
        proc = subprocess.Popen(
            [request.command, *request.args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        # A client that goes away kills the command.
        context.add_callback(lambda: proc.poll() is None and proc.kill())
        timer = threading.Timer(MAX_RUN_SECONDS, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                yield worker_pb2.RunEvent(output=line.rstrip("\n"))
            yield worker_pb2.RunEvent(exit_code=proc.wait())
        finally:
            timer.cancel()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=50051)
    args = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    worker_pb2_grpc.add_WorkerServicer_to_server(Worker(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    name = worker_pb2.DESCRIPTOR.services_by_name["Worker"].full_name
    health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((name, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"listening {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
