//! The question certgate asks an OCSP responder (RFC 6960 §4.1): the CertID of one certificate
//! (SHA-1 hashes of its issuer's name and key, as RFC 5019 profiles it and every responder
//! answers), unsigned, without a nonce; sent by GET when it fits in a URL, else by POST.

use aws_lc_rs::digest;
use der::asn1::{Null, ObjectIdentifier, OctetString};
use der::{Any, Encode};
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{CertId, OcspRequest, Request, TbsRequest};

use super::issuer::Issuer;

const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// RFC 5019 §5: a request whose base64 fits in 255 bytes goes by GET (cacheable).
pub const MAX_GET_BYTES: usize = 255;

/// The CertID of the certificate with `serial` (DER INTEGER contents) issued by `issuer`.
pub fn cert_id(issuer: &Issuer, serial: &[u8]) -> Result<CertId, String> {
    let hash = |b: &[u8]| {
        OctetString::new(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, b).as_ref())
            .map_err(|e| e.to_string())
    };
    Ok(CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: ID_SHA1,
            parameters: Some(Any::from(Null)),
        },
        issuer_name_hash: hash(&issuer.name_der)?,
        issuer_key_hash: hash(&issuer.key_bits)?,
        serial_number: SerialNumber::new(serial).map_err(|e| format!("serial number: {e}"))?,
    })
}

/// Whether a CertID in a response names the same certificate as ours, whichever of SHA-1 or
/// SHA-256 the responder chose to hash with.
pub fn same_certificate(theirs: &CertId, ours: &CertId, issuer: &Issuer) -> bool {
    if theirs.serial_number != ours.serial_number {
        return false;
    }
    let alg = match theirs.hash_algorithm.oid {
        ID_SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        ID_SHA256 => &digest::SHA256,
        _ => return false,
    };
    let hash = |b: &[u8]| digest::digest(alg, b);
    theirs.issuer_name_hash.as_bytes() == hash(&issuer.name_der).as_ref()
        && theirs.issuer_key_hash.as_bytes() == hash(&issuer.key_bits).as_ref()
}

/// The DER of an unsigned request for `id`.
pub fn encode(id: &CertId) -> Result<Vec<u8>, String> {
    OcspRequest {
        tbs_request: TbsRequest {
            request_list: vec![Request {
                req_cert: id.clone(),
                single_request_extensions: None,
            }],
            ..TbsRequest::default()
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(|e| format!("cannot encode the OCSP request: {e}"))
}

/// The GET URL for `request` at `responder` (RFC 6960 Appendix A.1), when it is short enough.
pub fn get_url(responder: &str, request: &[u8]) -> Option<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(request);
    if b64.len() > MAX_GET_BYTES {
        return None;
    }
    let escaped: String =
        percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC).collect();
    Some(format!("{}/{escaped}", responder.trim_end_matches('/')))
}
