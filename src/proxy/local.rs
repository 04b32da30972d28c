//! The local services a catalog starts from: those the local routes' own reflection
//! describes, and those of descriptor sets given to it.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use super::descriptors::Descriptors;
use super::error::CatalogError;
use super::reflect::{ReflectError, reflect};

/// The local services and descriptors a catalog starts from.
pub struct Local {
    descriptors: Option<Descriptors>,
}

impl Local {
    /// The services `routes` answers for, from its own reflection service (none: no local
    /// descriptors), plus those in each of `file_descriptor_sets`.
    pub async fn discover<S>(routes: S, file_descriptor_sets: &[&[u8]], timeout: Duration) -> Result<Self, CatalogError>
    where
        S: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        S::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
        <S::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
        S::Future: Send,
    {
        let mut services = Vec::new();
        let mut files = BTreeMap::new();
        match reflect(routes, timeout).await {
            Ok(r) => {
                services.extend(r.services);
                files.extend(r.files);
            }
            Err(ReflectError::NotServed) => {}
            Err(e) => return Err(CatalogError::Local(e)),
        }
        add_sets(file_descriptor_sets, &mut services, &mut files)?;
        services.sort();
        services.dedup();
        let descriptors = Descriptors::new(&services, files).map_err(CatalogError::LocalDescriptors)?;
        Ok(Self { descriptors: Some(descriptors) })
    }

    /// No local services.
    pub fn none() -> Self {
        Self { descriptors: None }
    }

    /// The services of `file_descriptor_sets`.
    pub fn from_descriptor_sets(file_descriptor_sets: &[&[u8]]) -> Result<Self, CatalogError> {
        let (mut services, mut files) = (Vec::new(), BTreeMap::new());
        add_sets(file_descriptor_sets, &mut services, &mut files)?;
        let descriptors = Descriptors::new(&services, files).map_err(CatalogError::LocalDescriptors)?;
        Ok(Self { descriptors: Some(descriptors) })
    }

    pub(super) fn into_descriptors(self) -> Result<Descriptors, CatalogError> {
        match self.descriptors {
            Some(d) => Ok(d),
            None => Descriptors::new(&[], BTreeMap::new()).map_err(CatalogError::LocalDescriptors),
        }
    }
}

/// Adds the services and files of `sets` to `services` and `files`.
fn add_sets(
    sets: &[&[u8]],
    services: &mut Vec<String>,
    files: &mut BTreeMap<String, Bytes>,
) -> Result<(), CatalogError> {
    for set in sets {
        let d = Descriptors::decode(set).map_err(CatalogError::LocalDescriptors)?;
        services.extend(d.services);
        for (name, raw) in d.files {
            files.entry(name).or_insert(raw);
        }
    }
    Ok(())
}
