//! RFC 9440's `Client-Cert` and `Client-Cert-Chain` headers, sent beside ALB's when a listener
//! asks for them: each certificate as a structured-field byte sequence (`:` base64 DER `:`,
//! RFC 8941 §3.3.5), the chain as a list of them, leaf excluded.

use base64::Engine;
use http::header::{HeaderName, HeaderValue};
use rustls::pki_types::CertificateDer;

pub use crate::config::{
    RFC9440_CLIENT_CERT as CLIENT_CERT, RFC9440_CLIENT_CERT_CHAIN as CLIENT_CERT_CHAIN,
};

/// One certificate as a structured-field byte sequence.
fn byte_sequence(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!(":{b64}:")
}

/// The RFC 9440 headers of a chain (leaf first); none without a leaf, no `Client-Cert-Chain`
/// without intermediates.
pub fn headers(chain: &[CertificateDer<'_>]) -> Vec<(HeaderName, HeaderValue)> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(2);
    // base64, `:`, `,` and spaces: always a valid header value.
    if let Ok(v) = HeaderValue::from_str(&byte_sequence(leaf)) {
        out.push((CLIENT_CERT, v));
    }
    if !intermediates.is_empty() {
        let list: Vec<String> = intermediates.iter().map(|c| byte_sequence(c)).collect();
        if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
            out.push((CLIENT_CERT_CHAIN, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sequences_and_lists() {
        let chain = [
            CertificateDer::from(vec![1u8, 2, 3]),
            CertificateDer::from(vec![0xFFu8]),
            CertificateDer::from(vec![0u8, 0]),
        ];
        let h = headers(&chain);
        assert_eq!(h[0], (CLIENT_CERT, HeaderValue::from_static(":AQID:")));
        assert_eq!(
            h[1],
            (
                CLIENT_CERT_CHAIN,
                HeaderValue::from_static(":/w==:, :AAA=:")
            )
        );
        assert_eq!(headers(&chain[..1]).len(), 1);
        assert!(headers(&[]).is_empty());
    }
}
