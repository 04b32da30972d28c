//! Binding the listen addresses: `HOST:PORT` with an IP address or a host name (every address
//! it resolves to, IPv4 and IPv6), several of them at once.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Why the listen addresses could not be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// No address was given.
    #[error("no listen address was given")]
    Empty,
    /// An address is not `HOST:PORT`.
    #[error("`{0}` is not a listen address: write HOST:PORT, e.g. 127.0.0.1:8080, [::1]:8080 or localhost:8080")]
    Malformed(String),
    /// A host name did not resolve.
    #[error("cannot resolve `{spec}`: {source}")]
    Resolve {
        /// The address as given.
        spec: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An address could not be bound.
    #[error("{}", bind_failed(spec, address, source))]
    Bind {
        /// The address as given.
        spec: String,
        /// The socket address it named.
        address: SocketAddr,
        /// Why (address in use, permission denied, address not available).
        #[source]
        source: std::io::Error,
    },
}

fn from_spec(spec: &str, address: &SocketAddr) -> String {
    if spec == address.to_string() { String::new() } else { format!(" (from `{spec}`)") }
}

/// Why `address` could not be bound, as a sentence that names it.
fn bind_failed(spec: &str, address: &SocketAddr, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let from = from_spec(spec, address);
    match e.kind() {
        ErrorKind::AddrInUse => {
            format!("the address {address}{from} is already in use (another portway, or another server, listens there)")
        }
        ErrorKind::AddrNotAvailable => format!("the address {address}{from} is not an address of this machine"),
        ErrorKind::PermissionDenied => {
            format!("permission denied to listen on {address}{from} (ports below 1024 need privileges)")
        }
        _ => format!("cannot listen on {address}{from}: {e}"),
    }
}

/// Binds every address `specs` name, in order, each once. A spec is `HOST:PORT`, where HOST
/// is an IPv4 address, an IPv6 address in brackets, or a name that resolves to any number of
/// addresses (`localhost:8080` is usually both `127.0.0.1:8080` and `[::1]:8080`).
///
/// Port 0 picks a free port; with several addresses, the first address's port is used for
/// the others that ask for 0, so that one port serves them all.
pub async fn bind<S: AsRef<str>>(specs: &[S]) -> Result<Vec<TcpListener>, BindError> {
    let mut listeners: Vec<TcpListener> = Vec::new();
    let mut bound = BTreeSet::new();
    let mut chosen_port: Option<u16> = None;
    for spec in specs {
        let spec = spec.as_ref().trim();
        if spec.is_empty() {
            continue;
        }
        for mut address in resolve(spec).await? {
            if address.port() == 0
                && let Some(port) = chosen_port
            {
                address.set_port(port);
            }
            if !bound.insert(address) {
                continue;
            }
            let listener = TcpListener::bind(address).await.map_err(|source| BindError::Bind {
                spec: spec.to_string(),
                address,
                source,
            })?;
            let local =
                listener.local_addr().map_err(|source| BindError::Bind { spec: spec.to_string(), address, source })?;
            chosen_port.get_or_insert(local.port());
            listeners.push(listener);
        }
    }
    if listeners.is_empty() {
        return Err(BindError::Empty);
    }
    Ok(listeners)
}

/// The socket addresses of one spec, IP literals without a lookup.
async fn resolve(spec: &str) -> Result<Vec<SocketAddr>, BindError> {
    if let Ok(address) = spec.parse::<SocketAddr>() {
        return Ok(vec![address]);
    }
    let Some((host, port)) = spec.rsplit_once(':') else { return Err(BindError::Malformed(spec.to_string())) };
    if host.is_empty() || port.parse::<u16>().is_err() || host.contains(':') {
        return Err(BindError::Malformed(spec.to_string()));
    }
    let resolved =
        tokio::net::lookup_host(spec).await.map_err(|source| BindError::Resolve { spec: spec.to_string(), source })?;
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for a in resolved {
        if !addresses.contains(&a) {
            addresses.push(a);
        }
    }
    if addresses.is_empty() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address");
        return Err(BindError::Resolve { spec: spec.to_string(), source });
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_names_and_one_port_for_all() {
        let listeners = bind(&["127.0.0.1:0"]).await.unwrap();
        assert_eq!(listeners.len(), 1);
        // `localhost` is at least 127.0.0.1; where it is also ::1, both share one port.
        let listeners = bind(&["localhost:0"]).await.unwrap();
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        assert!(addrs.iter().any(|a| a.ip().is_loopback() && a.is_ipv4()), "{addrs:?}");
        assert!(addrs.iter().all(|a| a.port() == addrs[0].port()), "{addrs:?}");
        // The same address twice is bound once; several specs in one call.
        let port = addrs[0].port();
        drop(listeners);
        let listeners = bind(&[format!("127.0.0.1:{port}"), format!("127.0.0.1:{port}")]).await.unwrap();
        assert_eq!(listeners.len(), 1);
    }

    #[tokio::test]
    async fn errors_say_what_is_wrong() {
        for bad in ["8080", "localhost", "host:port", "::1:80"] {
            let e = bind(&[bad]).await.unwrap_err();
            assert!(matches!(e, BindError::Malformed(_)), "{bad}: {e}");
            assert!(e.to_string().contains("HOST:PORT"), "{e}");
        }
        assert!(matches!(bind::<&str>(&[]).await, Err(BindError::Empty)));
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind(&[addr.to_string()]).await.unwrap_err();
        assert!(e.to_string().starts_with(&format!("the address {addr} is already in use")), "{e}");
        let e = bind(&["name.invalid:80"]).await.unwrap_err();
        assert!(e.to_string().starts_with("cannot resolve `name.invalid:80`"), "{e}");
    }
}
