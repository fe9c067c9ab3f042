//! The issuer of a certificate as OCSP needs it: its name and key for the CertID hashes, and
//! its SubjectPublicKeyInfo to check a response it signed (or the delegated responder it
//! certified). Built from the issuer's certificate or from a trust anchor of the bundle.

use rustls::pki_types::TrustAnchor;
use x509_parser::prelude::*;

use crate::truststore::crl::{element, spki_parts};

/// One issuing CA.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// The subject Name, a whole DER element.
    pub name_der: Vec<u8>,
    /// The subjectPublicKey bits (what the CertID's key hash covers).
    pub key_bits: Vec<u8>,
    /// The SubjectPublicKeyInfo, a whole DER element.
    pub spki_der: Vec<u8>,
}

impl Issuer {
    /// From the issuer's certificate.
    pub fn from_cert(cert: &X509Certificate<'_>) -> Result<Issuer, String> {
        let spki_der = cert.public_key().raw.to_vec();
        Ok(Issuer {
            name_der: cert.subject().as_raw().to_vec(),
            key_bits: key_bits(&spki_der)?,
            spki_der,
        })
    }

    /// From a trust anchor, whose subject and SPKI webpki keeps without their outer tags.
    pub fn from_anchor(anchor: &TrustAnchor<'_>) -> Result<Issuer, String> {
        let name_der = sequence(anchor.subject.as_ref());
        let spki_der = sequence(anchor.subject_public_key_info.as_ref());
        Ok(Issuer {
            key_bits: key_bits(&spki_der)?,
            name_der,
            spki_der,
        })
    }
}

fn key_bits(spki_der: &[u8]) -> Result<Vec<u8>, String> {
    spki_parts(spki_der)
        .map(|(_, key)| key.to_vec())
        .ok_or_else(|| "the issuer's public key cannot be read".to_string())
}

/// `contents` wrapped in a DER SEQUENCE header.
fn sequence(contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![0x30];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    debug_assert!(element(&out).is_some());
    out
}

/// The OCSP responder URL of the certificate's Authority Information Access extension.
pub fn responder_url(cert: &X509Certificate<'_>) -> Option<String> {
    const ID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => {
                aia.accessdescs.iter().find_map(|d| {
                    match (&d.access_method.to_id_string(), &d.access_location) {
                        (m, GeneralName::URI(uri))
                            if m == ID_AD_OCSP && uri.starts_with("http://") =>
                        {
                            Some(uri.to_string())
                        }
                        _ => None,
                    }
                })
            }
            _ => None,
        })
}
