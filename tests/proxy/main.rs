//! Proxy mode against real gRPC servers in other languages (tests/upstream/): grpcio (Python)
//! and @grpc/grpc-js (Node), started by the tests on port 0.

mod discovery;
mod upstream;
