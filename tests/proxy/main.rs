//! Proxy mode against real gRPC servers in other languages (tests/upstream/): grpcio (Python)
//! and @grpc/grpc-js (Node), started by the tests on port 0.

mod backpressure;
mod binary;
mod clients;
#[path = "../common/mod.rs"]
mod common;
mod discovery;
mod endpoints;
mod failures;
mod forward;
mod gateway;
mod parity;
mod semantics;
mod tls;
mod upstream;
