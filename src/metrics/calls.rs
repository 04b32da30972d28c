//! Per-call metrics: counts, latencies, messages and bytes by protocol × method × code, and
//! the calls in flight by protocol. [`crate::ObserveLayer`] records into a [`CallTable`]; a
//! scrape encodes it with `prometheus-client`'s metric types.
//!
//! Why a table of its own rather than six `prometheus_client` `Family`s: a call ends with
//! six updates under the same labels, and six families would hash and look the labels up six
//! times, under six locks, on every call. The table does it once, and hands the scrape the
//! crate's own counters and histograms to encode.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;

/// The `method` label of a method that is not in the table: paths come from clients, so
/// labelling them as sent would let anyone create series without bound.
pub const UNKNOWN_METHOD: &str = "unknown";

/// The labels of one call series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub(crate) protocol: &'static str,
    pub(crate) method: Arc<str>,
    pub(crate) code: &'static str,
}

/// What one call contributes to its series.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallSample {
    pub(crate) seconds: f64,
    pub(crate) messages_in: u64,
    pub(crate) messages_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

#[derive(Debug)]
struct Series {
    calls: Counter,
    seconds: Histogram,
    messages_in: Counter,
    messages_out: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
}

/// Latency buckets, in seconds: 100 µs to about 100 s, ×~2.5 apart.
const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 100.0];

impl Series {
    fn new() -> Self {
        Self {
            calls: Counter::default(),
            seconds: Histogram::new(BUCKETS),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
        }
    }

    fn add(&self, s: &CallSample) {
        self.calls.inc();
        self.seconds.observe(s.seconds);
        self.messages_in.inc_by(s.messages_in);
        self.messages_out.inc_by(s.messages_out);
        self.bytes_in.inc_by(s.bytes_in);
        self.bytes_out.inc_by(s.bytes_out);
    }
}

/// The call series, and the calls in flight per protocol label.
#[derive(Debug, Default)]
pub struct CallTable {
    series: RwLock<HashMap<CallLabels, Series>>,
    in_flight: RwLock<HashMap<&'static str, Arc<AtomicI64>>>,
}

impl CallTable {
    /// Adds one finished call.
    pub(crate) fn record(&self, labels: CallLabels, sample: &CallSample) {
        if let Some(series) = self.series.read().unwrap_or_else(PoisonError::into_inner).get(&labels) {
            series.add(sample);
            return;
        }
        self.series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(labels)
            .or_insert_with(Series::new)
            .add(sample);
    }

    /// The in-flight gauge of `protocol` (looked up once per call, not per update).
    pub(crate) fn in_flight(&self, protocol: &'static str) -> Arc<AtomicI64> {
        if let Some(g) = self.in_flight.read().unwrap_or_else(PoisonError::into_inner).get(protocol) {
            return g.clone();
        }
        self.in_flight.write().unwrap_or_else(PoisonError::into_inner).entry(protocol).or_default().clone()
    }
}

impl Collector for CallTable {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut family = enc.encode_descriptor(
                "portway_calls_in_flight",
                "Calls in flight on the service stack, by protocol.",
                None,
                MetricType::Gauge,
            )?;
            for (protocol, v) in self.in_flight.read().unwrap_or_else(PoisonError::into_inner).iter() {
                ConstGauge::new(v.load(Ordering::Relaxed)).encode(family.encode_family(&[("protocol", *protocol)])?)?;
            }
        }
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        type Pick = fn(&Series) -> &Counter;
        let counters: [(&str, &str, Pick); 5] = [
            ("portway_calls", "Finished calls, by protocol, method and gRPC status code.", |s| &s.calls),
            ("portway_call_request_messages", "Request messages the service was sent.", |s| &s.messages_in),
            ("portway_call_response_messages", "Response messages the service sent.", |s| &s.messages_out),
            ("portway_call_request_bytes", "Request bytes (gRPC envelopes included) the service was sent.", |s| {
                &s.bytes_in
            }),
            ("portway_call_response_bytes", "Response bytes (gRPC envelopes included) the service sent.", |s| {
                &s.bytes_out
            }),
        ];
        for (name, help, pick) in counters {
            let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, s) in series.iter() {
                pick(s).encode(family.encode_family(labels)?)?;
            }
        }
        let mut family = enc.encode_descriptor(
            "portway_call_duration_seconds",
            "Call latency, from the request reaching the stack to the end of the response.",
            None,
            MetricType::Histogram,
        )?;
        for (labels, s) in series.iter() {
            s.seconds.encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}
