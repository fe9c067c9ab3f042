//! The I/O side of the framing check: [`FramingGuard`] reads the client's bytes through the
//! scanner and hands hyper only what is checked, or the stand-in for a refused head.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::scanner::{Scanner, Step};
use super::{FramingVerdict, Rejection};

/// Reads through [`Scanner`]; writes pass straight through.
#[derive(Debug)]
pub struct FramingGuard<T> {
    inner: T,
    scan: Box<Scan>,
}

#[derive(Debug)]
struct Scan {
    scanner: Scanner,
    verdict: Arc<FramingVerdict>,
    /// Bytes read from the client and not yet given to hyper: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// Of those, how many are checked and may be given to hyper.
    ready: usize,
    /// After a refused head: hyper gets nothing more.
    stopped: bool,
    eof: bool,
}

impl<T> FramingGuard<T> {
    /// A guard for an HTTP/1.1 connection whose heads may be at most `max_head` bytes.
    pub fn http1(inner: T, max_head: usize) -> (Self, Arc<FramingVerdict>) {
        let verdict = Arc::new(FramingVerdict::default());
        let scan = Scan {
            scanner: Scanner::new(max_head),
            verdict: verdict.clone(),
            buf: Vec::new(),
            start: 0,
            ready: 0,
            stopped: false,
            eof: false,
        };
        (
            FramingGuard {
                inner,
                scan: Box::new(scan),
            },
            verdict,
        )
    }
}

impl<T> FramingGuard<T> {
    /// The connection's own I/O.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Nothing is held and nothing is underway: the last message ended, the next has not begun,
    /// and the connection was neither refused, upgraded nor closed by the client.
    pub fn at_rest(&self) -> bool {
        let scan = &*self.scan;
        scan.start == scan.buf.len()
            && scan.ready == 0
            && !scan.stopped
            && !scan.eof
            && !scan.verdict.is_upgraded()
            && scan.scanner.between_messages()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let scan = &mut *this.scan;
        loop {
            if scan.ready > 0 {
                scan.give(out);
                return Poll::Ready(Ok(()));
            }
            if scan.verdict.is_upgraded() {
                // WebSocket frames after a 101: nothing to scan any more.
                if scan.start < scan.buf.len() {
                    scan.ready = scan.buf.len() - scan.start;
                    continue;
                }
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            if scan.stopped {
                // The stand-in request asked hyper to close; it has no reason to read again.
                return Poll::Pending;
            }
            if scan.eof {
                // Whatever is left is an unfinished head: hyper reports it as such.
                scan.ready = scan.buf.len() - scan.start;
                if scan.ready == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if scan.start < scan.buf.len() {
                // Bytes are held (the start of a head): scan them, reading more as needed.
                match scan.scanner.step(&scan.buf[scan.start..]) {
                    Step::Release(n) => scan.ready = n,
                    Step::Reject(rejection) => scan.reject(*rejection),
                    Step::NeedMore => ready!(scan.read_more(&mut this.inner, cx))?,
                }
                continue;
            }
            // Nothing held: read straight into hyper's buffer and check the new bytes there.
            let before = out.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
            if out.filled().len() == before {
                scan.eof = true;
                return Poll::Ready(Ok(()));
            }
            if scan.check_fresh(out, before) {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl Scan {
    /// Hands hyper held bytes that are checked.
    fn give(&mut self, out: &mut ReadBuf<'_>) {
        let n = self.ready.min(out.remaining());
        out.put_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        self.ready -= n;
        if self.start == self.buf.len() {
            // Held bytes are the exception (a head split over reads): give the memory back
            // rather than keep it for the life of an idle connection.
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Reads more client bytes behind the held ones.
    fn read_more<T: AsyncRead + Unpin>(
        &mut self,
        inner: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let have = self.buf.len();
        self.buf.resize(have + 4096, 0);
        let mut rb = ReadBuf::new(&mut self.buf[have..]);
        let r = Pin::new(inner).poll_read(cx, &mut rb);
        let got = rb.filled().len();
        self.buf.truncate(have + got);
        ready!(r)?;
        self.eof = got == 0;
        Poll::Ready(Ok(()))
    }

    /// Checks the bytes just read into `out` after `before`: keeps in `out` the prefix that may
    /// go to hyper and holds the rest (a partial head) or replaces it (a refused head). True
    /// when `out` received bytes.
    fn check_fresh(&mut self, out: &mut ReadBuf<'_>, before: usize) -> bool {
        let fresh = &out.filled()[before..];
        let got = fresh.len();
        let mut clean = 0;
        while clean < got {
            match self.scanner.step(&fresh[clean..]) {
                Step::Release(n) => clean += n,
                Step::NeedMore => {
                    self.buf.extend_from_slice(&fresh[clean..]);
                    break;
                }
                Step::Reject(rejection) => {
                    self.reject(*rejection);
                    break;
                }
            }
        }
        out.set_filled(before + clean);
        clean > 0
    }

    /// Replaces everything from the refused head on with the stand-in, and stops.
    fn reject(&mut self, rejection: Rejection) {
        tracing::debug!(reason = %rejection.reason, "request head refused below hyper");
        let stand_in = self.verdict.refuse(rejection);
        self.buf.truncate(self.start);
        self.buf.extend_from_slice(&stand_in);
        self.ready = self.buf.len() - self.start;
        self.stopped = true;
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FramingGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::framing::REFUSAL_TOKEN;

    #[tokio::test]
    async fn guard_hands_hyper_the_stand_in_and_then_nothing() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(64);
        let (mut guard, verdict) = FramingGuard::http1(server, 8192);
        let writer = tokio::spawn(async move {
            client
                .write_all(b"GET /ok HTTP/1.1\r\n\r\nPOST /no HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc")
                .await
                .unwrap();
            client
        });
        // Everything hyper reads up to the end of the stand-in's head.
        let mut got = Vec::new();
        let mut buf = [0u8; 10];
        let heads = |b: &[u8]| b.windows(4).filter(|w| w == b"\r\n\r\n").count();
        while heads(&got) < 2 {
            let n = guard.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        let first = b"GET /ok HTTP/1.1\r\n\r\n";
        assert_eq!(&got[..first.len()], first);
        let mut headers = [httparse::EMPTY_HEADER; 4];
        let mut stand_in = httparse::Request::new(&mut headers);
        assert!(stand_in.parse(&got[first.len()..]).unwrap().is_complete());
        assert_eq!((stand_in.method, stand_in.path), (Some("GET"), Some("/")));
        let mut map = http::HeaderMap::new();
        for h in stand_in.headers.iter() {
            map.append(
                http::HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(h.value).unwrap(),
            );
        }
        assert_eq!(map[http::header::CONNECTION], "close");
        assert!(verdict.refusal_of(&http::HeaderMap::new()).is_none());
        assert_eq!(
            verdict
                .refusal_of(&map)
                .map(|r| (r.index, r.target.as_str())),
            Some((1, "/no"))
        );
        let mut forged = map.clone();
        forged.insert(
            REFUSAL_TOKEN,
            http::HeaderValue::from_static("00000000000000000000000000000000"),
        );
        assert!(
            verdict.refusal_of(&forged).is_none(),
            "a guessed token is not the stand-in"
        );
        let more =
            tokio::time::timeout(std::time::Duration::from_millis(50), guard.read(&mut buf)).await;
        assert!(more.is_err(), "nothing after the stand-in");
        drop(writer.await);
    }
}
