//! The identity of a client that presented a verified certificate (mutual TLS), as the stack
//! sees it.

use std::net::IpAddr;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// The verified client certificate of a mutual-TLS connection: its subject and the names it
/// is issued for. The listener puts it in the extensions of every request on the connection
/// (every protocol's calls carry it into the stack, WebSocket calls included), so an auth
/// layer or a handler reads it with
/// `request.extensions().get::<portway::tls::ClientIdentity>()`. The chain itself is also
/// there for tonic's `Request::peer_certs()`. Connections without a client certificate have
/// none. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    subject: String,
    common_name: Option<String>,
    dns_names: Vec<String>,
    uris: Vec<String>,
    emails: Vec<String>,
    ip_addresses: Vec<IpAddr>,
    certificate: CertificateDer<'static>,
}

impl ClientIdentity {
    /// The identity in a verified certificate (the chain's first); `None` if it cannot be
    /// parsed (rustls verified it, so that does not happen).
    pub(crate) fn from_certificate(cert: &CertificateDer<'_>) -> Option<Self> {
        let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
        let subject = parsed.subject();
        let common_name = subject.iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned);
        let mut inner = Inner {
            subject: subject.to_string(),
            common_name,
            dns_names: Vec::new(),
            uris: Vec::new(),
            emails: Vec::new(),
            ip_addresses: Vec::new(),
            certificate: cert.clone().into_owned(),
        };
        if let Ok(Some(san)) = parsed.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => inner.dns_names.push((*n).to_owned()),
                    GeneralName::URI(u) => inner.uris.push((*u).to_owned()),
                    GeneralName::RFC822Name(e) => inner.emails.push((*e).to_owned()),
                    GeneralName::IPAddress(bytes) => inner.ip_addresses.extend(ip_address(bytes)),
                    _ => {}
                }
            }
        }
        Some(Self { inner: Arc::new(inner) })
    }

    /// The certificate's subject, e.g. `CN=worker-1, O=Example`.
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// The subject's common name (`CN`), if it has one.
    pub fn common_name(&self) -> Option<&str> {
        self.inner.common_name.as_deref()
    }

    /// The DNS names among the subject alternative names.
    pub fn dns_names(&self) -> &[String] {
        &self.inner.dns_names
    }

    /// The URIs among the subject alternative names (SPIFFE IDs, for example).
    pub fn uris(&self) -> &[String] {
        &self.inner.uris
    }

    /// The e-mail addresses among the subject alternative names.
    pub fn emails(&self) -> &[String] {
        &self.inner.emails
    }

    /// The IP addresses among the subject alternative names.
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.inner.ip_addresses
    }

    /// The certificate, DER-encoded.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.inner.certificate
    }
}

fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}
