//! I/O around a client connection: the clock behind the idle timeout, and the gentle close that
//! lets a refused client read its TLS alert.
//!
//! What keeps a connection from being idle: bytes moving for HTTP/1.1 ([`IdleIo`]), requests for
//! HTTP/2 ([`InFlight`] guards on each request and its response body). HTTP/2 counts requests,
//! not bytes: PING, SETTINGS and WINDOW_UPDATE frames cost a client nothing to send, and a
//! connection kept open by them alone would hold one of the listener's `max_connections` slots
//! forever.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// When a connection was last in use, and how many of its requests are still open.
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Whether an open request keeps the connection in use (HTTP/2). HTTP/1.1 counts bytes
    /// only, and counts its open requests for parking.
    requests_keep_busy: bool,
}

impl Activity {
    /// The clock of an HTTP/2 connection: in use while a request is open.
    pub fn new() -> Arc<Activity> {
        Self::counting(true)
    }

    fn counting(requests_keep_busy: bool) -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests_keep_busy,
        })
    }

    /// The connection was in use just now.
    pub fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long the connection has not been in use: zero while a request is open (HTTP/2).
    pub fn quiet_for(&self) -> Duration {
        if self.requests_keep_busy && !self.no_request_open() {
            return Duration::ZERO;
        }
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// No request is open.
    pub fn no_request_open(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// A request starts; it is open until the guard (moved into its response body) drops.
    /// No clock stamp here: while it is open the connection is in use anyway.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// One open request. Dropped when hyper is done with the request: its response body sent or
/// the stream reset (hyper drops the handler or the body then).
pub struct InFlight(Arc<Activity>);

impl InFlight {
    /// The response body, holding this request open until it is sent or dropped.
    pub fn track<B>(self, body: B) -> Tracked<B> {
        Tracked {
            body,
            _in_flight: self,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as open.
pub struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Tracks when a connection last moved bytes either way, for the idle timeout of HTTP/1.1.
pub struct IdleIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> IdleIo<T> {
    pub fn new(inner: T) -> (Self, Arc<Activity>) {
        let activity = Activity::counting(false);
        (
            IdleIo {
                inner,
                activity: activity.clone(),
            },
            activity,
        )
    }
}

impl<T> IdleIo<T> {
    /// The connection's own I/O.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Closes a connection whose handshake failed so that the client still reads the TLS alert.
/// The alert is already written; closing a socket with unread client bytes (curl sends its
/// request right after its side of a TLS 1.3 handshake) would make the kernel answer with a
/// reset that destroys the alert in flight. So: shut the write side, drain input for a bounded
/// time and amount, then close.
pub async fn close_gently<T: AsyncRead + AsyncWrite + Unpin>(mut io: T) {
    let _ = io.shutdown().await;
    let drain = async {
        let mut buf = vec![0u8; 4096]; // on the heap: an array here would widen every connection task
        let mut total = 0usize;
        while total < 256 * 1024 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Longest a refused client is given to read its alert and close.
const LINGER: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_request_keeps_the_connection_in_use() {
        let a = Activity::new();
        std::thread::sleep(Duration::from_millis(20));
        assert!(a.quiet_for() >= Duration::from_millis(20));
        let first = a.begin();
        let second = a.begin();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(a.quiet_for(), Duration::ZERO);
        drop(first);
        assert_eq!(a.quiet_for(), Duration::ZERO);
        let body = second.track(crate::http::empty_body());
        drop(body);
        assert!(a.quiet_for() < Duration::from_millis(20));
    }

    #[test]
    fn over_http1_an_open_request_is_counted_but_only_bytes_keep_the_connection_in_use() {
        let a = Activity::counting(false);
        let open = a.begin();
        assert!(!a.no_request_open());
        std::thread::sleep(Duration::from_millis(20));
        assert!(a.quiet_for() >= Duration::from_millis(20));
        drop(open);
        assert!(a.no_request_open());
    }
}
