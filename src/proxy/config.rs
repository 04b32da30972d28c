//! Proxy mode's configuration: plain structs with documented defaults.

use std::path::PathBuf;
use std::time::Duration;

use super::target::Target;

/// One upstream, as configured.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// How logs and errors name it (default: its first address).
    pub name: String,
    /// Its endpoints (one or more), balanced round-robin.
    pub targets: Vec<Target>,
    /// Its descriptors from this file instead of its server reflection.
    pub descriptor_set: Option<PathBuf>,
    /// The CA certificates (a PEM file) that sign its certificate, for `https://`
    /// endpoints; `None`: the system's roots.
    pub ca: Option<PathBuf>,
}

impl UpstreamConfig {
    /// An upstream at `targets`, named `name`, discovered by reflection.
    pub fn new(name: impl Into<String>, targets: Vec<Target>) -> Self {
        Self { name: name.into(), targets, descriptor_set: None, ca: None }
    }
}

/// Proxy mode's settings. Start from [`ProxyConfig::default`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The upstreams. Default: none.
    pub upstreams: Vec<UpstreamConfig>,
    /// Ask every upstream for its services again this often. Default: every 5 minutes.
    pub refresh_interval: Option<Duration>,
    /// The longest an upstream's reflection may take to answer. Default: 10 s.
    pub discovery_timeout: Duration,
    /// How often each upstream's health is checked (sooner, with backoff, while it is
    /// down). Default: 5 s.
    pub health_interval: Duration,
    /// Longest wait for a connection to an upstream. Default: 5 s.
    pub connect_timeout: Duration,
    /// HTTP/2 keepalive interval (and timeout) on upstream connections. Default: 20 s.
    pub keepalive: Duration,
    /// A cap on the deadline forwarded with each call (the gateway's
    /// [`max_call_timeout`](crate::Config::max_call_timeout)). Default: none.
    pub max_call_timeout: Option<Duration>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            refresh_interval: Some(Duration::from_secs(300)),
            discovery_timeout: Duration::from_secs(10),
            health_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(20),
            max_call_timeout: None,
        }
    }
}
