//! The listener: accepts TCP connections and serves HTTP/1.1 and HTTP/2 (prior knowledge)
//! on each, with upgrades and HTTP/2 extended CONNECT enabled, until shutdown.

use std::future::Future;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tonic::transport::server::TcpConnectInfo;

use crate::gateway::Gateway;

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listener failed in a way that accepting again cannot fix.
    #[error("listener failed: {0}")]
    Listener(#[source] std::io::Error),
}

/// Serves `gateway` on an already-bound `listener` until `shutdown` completes, then stops
/// accepting, lets open calls finish for `shutdown_grace`, and returns.
///
/// Binding is the caller's job, so tests bind port 0 and read the address first.
pub async fn serve<F>(listener: TcpListener, gateway: Gateway, shutdown: F) -> Result<(), Error>
where
    F: Future<Output = ()> + Send,
{
    let http = gateway.config().http.clone();
    let metrics = gateway.metrics().clone();
    let service = gateway.into_service();

    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(http.http1_header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_concurrent_streams(http.http2_max_concurrent_streams)
        .max_header_list_size(http.max_header_list_bytes)
        .keep_alive_interval(http.http2_keepalive_interval)
        .keep_alive_timeout(http.http2_keepalive_timeout);

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) if is_transient(&e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(Error::Listener(e)),
            },
        };
        if metrics.connections_open() >= http.max_connections as u64 {
            metrics.connection_refused();
            tracing::debug!(%peer, "connection limit reached; closing");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let info = TcpConnectInfo { local_addr: stream.local_addr().ok(), remote_addr: Some(peer) };
        let svc = tower::ServiceExt::map_request(service.clone(), move |mut req: Request<Incoming>| {
            // What `tonic::Request::remote_addr()` reads.
            req.extensions_mut().insert(info.clone());
            req
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn.into_owned());
        let guard = metrics.connection();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(guard);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(http.shutdown_grace) => tracing::warn!("shutdown grace period over; closing open connections"),
    }
    Ok(())
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut)
        || e.raw_os_error().is_some_and(|code| code == 23 || code == 24) // ENFILE, EMFILE
}
