//! Header operations on the way to the backend: ALB's client-certificate headers (computed once
//! per connection), removal of client-sent copies and hop-by-hop headers, X-Forwarded-*.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::CertificateDer;

use crate::certinfo::{self, LeafFacts};
use crate::config::{HeaderNames, Mode};

/// The headers a connection adds to every request, built once after its handshake.
pub type ConnHeaders = Vec<(HeaderName, HeaderValue)>;

fn value(s: String) -> Option<HeaderValue> {
    match HeaderValue::from_maybe_shared(Bytes::from(s)) {
        Ok(v) => Some(v),
        Err(_) => {
            // certinfo escapes everything outside printable ASCII, so this is a bug if seen.
            tracing::error!(
                "a client-certificate header value is not a valid header value; header omitted"
            );
            None
        }
    }
}

/// ALB's headers for a connection: the presented chain in passthrough, the leaf's facts in
/// verify, and TLS version/cipher when the listener asks for them.
pub fn connection_headers(
    mode: Mode,
    names: &HeaderNames,
    chain: &[CertificateDer<'_>],
    leaf: Option<&LeafFacts>,
    tls_version: &str,
    tls_cipher: &str,
) -> ConnHeaders {
    let mut out = Vec::with_capacity(8);
    match mode {
        Mode::Off => {}
        Mode::Passthrough => {
            if !chain.is_empty() {
                let pem = certinfo::url_encoded_pem(chain.iter().map(|c| c.as_ref()));
                out.extend(value(pem).map(|v| (names.clientcert.clone(), v)));
            }
        }
        Mode::Verify => {
            if let (Some(leaf_der), Some(facts)) = (chain.first(), leaf) {
                let fields = [
                    (&names.serial_number, facts.serial_hex.clone()),
                    (&names.issuer, facts.issuer.clone()),
                    (&names.subject, facts.subject.clone()),
                    (&names.validity, facts.validity.clone()),
                    (&names.leaf, certinfo::url_encoded_pem([leaf_der.as_ref()])),
                ];
                for (name, v) in fields {
                    out.extend(value(v).map(|v| (name.clone(), v)));
                }
            }
        }
    }
    if names.send_tls_version_and_cipher_suite {
        out.push((
            names.tls_version.clone(),
            HeaderValue::from_str(tls_version).unwrap_or(HeaderValue::from_static("unknown")),
        ));
        out.push((
            names.tls_cipher_suite.clone(),
            HeaderValue::from_str(tls_cipher).unwrap_or(HeaderValue::from_static("unknown")),
        ));
    }
    out
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward, plus `proxy-connection`.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
];

/// Removes hop-by-hop headers, including any the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(&name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(HeaderName::from_static("proxy-connection"));
}

/// Removes every client-sent copy of a certgate-owned header. `HeaderMap` keys are lowercase
/// and `remove` takes all values, so this covers any letter case and duplicates.
pub fn strip_owned(headers: &mut HeaderMap, strip: &[HeaderName]) {
    for name in strip {
        headers.remove(name);
    }
}

/// Sets X-Forwarded-For (appending the client), X-Forwarded-Proto and X-Forwarded-Port.
pub fn set_forwarded(headers: &mut HeaderMap, client_ip: &str, port: &HeaderValue) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let prior: Vec<String> = headers
        .get_all(&xff)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let joined = if prior.is_empty() {
        client_ip.to_string()
    } else {
        format!("{}, {client_ip}", prior.join(", "))
    };
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(xff, v);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("https"),
    );
    headers.insert(HeaderName::from_static("x-forwarded-port"), port.clone());
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
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        set_forwarded(&mut h, "127.0.0.1", &HeaderValue::from_static("8443"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-port"], "8443");
    }
}
