//! OCSP stapling of certgate's own server certificates (SPEC §13): each certificate's
//! responder (its AIA, or `ocsp_responder_url`) is asked for the certificate's status, the
//! answer verified as client answers are (`response`), and a `good` one stapled until shortly
//! before its nextUpdate. It is fetched again at half its validity; while the responder is
//! down the last good answer stays stapled until then, and after that the certificate is
//! served without a staple. A non-`good` or expired answer is never stapled.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use x509_ocsp::CertId;
use x509_parser::prelude::*;

use super::response::Status;
use super::{issuer, now, request, Checker, Issuer};
use crate::truststore::crl::verify_signature;

/// A stapled answer is fetched again no sooner than this after it was had...
const MIN_REFRESH_SECS: i64 = 30;
/// ...and no later than this, however long it is valid.
const MAX_REFRESH_SECS: i64 = 24 * 3600;
/// After a failed fetch the next try waits this long, doubling with each failure in a row...
const MIN_RETRY_SECS: i64 = 2;
/// ...up to this.
const MAX_RETRY_SECS: i64 = 300;
/// An answer without nextUpdate is treated as valid this long after its thisUpdate.
const NO_NEXT_UPDATE_VALIDITY: i64 = 300;
/// A staple is dropped this long before its nextUpdate at most (a tenth of its validity when
/// that is shorter), so that no client is handed an answer about to expire.
const MAX_DROP_MARGIN_SECS: i64 = 3600;

/// The stapling state of one server certificate.
pub struct Stapler {
    /// Who this is, for logs: `listener web, certificate_chain CN=www`.
    what: String,
    /// The certificate and key without a staple.
    base: Arc<CertifiedKey>,
    issuer: Issuer,
    id: CertId,
    pub responder: String,
    /// The certificate and key with the current staple, if any.
    served: ArcSwapOption<Stapled>,
    state: Mutex<State>,
}

/// A verified `good` answer in service.
struct Stapled {
    key: Arc<CertifiedKey>,
    /// Unix time from which it is no longer handed out.
    drop_at: i64,
    this_update: i64,
    next_update: Option<i64>,
    /// nextUpdate, or the validity assumed without one.
    end: i64,
}

#[derive(Default)]
struct State {
    /// Unix time of the next fetch (0: at once).
    due: i64,
    /// Failed fetches in a row.
    failures: u32,
    /// Why the last fetch failed, logged when it first appears.
    last_error: Option<String>,
}

impl std::fmt::Debug for Stapler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stapler")
            .field("what", &self.what)
            .field("responder", &self.responder)
            .finish_non_exhaustive()
    }
}

impl Stapler {
    /// Stapling for the leaf of `chain` served with `base`. The issuer must be in the chain
    /// (a response can only be verified with it), and a responder must be known: `responder`
    /// when given, else the leaf's AIA.
    pub fn new(
        what: String,
        chain: &[CertificateDer<'_>],
        base: Arc<CertifiedKey>,
        responder: Option<&str>,
    ) -> Result<Stapler, String> {
        let leaf_der = chain.first().ok_or("no certificate")?.as_ref();
        let leaf = parse(leaf_der)?;
        let issuer = issuer_in(leaf_der, &leaf, &chain[1..])?;
        let responder = match responder {
            Some(url) => url.to_string(),
            None => issuer::responder_url(&leaf).ok_or(
                "ocsp_stapling = true, but the certificate names no http OCSP responder in its \
                 AIA extension and ocsp_responder_url is not set",
            )?,
        };
        let id = request::cert_id(&issuer, leaf.raw_serial())?;
        Ok(Stapler {
            what,
            base,
            issuer,
            id,
            responder,
            served: ArcSwapOption::empty(),
            state: Mutex::default(),
        })
    }

    /// The certificate and key to hand a client now: with the staple while it is current.
    pub fn current(&self, now: i64) -> Option<Arc<CertifiedKey>> {
        self.served
            .load()
            .as_ref()
            .filter(|s| now < s.drop_at)
            .map(|s| s.key.clone())
    }

    /// Unix time of the next fetch.
    pub fn due(&self) -> i64 {
        self.state.lock().map_or(0, |s| s.due)
    }

    /// Fetches and verifies an answer; a `good` one goes in service, anything else leaves the
    /// certificate without a staple once the last good one is due to be dropped.
    pub async fn refresh(&self, checker: &Checker) {
        let outcome = match checker.fetch(&self.responder, &self.id).await {
            Ok(der) => self.judge(der),
            Err(why) => Err(why),
        };
        let now = now();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match outcome {
            Ok(stapled) => {
                let half = stapled.this_update + (stapled.end - stapled.this_update) / 2;
                state.due = half
                    .clamp(now + MIN_REFRESH_SECS, now + MAX_REFRESH_SECS)
                    .min(stapled.drop_at);
                state.failures = 0;
                if state.last_error.take().is_some() {
                    tracing::info!(responder = %self.responder, "{}: OCSP staple fetched again", self.what);
                }
                self.served.store(Some(Arc::new(stapled)));
            }
            Err(why) => {
                let backoff = MIN_RETRY_SECS << state.failures.min(16);
                state.failures = state.failures.saturating_add(1);
                state.due = now + backoff.min(MAX_RETRY_SECS);
                if state.last_error.as_ref() != Some(&why) {
                    tracing::warn!(responder = %self.responder, "{}: no OCSP staple from {}: {why}{}", self.what, self.responder, self.keeping(now));
                    state.last_error = Some(why);
                }
            }
        }
    }

    /// What happens to the staple in service after a failed fetch, for the log.
    fn keeping(&self, now: i64) -> String {
        match self.served.load().as_ref() {
            Some(s) if now < s.drop_at => format!(
                "; the last good staple is served until {}",
                crate::x509::utc_string(s.drop_at)
            ),
            _ => "; served without a staple".to_string(),
        }
    }

    /// A verified `good` answer, ready to staple; why not otherwise. A revoked or unknown
    /// answer also takes the staple in service out at once.
    fn judge(&self, der: Vec<u8>) -> Result<Stapled, String> {
        let now = now();
        let checked = super::verify(&der, &self.id, &self.issuer, now)?;
        match checked.status {
            Status::Good => {}
            Status::Revoked(detail) => {
                self.served.store(None);
                return Err(format!("the responder says the certificate is {detail}"));
            }
            Status::Unknown => {
                self.served.store(None);
                return Err("the responder does not know the certificate".into());
            }
        }
        let end = checked
            .next_update
            .unwrap_or(checked.this_update + NO_NEXT_UPDATE_VALIDITY);
        let margin = drop_margin(end - checked.this_update);
        if end - margin <= now {
            return Err(format!(
                "the answer expires at {}, too soon to staple",
                crate::x509::utc_string(end)
            ));
        }
        let mut key = (*self.base).clone();
        key.ocsp = Some(der);
        Ok(Stapled {
            key: Arc::new(key),
            drop_at: end - margin,
            this_update: checked.this_update,
            next_update: checked.next_update,
            end,
        })
    }

    /// One line for `certgate check`: the staple in service, or why there is none.
    pub fn describe(&self, now: i64) -> String {
        let error = self.state.lock().ok().and_then(|s| s.last_error.clone());
        match (self.served.load().as_ref(), error) {
            (Some(s), None) if now < s.drop_at => format!(
                "stapled: good from {}, thisUpdate {}, nextUpdate {}",
                self.responder,
                crate::x509::utc_string(s.this_update),
                s.next_update
                    .map_or_else(|| "none".to_string(), crate::x509::utc_string),
            ),
            (Some(s), Some(why)) if now < s.drop_at => format!(
                "stapled: last good answer from {} until {} ({why})",
                self.responder,
                crate::x509::utc_string(s.drop_at)
            ),
            (_, Some(why)) => format!("not stapled: {}: {why}", self.responder),
            (_, None) => format!("not stapled yet: {} not asked", self.responder),
        }
    }
}

/// How long before nextUpdate an answer valid `validity` seconds is dropped.
fn drop_margin(validity: i64) -> i64 {
    (validity / 10).clamp(0, MAX_DROP_MARGIN_SECS)
}

/// Fetches every answer that is due among `staplers`, one after another; returns when the
/// next one falls due (unix time), or `None` when there are none.
pub async fn refresh_due<'a>(
    staplers: impl IntoIterator<Item = &'a Stapler>,
    checker: &Checker,
) -> Option<i64> {
    let mut next: Option<i64> = None;
    for s in staplers {
        if s.due() <= now() {
            s.refresh(checker).await;
        }
        let due = s.due();
        next = Some(next.map_or(due, |n| n.min(due)));
    }
    next
}

/// The certificate of `rest` that issued `leaf`: its subject is the leaf's issuer and its key
/// verifies the leaf's signature.
fn issuer_in(
    leaf_der: &[u8],
    leaf: &X509Certificate<'_>,
    rest: &[CertificateDer<'_>],
) -> Result<Issuer, String> {
    let algorithms = crate::crypto::crypto_provider()
        .signature_verification_algorithms
        .all;
    for der in rest {
        let cert = parse(der.as_ref())?;
        if cert.subject().as_raw() == leaf.issuer().as_raw()
            && verify_signature(leaf_der, cert.public_key().raw, algorithms).is_ok()
        {
            return Issuer::from_cert(&cert);
        }
    }
    Err(format!(
        "ocsp_stapling = true needs the issuer's certificate ({}) in the chain file after the \
         leaf, to verify OCSP answers with; it is not there",
        crate::x509::rfc2253(leaf.issuer())
    ))
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| format!("certificate cannot be read: {e}"))
}
