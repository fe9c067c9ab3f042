//! The chain file `certgate verify` judges: PEM certificates leaf first (or one DER
//! certificate), refused with a message naming what was found when it is anything else.

use std::path::Path;

use rustls::pki_types::pem::{self, SectionKind};
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{parse_x509_certificate, X509Certificate};

/// Reads the chain in `path`: every CERTIFICATE block, in order. A block whose bytes are not a
/// certificate is kept as is: judging it is what tells the user why a client would be refused.
/// `Err` says, in words, what the file holds instead of a chain.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the file is empty: expected PEM certificates, leaf first".to_string());
    }
    let chain = if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        pem_certificates(&bytes)?
    } else {
        match parse_x509_certificate(&bytes) {
            Ok(_) => vec![CertificateDer::from(bytes)],
            Err(_) => return Err(
                "holds neither PEM nor a DER certificate: expected PEM certificates, leaf first"
                    .to_string(),
            ),
        }
    };
    leaf_first(&chain)?;
    Ok(chain)
}

fn pem_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut reader = bytes;
    let mut certs = Vec::new();
    let mut others: Vec<&str> = Vec::new();
    loop {
        match pem::from_buf(&mut reader) {
            Ok(Some((SectionKind::Certificate, der))) => certs.push(CertificateDer::from(der)),
            Ok(Some((kind, _))) => others.push(label(kind)),
            Ok(None) => break,
            Err(e) => return Err(format!("is not valid PEM: {e}")),
        }
    }
    if certs.is_empty() {
        return Err(if others.is_empty() {
            "holds no PEM certificate (no BEGIN CERTIFICATE block)".to_string()
        } else {
            format!(
                "holds no certificate, only {}: give the client's certificate chain (leaf first), not its key",
                others.join(", ")
            )
        });
    }
    Ok(certs)
}

/// The PEM label of a section, as it appears in files.
fn label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "a CERTIFICATE",
        SectionKind::PublicKey => "a PUBLIC KEY",
        SectionKind::RsaPrivateKey => "an RSA PRIVATE KEY",
        SectionKind::PrivateKey => "a PRIVATE KEY",
        SectionKind::EcPrivateKey => "an EC PRIVATE KEY",
        SectionKind::Crl => "an X509 CRL",
        SectionKind::Csr => "a CERTIFICATE REQUEST",
        _ => "another PEM block",
    }
}

/// A chain written root-to-leaf (a CA first, a non-CA later) is refused: a client sends its
/// leaf first, and judging it the other way round would answer a question nobody asked.
fn leaf_first(chain: &[CertificateDer<'_>]) -> Result<(), String> {
    let parsed: Vec<Option<X509Certificate<'_>>> = chain
        .iter()
        .map(|c| parse_x509_certificate(c).ok().map(|(_, c)| c))
        .collect();
    let is_ca = |c: &X509Certificate<'_>| c.is_ca();
    let Some(Some(first)) = parsed.first() else {
        return Ok(());
    };
    if !is_ca(first) {
        return Ok(());
    }
    let leaf = parsed
        .iter()
        .enumerate()
        .skip(1)
        .find_map(|(i, c)| c.as_ref().filter(|c| !is_ca(c)).map(|c| (i, c)));
    match leaf {
        Some((i, leaf)) => Err(format!(
            "the chain has its leaf last: certificate #1 ({}) is a CA, certificate #{} ({}) is not; put the leaf first, then its intermediates",
            crate::x509::rfc2253(first.subject()),
            i + 1,
            crate::x509::rfc2253(leaf.subject())
        )),
        None => Ok(()),
    }
}
