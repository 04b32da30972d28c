//! portway in proxy mode, in-process, on a real socket (port 0).

use std::time::Duration;

use portway::Config;
use portway::proxy::{Catalog, Local, ProxyConfig, UpstreamConfig};
use portway::services::ServiceOptions;
use portway::services::state::StateOptions;

use crate::common::{self, TestServer};
use crate::upstream::Upstream;

/// portway with its own services and `upstreams` behind it.
pub struct Proxied {
    pub server: TestServer,
    pub catalog: Catalog,
}

impl std::ops::Deref for Proxied {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl Proxied {
    pub async fn start(upstreams: &[&Upstream]) -> Self {
        let mut proxy = ProxyConfig::default();
        proxy.upstreams = upstreams
            .iter()
            .map(|u| UpstreamConfig::new(u.lang.name(), vec![u.url().parse().expect("target")]))
            .collect();
        Self::with(proxy, Config::default()).await
    }

    pub async fn with(proxy: ProxyConfig, config: Config) -> Self {
        let mut options = ServiceOptions::default();
        options.state = StateOptions::memory();
        let mounted = portway::services::mount(&options).await.expect("mount");
        let local = Local::discover(mounted.routes.clone(), &[], Duration::from_secs(10)).await.expect("local");
        let catalog = Catalog::start(proxy, local, mounted.health.clone()).await.expect("catalog");
        let builder = portway::Gateway::builder(mounted.routes).config(config).catalog(catalog.clone());
        let server = common::serve_gateway(builder.build()).await;
        Self { server, catalog }
    }
}
