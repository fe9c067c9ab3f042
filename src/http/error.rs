//! Why a request was not forwarded, or failed on the way: each case knows its status code, the
//! reason certgate writes (answer body, `error_reason`, stderr), and which side failed.

use http::{HeaderName, Response, StatusCode};

use super::{text, Body};

/// Who a failure is blamed on. Picks the status class: 4xx for the client, 5xx otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something certgate refuses, or broke off.
    Client,
    /// The target could not be reached or did not answer well.
    Target,
    /// certgate itself cannot do it (unsupported, or nothing to send it to).
    Proxy,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Target => "target",
            Side::Proxy => "proxy",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The framing guard refused the request head before hyper saw it.
    #[error("{reason}")]
    Framing { status: StatusCode, reason: String },
    #[error("request header {name} is {bytes} bytes, more than the limit of {limit}")]
    HeaderFieldTooLarge {
        name: HeaderName,
        bytes: usize,
        limit: usize,
    },
    #[error("request headers are {bytes} bytes, more than the limit of {limit}")]
    HeadersTooLarge { bytes: usize, limit: usize },
    /// RFC 9112 §3.2: a request names its host once.
    #[error("request has {count} Host header fields; RFC 9112 §3.2 allows one")]
    HostRepeated { count: usize },
    /// The value (escaped, at most 64 bytes of it) is not `host[:port]` (RFC 9112 §3.2).
    #[error("request Host header \"{value}\" is not a valid host[:port] (RFC 9112 §3.2)")]
    HostInvalid { value: String },
    #[error("protocol upgrades other than WebSocket over HTTP/1.1, and CONNECT, are not supported by certgate")]
    UpgradeUnsupported,
    /// A client certificate was checked for the name the client connected to; a request for
    /// another host on the same connection is not forwarded (RFC 9110 §15.5.20).
    #[error("request for host {host:?} on a connection made for {sni:?}")]
    Misdirected { host: String, sni: String },
    /// A redirect's `#{host}` needs the request's host, and the request named none.
    #[error("cannot build the redirect: {why}")]
    RedirectUnbuildable { why: String },
    #[error("client aborted the request body: {why}")]
    ClientBodyAborted { why: String },
    #[error("target group {group} has no targets")]
    NoTargets { group: String },
    #[error("cannot address target {target}: {why}")]
    TargetAddress { target: String, why: String },
    #[error("cannot connect to target {target}: {why}")]
    TargetConnect { target: String, why: String },
    #[error("target {target} failed: {why}")]
    TargetFailed { target: String, why: String },
    #[error("target {target} sent no response within {secs}s")]
    TargetTimeout { target: String, secs: u64 },
    /// A token check refused the request: 401 (no or bad token) or 403 (its claims do not
    /// allow it), with the `WWW-Authenticate` challenge.
    #[error("{reason}")]
    TokenRefused {
        status: StatusCode,
        challenge: http::HeaderValue,
        reason: String,
    },
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        use ProxyError as E;
        match self {
            E::Framing { status, .. } | E::TokenRefused { status, .. } => *status,
            E::HeaderFieldTooLarge { .. } | E::HeadersTooLarge { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            E::UpgradeUnsupported => StatusCode::NOT_IMPLEMENTED,
            E::Misdirected { .. } => StatusCode::MISDIRECTED_REQUEST,
            E::HostRepeated { .. }
            | E::HostInvalid { .. }
            | E::ClientBodyAborted { .. }
            | E::RedirectUnbuildable { .. } => StatusCode::BAD_REQUEST,
            E::NoTargets { .. } => StatusCode::SERVICE_UNAVAILABLE,
            E::TargetAddress { .. } | E::TargetConnect { .. } | E::TargetFailed { .. } => {
                StatusCode::BAD_GATEWAY
            }
            E::TargetTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn side(&self) -> Side {
        use ProxyError as E;
        match self {
            E::Framing { .. }
            | E::HeaderFieldTooLarge { .. }
            | E::HeadersTooLarge { .. }
            | E::HostRepeated { .. }
            | E::HostInvalid { .. }
            | E::Misdirected { .. }
            | E::ClientBodyAborted { .. }
            | E::RedirectUnbuildable { .. }
            | E::TokenRefused { .. } => Side::Client,
            E::TargetConnect { .. } | E::TargetFailed { .. } | E::TargetTimeout { .. } => {
                Side::Target
            }
            E::UpgradeUnsupported | E::NoTargets { .. } | E::TargetAddress { .. } => Side::Proxy,
        }
    }

    /// Refused before forwarding: the framing of anything after such a request cannot be
    /// trusted, so the connection closes after the answer.
    pub fn closes_connection(&self) -> bool {
        use ProxyError as E;
        matches!(
            self,
            E::Framing { .. }
                | E::HeaderFieldTooLarge { .. }
                | E::HeadersTooLarge { .. }
                | E::HostRepeated { .. }
                | E::HostInvalid { .. }
                | E::UpgradeUnsupported
                | E::Misdirected { .. }
        )
    }

    /// certgate's answer to the client.
    pub fn response(&self) -> Response<Body> {
        let mut resp = text(self.status(), &self.to_string());
        if let ProxyError::TokenRefused { challenge, .. } = self {
            resp.headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, challenge.clone());
        }
        if self.closes_connection() {
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_side_that_failed() {
        let cases = [
            ProxyError::HeadersTooLarge { bytes: 9, limit: 1 },
            ProxyError::HostRepeated { count: 2 },
            ProxyError::HostInvalid {
                value: "a b".into(),
            },
            ProxyError::Misdirected {
                host: "a".into(),
                sni: "b".into(),
            },
            ProxyError::ClientBodyAborted { why: "x".into() },
            ProxyError::TargetConnect {
                target: "t".into(),
                why: "refused".into(),
            },
            ProxyError::TargetTimeout {
                target: "t".into(),
                secs: 5,
            },
            ProxyError::NoTargets { group: "g".into() },
        ];
        for e in cases {
            let class = e.status().as_u16() / 100;
            match e.side() {
                Side::Client => assert_eq!(class, 4, "{e}"),
                Side::Target | Side::Proxy => assert_eq!(class, 5, "{e}"),
            }
        }
    }

    #[test]
    fn refusals_before_forwarding_close_the_connection() {
        let refused = ProxyError::UpgradeUnsupported.response();
        assert_eq!(refused.headers()[http::header::CONNECTION], "close");
        let failed = ProxyError::TargetFailed {
            target: "t".into(),
            why: "reset".into(),
        }
        .response();
        assert!(failed.headers().get(http::header::CONNECTION).is_none());
        assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    }
}
