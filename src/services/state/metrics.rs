//! The state store's metrics: its revision, keys and open watches (read at each scrape) and
//! how long its backend commits take. A collector of its own, which the binary registers:
//! the gateway itself knows nothing of this service.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;

use super::store::Store;

/// Commit latency buckets, in seconds: 50 µs (memory) to 5 s (a slow disk's fsync).
const BUCKETS: [f64; 12] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 5.0];

pub(super) fn commit_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// What [`Store::metrics`] returns: register it with
/// `metrics.register(|r| r.register_collector(Box::new(store.metrics())))`.
#[derive(Debug)]
pub struct StoreMetrics {
    store: Store,
    commit_seconds: Histogram,
}

impl StoreMetrics {
    pub(super) fn new(store: Store, commit_seconds: Histogram) -> Self {
        Self { store, commit_seconds }
    }
}

impl Collector for StoreMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.store.stats();
        let gauges = [
            ("portway_state_revision", "The state store's current revision.", stats.revision),
            (
                "portway_state_compact_revision",
                "Events at or below this revision are compacted.",
                stats.compact_revision,
            ),
            ("portway_state_keys", "Live keys in the state store.", i64::try_from(stats.keys).unwrap_or(i64::MAX)),
            (
                "portway_state_watchers",
                "Open watches on the state store.",
                i64::try_from(stats.watchers).unwrap_or(i64::MAX),
            ),
        ];
        for (name, help, v) in gauges {
            let g = ConstGauge::new(v);
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let h = &self.commit_seconds;
        h.encode(enc.encode_descriptor(
            "portway_state_commit_duration_seconds",
            "How long each backend commit (one group of writes, one fsync when durable) took.",
            None,
            h.metric_type(),
        )?)
    }
}
