//! TLS on the listener: rustls with the ring provider, ALPN `h2` then `http/1.1`, a
//! certificate from PEM files (read again on [`Tls::reload`]) or generated at start-up, and
//! optional client certificates (mutual TLS) whose identity reaches the stack
//! ([`ClientIdentity`]).
//!
//! Every connection takes the configuration current when it is accepted: a reload changes
//! what new handshakes see and leaves open connections as they are.

mod files;
mod identity;

use std::sync::{Arc, PoisonError, RwLock};

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ServerConfig};

pub use self::files::TlsError;
pub use self::identity::ClientIdentity;
use crate::config::{CertificateSource, ClientAuth, TlsConfig};

/// The protocols offered in ALPN, most preferred first: HTTP/2 carries every protocol
/// (browsers get WebSocket over HTTP/2, RFC 8441), HTTP/1.1 is there for the clients that
/// speak nothing else.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The crypto provider every TLS configuration is built with. ring, as tonic's `tls-ring`
/// (which the gateway's own clients use) has it: one crypto library in the binary.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A loaded TLS configuration: what the listener hands every new connection. Cloning is
/// cheap and shares the configuration, so a clone kept by the caller can [`Tls::reload`] it.
#[derive(Clone)]
pub struct Tls {
    shared: Arc<Shared>,
}

struct Shared {
    config: TlsConfig,
    current: RwLock<Loaded>,
}

/// One generation of the configuration.
#[derive(Clone)]
struct Loaded {
    server: Arc<ServerConfig>,
    fingerprint: String,
    summary: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("config", &self.shared.config).field("fingerprint", &self.fingerprint()).finish()
    }
}

impl Tls {
    /// Reads and checks everything `config` names (or generates the self-signed
    /// certificate): a certificate that does not match its key, a file that holds no PEM
    /// block of the right kind, or a client CA file without a usable certificate is refused
    /// here, with a sentence that names the file.
    pub fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        let loaded = build(config)?;
        Ok(Self { shared: Arc::new(Shared { config: config.clone(), current: RwLock::new(loaded) }) })
    }

    /// Reads the certificate, key and client CA files again. On success, new handshakes get
    /// the new configuration and open connections keep theirs; on failure nothing changes
    /// and the error says what is wrong. A self-signed certificate is kept as it is.
    pub fn reload(&self) -> Result<(), TlsError> {
        if matches!(self.shared.config.certificate, CertificateSource::SelfSigned { .. }) {
            return Ok(());
        }
        let loaded = build(&self.shared.config)?;
        *self.shared.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
        Ok(())
    }

    /// The SHA-256 fingerprint of the server's certificate, as browsers show it
    /// (`AB:CD:…`, 32 bytes in hex).
    pub fn fingerprint(&self) -> String {
        self.current().fingerprint
    }

    /// What the server's certificate is for and until when, for a log line.
    pub fn summary(&self) -> String {
        self.current().summary
    }

    /// Whether cleartext connections are served on the same port ([`TlsConfig::allow_cleartext`]).
    pub fn allows_cleartext(&self) -> bool {
        self.shared.config.allow_cleartext
    }

    /// Whether clients are asked for a certificate.
    pub fn asks_client_certificates(&self) -> bool {
        self.shared.config.client_ca.is_some()
    }

    /// The acceptor for a connection accepted now.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.shared.current.read().unwrap_or_else(PoisonError::into_inner).server.clone())
    }

    fn current(&self) -> Loaded {
        self.shared.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Builds one generation of the configuration from `config`.
fn build(config: &TlsConfig) -> Result<Loaded, TlsError> {
    let (chain, key) = match &config.certificate {
        CertificateSource::Files { chain, key } => (files::read_chain(chain)?, files::read_key(key)?),
        CertificateSource::SelfSigned { names } => self_signed(names)?,
    };
    let fingerprint = files::fingerprint(&chain[0]);
    let summary = files::summary(&chain[0]);
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match &config.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = files::read_roots(path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match config.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            let verifier =
                verifier.build().map_err(|e| TlsError::ClientCa { path: path.clone(), reason: e.to_string() })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_single_cert(chain, key).map_err(|e| match &config.certificate {
        CertificateSource::Files { chain, key } => {
            TlsError::Mismatch { chain: chain.clone(), key: key.clone(), reason: e.to_string() }
        }
        CertificateSource::SelfSigned { .. } => TlsError::SelfSigned(e.to_string()),
    })?;
    server.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Loaded { server: Arc::new(server), fingerprint, summary })
}

/// A certificate for `names`, signed by itself, and its key (ECDSA P-256).
fn self_signed(names: &[String]) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let failed = |e: rcgen::Error| TlsError::SelfSigned(e.to_string());
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(failed)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "portway (self-signed)");
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok((vec![cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))))
}

#[cfg(test)]
mod tests;
