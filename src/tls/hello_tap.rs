//! Reads the negotiated version, cipher suite and group from the server's own ServerHello as it
//! is written. A failed handshake hands back no `ServerConnection`, yet ALB logs the protocol and
//! cipher of failed handshakes too; the ServerHello is sent in clear before any certificate is
//! checked, so watching it is the one place that knows them in every outcome.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::{CipherSuite, NamedGroup, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerHelloInfo {
    pub version: ProtocolVersion,
    pub suite: CipherSuite,
    /// Known from the ServerHello in TLS 1.3 only (TLS 1.2 sends it in ServerKeyExchange).
    pub group: Option<NamedGroup>,
}

/// Enough for any ServerHello certgate sends; a longer prefix means something else is going on.
const MAX_PREFIX: usize = 1024;

/// An I/O wrapper that parses the first server handshake record it writes.
pub struct HelloTap<T> {
    inner: T,
    buf: Vec<u8>,
    done: bool,
    seen: Arc<OnceLock<ServerHelloInfo>>,
}

impl<T> HelloTap<T> {
    pub fn new(inner: T) -> (Self, Arc<OnceLock<ServerHelloInfo>>) {
        let seen = Arc::new(OnceLock::new());
        (
            HelloTap {
                inner,
                buf: Vec::new(),
                done: false,
                seen: seen.clone(),
            },
            seen,
        )
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        match parse_server_hello(&self.buf) {
            Parse::Incomplete if self.buf.len() < MAX_PREFIX => return,
            Parse::Done(info) => {
                let _ = self.seen.set(info);
            }
            _ => {}
        }
        self.done = true;
        self.buf = Vec::new();
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    Incomplete,
    Invalid,
    Done(ServerHelloInfo),
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// Parses a TLS record carrying a ServerHello (or HelloRetryRequest) at the start of `data`.
pub fn parse_server_hello(data: &[u8]) -> Parse {
    let mut r = Reader(data);
    let Some(header) = r.take(5) else {
        return Parse::Incomplete;
    };
    if header[0] != 0x16 {
        return Parse::Invalid;
    }
    let record_len = u16::from_be_bytes([header[3], header[4]]) as usize;
    let Some(record) = r.take(record_len) else {
        return Parse::Incomplete;
    };
    let mut h = Reader(record);
    let hello = (|| {
        if h.u8()? != 0x02 {
            return None;
        }
        let len = h.take(3)?;
        let len = (len[0] as usize) << 16 | (len[1] as usize) << 8 | len[2] as usize;
        let mut b = Reader(h.take(len)?);
        let legacy = b.u16()?;
        b.take(32)?;
        let sid = b.u8()? as usize;
        b.take(sid)?;
        let suite = b.u16()?;
        b.u8()?;
        let mut version = legacy;
        let mut group = None;
        if let Some(ext_len) = b.u16() {
            let mut e = Reader(b.take(ext_len as usize)?);
            while let (Some(ty), Some(l)) = (e.u16(), e.u16()) {
                let body = e.take(l as usize)?;
                match ty {
                    0x002b if body.len() == 2 => version = u16::from_be_bytes([body[0], body[1]]),
                    0x0033 if body.len() >= 2 => {
                        group = Some(u16::from_be_bytes([body[0], body[1]]))
                    }
                    _ => {}
                }
            }
        }
        Some(ServerHelloInfo {
            version: ProtocolVersion::from(version),
            suite: CipherSuite::from(suite),
            group: group.map(NamedGroup::from),
        })
    })();
    match hello {
        Some(info) => Parse::Done(info),
        None => Parse::Invalid,
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HelloTap<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HelloTap<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if !self.done {
            if let Poll::Ready(Ok(n)) = &r {
                let n = *n;
                self.feed(&buf[..n]);
            }
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.done {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map(|b| &**b)
            .unwrap_or(&[]);
        self.poll_write(cx, first)
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

    fn hello(version_ext: Option<u16>, key_share: Option<u16>) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]);
        body.push(32);
        body.extend([9u8; 32]);
        body.extend([0x13, 0x01, 0x00]);
        let mut ext = Vec::new();
        if let Some(v) = version_ext {
            ext.extend([0x00, 0x2b, 0x00, 0x02]);
            ext.extend(v.to_be_bytes());
        }
        if let Some(g) = key_share {
            ext.extend([0x00, 0x33, 0x00, 0x06]);
            ext.extend(g.to_be_bytes());
            ext.extend([0x00, 0x02, 0xAA, 0xBB]);
        }
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![0x02, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend(body);
        let mut rec = vec![0x16, 0x03, 0x03, (hs.len() >> 8) as u8, hs.len() as u8];
        rec.extend(hs);
        rec
    }

    #[test]
    fn parses_tls13_server_hello() {
        let data = hello(Some(0x0304), Some(0x001d));
        assert_eq!(
            parse_server_hello(&data),
            Parse::Done(ServerHelloInfo {
                version: ProtocolVersion::TLSv1_3,
                suite: CipherSuite::TLS13_AES_128_GCM_SHA256,
                group: Some(NamedGroup::X25519),
            })
        );
        for cut in 0..data.len() {
            assert_eq!(
                parse_server_hello(&data[..cut]),
                Parse::Incomplete,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn tls12_hello_keeps_legacy_version_and_refuses_garbage() {
        match parse_server_hello(&hello(None, None)) {
            Parse::Done(i) => {
                assert_eq!(i.version, ProtocolVersion::TLSv1_2);
                assert_eq!(i.group, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_server_hello(b"\x15\x03\x03\x00\x02\x02\x28"),
            Parse::Invalid
        );
        assert_eq!(
            parse_server_hello(b"\x16\x03\x03\x00\x01\x0b"),
            Parse::Invalid
        );
    }
}
