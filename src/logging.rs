//! The binary's logs: `tracing` events to stderr, as human text or as JSON lines.
//!
//! What is logged is chosen by `RUST_LOG` (the `tracing_subscriber::EnvFilter` syntax, e.g.
//! `RUST_LOG=debug` or `RUST_LOG=info,portway::server=debug`); without it, [`DEFAULT_FILTER`].
//! Text has colours only when stderr is a terminal, so a file or a log collector never gets
//! ANSI escapes. Audit records ([`crate::ObserveLayer::audit`]) are events of the target
//! `portway::audit`, kept at INFO whatever `RUST_LOG` says when auditing is on.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// What is logged without `RUST_LOG`: portway's own events from INFO up, the HTTP
/// libraries' only from WARN.
pub const DEFAULT_FILTER: &str = "info,h2=warn,hyper=warn";

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields, flattened.
    Json,
}

/// Installs the global subscriber. `audit` keeps `portway::audit` records on.
pub fn init(format: LogFormat, audit: bool) {
    let (mut filter, bad_filter) = match std::env::var("RUST_LOG") {
        Ok(spec) => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(DEFAULT_FILTER),
                Some(format!("RUST_LOG={spec:?} is not a filter ({e}); using {DEFAULT_FILTER:?}")),
            ),
        },
        Err(_) => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    if audit && let Ok(directive) = "portway::audit=info".parse() {
        filter = filter.add_directive(directive);
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(false).init(),
    }
    if let Some(warning) = bad_filter {
        tracing::warn!("{warning}");
    }
}
