//! Where an upstream listens (`http://HOST:PORT`, `https://HOST:PORT`, `unix:/PATH`), and the
//! tonic channel to it.
//!
//! A channel connects lazily, reconnects by itself after the connection drops (on the next
//! call), and never waits longer than the connect timeout for a host that does not answer.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// One address of an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `http://HOST:PORT`: HTTP/2 over cleartext TCP (prior knowledge).
    Http(Uri),
    /// `https://HOST:PORT`: HTTP/2 over TLS (ALPN `h2`), the server's certificate checked
    /// against the upstream's CA if it has one, else the system's roots.
    Https(Uri),
    /// `unix:/PATH` (or `unix:///PATH`): HTTP/2 over a Unix domain socket.
    Unix(PathBuf),
}

/// Why an address was refused.
#[derive(Debug, thiserror::Error)]
#[error("`{given}` is not an upstream address ({reason}); use http://HOST:PORT, https://HOST:PORT or unix:/PATH")]
pub struct TargetError {
    given: String,
    reason: &'static str,
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, TargetError> {
        let err = |reason| TargetError { given: s.to_owned(), reason };
        if let Some(path) = s.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.starts_with('/') {
                return Err(err("a Unix socket path must be absolute"));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let uri: Uri = s.parse().map_err(|_| err("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(err("the scheme must be http, https or unix")),
        };
        if uri.authority().is_none_or(|a| a.port_u16().is_none()) {
            return Err(err("it needs a host and a port"));
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(err("it must not have a path"));
        }
        Ok(if tls { Self::Https(uri) } else { Self::Http(uri) })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(uri) => write!(f, "http://{}", uri.authority().map(|a| a.as_str()).unwrap_or_default()),
            Self::Https(uri) => write!(f, "https://{}", uri.authority().map(|a| a.as_str()).unwrap_or_default()),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// How channels to upstreams connect.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    /// The CA certificates (PEM) that sign the upstream's certificate (`https://` only);
    /// `None`: the system's roots.
    pub ca: Option<Vec<u8>>,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// HTTP/2 keepalive pings on idle connections, so a dead peer is noticed.
    pub keepalive: Duration,
}

impl Target {
    /// A channel to this address; it connects on first use.
    pub fn channel(&self, options: &ChannelOptions) -> Result<Channel, TlsError> {
        let configure = |e: Endpoint| {
            e.connect_timeout(options.connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(options.keepalive)
                .keep_alive_timeout(options.keepalive)
                .keep_alive_while_idle(false)
        };
        Ok(match self {
            Self::Http(uri) => configure(Endpoint::from(uri.clone())).connect_lazy(),
            Self::Https(uri) => {
                let tls = match &options.ca {
                    Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
                    None => ClientTlsConfig::new().with_native_roots(),
                };
                configure(Endpoint::from(uri.clone()))
                    .tls_config(tls)
                    .map_err(|e| TlsError(super::error::error_chain(&e)))?
                    .connect_lazy()
            }
            Self::Unix(path) => {
                let path = path.clone();
                // The URI is not used to connect; it names the authority of the requests.
                let endpoint = configure(Endpoint::from_static("http://localhost"));
                endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { tokio::net::UnixStream::connect(path).await.map(TokioIo::new) }
                }))
            }
        })
    }
}

/// TLS settings that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the TLS settings are not usable: {0}")]
pub struct TlsError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_why_not() {
        assert_eq!("http://127.0.0.1:50051".parse::<Target>().unwrap().to_string(), "http://127.0.0.1:50051");
        assert_eq!("http://[::1]:9/".parse::<Target>().unwrap().to_string(), "http://[::1]:9");
        assert_eq!("https://w.example:443".parse::<Target>().unwrap().to_string(), "https://w.example:443");
        assert_eq!("unix:/run/w.sock".parse::<Target>().unwrap(), Target::Unix("/run/w.sock".into()));
        assert_eq!("unix:///run/w.sock".parse::<Target>().unwrap(), Target::Unix("/run/w.sock".into()));
        for (bad, why) in [
            ("unix:w.sock", "must be absolute"),
            ("http://host", "a host and a port"),
            ("ftp://h:1", "http, https or unix"),
            ("http://h:1/x", "must not have a path"),
            ("", "not a URL"),
        ] {
            let err = bad.parse::<Target>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
