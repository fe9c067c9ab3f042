//! X.509 facts certgate reads from client and CA certificates, independent of how ALB puts them
//! on the wire: RFC 2253 names, leaf facts (subject, issuer, serial, validity), name checks, and
//! the client's identity.

pub mod identity;
mod leaf;
mod names;

pub use identity::{identity_of, Identity, IdentityField, SanKind};
pub use leaf::{
    check_names, facts_of, leaf_facts, name_is_complete, serial_hex, utc_string, validity_string,
    LeafFacts,
};
pub use names::rfc2253;

/// Why certgate cannot read the facts of a certificate.
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    /// The message carries x509-parser's reason so a rejected handshake can be diagnosed
    /// from the log without re-capturing the client's certificate.
    #[error("certificate is not valid DER X.509: {0}")]
    Parse(String),
}

/// The keyIdentifier of a certificate's authorityKeyIdentifier extension: which key of its
/// issuer signed it (RFC 5280 §4.2.1.1), used to tell apart the keys of a CA that rolled over.
pub fn authority_key_id<'a>(
    cert: &'a x509_parser::certificate::X509Certificate<'_>,
) -> Option<&'a [u8]> {
    use x509_parser::extensions::ParsedExtension;
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        })
        .map(|id| id.0)
}

/// [`authority_key_id`] of a DER certificate; `None` when it does not parse.
pub fn authority_key_id_of(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    authority_key_id(&cert).map(<[u8]>::to_vec)
}

/// Wraps DER contents in a SEQUENCE header (webpki keeps trust-anchor keys without it).
pub fn der_sequence(contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = Vec::with_capacity(len + 6);
    out.push(0x30);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}
