//! The contract of the service stack every adapter calls: native gRPC in, native gRPC out,
//! every error already a status.

use std::convert::Infallible;

use http::{Request, Response};
use tonic::body::Body;
use tower::Service;
use tower::util::BoxCloneSyncService;

/// The service stack every protocol ends in, boxed once: the gateway's layers, the
/// caller's layers, the caller's service. Errors are already gRPC statuses at this point
/// (`Infallible`): the gateway recovers the caller's service errors at the bottom.
pub type GrpcStack = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// A service stack an adapter can call: native gRPC in, native gRPC out, every error
/// already a status. [`GrpcStack`] is one; a unit test's stub is another.
pub trait GrpcService:
    Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> GrpcService for T where
    T: Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}
