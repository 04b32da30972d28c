//! The invoker: what an adapter needs to reach a service, and nothing more. It holds the
//! service stack and the method table, says whether a path names a method the JSON
//! protocols can reach ([`Invoker::resolve`], the one place that tells an unknown service
//! from an unknown method), and starts in-process calls ([`Invoker::start`]).

use std::sync::Arc;

use http::Request;
use tonic::Status;
use tonic::body::Body;
use tower::ServiceExt as _;
use tower::util::Oneshot;

use super::call::{self, Call, CallSetup, RequestMessages};
use super::method::{MethodDescriptor, SharedMethods};
use super::stack::{GrpcService, GrpcStack};

/// The stack and the method table; cheap to clone.
#[derive(Clone)]
pub struct Invoker<S = GrpcStack> {
    stack: S,
    methods: SharedMethods,
}

impl<S> Invoker<S> {
    /// An invoker that calls `stack` and transcodes with `methods` (the table current when a
    /// call starts).
    pub fn new(stack: S, methods: SharedMethods) -> Self {
        Self { stack, methods }
    }

    /// The method at `path`, or the `UNIMPLEMENTED` status that names what is missing:
    /// the whole service, or only the method.
    pub fn resolve(&self, path: &str) -> Result<Arc<MethodDescriptor>, Status> {
        let methods = self.methods.load();
        methods.get(path).cloned().ok_or_else(|| {
            let service = path.trim_start_matches('/').split('/').next().unwrap_or_default();
            if methods.has_service(service) {
                Status::unimplemented(format!("unknown method {path}"))
            } else {
                Status::unimplemented(format!("unknown service {service}"))
            }
        })
    }
}

impl<S: GrpcService> Invoker<S> {
    /// Starts an in-process call (see [`call::start`]).
    pub async fn start(&self, setup: CallSetup, messages: RequestMessages, max_message: usize) -> Call {
        call::start(&self.stack, setup, messages, max_message).await
    }

    /// Sends a native gRPC request, already made, to the stack (for an adapter that
    /// transcodes a gRPC body as it streams rather than message by message).
    pub fn forward(&self, req: Request<Body>) -> Oneshot<S, Request<Body>> {
        self.stack.clone().oneshot(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_names_what_is_missing() {
        let invoker = Invoker::new((), SharedMethods::new(super::super::method::MethodTable::generated()));
        assert!(invoker.resolve("/grpc.testing.TestService/UnaryCall").is_ok());
        let method = invoker.resolve("/grpc.testing.TestService/Nope").unwrap_err();
        assert_eq!(method.message(), "unknown method /grpc.testing.TestService/Nope");
        let service = invoker.resolve("/no.Such/Thing").unwrap_err();
        assert_eq!(service.message(), "unknown service no.Such");
        assert_eq!(service.code(), tonic::Code::Unimplemented);
    }
}
