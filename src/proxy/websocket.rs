//! WebSockets over HTTP/1.1 (RFC 6455 §4): an upgrade request is forwarded like any other
//! request (with the mTLS and X-Forwarded headers), with its `Connection: upgrade` and
//! `Upgrade: websocket` put back after the hop-by-hop headers are stripped. When the target
//! answers 101, both sides' upgraded connections are handed to the connection task, which
//! relays them (`listener::serve`) under the connection's idle, revocation and drain rules.
//! Other upgrades, WebSocket over HTTP/2 (RFC 8441) and CONNECT are answered 501.

use std::sync::Mutex;

use http::header::{CONNECTION, UPGRADE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;

/// The two ends of an accepted upgrade, waiting for the connection task.
pub struct Relay {
    pub client: OnUpgrade,
    pub target: OnUpgrade,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Relay")
    }
}

/// Where a request handler leaves an accepted upgrade for its connection task.
pub type RelaySlot = Mutex<Option<Relay>>;

/// What a request asks for as to upgrades.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    None,
    WebSocket,
    /// Another protocol, WebSocket over HTTP/2, or CONNECT: answered 501.
    Unsupported,
}

/// Classifies `parts`: a WebSocket opening handshake is an HTTP/1.1 GET with `Upgrade:
/// websocket` and `upgrade` among the `Connection` options.
pub fn upgrade_of(parts: &Parts) -> Upgrade {
    if parts.method == Method::CONNECT {
        return Upgrade::Unsupported;
    }
    if !parts.headers.contains_key(UPGRADE) {
        return Upgrade::None;
    }
    let websocket = parts.version == Version::HTTP_11
        && parts.method == Method::GET
        && has_token(&parts.headers, UPGRADE, "websocket")
        && has_token(&parts.headers, CONNECTION, "upgrade");
    if websocket {
        Upgrade::WebSocket
    } else {
        Upgrade::Unsupported
    }
}

fn has_token(headers: &HeaderMap, name: http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Puts the upgrade headers back on a request or response whose hop-by-hop headers were
/// stripped.
pub fn restore_headers(headers: &mut HeaderMap) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
}

/// The target's answer to an upgrade request: a 101 leaves the relay in `slot` (and tells the
/// framing guard the client now speaks WebSocket); anything else is answered as it is.
pub fn accept<B>(
    response: &mut Response<B>,
    client: Option<OnUpgrade>,
    slot: &RelaySlot,
    framing: Option<&crate::proxy::framing::FramingVerdict>,
) {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let target = response.extensions_mut().remove::<OnUpgrade>();
    let (Some(client), Some(target)) = (client, target) else {
        // Cannot relay: the client gets an answer it can act on instead of a dead 101.
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        return;
    };
    restore_headers(response.headers_mut());
    if let Some(f) = framing {
        f.mark_upgraded();
    }
    if let Ok(mut s) = slot.lock() {
        *s = Some(Relay { client, target });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, version: Version, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder()
            .method(method)
            .version(version)
            .uri("/");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_http1_get_websocket_upgrades_are_websockets() {
        let ws = [
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, Upgrade"),
        ];
        assert_eq!(
            upgrade_of(&parts(Method::GET, Version::HTTP_11, &ws)),
            Upgrade::WebSocket
        );
        assert_eq!(
            upgrade_of(&parts(Method::POST, Version::HTTP_11, &ws)),
            Upgrade::Unsupported
        );
        assert_eq!(
            upgrade_of(&parts(Method::GET, Version::HTTP_2, &ws)),
            Upgrade::Unsupported
        );
        let h2c = [("upgrade", "h2c"), ("connection", "upgrade")];
        assert_eq!(
            upgrade_of(&parts(Method::GET, Version::HTTP_11, &h2c)),
            Upgrade::Unsupported
        );
        let no_conn = [("upgrade", "websocket")];
        assert_eq!(
            upgrade_of(&parts(Method::GET, Version::HTTP_11, &no_conn)),
            Upgrade::Unsupported
        );
        assert_eq!(
            upgrade_of(&parts(Method::CONNECT, Version::HTTP_11, &[])),
            Upgrade::Unsupported
        );
        assert_eq!(
            upgrade_of(&parts(Method::GET, Version::HTTP_11, &[])),
            Upgrade::None
        );
    }
}
