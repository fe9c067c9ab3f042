//! The first phase: requests certgate answers itself instead of forwarding — a head the
//! framing guard refused, headers over the listener's limits, a repeated or malformed Host,
//! protocol upgrades, and a Host other than the name the client's TLS connection was made for.

use http::request::Parts;

use super::exchange::Exchange;
use super::ConnContext;
use crate::config::RequestLimits;
use crate::http::ProxyError;
use crate::wildcard::strip_port;

/// Passes a request on to routing, or says why it is refused.
pub fn check(ctx: &ConnContext, ex: &mut Exchange, parts: &Parts) -> Result<(), ProxyError> {
    if let Some(r) = ctx
        .framing
        .as_ref()
        .and_then(|f| f.refusal_of(&parts.headers))
    {
        ex.describe_refused_head(r);
        return Err(ProxyError::Framing {
            status: r.status,
            reason: r.reason.clone(),
        });
    }
    // Framing conflicts never get here: hyper refuses differing Content-Length values and
    // obs-fold with 400, and with Transfer-Encoding present it drops Content-Length (RFC 9112
    // §6.3); the request is then re-framed towards the backend, so no two parsers disagree.
    check_limits(&parts.headers, &ctx.settings.limits)?;
    check_host_field(parts)?;
    if super::websocket::upgrade_of(parts) == super::websocket::Upgrade::Unsupported {
        return Err(ProxyError::UpgradeUnsupported);
    }
    check_host(ctx.sni.as_deref(), ex.host())
}

fn check_limits(h: &http::HeaderMap, limits: &RequestLimits) -> Result<(), ProxyError> {
    if let Some((name, value)) = h
        .iter()
        .find(|(_, v)| v.len() > limits.max_header_field_bytes)
    {
        return Err(ProxyError::HeaderFieldTooLarge {
            name: name.clone(),
            bytes: value.len(),
            limit: limits.max_header_field_bytes,
        });
    }
    let total: usize = h.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if total > limits.max_header_bytes {
        return Err(ProxyError::HeadersTooLarge {
            bytes: total,
            limit: limits.max_header_bytes,
        });
    }
    Ok(())
}

/// RFC 9112 §3.2: a request has at most one Host field line, and its value is `host[:port]`;
/// anything else is answered 400. Otherwise two parsers behind certgate could pick different
/// hosts, and a value that is not text would pass the SNI comparison unread. An HTTP/2
/// `:authority` replaces the Host header on the way to the target (RFC 9113 §8.3.1).
fn check_host_field(parts: &Parts) -> Result<(), ProxyError> {
    if parts.version == http::Version::HTTP_2 && parts.uri.authority().is_some() {
        return Ok(());
    }
    let mut hosts = parts.headers.get_all(http::header::HOST).iter();
    let Some(first) = hosts.next() else {
        return Ok(());
    };
    let count = 1 + hosts.count();
    if count > 1 {
        return Err(ProxyError::HostRepeated { count });
    }
    if !valid_host(first.as_bytes()) {
        return Err(ProxyError::HostInvalid {
            value: first
                .as_bytes()
                .iter()
                .take(64)
                .flat_map(|b| b.escape_ascii())
                .map(char::from)
                .collect(),
        });
    }
    Ok(())
}

/// `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP literal in brackets, or a name
/// or IPv4 address made of unreserved characters, sub-delims and %-escapes; the port digits.
/// The empty value is allowed (a request target without an authority).
fn valid_host(v: &[u8]) -> bool {
    let (host, port) = match v.strip_prefix(b"[") {
        Some(rest) => {
            let Some(end) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            let literal = &rest[..end];
            let ok = !literal.is_empty()
                && literal
                    .iter()
                    .all(|&b| b == b':' || b == b'%' || host_byte(b));
            if !ok {
                return false;
            }
            (&[][..], &rest[end + 1..])
        }
        None => match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i..]),
            None => (v, &[][..]),
        },
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    port_ok && reg_name(host)
}

/// RFC 3986 reg-name (which covers IPv4 addresses): host bytes and well-formed %-escapes.
fn reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'%' => {
                let hex = name.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
            }
            b if host_byte(b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// RFC 3986 unreserved and sub-delims characters.
fn host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
}

/// A client certificate was checked for the name the client connected to; a request for
/// another host on the same connection is answered 421 (RFC 9110 §15.5.20), not forwarded.
fn check_host(sni: Option<&str>, host: Option<&str>) -> Result<(), ProxyError> {
    match (sni, host) {
        (Some(sni), Some(host)) if !sni.eq_ignore_ascii_case(strip_port(host)) => {
            Err(ProxyError::Misdirected {
                host: host.to_string(),
                sni: sni.to_string(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_must_name_the_tls_server_name() {
        assert!(check_host(Some("api.example"), Some("api.example:8443")).is_ok());
        assert!(check_host(Some("API.example"), Some("api.example")).is_ok());
        assert!(check_host(Some("::1"), Some("[::1]:443")).is_ok());
        assert!(check_host(None, Some("other.example")).is_ok());
        assert!(check_host(Some("api.example"), None).is_ok());
        let e = check_host(Some("api.example"), Some("admin.example")).unwrap_err();
        assert_eq!(e.status(), http::StatusCode::MISDIRECTED_REQUEST);
    }

    #[test]
    fn host_values_must_be_host_and_port() {
        for ok in [
            "",
            "localhost",
            "LOCALHOST:8443",
            "127.0.0.1:443",
            "[::1]:443",
            "[fe80::1%25eth0]",
            "a-b.example:",
            "x%41y",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok:?}");
        }
        for bad in [
            &b"evil.example\xff"[..],
            b"a b",
            b"user@host",
            b"host:80:80",
            b"host:8o",
            b"[::1",
            b"[]",
            b"[::1]x",
            b"a/b",
            b"x%4",
            b"x%zz",
        ] {
            assert!(!valid_host(bad), "{:?}", bad.escape_ascii().to_string());
        }
    }

    #[test]
    fn limits_name_the_field_and_the_total() {
        let limits = RequestLimits {
            max_header_field_bytes: 8,
            max_header_bytes: 40,
        };
        let mut h = http::HeaderMap::new();
        h.insert("a", http::HeaderValue::from_static("12345678"));
        assert!(check_limits(&h, &limits).is_ok());
        h.insert("b", http::HeaderValue::from_static("123456789"));
        let e = check_limits(&h, &limits).unwrap_err();
        assert_eq!(
            e.to_string(),
            "request header b is 9 bytes, more than the limit of 8"
        );
        h.remove("b");
        for n in ["c", "d", "e"] {
            h.insert(n, http::HeaderValue::from_static("1234567"));
        }
        let e = check_limits(&h, &limits).unwrap_err();
        assert!(
            e.to_string().starts_with("request headers are 49 bytes"),
            "{e}"
        );
    }
}
