//! The first phase: requests certgate answers itself instead of forwarding — a head the
//! framing guard refused, headers over the listener's limits, protocol upgrades, and a Host
//! other than the name the client's TLS connection was made for.

use http::request::Parts;

use super::exchange::Exchange;
use super::ConnContext;
use crate::config::RequestLimits;
use crate::http::ProxyError;

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
    if parts.headers.contains_key(http::header::UPGRADE) || parts.method == http::Method::CONNECT {
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

/// A client certificate was checked for the name the client connected to; a request for
/// another host on the same connection is answered 421 (RFC 9110 §15.5.20), not forwarded.
fn check_host(sni: Option<&str>, host: Option<&str>) -> Result<(), ProxyError> {
    match (sni, host) {
        (Some(sni), Some(host)) if !sni.eq_ignore_ascii_case(host_name(host)) => {
            Err(ProxyError::Misdirected {
                host: host.to_string(),
                sni: sni.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// The name part of a Host value: without the port, and without brackets for IPv6.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
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
