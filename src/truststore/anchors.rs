//! The CAs of a bundle judged as a whole when a store is assembled: which bundle CA issued which,
//! and which are revoked by a CRL of the store (directly, or through a revoked issuer in the
//! bundle). webpki stops at the first trust anchor and never asks about its revocation, so the
//! verdict is made here, once per load, and a handshake only looks it up.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::*;

use super::revocation::RevokedSerials;
use super::{CaInfo, CrlInfo};

/// What the store keeps of one bundle CA to match CRLs against it.
#[derive(Debug, Clone)]
pub(crate) struct BundleCa {
    /// The subject Name element (with its SEQUENCE header), as CRL issuers are compared.
    pub subject: Vec<u8>,
    /// The issuer Name contents (without the SEQUENCE header), as `RevokedSerials` keeps them.
    issuer: Vec<u8>,
    serial: Vec<u8>,
    /// The whole SubjectPublicKeyInfo element.
    pub spki: Vec<u8>,
    /// The certificate's authority key identifier (keyIdentifier).
    key_id: Option<Vec<u8>>,
    /// The bundle CA whose key verifies this certificate's signature (itself for a root).
    issued_by: Option<usize>,
}

impl BundleCa {
    pub fn of(cert: &X509Certificate<'_>) -> BundleCa {
        let issuer = super::crl::element(cert.issuer().as_raw())
            .map(|(_, contents, _, _)| contents.to_vec())
            .unwrap_or_default();
        BundleCa {
            subject: cert.subject().as_raw().to_vec(),
            issuer,
            serial: cert.raw_serial().to_vec(),
            spki: cert.public_key().raw.to_vec(),
            key_id: crate::x509::authority_key_id(cert).map(<[u8]>::to_vec),
            issued_by: None,
        }
    }
}

/// Finds, for each bundle CA, the bundle CA that issued it: same name as its issuer, and a key
/// its signature verifies with. `ders` are the certificates, in the order of `cas`.
pub(crate) fn link_issuers(cas: &mut [BundleCa], ders: &[CertificateDer<'_>]) {
    let algorithms = crate::crypto::crypto_provider()
        .signature_verification_algorithms
        .all;
    for i in 0..cas.len() {
        let found = (0..cas.len()).find(|&j| {
            let named = super::crl::element(&cas[j].subject)
                .is_some_and(|(_, contents, _, _)| contents == cas[i].issuer.as_slice());
            named && super::crl::verify_signature(&ders[i], &cas[j].spki, algorithms).is_ok()
        });
        cas[i].issued_by = found;
    }
}

/// Whether `crl` speaks for the certificate of `ca`: it names the issuer and is signed by the
/// key that issued `ca`. A CRL whose issuer is not in the bundle could not be checked at load;
/// it is taken at its word when its authority key identifier does not say otherwise (a revoked
/// CA is refused rather than trusted on a doubt).
fn applies(crl: &RevokedSerials, ca: &BundleCa, cas: &[BundleCa]) -> bool {
    if crl.issuer() != ca.issuer.as_slice() {
        return false;
    }
    match (ca.issued_by, crl.verified_spki()) {
        (Some(j), Some(spki)) => cas[j].spki.as_slice() == spki,
        (Some(_), None) | (None, Some(_)) => false,
        (None, None) => match (crl.key_id(), ca.key_id.as_deref()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        },
    }
}

fn name_of(info: &CaInfo) -> String {
    format!(
        "the bundle CA {} (serial {})",
        info.subject, info.serial_hex
    )
}

/// The reason a CRL of the store gives for refusing `cas[i]` directly, if any.
fn revoked_directly(
    i: usize,
    cas: &[BundleCa],
    infos: &[CaInfo],
    crls: &[Arc<RevokedSerials>],
    crl_infos: &[CrlInfo],
) -> Option<String> {
    let ca = &cas[i];
    let k = crls
        .iter()
        .position(|crl| applies(crl, ca, cas) && crl.lists(&ca.serial))?;
    let crl = crl_infos.get(k)?;
    let unchecked = if ca.issued_by.is_none() {
        "; its signature could not be checked, the CRL issuer is not in the bundle"
    } else {
        ""
    };
    Some(format!(
        "{} is revoked by a CRL of the trust store (issued by {}, from {}{unchecked})",
        name_of(&infos[i]),
        crl.issuer,
        crl.source
    ))
}

/// The bundle CAs with `revoked` filled in: revoked by a CRL of the store, issued by a refused
/// bundle CA, or the same CA (subject and key) as a refused bundle certificate — webpki cannot
/// tell such twins apart, so one verdict covers them all.
/// `crls` and `crl_infos` are parallel.
pub(crate) fn judge(
    cas: &[BundleCa],
    infos: &[CaInfo],
    crls: &[Arc<RevokedSerials>],
    crl_infos: &[CrlInfo],
) -> Vec<CaInfo> {
    let direct: Vec<Option<String>> = (0..cas.len())
        .map(|i| revoked_directly(i, cas, infos, crls, crl_infos))
        .collect();
    // For each refused CA, the directly revoked CA its verdict comes from.
    let mut cause: Vec<Option<usize>> = (0..cas.len())
        .map(|i| direct[i].as_ref().map(|_| i))
        .collect();
    let mut via: Vec<Option<(usize, &str)>> = vec![None; cas.len()];
    // Each pass carries a verdict one step further; a bundle of n CAs needs fewer than n.
    for _ in 0..cas.len() {
        let mut changed = false;
        for i in 0..cas.len() {
            if cause[i].is_some() {
                continue;
            }
            let refused = |j: usize| j != i && cause[j].is_some();
            let twin = (0..cas.len()).find(|&j| {
                refused(j) && cas[j].subject == cas[i].subject && cas[j].spki == cas[i].spki
            });
            let issuer = cas[i].issued_by.filter(|&j| refused(j));
            let step = match (twin, issuer) {
                (Some(j), _) => (j, "is the same CA (subject and key) as"),
                (None, Some(j)) => (j, "was issued by"),
                (None, None) => continue,
            };
            cause[i] = cause[step.0];
            via[i] = Some(step);
            changed = true;
        }
        if !changed {
            break;
        }
    }
    let mut out: Vec<CaInfo> = infos.to_vec();
    for i in 0..cas.len() {
        out[i].revoked = match (via[i], cause[i]) {
            (Some((j, how)), Some(root)) => Some(format!(
                "{} {how} {}, which is refused: {}",
                name_of(&infos[i]),
                name_of(&infos[j]),
                direct[root].as_deref().unwrap_or("revoked")
            )),
            _ => direct[i].clone(),
        };
    }
    out
}
