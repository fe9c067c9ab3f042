//! The checks a client chain must pass, in a handshake, in `certgate verify`, and when open
//! connections are re-checked after a reload: ALB's limits (`limits.rs`), path building against
//! the trust store with webpki, key usage of path CAs, the trust anchor's own standing, and CRL
//! lookups.

use std::cell::RefCell;

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use rustls::CertificateError;
use webpki::EndEntityCert;
use x509_parser::prelude::*;

use super::limits::{check_can_sign, check_key_type, check_sizes};
use super::status::{from_webpki, Failure, VerifyCode};
use super::Policy;
use crate::truststore::freshness;
use crate::truststore::revocation::{Query, Status};
use crate::truststore::{CaInfo, TrustStore};
use crate::x509::{self, LeafFacts};

/// Parses the presented leaf; a leaf that is not X.509 is `ClientCertInvalid`.
pub(super) fn parse_leaf<'a>(
    end_entity: &'a CertificateDer<'_>,
) -> Result<X509Certificate<'a>, Failure> {
    X509Certificate::from_der(end_entity)
        .map(|(_, c)| c)
        .map_err(|e| {
            Failure::new(
                VerifyCode::Invalid,
                format!("client certificate is not valid DER X.509: {e}"),
            )
        })
}

/// A refused chain: ALB's code and reason, and the alert rustls sends the client.
pub type Refusal = (Failure, CertificateError);

fn encoding(f: Failure) -> Refusal {
    (f, CertificateError::BadEncoding)
}

/// Checks a presented chain against `policy` at `now`: the same checks a handshake makes,
/// except the CertificateVerify signature, which only the handshake can check. Used to
/// re-check open connections after a trust-store reload.
pub fn verify_chain(
    policy: &Policy,
    algorithms: &WebPkiSupportedAlgorithms,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), Failure> {
    let leaf = parse_leaf(end_entity)?;
    check_chain(policy, algorithms, &leaf, end_entity, intermediates, now)
        .map(drop)
        .map_err(|(f, _)| f)
}

/// What judging a presented chain found: the leaf's facts when it could be read, and whether the
/// chain passed (with what of it a connection keeps) or why not.
#[derive(Debug)]
pub struct Judgement {
    pub leaf: Option<LeafFacts>,
    pub outcome: Result<Kept, Refusal>,
}

/// Judges a presented chain (leaf first) against `policy` at `now`: every check a handshake
/// makes on the Certificate message, in the handshake's order. The handshake's verifier and
/// `certgate verify` both call this, so they cannot disagree; only the CertificateVerify
/// signature (possession of the key) is left to the handshake.
pub fn judge(
    policy: &Policy,
    algorithms: &WebPkiSupportedAlgorithms,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Judgement {
    let refused = |f: Failure| Judgement {
        leaf: None,
        outcome: Err((f, CertificateError::BadEncoding)),
    };
    let leaf = match parse_leaf(end_entity) {
        Ok(c) => c,
        Err(f) => return refused(f),
    };
    if let Err(e) = x509::check_names(&leaf) {
        return refused(Failure::new(
            VerifyCode::Invalid,
            format!("client certificate is malformed: {e}"),
        ));
    }
    Judgement {
        leaf: Some(x509::facts_of(&leaf)),
        outcome: check_chain(policy, algorithms, &leaf, end_entity, intermediates, now),
    }
}

/// Which of the client's intermediates its connection keeps for later re-checks, by index:
/// `None` keeps them all (passthrough: the backend gets the chain as presented).
pub type Kept = Option<Vec<usize>>;

/// The chain checks of both the handshake and `verify_chain`; on success, what of the chain
/// the connection keeps.
pub(super) fn check_chain(
    policy: &Policy,
    algorithms: &WebPkiSupportedAlgorithms,
    leaf: &X509Certificate<'_>,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<Kept, Refusal> {
    let (store, ignore_expiry) = match policy {
        Policy::Passthrough { limits } => {
            return check_sizes(end_entity, intermediates, *limits)
                .map(|()| None)
                .map_err(encoding);
        }
        Policy::Verify {
            store,
            ignore_expiry,
            ..
        } => (store, *ignore_expiry),
    };
    check_sizes(end_entity, intermediates, store.limits).map_err(encoding)?;
    check_key_type(leaf, "client certificate").map_err(encoding)?;
    let time = judged_at(leaf, now, ignore_expiry);
    let ee = EndEntityCert::try_from(end_entity).map_err(|e| from_webpki(&e))?;
    let checker = PathChecker {
        store,
        algorithms,
        presented: intermediates,
        time,
        refused: RefCell::new(None),
        kept: RefCell::new(Vec::new()),
    };
    let result = ee.verify_for_usage(
        algorithms.all,
        &store.anchors,
        intermediates,
        time,
        webpki::KeyUsage::client_auth(),
        None,
        Some(&|path: &webpki::VerifiedPath<'_>| checker.check(path)),
    );
    match (result, checker.refused.into_inner()) {
        (Ok(_), _) => Ok(Some(checker.kept.into_inner())),
        (Err(_), Some(refusal)) => Err(refusal),
        (Err(e), None) => Err(from_webpki(&e)),
    }
}

/// With ignore_client_certificate_expiry, the chain is judged at a moment when the leaf was
/// still valid: an expired chain passes, a leaf that is not valid yet does not.
fn judged_at(leaf: &X509Certificate<'_>, now: UnixTime, ignore_expiry: bool) -> UnixTime {
    let not_after = leaf.validity().not_after.timestamp();
    if ignore_expiry && not_after >= 0 && (now.as_secs() as i64) > not_after {
        return UnixTime::since_unix_epoch(std::time::Duration::from_secs(not_after as u64));
    }
    now
}

/// Path checks webpki does not make (or, for revocation, makes too slowly for large CRLs),
/// run on each candidate path webpki builds.
///
/// webpki's callback can only answer with webpki's own error type, and any error makes it try
/// the next candidate path. So a refusal is answered with a stand-in error and its real reason
/// kept in `refused`: reported only when no candidate path passes.
struct PathChecker<'a> {
    store: &'a TrustStore,
    algorithms: &'a WebPkiSupportedAlgorithms,
    /// The intermediates the client sent, in its order.
    presented: &'a [CertificateDer<'a>],
    /// The instant the chain is judged at (see `judged_at`), for the trust anchor's validity.
    time: UnixTime,
    refused: RefCell<Option<Refusal>>,
    /// Of `presented`, those of the path that passed (see [`kept_of`]).
    kept: RefCell<Vec<usize>>,
}

impl PathChecker<'_> {
    fn check(&self, path: &webpki::VerifiedPath<'_>) -> Result<(), webpki::Error> {
        // leaf + intermediates on the path + the trust anchor
        let len = 2 + path.intermediate_certificates().count();
        if len > self.store.limits.max_chain_depth {
            return Err(webpki::Error::MaximumPathDepthExceeded);
        }
        let checked = check_anchor(self.store, path.anchor(), self.time)
            .and_then(|()| check_path_cas(path).map_err(encoding))
            .and_then(|()| check_revocation(self.store, path, self.algorithms, self.time));
        if checked.is_ok() {
            *self.kept.borrow_mut() = kept_of(path, self.presented);
        }
        checked.map_err(|refusal| {
            *self.refused.borrow_mut() = Some(refusal);
            webpki::Error::UnsupportedCertVersion
        })
    }
}

/// The client's intermediates worth keeping for re-checks: those on the verified path, and the
/// client's own copy of the CA the path ends at (so that the connection still verifies if a
/// reload drops that CA from the bundle but keeps its issuer, as a new handshake would). Extra
/// certificates a client attaches (up to 3 of 16 KiB) are not kept; neither are repeats.
fn kept_of(path: &webpki::VerifiedPath<'_>, presented: &[CertificateDer<'_>]) -> Vec<usize> {
    let on_path: Vec<CertificateDer<'_>> =
        path.intermediate_certificates().map(|c| c.der()).collect();
    let anchor = path.anchor();
    let is_anchor_copy = |c: &CertificateDer<'_>| {
        webpki::anchor_from_trusted_cert(c).is_ok_and(|a| {
            a.subject == anchor.subject
                && a.subject_public_key_info == anchor.subject_public_key_info
        })
    };
    let mut kept: Vec<usize> = Vec::new();
    for (i, c) in presented.iter().enumerate() {
        let repeat = kept.iter().any(|&k| presented.get(k) == Some(c));
        if !repeat && (on_path.contains(c) || is_anchor_copy(c)) {
            kept.push(i);
        }
    }
    kept
}

/// Key type and key usage of the intermediates on the chosen path (not every extra one the
/// client sent).
fn check_path_cas(path: &webpki::VerifiedPath<'_>) -> Result<(), Failure> {
    for (i, cert) in path.intermediate_certificates().enumerate() {
        let der = cert.der();
        let what = format!("intermediate #{} of the client chain", i + 1);
        match X509Certificate::from_der(&der) {
            Ok((_, c)) => {
                check_key_type(&c, &what)?;
                check_can_sign(&c, &what)?;
            }
            Err(e) => {
                return Err(Failure::new(
                    VerifyCode::Invalid,
                    format!("{what} is malformed: {e}"),
                ))
            }
        }
    }
    Ok(())
}

// ---- the trust anchor, which webpki does not judge ----

/// The bundle CA behind `anchor`. webpki hands back a reference into `store.anchors`, so the
/// pointer finds it; equal contents are the fallback.
fn ca_of<'s>(store: &'s TrustStore, anchor: &TrustAnchor<'_>) -> Option<&'s CaInfo> {
    let by_address = store
        .anchors
        .iter()
        .position(|a| std::ptr::eq(a as *const _ as *const u8, anchor as *const _ as *const u8));
    let index = by_address.or_else(|| {
        store.anchors.iter().position(|a| {
            a.subject == anchor.subject
                && a.subject_public_key_info == anchor.subject_public_key_info
        })
    })?;
    store.cas.get(index)
}

/// Refuses a path that ends at a revoked bundle CA, or at one outside its validity at `time`
/// (the instant the rest of the chain is judged at, see `judged_at`).
fn check_anchor(
    store: &TrustStore,
    anchor: &TrustAnchor<'_>,
    time: UnixTime,
) -> Result<(), Refusal> {
    let Some(ca) = ca_of(store, anchor) else {
        return Err((
            Failure::new(
                VerifyCode::Untrusted,
                "client chain ends at a trust anchor that is not a CA of the trust store",
            ),
            CertificateError::UnknownIssuer,
        ));
    };
    if let Some(reason) = &ca.revoked {
        return Err((
            Failure::new(
                VerifyCode::CrlHit,
                format!("client chain ends at a CA of the trust store that is revoked: {reason}"),
            ),
            CertificateError::Revoked,
        ));
    }
    let at = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);
    let which = || {
        format!(
            "the bundle CA {} (serial {}) the client chain ends at",
            ca.subject, ca.serial_hex
        )
    };
    if at > ca.not_after_unix {
        return Err((
            Failure::new(
                VerifyCode::Expired,
                format!(
                    "{} expired at {} (chain judged at {})",
                    which(),
                    x509::utc_string(ca.not_after_unix),
                    x509::utc_string(at)
                ),
            ),
            CertificateError::Expired,
        ));
    }
    if at < ca.not_before_unix {
        return Err((
            Failure::new(
                VerifyCode::NotYetValid,
                format!(
                    "{} is valid only from {} (chain judged at {})",
                    which(),
                    x509::utc_string(ca.not_before_unix),
                    x509::utc_string(at)
                ),
            ),
            CertificateError::NotValidYet,
        ));
    }
    Ok(())
}

/// Checks the leaf and every intermediate of a built path against the store's CRLs. A
/// certificate with no CRL from its issuer is fine, as on ALB. (The trust anchor was judged
/// when the store was assembled; see `check_anchor`.)
fn check_revocation(
    store: &TrustStore,
    path: &webpki::VerifiedPath<'_>,
    algorithms: &WebPkiSupportedAlgorithms,
    now: UnixTime,
) -> Result<(), Refusal> {
    if store.crls.is_empty() {
        return Ok(());
    }
    let intermediates: Vec<&webpki::Cert<'_>> = path.intermediate_certificates().collect();
    let anchor_spki = x509::der_sequence(path.anchor().subject_public_key_info.as_ref());
    let certs = std::iter::once(&**path.end_entity()).chain(intermediates.iter().copied());
    for (k, cert) in certs.enumerate() {
        let intermediate_spki = intermediates.get(k).map(|i| i.subject_public_key_info());
        let issuer_spki = match &intermediate_spki {
            Some(spki) => spki.as_ref(),
            None => anchor_spki.as_slice(),
        };
        // Only CRLs checked on use compare key identifiers; read the certificate's only then.
        let key_id = if store.crls.iter().any(|c| c.needs_key_id(cert.issuer())) {
            x509::authority_key_id_of(&cert.der())
        } else {
            None
        };
        let query = Query {
            issuer: cert.issuer(),
            serial: cert.serial(),
            issuer_spki,
            key_id: key_id.as_deref(),
        };
        for (crl, info) in store.crls.iter().zip(&store.crl_infos) {
            let status = crl.judge(&query, algorithms.all);
            revocation_refusal(&status, k, cert.serial())?;
            let now_unix = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
            if let Some(why) = freshness::expired_refusal(store, crl, info, now_unix) {
                if status == Status::Good {
                    let why = format!("{why}; it covers the {}", what(k));
                    let code = VerifyCode::CrlProcessingError;
                    return Err((
                        Failure::new(code, why),
                        CertificateError::UnknownRevocationStatus,
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Certificate `k` of the path, in words (0 = the leaf).
fn what(k: usize) -> String {
    if k == 0 {
        "client certificate".to_string()
    } else {
        format!("intermediate #{k} of the client chain")
    }
}

/// The refusal for what a CRL said about certificate `k` of the path (0 = the leaf).
fn revocation_refusal(status: &Status, k: usize, serial: &[u8]) -> Result<(), Refusal> {
    let what = || what(k);
    match *status {
        Status::Good | Status::NotApplicable => Ok(()),
        Status::Revoked => Err((
            Failure::new(
                VerifyCode::CrlHit,
                format!(
                    "{} (serial {}) is revoked by a CRL of the trust store",
                    what(),
                    x509::serial_hex(serial)
                ),
            ),
            CertificateError::Revoked,
        )),
        Status::BadSignature => Err((
            Failure::new(
                VerifyCode::CrlProcessingError,
                format!(
                    "the CRL for the issuer of the {} names that issuer's key but does not verify with it",
                    what()
                ),
            ),
            CertificateError::UnknownRevocationStatus,
        )),
    }
}
