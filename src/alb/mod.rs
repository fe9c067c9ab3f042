//! ALB's mutual-TLS headers (`X-Amzn-Mtls-Clientcert*`), and RFC 9440's when asked for: the set
//! a connection adds to every request, and their wire formats that are not plain X.509 facts
//! (those come from `crate::x509`).

mod pem;
pub mod rfc9440;

pub use pem::{push_url_encoded_pem, url_encoded_pem};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use rustls::pki_types::CertificateDer;

use crate::config::{HeaderNames, Mode};
use crate::x509::LeafFacts;

/// The headers a connection adds to every request, built once after its handshake.
pub type ConnHeaders = Vec<(HeaderName, HeaderValue)>;

fn value(s: String) -> Option<HeaderValue> {
    match HeaderValue::from_maybe_shared(Bytes::from(s)) {
        Ok(v) => Some(v),
        Err(_) => {
            // x509 and alb escape everything outside printable ASCII, so this is a bug if seen.
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
                let pem = url_encoded_pem(chain.iter().map(|c| c.as_ref()));
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
                    (&names.leaf, url_encoded_pem([leaf_der.as_ref()])),
                ];
                for (name, v) in fields {
                    out.extend(value(v).map(|v| (name.clone(), v)));
                }
            }
        }
    }
    if names.send_client_cert_rfc9440 && mode != Mode::Off {
        out.extend(rfc9440::headers(chain));
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
