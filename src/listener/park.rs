//! Parking quiet HTTP/1.1 keep-alive connections: once a connection has no request open and no
//! bytes moving for a while, hyper lets go of it (its read and write buffers and the request
//! handler's slot, about 30 KiB) and the TLS session waits on the socket alone; the client's next
//! request gets a fresh hyper connection on the same session, the same framing guard and the
//! same idle clock.
//!
//! hyper has no call for "hand an idle connection back", so the [`Lease`] between hyper and the
//! connection's I/O does it the way a client leaving would: once parking is asked and nothing is
//! held anywhere (no request open, no partial head, no write waiting, no byte readable), hyper's
//! next read sees end of stream, hyper closes gracefully, and its shutdown hands the I/O back
//! instead of closing it. When any of those does not hold, the lease passes hyper's reads through
//! untouched.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::handshake::ClientStream;
use super::io::{Activity, IdleIo};
use crate::proxy::framing::FramingGuard;

/// How long a connection is quiet before it parks (at most half its idle timeout). A client
/// that sends requests more often than this never pays for re-creating hyper's state.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// The quiet time after which a connection with idle timeout `idle` parks.
pub fn park_after(idle: Duration) -> Duration {
    PARK_AFTER.min(idle / 2)
}

/// What the drive loop and the lease share about parking.
pub struct ParkState {
    /// The connection has been quiet long enough: the lease may end hyper's connection.
    asked: AtomicBool,
    /// The connection's clock, with its open requests (from the handler's call until its
    /// response body is dropped).
    activity: Arc<Activity>,
}

impl ParkState {
    pub fn new(activity: Arc<Activity>) -> Self {
        ParkState {
            asked: AtomicBool::new(false),
            activity,
        }
    }

    /// No request is open.
    pub fn no_request_open(&self) -> bool {
        self.activity.no_request_open()
    }

    /// Asks the lease to let hyper's connection go at its next read that would wait.
    pub fn ask(&self) {
        self.asked.store(true, Ordering::Release);
    }

    fn asked(&self) -> bool {
        self.asked.load(Ordering::Acquire)
    }

    fn withdraw(&self) {
        self.asked.store(false, Ordering::Release);
    }
}

/// One connection counted in its listener's parked connections while this lives.
pub struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    pub fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Counted(count)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// I/O that can wait parked: it knows whether it holds part of a message, and can wait for the
/// socket to become readable without reading.
pub trait Parkable: AsyncRead + AsyncWrite + Unpin {
    /// Nothing of the client's is held above the socket: no partial head, no message underway.
    fn at_rest(&self) -> bool;
    /// Ready when the socket has something to read (or has failed).
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// The socket under a connection's TLS session (or a plain listener's connection itself).
pub trait Socket {
    fn socket(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

impl Socket for Box<ClientStream> {
    fn socket(&self) -> &TcpStream {
        self.get_ref().0.get_ref()
    }
}

impl<S: Socket + AsyncRead + AsyncWrite + Unpin> Parkable for FramingGuard<IdleIo<S>> {
    fn at_rest(&self) -> bool {
        FramingGuard::at_rest(self)
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_ref().get_ref().socket().poll_read_ready(cx)
    }
}

/// Where a lease hands the I/O back when hyper let go of a parked connection.
pub type Returned<T> = Arc<Mutex<Option<T>>>;

/// The I/O hyper serves one stretch of a connection on (from its first request or its waking
/// to its parking or end).
pub struct Lease<T> {
    io: Option<T>,
    state: Arc<ParkState>,
    returned: Returned<T>,
    /// hyper was told the client left; its shutdown hands the I/O back.
    let_go: bool,
    /// The last write or flush had to wait: hyper (or TLS) still holds bytes for the client.
    write_waiting: bool,
}

impl<T: Parkable> Lease<T> {
    pub fn new(io: T, state: Arc<ParkState>) -> (Self, Returned<T>) {
        state.withdraw();
        let returned = Arc::new(Mutex::new(None));
        let lease = Lease {
            io: Some(io),
            state,
            returned: returned.clone(),
            let_go: false,
            write_waiting: false,
        };
        (lease, returned)
    }

    fn may_let_go(&self, io: &T) -> bool {
        self.state.asked() && self.state.no_request_open() && !self.write_waiting && io.at_rest()
    }

    fn write_done<R>(&mut self, r: Poll<R>) -> Poll<R> {
        self.write_waiting = r.is_pending();
        r
    }

    /// A write to the I/O (gone once handed back), noting whether it had to wait.
    fn write_with(
        &mut self,
        write: impl FnOnce(Pin<&mut T>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let r = write(Pin::new(io));
        self.write_done(r)
    }
}

/// The I/O a lease handed back, if hyper let go of it parked.
pub fn take_returned<T>(returned: &Returned<T>) -> Option<T> {
    returned.lock().ok().and_then(|mut slot| slot.take())
}

impl<T: Parkable> AsyncRead for Lease<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.let_go {
            return Poll::Ready(Ok(()));
        }
        let Some(io) = this.io.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let before = buf.filled().len();
        match Pin::new(&mut *io).poll_read(cx, buf) {
            Poll::Pending => {
                let quiet = this.io.as_ref().is_some_and(|io| this.may_let_go(io));
                if quiet {
                    this.let_go = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                // The client spoke: not quiet any more.
                this.state.withdraw();
                Poll::Ready(Ok(()))
            }
            r => r,
        }
    }
}

impl<T: Parkable> AsyncWrite for Lease<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_with(|io| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_with(|io| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(io) = this.io.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let r = Pin::new(io).poll_flush(cx);
        this.write_done(r)
    }

    /// After hyper was let go: flushes, then hands the I/O back open. Otherwise a real close.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(io) = this.io.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        if !this.let_go {
            return Pin::new(io).poll_shutdown(cx);
        }
        ready!(Pin::new(&mut *io).poll_flush(cx))?;
        let io = this.io.take();
        if let Ok(mut slot) = this.returned.lock() {
            *slot = io;
        }
        Poll::Ready(Ok(()))
    }
}
