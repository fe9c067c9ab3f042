//! X.509 facts certgate reads from client and CA certificates, independent of how ALB puts them
//! on the wire: RFC 2253 names, leaf facts (subject, issuer, serial, validity) and name checks.

mod leaf;
mod names;

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
