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
    judge_leaf(store, chain, checker).await.0
}

/// [`check_leaf`], with what OCSP said in words (`certgate verify` shows it).
pub async fn judge_leaf(
    store: &TrustStore,
    chain: &[CertificateDer<'_>],
    checker: &Checker,
) -> (Online, String) {
    let not_checked = |why: &str| (Online::Admitted(None), why.to_string());
    if store.ocsp == OcspMode::Off {
        return not_checked("OCSP is off for this trust store");
    }
    let Some(leaf) = chain.first() else {
        return not_checked("no client certificate to check with OCSP");
    };
    let issuer = match issuer_of(store, chain) {
        Ok(i) => i,
        Err(why) => return described(unavailable(store.ocsp, format!("OCSP: {why}"))),
    };
    match checker.check(leaf.as_ref(), &issuer).await {
        Verdict::Good { responder } => (
            Online::Admitted(None),
            format!("OCSP responder {responder} says good"),
        ),
        Verdict::NoResponder => {
            not_checked("the client certificate names no OCSP responder: not checked with OCSP")
        }
        Verdict::Revoked { responder, detail } => described(Online::Refused(Failure::new(
            VerifyCode::CrlHit,
            format!(
                "client certificate is revoked according to OCSP responder {responder}: {detail}"
            ),
        ))),
        Verdict::Unknown { responder } => described(unavailable(
            store.ocsp,
            format!("OCSP responder {responder} does not know the client certificate"),
        )),
        Verdict::Failed { responder, why } => described(unavailable(
            store.ocsp,
            format!("OCSP responder {responder}: {why}"),
        )),
    }
}

/// An outcome with its own words: the refusal's detail, or the note of an admission.
fn described(online: Online) -> (Online, String) {
    let words = match &online {
        Online::Refused(f) => f.detail.clone(),
        Online::Admitted(note) => note.clone().unwrap_or_default(),
    };
    (online, words)
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
