//! Everything between a protocol adapter and the service stack: the invoker (the stack and
//! the generated method table), JSON ⇄ protobuf codecs, gRPC framing, status mapping, and
//! in-process calls.

pub(crate) mod call;
pub mod codec;
pub(crate) mod compression;
pub mod dynamic;
pub mod framing;
mod invoker;
pub(crate) mod limits;
pub mod method;
mod stack;
pub mod status;
pub(crate) mod timeout;

pub(crate) use call::{Call, CallEvent, CallSetup, RequestMessages};
pub use codec::{CodecError, MessageCodec, PbjsonCodec, codec};
pub(crate) use invoker::Invoker;
pub use method::{Idempotency, MethodDescriptor, MethodTable, RpcKind, SharedMethods};
pub(crate) use stack::{GrpcService, GrpcStack};
