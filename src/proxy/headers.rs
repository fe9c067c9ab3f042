//! Header operations on the way to the target: removal of client-sent copies of owned headers
//! and of hop-by-hop headers, HTTP/2 cookie joining, X-Forwarded-*.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward, plus `proxy-connection`.
/// `Trailer` is not hop-by-hop in RFC 9110, but it only announces trailer fields, which are
/// filtered separately; dropping it keeps a client from advertising certgate-owned names.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
];

const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Framing and hop-by-hop names whose `_` spelling is dropped as well: a backend that maps `_`
/// to `-` (CGI-style environments: PHP-FPM, WSGI and Rack adapters) would otherwise see
/// `Transfer_Encoding: chunked` or `Content_Length: 5` as framing certgate never applied, the
/// classic request-smuggling setup. (`Connection`, `TE`, `Trailer` and `Upgrade` have no `-`,
/// so no `_` spelling to drop.)
const FRAMING_LOOKALIKES: [&str; 5] = [
    "transfer-encoding",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
];
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// Removes hop-by-hop headers, including any the `Connection` header names, and the `_`
/// spellings of framing and hop-by-hop names ([`FRAMING_LOOKALIKES`]).
///
/// One pass over the names the client sent (usually a handful) instead of a hash lookup per
/// hop-by-hop name: nothing is allocated when there is nothing to remove.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            HOP_BY_HOP.contains(k)
                || **k == PROXY_CONNECTION
                || listed.contains(k)
                || framing_lookalike(k.as_str())
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

fn framing_lookalike(name: &str) -> bool {
    name.contains('_')
        && FRAMING_LOOKALIKES
            .iter()
            .any(|f| underscore_spelling(f, name))
}

/// ALB's `routing.http.drop_invalid_header_fields.enabled`: removes every header whose name is
/// not made of letters, digits and `-` only (hyper already refuses names that are not tokens).
pub fn drop_invalid_fields(headers: &mut HeaderMap) {
    let valid = |k: &HeaderName| {
        k.as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let doomed: Vec<HeaderName> = headers.keys().filter(|k| !valid(k)).cloned().collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Headers certgate sets on every request besides the configured ones. Their `-` spellings are
/// rewritten by [`set_forwarded`]; their `_` spellings are removed by [`strip_owned`].
const SET_BY_CERTGATE: [HeaderName; 3] = [X_FORWARDED_FOR, X_FORWARDED_PROTO, X_FORWARDED_PORT];

/// Removes every client-sent copy of a certgate-owned header. `HeaderMap` keys are lowercase
/// and `remove` takes all values, so this covers any letter case and duplicates. Names that
/// differ only by `_` for `-` go too, for the owned names and for every header certgate sets
/// (`X_Forwarded_For`): CGI-style backends (PHP, Rack, WSGI) map both to the same variable, so
/// `X_Amzn_Mtls_Clientcert` would otherwise reach them as the certificate.
pub fn strip_owned(headers: &mut HeaderMap, strip: &[HeaderName]) {
    let owned = |k: &HeaderName| {
        strip.contains(k)
            || (k.as_str().contains('_')
                && strip
                    .iter()
                    .chain(&SET_BY_CERTGATE)
                    .any(|s| underscore_spelling(s.as_str(), k.as_str())))
    };
    let doomed: Vec<HeaderName> = headers.keys().filter(|k| owned(k)).cloned().collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Whether `candidate` is `name` with some `-` written as `_` (both lowercase).
fn underscore_spelling(name: &str, candidate: &str) -> bool {
    name.len() == candidate.len()
        && name
            .bytes()
            .zip(candidate.bytes())
            .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
}

/// HTTP/2 lets clients split `Cookie` into several fields; an HTTP/1.1 backend must get one
/// (RFC 9113 §8.2.3), joined with `"; "`.
pub fn join_cookies(headers: &mut HeaderMap) {
    let values: Vec<&HeaderValue> = headers.get_all(header::COOKIE).iter().collect();
    if values.len() < 2 {
        return;
    }
    let mut joined = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// Sets X-Forwarded-For (appending the client), X-Forwarded-Proto and X-Forwarded-Port.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    scheme: &'static str,
    port: &HeaderValue,
) {
    let prior: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if prior.is_empty() {
        headers.insert(X_FORWARDED_FOR, client_ip.clone());
    } else {
        let joined = format!(
            "{}, {}",
            prior.join(", "),
            client_ip.to_str().unwrap_or_default()
        );
        if let Ok(v) = HeaderValue::from_str(&joined) {
            headers.insert(X_FORWARDED_FOR, v);
        }
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
    headers.insert(X_FORWARDED_PORT, port.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_listed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn strips_underscore_spellings_of_framing_headers() {
        let mut h = HeaderMap::new();
        for name in [
            "transfer_encoding",
            "content_length",
            "keep_alive",
            "proxy_connection",
            "proxy_authorization",
        ] {
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("5"));
        }
        h.insert("content-length", HeaderValue::from_static("5"));
        h.insert("x_transfer_encoding", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "x_transfer_encoding"]);
    }

    #[test]
    fn drops_invalid_field_names_when_asked() {
        let mut h = HeaderMap::new();
        h.insert("x_under", HeaderValue::from_static("1"));
        h.insert("x.dot", HeaderValue::from_static("1"));
        h.insert("x-ok-9", HeaderValue::from_static("1"));
        drop_invalid_fields(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-ok-9"]);
    }

    #[test]
    fn strips_underscore_lookalikes_but_not_other_names() {
        let mut h = HeaderMap::new();
        h.insert("x_amzn_mtls_clientcert", HeaderValue::from_static("forged"));
        h.insert(
            "x_amzn-mtls_clientcert-subject",
            HeaderValue::from_static("forged"),
        );
        h.insert("x_other_header", HeaderValue::from_static("kept"));
        h.insert("x_forwarded_for", HeaderValue::from_static("10.6.6.6"));
        h.insert("x-forwarded_proto", HeaderValue::from_static("http"));
        h.insert("x_forwarded_port", HeaderValue::from_static("1"));
        strip_owned(
            &mut h,
            &crate::config::HeaderNames::alb_defaults().strip_set(),
        );
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x_other_header"));
    }

    #[test]
    fn joins_http2_cookie_fields() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        set_forwarded(
            &mut h,
            &HeaderValue::from_static("127.0.0.1"),
            "https",
            &HeaderValue::from_static("8443"),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-port"], "8443");
    }
}
