//! HTTP pieces every layer shares: the body type requests and responses carry, the answers
//! certgate writes itself, and [`ProxyError`], which says what failed and on which side.

pub mod error;

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, Version};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};

pub use error::{ProxyError, Side};

/// The body of every request certgate sends and every response it returns.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A body with nothing in it.
pub fn empty_body() -> Body {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A plain-text answer from certgate itself: `msg` and a newline.
pub fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("{msg}\n")))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The version as a request line writes it.
pub fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// Reads a response body whole, refusing one over `limit` bytes as soon as it passes it (a
/// fetched JWKS or OCSP answer: the peer decides the size, certgate bounds it). `what` names
/// the body in the error.
pub async fn read_capped<B>(mut body: B, limit: usize, what: &str) -> Result<Vec<u8>, String>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading {what}: {e}"))?;
        if let Some(data) = frame.data_ref() {
            out.extend_from_slice(data);
            if out.len() > limit {
                return Err(format!("{what} is more than the limit of {limit} bytes"));
            }
        }
    }
    Ok(out)
}
