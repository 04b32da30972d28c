//! Everything between a protocol adapter and the service stack: the generated method
//! table, JSON ⇄ protobuf codecs, gRPC framing, status mapping, and in-process calls.

pub mod call;
pub mod codec;
pub mod framing;
pub mod method;
pub mod number;
pub mod status;

pub use call::{Call, CallEvent, CallSetup, GrpcStack, RequestMessages};
pub use codec::{CodecError, MessageCodec, PbjsonCodec, codec};
pub use method::{Idempotency, MethodDescriptor, MethodTable, RpcKind};

include!(concat!(env!("OUT_DIR"), "/method_table.rs"));
