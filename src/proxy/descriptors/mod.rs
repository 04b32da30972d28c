//! The descriptors of an upstream's services, from its reflection or from a descriptor-set
//! file, made whole: a file that uses a type from another file without importing it (the
//! files @grpc/reflection synthesizes per package import nothing) gets the import, so that
//! the descriptors resolve, here and for the reflection clients portway serves them to.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::DescriptorPool;
use prost_reflect::prost_types::{FileDescriptorProto, FileDescriptorSet};

use crate::transcode::dynamic::{Schema, SchemaError};

use repair::{add_missing_imports, canonical_well_known_types, normalize, qualified};

mod repair;
#[cfg(test)]
mod tests;

/// Services a proxy never forwards: portway answers them itself, for every service it serves.
pub const OWN_SERVICES: [&str; 3] =
    ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/// One upstream's services and descriptors.
#[derive(Debug, Clone)]
pub struct Descriptors {
    /// The services to forward (never portway's own, [`OWN_SERVICES`]).
    pub services: Vec<String>,
    /// Every file, encoded, by name (the originals where nothing was added).
    pub files: BTreeMap<String, Bytes>,
    /// The same, resolved: codecs and method-table entries.
    pub schema: Schema,
}

/// Why descriptors could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorsError {
    /// A descriptor-set file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A descriptor-set file does not hold a `FileDescriptorSet`.
    #[error(
        "{path} is not a FileDescriptorSet (write one with `buf build -o FILE` or `protoc --include_imports --descriptor_set_out=FILE`): {source}"
    )]
    Decode {
        /// The file.
        path: String,
        /// Why.
        source: prost::DecodeError,
    },
    /// A file descriptor does not decode.
    #[error("a file descriptor does not decode: {0}")]
    File(prost::DecodeError),
    /// The descriptors do not resolve.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

impl Descriptors {
    /// The services `listed` (by reflection, say) whose descriptors are among `files`.
    pub fn new(listed: &[String], files: BTreeMap<String, Bytes>) -> Result<Self, DescriptorsError> {
        let mut decoded = BTreeMap::new();
        for (name, raw) in &files {
            decoded.insert(name.clone(), FileDescriptorProto::decode(raw.as_ref()).map_err(DescriptorsError::File)?);
        }
        let mut files = files;
        let (removed, mut changed) = canonical_well_known_types(&mut decoded);
        for name in removed {
            files.remove(&name);
        }
        changed.extend(add_missing_imports(&mut decoded));
        let mut pool = DescriptorPool::new();
        pool.add_file_descriptor_protos(decoded.values().cloned()).map_err(SchemaError::from)?;
        let normalized = normalize(&mut decoded, &pool);
        if !normalized.is_empty() {
            // What the reflection clients will get must resolve too.
            pool = DescriptorPool::new();
            pool.add_file_descriptor_protos(decoded.values().cloned()).map_err(SchemaError::from)?;
            changed.extend(normalized);
        }
        for name in changed {
            files.insert(name.clone(), Bytes::from(decoded[&name].encode_to_vec()));
        }
        let schema = Schema::from_pool(pool);
        let described: BTreeSet<String> = schema.services().collect();
        let services =
            listed.iter().filter(|s| described.contains(*s) && !OWN_SERVICES.contains(&s.as_str())).cloned().collect();
        Ok(Self { services, files, schema })
    }

    /// Every service of a descriptor-set file (what `buf build -o` or `protoc
    /// --include_imports --descriptor_set_out` writes).
    pub fn read(path: &Path) -> Result<Self, DescriptorsError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| DescriptorsError::Read { path: shown.clone(), source })?;
        Self::decode(&bytes).map_err(|e| match e {
            DescriptorsError::File(source) => DescriptorsError::Decode { path: shown, source },
            other => other,
        })
    }

    /// Every service of an encoded `FileDescriptorSet`.
    pub fn decode(file_descriptor_set: &[u8]) -> Result<Self, DescriptorsError> {
        let set = FileDescriptorSet::decode(file_descriptor_set).map_err(DescriptorsError::File)?;
        let mut services = Vec::new();
        let mut files = BTreeMap::new();
        for file in set.file {
            for s in &file.service {
                services.push(qualified(file.package(), s.name()));
            }
            files.insert(file.name().to_owned(), Bytes::from(file.encode_to_vec()));
        }
        Self::new(&services, files)
    }
}
