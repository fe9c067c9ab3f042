//! The OCSP step of a verify-mode admission (SPEC §13): after the chain and CRL checks passed
//! in the handshake, the leaf is checked with its responder, and the answer judged by the
//! store's `ocsp` mode. It runs after the handshake because rustls's verifier cannot wait for
//! the network; the client's first request waits for it instead.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::*;

use super::status::{Failure, VerifyCode};
use crate::config::OcspMode;
use crate::ocsp::{Checker, Issuer, Verdict};
use crate::truststore::crl::element;
use crate::truststore::TrustStore;

/// What the OCSP step decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Online {
    /// Admitted; with a note for the connection log when the answer could not be had.
    Admitted(Option<String>),
    Refused(Failure),
}

/// Judges the leaf of `chain` (leaf first, then the verified path) for `store`.
pub async fn check_leaf(
    store: &TrustStore,
    chain: &[CertificateDer<'_>],
    checker: &Checker,
) -> Online {
    if store.ocsp == OcspMode::Off {
        return Online::Admitted(None);
    }
    let Some(leaf) = chain.first() else {
        return Online::Admitted(None);
    };
    let issuer = match issuer_of(store, chain) {
        Ok(i) => i,
        Err(why) => return unavailable(store.ocsp, format!("OCSP: {why}")),
    };
    match checker.check(leaf.as_ref(), &issuer).await {
        Verdict::Good { .. } | Verdict::NoResponder => Online::Admitted(None),
        Verdict::Revoked { responder, detail } => Online::Refused(Failure::new(
            VerifyCode::CrlHit,
            format!(
                "client certificate is revoked according to OCSP responder {responder}: {detail}"
            ),
        )),
        Verdict::Unknown { responder } => unavailable(
            store.ocsp,
            format!("OCSP responder {responder} does not know the client certificate"),
        ),
        Verdict::Failed { responder, why } => {
            unavailable(store.ocsp, format!("OCSP responder {responder}: {why}"))
        }
    }
}

/// No believable answer: soft_fail admits with a note, hard_fail refuses.
fn unavailable(mode: OcspMode, why: String) -> Online {
    match mode {
        OcspMode::HardFail => Online::Refused(Failure::new(
            VerifyCode::CrlProcessingError,
            format!("{why} (ocsp = \"hard_fail\")"),
        )),
        _ => Online::Admitted(Some(format!("{why}; admitted (ocsp = \"soft_fail\")"))),
    }
}

/// The leaf's issuer: the next certificate of the verified path, else the bundle CA whose
/// subject is the leaf's issuer.
fn issuer_of(store: &TrustStore, chain: &[CertificateDer<'_>]) -> Result<Issuer, String> {
    if let Some(next) = chain.get(1) {
        return Issuer::from_cert(&parse(next.as_ref())?);
    }
    let leaf = parse(chain[0].as_ref())?;
    let issuer_name = element(leaf.issuer().as_raw())
        .map(|(_, contents, _, _)| contents)
        .ok_or("the leaf's issuer name cannot be read")?;
    let anchor = store
        .anchors
        .iter()
        .find(|a| a.subject.as_ref() == issuer_name)
        .ok_or("the leaf's issuer is not in the bundle")?;
    Issuer::from_anchor(anchor)
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| format!("certificate cannot be read: {e}"))
}
