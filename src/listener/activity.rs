//! What keeps a connection from being idle: bytes moving (HTTP/1.1, through `IdleIo`) or
//! requests (HTTP/2, through [`InFlight`] guards on each request and its response body).
//!
//! HTTP/2 counts requests, not bytes: PING, SETTINGS and WINDOW_UPDATE frames cost a client
//! nothing to send, and a connection kept open by them alone would hold one of the listener's
//! `max_connections` slots forever.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};

/// When a connection was last in use, and how many of its requests are still open.
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// The connection was in use just now.
    pub fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long the connection has not been in use: zero while a request is open.
    pub fn quiet_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// A request starts; it is open until the guard (moved into its response body) drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
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
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
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
}
