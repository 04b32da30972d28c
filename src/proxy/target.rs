//! Where an upstream listens (`http://HOST:PORT`, `unix:/PATH`), and the tonic channel to it.
//!
//! A channel connects lazily, reconnects by itself after the connection drops (on the next
//! call), and never waits longer than the connect timeout for a host that does not answer.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

/// One address of an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `http://HOST:PORT`: HTTP/2 over cleartext TCP (prior knowledge).
    Http(Uri),
    /// `unix:/PATH` (or `unix:///PATH`): HTTP/2 over a Unix domain socket.
    Unix(PathBuf),
}

/// Why an address was refused.
#[derive(Debug, thiserror::Error)]
#[error("`{given}` is not an upstream address ({reason}); use http://HOST:PORT or unix:/PATH")]
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
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(err("TLS to upstreams is not supported yet")),
            _ => return Err(err("the scheme must be http or unix")),
        }
        if uri.authority().is_none_or(|a| a.port_u16().is_none()) {
            return Err(err("it needs a host and a port"));
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(err("it must not have a path"));
        }
        Ok(Self::Http(uri))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(uri) => write!(f, "http://{}", uri.authority().map(|a| a.as_str()).unwrap_or_default()),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// How channels to upstreams connect.
#[derive(Debug, Clone, Copy)]
pub struct ChannelOptions {
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// HTTP/2 keepalive pings on idle connections, so a dead peer is noticed.
    pub keepalive: Duration,
}

impl Target {
    /// A channel to this address; it connects on first use.
    pub fn channel(&self, options: ChannelOptions) -> Channel {
        let configure = |e: Endpoint| {
            e.connect_timeout(options.connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(options.keepalive)
                .keep_alive_timeout(options.keepalive)
                .keep_alive_while_idle(false)
        };
        match self {
            Self::Http(uri) => configure(Endpoint::from(uri.clone())).connect_lazy(),
            Self::Unix(path) => {
                let path = path.clone();
                // The URI is not used to connect; it names the authority of the requests.
                let endpoint = configure(Endpoint::from_static("http://localhost"));
                endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { tokio::net::UnixStream::connect(path).await.map(TokioIo::new) }
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_why_not() {
        assert_eq!("http://127.0.0.1:50051".parse::<Target>().unwrap().to_string(), "http://127.0.0.1:50051");
        assert_eq!("http://[::1]:9/".parse::<Target>().unwrap().to_string(), "http://[::1]:9");
        assert_eq!("unix:/run/w.sock".parse::<Target>().unwrap(), Target::Unix("/run/w.sock".into()));
        assert_eq!("unix:///run/w.sock".parse::<Target>().unwrap(), Target::Unix("/run/w.sock".into()));
        for (bad, why) in [
            ("unix:w.sock", "must be absolute"),
            ("http://host", "a host and a port"),
            ("ftp://h:1", "http or unix"),
            ("http://h:1/x", "must not have a path"),
            ("https://h:1", "not supported yet"),
            ("", "not a URL"),
        ] {
            let err = bad.parse::<Target>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
