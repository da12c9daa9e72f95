//! Generated protobuf and gRPC code for package `cadrex.v1`, plus the descriptor set for reflection.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("cadrex.v1");

/// Encoded `FileDescriptorSet` of every cadrex proto, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cadrex_descriptor");
