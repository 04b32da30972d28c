//! A panic in a service ends that call with `INTERNAL`, and nothing else.
//!
//! Without this layer a panicking handler takes down whatever polled it: the HTTP/2 stream
//! (the client sees a reset, not a status), a whole HTTP/1.1 connection, or a WebSocket
//! call task (whose client never gets a `status` frame). tower-http's `CatchPanicLayer`
//! guards only the response future and answers HTTP 500, which no gRPC client reads as a
//! status; and a streaming handler panics later, while its response body is polled, after
//! the future is done. So [`CatchPanic`] guards three places, each with `catch_unwind`:
//!
//! - the service's `call` (its synchronous part);
//! - the response future: a panic there becomes a trailers-only `INTERNAL` response;
//! - the response body: a panic while a frame is polled ends the body with `INTERNAL`
//!   trailers after the messages already sent.
//!
//! Each adapter renders that status in its protocol's own form (gRPC trailers, gRPC-Web
//! trailer frame, Connect error JSON or end-of-stream message, WebSocket `status` frame);
//! the connection and the call's neighbours go on.
//!
//! What panicked is dropped (inside a guard of its own: a destructor may panic too) and
//! never polled again. The panic is logged once, as one `error` event with the panic's
//! message, where it happened and the method's path; never the request's data. To keep it
//! to one report, the layer chains a panic hook (installed the first time the layer is
//! built) that stays silent for panics inside its guard and passes every other panic to the
//! hook that was there before. A hook set after the gateway is built replaces that one and
//! sees handler panics too.
//!
//! Needs `panic = "unwind"` (Rust's default): with `panic = "abort"` nothing can be caught.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Status;

thread_local! {
    /// Whether this thread is inside one of the layer's guards (read by the panic hook).
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last guarded panic on this thread happened, left by the hook for the log.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Chains the panic hook that keeps guarded panics to one report (see the module docs).
fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f` inside the guard: `Err` holds the panic's payload.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Box<dyn Any + Send>> {
    let outer = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(outer));
    result
}

/// Logs a caught panic, once.
fn report(path: Option<&PathAndQuery>, payload: &(dyn Any + Send), during: &'static str) {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)");
    let location = LOCATION.with(|l| l.borrow_mut().take()).unwrap_or_else(|| "unknown".into());
    // The path only, never the query: a query may carry request data.
    let method = path.map_or("", PathAndQuery::path);
    tracing::error!(method, panic = message, location = %location, during, "a service panicked; the call ends with INTERNAL");
}

/// The status a panicking call ends with.
fn panic_status() -> Status {
    Status::internal("internal error: the service panicked while handling the call")
}

/// See the [module docs](self).
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
    /// `poll_ready` panicked: the next call is answered `INTERNAL` without reaching `inner`.
    unready: bool,
}

impl<S> CatchPanic<S> {
    /// Guards `inner` (and installs the panic hook, once per process).
    pub fn new(inner: S) -> Self {
        install_hook();
        Self { inner, unready: false }
    }
}

impl<S, ReqB, B> tower::Service<Request<ReqB>> for CatchPanic<S>
where
    S: tower::Service<Request<ReqB>, Response = Response<B>>,
{
    type Response = Response<PanicGuard<B>>;
    type Error = S::Error;
    type Future = CatchPanicFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match guarded(|| self.inner.poll_ready(cx)) {
            Ok(ready) => ready,
            Err(payload) => {
                // Ready, so that the call comes and gets its `INTERNAL`; a buffer's worker,
                // which polls here, keeps serving.
                report(None, &*payload, "poll_ready");
                self.unready = true;
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // A reference count, not a copy, for requests read off a connection.
        let path = req.uri().path_and_query().cloned();
        if std::mem::take(&mut self.unready) {
            return CatchPanicFuture { inner: None, path };
        }
        match guarded(|| self.inner.call(req)) {
            Ok(inner) => CatchPanicFuture { inner: Some(inner), path },
            Err(payload) => {
                report(path.as_ref(), &*payload, "call");
                CatchPanicFuture { inner: None, path }
            }
        }
    }
}

pin_project! {
    /// The response future of [`CatchPanic`].
    pub struct CatchPanicFuture<F> {
        #[pin]
        inner: Option<F>,
        path: Option<PathAndQuery>,
    }
}

impl<F, B, E> Future for CatchPanicFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<PanicGuard<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Ok(panic_response()));
        };
        match guarded(|| inner.poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(resp))) => {
                let path = this.path.take();
                Poll::Ready(Ok(resp.map(|body| PanicGuard { inner: Some(body), trailers_due: false, path })))
            }
            Ok(Poll::Ready(Err(e))) => Poll::Ready(Err(e)),
            Err(payload) => {
                report(this.path.as_ref(), &*payload, "the response future");
                // Dropped here, in a guard of its own, and never polled again.
                if let Err(payload) = guarded(|| this.inner.set(None)) {
                    report(this.path.as_ref(), &*payload, "dropping the response future");
                }
                Poll::Ready(Ok(panic_response()))
            }
        }
    }
}

/// A trailers-only `INTERNAL` response (one HEADERS frame with END_STREAM on HTTP/2: the
/// body reports its end at once).
fn panic_response<B>() -> Response<PanicGuard<B>> {
    let (parts, ()) = panic_status().into_http::<()>().into_parts();
    Response::from_parts(parts, PanicGuard { inner: None, trailers_due: false, path: None })
}

pin_project! {
    /// A response body whose panics end it with `INTERNAL` trailers.
    pub struct PanicGuard<B> {
        #[pin]
        inner: Option<B>,
        trailers_due: bool,
        path: Option<PathAndQuery>,
    }
}

impl<B> http_body::Body for PanicGuard<B>
where
    B: http_body::Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        if let Some(inner) = this.inner.as_mut().as_pin_mut() {
            match guarded(|| inner.poll_frame(cx)) {
                Ok(frame) => return frame,
                Err(payload) => {
                    report(this.path.as_ref(), &*payload, "the response body");
                    if let Err(payload) = guarded(|| this.inner.set(None)) {
                        report(this.path.as_ref(), &*payload, "dropping the response body");
                    }
                    *this.trailers_due = true;
                }
            }
        }
        if std::mem::take(this.trailers_due) {
            let mut trailers = HeaderMap::new();
            // The status's headers (as a trailers-only response carries them), as trailers.
            let _ = panic_status().add_header(&mut trailers);
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(inner) => inner.is_end_stream(),
            None => !self.trailers_due,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
#[path = "panic_tests.rs"]
mod tests;
