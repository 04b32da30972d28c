//! Reading certificates and keys from PEM files, with errors that name the file and say what
//! is wrong with it; the certificate's fingerprint and a summary for the logs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tokio_rustls::rustls::RootCertStore;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::ClientIdentity;

/// Why a TLS configuration cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what it should be: not PEM, or without a block of the expected kind.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, as a sentence.
        reason: String,
    },
    /// The certificate chain and the key cannot be used together.
    #[error("the certificate in {} and the key in {} cannot be used together: {reason}", chain.display(), key.display())]
    Mismatch {
        /// The certificate chain file.
        chain: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The client CA file cannot verify client certificates.
    #[error("the client CA file {} cannot be used: {reason}", path.display())]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The self-signed certificate could not be made.
    #[error("cannot generate a self-signed certificate: {0}")]
    SelfSigned(String),
    /// rustls refused the protocol settings (not expected with the defaults).
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

fn pem_error(path: &Path, e: &pem::Error) -> TlsError {
    TlsError::Pem { path: path.to_path_buf(), reason: format!("not a valid PEM file ({e})") }
}

/// Every certificate in a PEM file, in order.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| pem_error(path, &e))
}

/// The certificate chain of a PEM file: the server's certificate first, then intermediates.
pub(super) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = certificates(path)?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            reason: "holds no certificate (a `BEGIN CERTIFICATE` block)".into(),
        });
    }
    if let Some(bad) = chain.iter().position(|c| X509Certificate::from_der(c).is_err()) {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            reason: format!("certificate number {} is not a valid X.509 certificate", bad + 1),
        });
    }
    Ok(chain)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(super) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::Pem {
            path: path.to_path_buf(),
            reason: "holds no private key (a `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` \
                     block)"
                .into(),
        },
        e => pem_error(path, &e),
    })
}

/// The certificate authorities of a PEM file, for verifying client certificates.
pub(super) fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certificates(path)?);
    if added == 0 {
        let reason = if ignored == 0 {
            "it holds no certificate (a `BEGIN CERTIFICATE` block)".to_string()
        } else {
            format!("none of its {ignored} certificates can be parsed")
        };
        return Err(TlsError::ClientCa { path: path.to_path_buf(), reason });
    }
    Ok(roots)
}

/// The SHA-256 fingerprint of a certificate, as browsers show it: `AB:CD:…`.
pub(super) fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let mut out = String::with_capacity(95);
    for (i, byte) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{byte:02X}");
    }
    out
}

/// "subject …, names …, valid until …" of a certificate, for the start-up log; says so when
/// the certificate has expired or is not valid yet.
pub(super) fn summary(cert: &CertificateDer<'_>) -> String {
    let (Ok((_, parsed)), Some(id)) = (X509Certificate::from_der(cert), ClientIdentity::from_certificate(cert)) else {
        return "an unreadable certificate".into();
    };
    let ips = id.ip_addresses().iter().map(ToString::to_string);
    let names: Vec<String> = id.dns_names().iter().cloned().chain(ips).chain(id.uris().iter().cloned()).collect();
    let validity = parsed.validity();
    let valid = if validity.is_valid() {
        format!("valid until {}", validity.not_after)
    } else {
        format!("NOT VALID NOW: valid from {} until {}", validity.not_before, validity.not_after)
    };
    format!("subject \"{}\", names [{}], {valid}", id.subject(), names.join(", "))
}
