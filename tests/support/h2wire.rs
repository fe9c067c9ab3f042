//! A minimal HTTP/2 frame writer and reader for tests that must send what no well-behaved
//! client sends: PING-only connections, rapid resets, CONTINUATION floods, repeated `host`.
//! Header blocks are HPACK literals without indexing or Huffman coding (RFC 7541 §6.2.2).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{connect, Tls};

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// GOAWAY and RST_STREAM error code for a peer that is told to stop abusing the server.
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame as written or read.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// GOAWAY's error code (RFC 9113 §6.8), if this is a GOAWAY.
    pub fn goaway_code(&self) -> Option<u32> {
        (self.kind == GOAWAY && self.payload.len() >= 8).then(|| {
            u32::from_be_bytes([
                self.payload[4],
                self.payload[5],
                self.payload[6],
                self.payload[7],
            ])
        })
    }
}

/// The bytes of one frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The client connection preface and an empty SETTINGS frame.
pub fn preface() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `first` (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of literal fields (pseudo-headers included, in the order given).
pub fn header_block(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_int(&mut out, 0, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, 0, 7, value.len());
        out.extend_from_slice(value);
    }
    out
}

/// A GET for `path` on `authority` (none: no `:authority`), with extra fields.
pub fn get_block(path: &str, authority: Option<&str>, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut fields: Vec<(&str, &[u8])> = vec![
        (":method", b"GET"),
        (":scheme", b"https"),
        (":path", path.as_bytes()),
    ];
    if let Some(a) = authority {
        fields.push((":authority", a.as_bytes()));
    }
    fields.extend_from_slice(extra);
    header_block(&fields)
}

/// The status of a response header block when h2 wrote it as an indexed static entry
/// (200, 204, 206, 304, 400, 404, 500: RFC 7541 Appendix A); `None` otherwise.
pub fn indexed_status(block: &[u8]) -> Option<u16> {
    match block.first()? & 0x7f {
        8 => Some(200),
        9 => Some(204),
        10 => Some(206),
        11 => Some(304),
        12 => Some(400),
        13 => Some(404),
        14 => Some(500),
        _ => None,
    }
}

/// An HTTP/2 connection (ALPN h2) that has sent its preface.
pub async fn open(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> Tls {
    let mut tls = connect(addr, cfg).await.expect("connect");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(&preface()).await.expect("write preface");
    tls
}

/// Reads the next frame; `None` when the connection ended.
pub async fn read_frame(tls: &mut (impl AsyncRead + Unpin)) -> Option<Frame> {
    let mut head = [0u8; 9];
    tls.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    tls.read_exact(&mut payload).await.ok()?;
    Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// Reads frames (acknowledging the server's SETTINGS) until `stop` says so, the connection
/// ends or `limit` passes; returns what was read and whether the connection ended.
pub async fn read_until(
    tls: &mut Tls,
    limit: Duration,
    mut stop: impl FnMut(&Frame) -> bool,
) -> (Vec<Frame>, bool) {
    let mut frames = Vec::new();
    let read = async {
        while let Some(f) = read_frame(tls).await {
            if f.kind == SETTINGS && f.flags & ACK == 0 {
                let _ = tls.write_all(&frame(SETTINGS, ACK, 0, &[])).await;
            }
            let done = stop(&f);
            frames.push(f);
            if done {
                return false;
            }
        }
        true
    };
    let ended = tokio::time::timeout(limit, read).await.unwrap_or(false);
    (frames, ended)
}

/// The response on `stream`: the status (when indexed) and the DATA bytes, read until the
/// stream or the connection ends (at most `limit`).
pub async fn response(tls: &mut Tls, stream: u32, limit: Duration) -> (Option<u16>, String) {
    let (frames, _) = read_until(tls, limit, |f| {
        f.stream == stream && f.flags & END_STREAM != 0 && (f.kind == DATA || f.kind == HEADERS)
            || f.kind == RST_STREAM && f.stream == stream
            || f.kind == GOAWAY
    })
    .await;
    let status = frames
        .iter()
        .find(|f| f.kind == HEADERS && f.stream == stream)
        .and_then(|f| indexed_status(&f.payload));
    let body: Vec<u8> = frames
        .iter()
        .filter(|f| f.kind == DATA && f.stream == stream)
        .flat_map(|f| f.payload.clone())
        .collect();
    (status, String::from_utf8_lossy(&body).into_owned())
}
