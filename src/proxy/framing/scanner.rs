//! The framing state machine, free of I/O: follows request heads, `Content-Length` bodies and
//! chunked bodies with trailers, and says how many bytes may go to hyper.

use http::StatusCode;

use super::{Rejection, MAX_HEADERS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Start,
    Size,
    SizeLws,
    Extension,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    EndCr,
    Trailer,
    TrailerLf,
    EndLf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Chunked {
        state: Chunk,
        size: u64,
    },
    /// The scanner lost the framing; hyper sees the bytes as they are.
    Opaque,
}

/// What the scanner made of the bytes after the ones already released.
#[derive(Debug)]
pub(super) enum Step {
    /// This many bytes are checked and may go to hyper.
    Release(usize),
    /// The bytes so far are the start of a head; read more.
    NeedMore,
    /// The head at the start of the bytes is refused.
    Reject(Box<Rejection>),
}

/// The framing state machine, free of I/O.
#[derive(Debug)]
pub(super) struct Scanner {
    state: State,
    /// Complete heads released so far: the index of the next request.
    heads: u64,
    /// Largest head accepted, in bytes (hyper's own buffer limit).
    max_head: usize,
    /// How far the current partial head has been searched for its end.
    searched: usize,
}

impl Scanner {
    pub(super) fn new(max_head: usize) -> Self {
        Scanner {
            state: State::Head,
            heads: 0,
            max_head,
            searched: 0,
        }
    }

    /// Between messages: the next byte starts a request head, and none of it has been seen.
    pub(super) fn between_messages(&self) -> bool {
        matches!(self.state, State::Head) && self.searched == 0
    }

    pub(super) fn step(&mut self, buf: &[u8]) -> Step {
        if buf.is_empty() {
            return Step::NeedMore;
        }
        match self.state {
            State::Opaque => Step::Release(buf.len()),
            State::Head => self.head(buf),
            State::Length(rem) => {
                let n = usize::try_from(rem).unwrap_or(usize::MAX).min(buf.len());
                let left = rem - n as u64;
                self.state = if left == 0 {
                    State::Head
                } else {
                    State::Length(left)
                };
                Step::Release(n)
            }
            State::Chunked { state, size } => self.chunked(state, size, buf),
        }
    }

    fn head(&mut self, buf: &[u8]) -> Step {
        // Only run the parser once the bytes could hold a complete head, so a client that
        // trickles its head in tiny pieces costs linear, not quadratic, work.
        let from = self.searched.saturating_sub(3);
        let ended = buf[from..].windows(2).any(|w| w == b"\n\n" || w == b"\n\r");
        self.searched = buf.len();
        if !ended {
            return self.too_long_or_more(buf);
        }
        let mut headers = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        match httparse::ParserConfig::default().parse_request_with_uninit_headers(
            &mut req,
            buf,
            &mut headers,
        ) {
            Ok(httparse::Status::Partial) => self.too_long_or_more(buf),
            Err(httparse::Error::TooManyHeaders) => Step::Reject(Box::new(self.rejection(
                &req,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request has more than {MAX_HEADERS} header fields"),
            ))),
            Ok(httparse::Status::Complete(len)) if len > self.max_head => self.too_long(&req),
            Ok(httparse::Status::Complete(len)) => self.complete_head(&req, len),
            Err(_) => {
                self.state = State::Opaque;
                Step::Release(buf.len())
            }
        }
    }

    /// A whole head of `len` bytes: refused when it frames its body twice, else released with
    /// the framing of the body that follows.
    fn complete_head(&mut self, req: &httparse::Request<'_, '_>, len: usize) -> Step {
        self.searched = 0;
        let mut content_length = None;
        let mut chunked = false;
        let mut transfer_encoding = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = true;
                chunked = last_coding_is_chunked(h.value);
            } else if h.name.eq_ignore_ascii_case("content-length") {
                content_length = Some(parse_length(h.value));
            }
        }
        if transfer_encoding && content_length.is_some() {
            return Step::Reject(Box::new(
                self.rejection(
                    req,
                    StatusCode::BAD_REQUEST,
                    "request has both Content-Length and Transfer-Encoding; refused as a \
                 request-smuggling risk (RFC 9112 §6.1)"
                        .to_string(),
                ),
            ));
        }
        self.heads += 1;
        self.state = body_state(transfer_encoding, chunked, content_length);
        Step::Release(len)
    }

    fn too_long_or_more(&mut self, buf: &[u8]) -> Step {
        if buf.len() <= self.max_head {
            return Step::NeedMore;
        }
        let mut headers = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let _ = httparse::ParserConfig::default().parse_request_with_uninit_headers(
            &mut req,
            buf,
            &mut headers,
        );
        self.too_long(&req)
    }

    fn too_long(&self, req: &httparse::Request<'_, '_>) -> Step {
        let reason = format!(
            "request head is larger than {} bytes (request line and headers)",
            self.max_head
        );
        Step::Reject(Box::new(self.rejection(
            req,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            reason,
        )))
    }

    fn rejection(
        &self,
        req: &httparse::Request<'_, '_>,
        status: StatusCode,
        reason: String,
    ) -> Rejection {
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        Rejection {
            index: self.heads,
            status,
            reason,
            method: req.method.unwrap_or("").to_string(),
            target: req.path.unwrap_or("").to_string(),
            version: match req.version {
                Some(0) => "HTTP/1.0",
                _ => "HTTP/1.1",
            },
            host: header("host"),
            user_agent: header("user-agent"),
        }
    }

    /// Walks a chunked body with the grammar hyper's decoder uses, up to the end of the
    /// message or of `buf`.
    fn chunked(&mut self, mut state: Chunk, mut size: u64, buf: &[u8]) -> Step {
        let mut i = 0;
        while i < buf.len() {
            if let Chunk::Data(rem) = state {
                let n = usize::try_from(rem)
                    .unwrap_or(usize::MAX)
                    .min(buf.len() - i);
                i += n;
                let left = rem - n as u64;
                state = if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left)
                };
                continue;
            }
            let b = buf[i];
            i += 1;
            let next = match state {
                Chunk::Start | Chunk::Size => match hex(b) {
                    Some(d) => size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(d))
                        .map(|s| {
                            size = s;
                            Chunk::Size
                        }),
                    None if state == Chunk::Size => size_end(b),
                    None => None,
                },
                Chunk::SizeLws => size_end(b),
                Chunk::Extension => match b {
                    b'\r' => Some(Chunk::SizeLf),
                    b'\n' => None,
                    _ => Some(Chunk::Extension),
                },
                Chunk::SizeLf => match (b, size) {
                    (b'\n', 0) => Some(Chunk::EndCr),
                    (b'\n', n) => {
                        size = 0;
                        Some(Chunk::Data(n))
                    }
                    _ => None,
                },
                Chunk::DataCr => (b == b'\r').then_some(Chunk::DataLf),
                Chunk::DataLf => (b == b'\n').then_some(Chunk::Start),
                Chunk::EndCr => Some(if b == b'\r' {
                    Chunk::EndLf
                } else {
                    Chunk::Trailer
                }),
                Chunk::Trailer => Some(if b == b'\r' {
                    Chunk::TrailerLf
                } else {
                    Chunk::Trailer
                }),
                Chunk::TrailerLf => (b == b'\n').then_some(Chunk::EndCr),
                Chunk::EndLf => {
                    if b != b'\n' {
                        self.state = State::Opaque;
                        return Step::Release(buf.len());
                    }
                    self.state = State::Head;
                    return Step::Release(i);
                }
                Chunk::Data(_) => unreachable!("handled above"),
            };
            match next {
                Some(s) => state = s,
                None => {
                    // hyper fails on the same byte and ends the connection.
                    self.state = State::Opaque;
                    return Step::Release(buf.len());
                }
            }
        }
        self.state = State::Chunked { state, size };
        Step::Release(i)
    }
}

/// How the body after a head is framed: chunked, a length, none, or (for what hyper refuses
/// itself: a last coding other than chunked, an invalid length) nothing the scanner follows.
fn body_state(
    transfer_encoding: bool,
    chunked: bool,
    content_length: Option<Option<u64>>,
) -> State {
    if transfer_encoding {
        return if chunked {
            State::Chunked {
                state: Chunk::Start,
                size: 0,
            }
        } else {
            State::Opaque
        };
    }
    match content_length {
        None | Some(Some(0)) => State::Head,
        Some(Some(n)) => State::Length(n),
        Some(None) => State::Opaque,
    }
}

fn size_end(b: u8) -> Option<Chunk> {
    match b {
        b'\t' | b' ' => Some(Chunk::SizeLws),
        b';' => Some(Chunk::Extension),
        b'\r' => Some(Chunk::SizeLf),
        _ => None,
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

/// `Some(n)` for a valid length, `None` for an invalid one (digits only, as hyper reads them).
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn last_coding_is_chunked(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    s.rsplit(',')
        .next()
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
}

#[cfg(test)]
#[path = "scanner_tests.rs"]
mod tests;
