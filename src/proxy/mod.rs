//! Proxy mode: gRPC servers elsewhere (in any language), served on portway's port over every
//! protocol, with the JSON encodings derived from their descriptors at run time.

pub mod descriptors;
pub mod reflect;

pub use descriptors::{Descriptors, DescriptorsError};
pub use reflect::{ReflectError, Reflected, reflect};
