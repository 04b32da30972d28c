//! The hostile-input corpus: every protocol, table-driven. Each row is one bad (or barely
//! valid) input sent with a raw client, its documented outcome (docs/hostile-input.md,
//! docs/limits.md), and a check that the connection's other calls did not notice: on
//! HTTP/2 a bidi call opened before the row is used again after it, and a new call on the
//! same connection succeeds; on HTTP/1.1 the next request on the same connection succeeds
//! (unless the documented outcome closes it); on a WebSocket a call opened before the row
//! still answers. Every row runs under a timeout: a hang is an outcome, and a wrong one.
//!
//! Rows whose outcome is known to be wrong until a fix lands are in [`pending::PENDING`],
//! with the defect they show; a pending row that passes fails the test, so the list only
//! shrinks.
//!
//! `HOSTILE_TABLE=1 cargo test --test hostile -- --nocapture` prints every row as a
//! markdown table, with its outcome today where it is pending.

// Tests may unwrap (`clippy::unwrap_used` is denied for the crate in Cargo.toml).
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod connect;
mod grpc;
mod h1;
mod h2mux;
mod panics;
mod pending;
mod plain;
mod store;
mod wire;
mod ws_frames;
mod ws_json;

use std::future::Future;
use std::time::Duration;

use portway::Config;

/// The message limit of the corpus's gateway: small, so rows over it stay cheap.
pub const LIMIT: usize = 16 * 1024;

/// Every row must settle within this, healthy checks included.
pub const ROW_TIMEOUT: Duration = Duration::from_secs(15);

pub const TS: &str = "/grpc.testing.TestService";
pub const STATE: &str = "/portway.state.v1.StateService";

/// The gateway every row runs against: the interop service and the state store (memory).
pub fn config() -> Config {
    let mut config = Config::default();
    config.max_message_bytes = LIMIT;
    config
}

/// One row's result.
pub struct Row {
    pub name: String,
    pub want: String,
    pub got: String,
}

/// Runs `fut` under [`ROW_TIMEOUT`]; a hang is the outcome `hang`.
pub async fn bounded(fut: impl Future<Output = String>) -> String {
    tokio::time::timeout(ROW_TIMEOUT, fut).await.unwrap_or_else(|_| "hang".to_string())
}

/// Checks a table's results against the expectations and the pending list: every mismatch
/// (and every pending row that now passes) is reported at once.
pub fn judge(table: &str, rows: &[Row]) {
    if std::env::var_os("HOSTILE_TABLE").is_some() {
        println!("\n| {table} | outcome |\n|---|---|");
        for r in rows {
            let note =
                pending::defect(&r.name).map(|d| format!(" (today: `{}`; pending: {d})", r.got)).unwrap_or_default();
            println!("| `{}` | `{}`{note} |", r.name, r.want);
        }
    }
    let mut failures = Vec::new();
    for r in rows {
        match pending::defect(&r.name) {
            None if r.got != r.want => failures.push(format!("{}: expected `{}`, got `{}`", r.name, r.want, r.got)),
            Some(defect) if r.got == r.want => {
                failures.push(format!("{}: passes now (`{}`); take it off the pending list ({defect})", r.name, r.got))
            }
            _ => {}
        }
    }
    pending::check_names(table, rows);
    assert!(
        failures.is_empty(),
        "{} of {} rows of {table} failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}
