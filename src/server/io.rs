//! The socket as hyper sees it: [`Watched`] bounds what a client can make the gateway wait
//! for below HTTP (writes that never drain, HTTP/2 header blocks that never end), closes
//! connections gently (lingering close), and owns the connection's admission [`Slot`], so the
//! slot is held exactly as long as the socket, upgraded WebSockets included. [`Rewind`] replays
//! the bytes read to tell HTTP/1.1 from HTTP/2.
//!
//! hyper and h2 have no write timeout, no HTTP/2 header timeout and no lingering close, so they
//! are written here, as IO wrappers, where they apply to every protocol above.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::admission::{Slot, now_ms};
use super::h2scan::FrameScan;
use crate::metrics::connections::Timeout;

/// Limits applied by [`Watched`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct IoLimits {
    pub write_timeout: Duration,
    pub header_read_timeout: Duration,
    pub close_linger: Duration,
}

/// A one-shot timer armed lazily: most connections never wait long enough to need one.
#[derive(Debug, Default)]
struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Timer {
    /// Arms the timer for `deadline` unless it is already armed.
    fn arm(&mut self, deadline: Instant) {
        if self.armed {
            return;
        }
        self.armed = true;
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }

    /// Whether the armed timer has fired (registering `cx` if not).
    fn fired(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.sleep {
            Some(sleep) if self.armed => sleep.as_mut().poll(cx).is_ready(),
            _ => false,
        }
    }
}

/// Where a closing connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Open,
    /// Our FIN is sent; reading and discarding until the client closes or the linger ends.
    Lingering,
    Closed,
}

/// A client socket with the gateway's limits below HTTP.
pub(crate) struct Watched<T> {
    inner: T,
    slot: Slot,
    limits: IoLimits,
    write_timer: Timer,
    read_timer: Timer,
    /// HTTP/2 only: tracks header blocks for `header_read_timeout`.
    scan: Option<FrameScan>,
    closing: Closing,
}

impl<T> Watched<T> {
    pub(crate) fn new(inner: T, slot: Slot, limits: IoLimits) -> Self {
        Self {
            inner,
            slot,
            limits,
            write_timer: Timer::default(),
            read_timer: Timer::default(),
            scan: None,
            closing: Closing::Open,
        }
    }

    /// From now on the bytes read are HTTP/2 frames (the preface is behind).
    pub(crate) fn scan_http2(&mut self) {
        self.scan = Some(FrameScan::default());
    }

    fn timed_out(&self, which: Timeout, what: &str) -> io::Error {
        self.slot.metrics().connection_events.timed_out(which);
        io::Error::new(io::ErrorKind::TimedOut, what.to_string())
    }

    fn aborted() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed to make room for a new one")
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Watched<T> {
    /// Bounds a write-side operation by `write_timeout`: the clock runs while the socket
    /// accepts nothing and stops at the first byte it accepts.
    fn bound_write<R>(&mut self, cx: &mut Context<'_>, result: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match result {
            Poll::Ready(r) => {
                self.write_timer.disarm();
                Poll::Ready(r)
            }
            Poll::Pending => {
                self.write_timer.arm(Instant::now() + self.limits.write_timeout);
                if self.write_timer.fired(cx) {
                    return Poll::Ready(Err(self.timed_out(Timeout::Write, "the client took no bytes for too long")));
                }
                Poll::Pending
            }
        }
    }

    /// After our FIN: reads and discards until the client closes, or the linger passes.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 2048];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => continue,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending if self.read_timer.fired(cx) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.slot.state().is_aborted() {
            return Poll::Ready(Err(Self::aborted()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if let Some(scan) = &mut this.scan {
                    let was_in_block = scan.in_header_block();
                    scan.feed(read);
                    if !scan.in_header_block() || !was_in_block {
                        this.read_timer.disarm();
                    }
                }
                if !read.is_empty() && this.slot.state().is_upgraded() {
                    this.slot.state().progress();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let state = this.slot.state();
                if state.is_upgraded() {
                    state.abort_waker.register(cx.waker());
                    if state.is_aborted() {
                        return Poll::Ready(Err(Self::aborted()));
                    }
                }
                if let Some(since) = this.scan.as_ref().and_then(FrameScan::header_block_since) {
                    let elapsed = Duration::from_millis(now_ms().saturating_sub(since));
                    let left = this.limits.header_read_timeout.saturating_sub(elapsed);
                    this.read_timer.arm(Instant::now() + left);
                    if this.read_timer.fired(cx) {
                        return Poll::Ready(Err(
                            this.timed_out(Timeout::Header, "an HTTP/2 header block did not end in time")
                        ));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.slot.state().is_aborted() {
            return Poll::Ready(Err(Self::aborted()));
        }
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) && self.slot.state().is_upgraded() {
            self.slot.state().progress();
        }
        self.bound_write(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.slot.state().is_aborted() {
            return Poll::Ready(Err(Self::aborted()));
        }
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) && self.slot.state().is_upgraded() {
            self.slot.state().progress();
        }
        self.bound_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.bound_write(cx, result)
    }

    /// Lingering close: send our FIN, then read and discard what the client still sends
    /// (for at most `close_linger`) before the socket is dropped. Closing a socket with
    /// unread bytes makes the kernel send a reset, and a client still writing its request
    /// would then lose the response it has not read yet.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.closing {
                Closing::Open => {
                    let result = Pin::new(&mut self.inner).poll_shutdown(cx);
                    ready!(self.bound_write(cx, result))?;
                    self.closing = Closing::Lingering;
                    self.read_timer.disarm();
                    let deadline = Instant::now() + self.limits.close_linger;
                    self.read_timer.arm(deadline);
                }
                Closing::Lingering => {
                    ready!(self.poll_linger(cx));
                    self.closing = Closing::Closed;
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Replays `prefix` (the bytes read to detect the protocol) before reading from `inner`.
pub(crate) struct Rewind<T> {
    prefix: [u8; 24],
    pos: usize,
    len: usize,
    inner: T,
}

impl<T> Rewind<T> {
    pub(crate) fn new(prefix: &[u8], inner: T) -> Self {
        let mut buf = [0u8; 24];
        let len = prefix.len().min(24);
        buf[..len].copy_from_slice(&prefix[..len]);
        Self { prefix: buf, pos: 0, len, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.pos < self.len {
            let n = (self.len - self.pos).min(buf.remaining());
            buf.put_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
