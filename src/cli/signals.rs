//! Signals: SIGTERM and SIGINT start a graceful shutdown (a second one exits at once), SIGHUP
//! reloads the TLS certificate.

use std::time::Duration;

/// Resolves at the first SIGTERM or SIGINT; a second one exits the process at once.
pub(crate) async fn shutdown_signal(mut stop: StopSignals, grace: Duration) {
    let signal = stop.next().await;
    tracing::info!(signal, grace_ms = grace.as_millis() as u64, "shutting down; a second signal stops at once");
    tokio::spawn(async move {
        let signal = stop.next().await;
        tracing::warn!(signal, "second signal: exiting now");
        std::process::exit(if signal == "SIGTERM" { 143 } else { 130 });
    });
}

/// SIGTERM and SIGINT (Ctrl-C), listened for from when it is made: a signal that arrives
/// between two waits is kept for the next one, not lost.
pub(crate) struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub(crate) fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        tokio::select! {
            Some(()) = self.term.recv() => "SIGTERM",
            Some(()) = self.int.recv() => "SIGINT",
            else => std::future::pending().await,
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// Reloads the TLS certificate on SIGHUP: new handshakes get the new one, open connections
/// keep theirs; a file that cannot be used is logged and the old certificate kept.
pub(crate) fn reload_on_hangup(tls: portway::tls::Tls) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        fingerprint = %tls.fingerprint(),
                        certificate = %tls.summary(),
                        "TLS certificate reloaded"
                    ),
                    Err(e) => tracing::error!("TLS certificate not reloaded, the old one stays in use: {e}"),
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(tls);
    Ok(())
}
