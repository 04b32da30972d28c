//! Everything generated from `proto/` by `build.rs`: prost messages, tonic servers and
//! clients, pbjson serde impls (canonical protobuf JSON), and the encoded descriptor set.

include!(concat!(env!("OUT_DIR"), "/pb.rs"));

/// The encoded `FileDescriptorSet` of every proto in `proto/`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/portway_descriptor.bin"));
