//! An OCSP responder's answer, checked before it is believed (RFC 6960 §3.2): a successful
//! basic response, signed by the certificate's issuer or by a responder the issuer certified
//! for OCSP signing (EKU id-kp-OCSPSigning), naming our CertID, current (thisUpdate not in the
//! future, nextUpdate not past).

use der::{Decode, Encode};
use rustls::pki_types::SignatureVerificationAlgorithm;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspResponse, OcspResponseStatus, ResponderId,
};
use x509_parser::prelude::*;

use super::issuer::Issuer;
use super::request::same_certificate;
use crate::truststore::crl::verify_signature;

/// How far a responder's clock may run ahead of ours.
const SKEW_SECS: i64 = 300;

/// What a verified response says about the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Good,
    /// Revoked at this time (RFC 3339), for this reason if the responder gave one.
    Revoked(String),
    Unknown,
}

/// A response that passed every check.
#[derive(Debug, Clone)]
pub struct Checked {
    pub status: Status,
    pub this_update: i64,
    /// Unix time after which the answer must not be used; `None` when the responder gave none.
    pub next_update: Option<i64>,
}

/// Checks `der` as the answer for `id` from `issuer`'s responder at unix time `now`.
pub fn check(
    der: &[u8],
    id: &CertId,
    issuer: &Issuer,
    now: i64,
    algorithms: &[&dyn SignatureVerificationAlgorithm],
) -> Result<Checked, String> {
    let resp = OcspResponse::from_der(der).map_err(|e| format!("not an OCSP response: {e}"))?;
    if resp.response_status != OcspResponseStatus::Successful {
        return Err(format!("the responder answered {:?}", resp.response_status));
    }
    let bytes = resp
        .response_bytes
        .ok_or("a successful OCSP response without a body")?;
    let basic_der = bytes.response.as_bytes();
    let basic = BasicOcspResponse::from_der(basic_der)
        .map_err(|e| format!("not a basic OCSP response: {e}"))?;
    let signer = signer(&basic, issuer, now, algorithms)?;
    verify_signature(basic_der, &signer, algorithms)
        .map_err(|_| "the OCSP response's signature does not verify".to_string())?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| same_certificate(&r.cert_id, id, issuer))
        .ok_or("the OCSP response is not about this certificate")?;
    let unix = |t: &x509_ocsp::OcspGeneralizedTime| t.0.to_unix_duration().as_secs() as i64;
    let this_update = unix(&single.this_update);
    let next_update = single.next_update.as_ref().map(unix);
    if this_update > now + SKEW_SECS {
        return Err("the OCSP response's thisUpdate is in the future".into());
    }
    if next_update.is_some_and(|n| n < now) {
        return Err("the OCSP response is past its nextUpdate".into());
    }
    let status = match &single.cert_status {
        CertStatus::Good(_) => Status::Good,
        CertStatus::Revoked(info) => Status::Revoked(revoked_text(info)),
        CertStatus::Unknown(_) => Status::Unknown,
    };
    Ok(Checked {
        status,
        this_update,
        next_update,
    })
}

fn revoked_text(info: &x509_ocsp::RevokedInfo) -> String {
    let at = ::time::OffsetDateTime::from_unix_timestamp(
        info.revocation_time.0.to_unix_duration().as_secs() as i64,
    )
    .ok()
    .and_then(|t| {
        t.format(&::time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_else(|| "an unreadable time".into());
    match info.revocation_reason {
        Some(reason) => format!("revoked at {at} ({reason:?})"),
        None => format!("revoked at {at}"),
    }
}

/// The SubjectPublicKeyInfo that must have signed the response: the issuer's, when the
/// responder ID names it, else a delegated responder's certificate from the response.
fn signer(
    basic: &BasicOcspResponse,
    issuer: &Issuer,
    now: i64,
    algorithms: &[&dyn SignatureVerificationAlgorithm],
) -> Result<Vec<u8>, String> {
    let rid = &basic.tbs_response_data.responder_id;
    if names_issuer(rid, issuer) {
        return Ok(issuer.spki_der.clone());
    }
    for cert in basic.certs.iter().flatten() {
        let der = cert.to_der().map_err(|e| e.to_string())?;
        let Ok((_, parsed)) = X509Certificate::from_der(&der) else {
            continue;
        };
        if !names_cert(rid, &parsed) {
            continue;
        }
        return delegated(&der, &parsed, issuer, now, algorithms);
    }
    Err("the OCSP response is signed by neither the issuer nor a responder it certified".into())
}

/// A delegated responder: issued by the issuer, for OCSP signing, valid now.
fn delegated(
    der: &[u8],
    cert: &X509Certificate<'_>,
    issuer: &Issuer,
    now: i64,
    algorithms: &[&dyn SignatureVerificationAlgorithm],
) -> Result<Vec<u8>, String> {
    let refused = |why: &str| Err(format!("the OCSP responder certificate {why}"));
    if cert.issuer().as_raw() != issuer.name_der.as_slice()
        || verify_signature(der, &issuer.spki_der, algorithms).is_err()
    {
        return refused("is not issued by the certificate's issuer");
    }
    let for_ocsp = matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.ocsp_signing);
    if !for_ocsp {
        return refused("is not for OCSP signing (no id-kp-OCSPSigning)");
    }
    let v = cert.validity();
    if now < v.not_before.timestamp() || now > v.not_after.timestamp() {
        return refused("is outside its validity period");
    }
    Ok(cert.public_key().raw.to_vec())
}

fn names_issuer(rid: &ResponderId, issuer: &Issuer) -> bool {
    match rid {
        ResponderId::ByName(name) => name.to_der().is_ok_and(|n| n == issuer.name_der),
        ResponderId::ByKey(hash) => hash.as_bytes() == sha1(&issuer.key_bits).as_slice(),
    }
}

fn names_cert(rid: &ResponderId, cert: &X509Certificate<'_>) -> bool {
    match rid {
        ResponderId::ByName(name) => name.to_der().is_ok_and(|n| n == cert.subject().as_raw()),
        ResponderId::ByKey(hash) => {
            hash.as_bytes() == sha1(&cert.public_key().subject_public_key.data).as_slice()
        }
    }
}

fn sha1(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, b)
        .as_ref()
        .to_vec()
}
