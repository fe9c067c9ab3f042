//! HTTP/1.1 request framing check below hyper.
//!
//! hyper resolves a request that carries both `Content-Length` and `Transfer-Encoding` by
//! dropping the length (RFC 9112 §6.3), before the request reaches certgate. RFC 9112 §6.1
//! allows a server to reject such a message instead, and a front door should: the two headers
//! together are the classic request-smuggling shape, and certgate cannot know how every hop
//! behind it would frame the message. So every HTTP/1.1 connection reads through [`FramingGuard`],
//! which follows the message framing itself (heads, `Content-Length` bodies, chunked bodies with
//! trailers) and holds each request head back until it has seen all of it.
//!
//! A head that must be refused never reaches hyper. In its place hyper gets a minimal request
//! that closes the connection, and nothing after it. The guard reports the refusal in the
//! connection's [`FramingVerdict`], with a token that only the stand-in request carries (a
//! client cannot know it), so the request handler recognises the stand-in by that token
//! ([`FramingVerdict::refusal_of`]) and answers with the status and reason recorded here.
//! Requests before it on the same connection are answered normally and in order, because hyper
//! itself writes every response.
//!
//! Where this scanner cannot parse the stream (a malformed head, a bad chunk), it stops looking
//! and passes the bytes on unchanged: hyper applies the same grammar and rejects them itself.

mod guard;
mod scanner;

pub use guard::FramingGuard;

use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, StatusCode};

/// Most header fields a request may have: hyper's default, which keeps its header index on
/// the stack.
pub const MAX_HEADERS: usize = 100;

/// The header of the stand-in request that carries the refusal's token.
const REFUSAL_TOKEN: HeaderName = HeaderName::from_static("x-certgate-framing-refusal");

/// A refused request: where it was on the connection and what the client is told.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// Zero-based position of the request on its connection.
    pub index: u64,
    pub status: StatusCode,
    pub reason: String,
    /// The request line as the client sent it, for the access log (empty if unreadable).
    pub method: String,
    pub target: String,
    pub version: &'static str,
    pub host: Option<String>,
    pub user_agent: Option<String>,
}

/// The refusal of one connection, reported by its guard to its request handler. A refusal
/// ends the connection, so there is at most one.
#[derive(Debug, Default)]
pub struct FramingVerdict {
    refusal: OnceLock<Refusal>,
    /// Set when the target accepted a WebSocket upgrade: from then on the client's bytes are
    /// WebSocket frames, not HTTP, and pass unscanned.
    upgraded: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Refusal {
    rejection: Rejection,
    /// Carried only by the stand-in request hyper gets in place of the refused head.
    token: String,
}

impl FramingVerdict {
    /// The connection switches protocols once the pending 101 response is written.
    pub fn mark_upgraded(&self) {
        self.upgraded
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub(super) fn is_upgraded(&self) -> bool {
        self.upgraded.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The rejection, if the request with these headers is the stand-in for a refused head.
    pub fn refusal_of(&self, headers: &HeaderMap) -> Option<&Rejection> {
        let refusal = self.refusal.get()?;
        let token = headers.get(&REFUSAL_TOKEN)?;
        (token.as_bytes() == refusal.token.as_bytes()).then_some(&refusal.rejection)
    }

    /// Records the refusal and returns the stand-in request: it parses as a complete request
    /// without a body and asks hyper to close the connection after answering it.
    fn refuse(&self, rejection: Rejection) -> Vec<u8> {
        let token = format!("{:032x}", rand::random::<u128>());
        let stand_in = stand_in(&token);
        let _ = self.refusal.set(Refusal { rejection, token });
        stand_in
    }
}

fn stand_in(token: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nconnection: close\r\n{}: {token}\r\n\r\n",
        REFUSAL_TOKEN.as_str()
    )
    .into_bytes()
}
