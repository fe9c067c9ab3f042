//! How a handshake learns what the listener's shared client verifier found: the leaf's facts
//! and, when it refused, the ALB failure code with its reason.
//!
//! A listener has one rustls `ServerConfig` (and so one verifier) per reload, shared by every
//! connection, and rustls tells a verifier nothing about the connection it serves. rustls does
//! carry a custom error out of a handshake (`CertificateError::Other`), but it then sends
//! `certificate_unknown` for every refusal; certgate's clients read the specific alert
//! (`certificate_revoked`, `certificate_expired`, `unknown_ca`, `bad_certificate`), so the
//! verifier keeps returning rustls' own variants and reports the details here instead.
//!
//! rustls calls the verifier synchronously from inside the poll of the connection's own
//! handshake future, on whichever thread polls it, and nothing else runs on that thread in
//! between. [`Observed`] wraps that future: before each poll it empties this thread's slot,
//! after each poll it moves whatever the verifier left there into the future itself. So a
//! report can only ever reach the handshake whose poll made it.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::chain::Kept;
use super::status::Failure;
use crate::x509::LeafFacts;

/// What the verifier saw during one handshake.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifierReport {
    /// Facts of the presented leaf, when one was presented and parsed.
    pub leaf: Option<LeafFacts>,
    /// Why verification failed, when it did.
    pub failure: Option<Failure>,
    /// When it passed: which of the client's intermediates the connection keeps.
    pub kept: Kept,
    /// The version of the trust store that judged the chain (the listener's current one at
    /// that moment, which a reload during the handshake may have made newer than the one the
    /// connection was accepted under).
    pub trust_store_version: Option<String>,
}

impl VerifierReport {
    /// Later findings of the same handshake win; a leaf already seen is kept.
    fn absorb(&mut self, later: VerifierReport) {
        if later.leaf.is_some() {
            self.leaf = later.leaf;
        }
        if later.failure.is_some() {
            self.failure = later.failure;
        }
        if later.kept.is_some() {
            self.kept = later.kept;
        }
        if later.trust_store_version.is_some() {
            self.trust_store_version = later.trust_store_version;
        }
    }
}

thread_local! {
    static SLOT: RefCell<Option<VerifierReport>> = const { RefCell::new(None) };
}

fn with_slot(f: impl FnOnce(&mut VerifierReport)) {
    SLOT.with(|s| f(s.borrow_mut().get_or_insert_with(VerifierReport::default)));
}

/// Called by the verifier: the leaf it parsed (`None` when the leaf could not be read).
pub(crate) fn report_leaf(leaf: Option<LeafFacts>) {
    with_slot(|r| r.leaf = leaf);
}

/// Called by the verifier: why it refused the client.
pub(crate) fn report_failure(failure: Failure) {
    with_slot(|r| r.failure = Some(failure));
}

/// Called by the verifier: the version of the trust store it judges the chain against.
pub(crate) fn report_trust_store_version(version: &str) {
    with_slot(|r| r.trust_store_version = Some(version.to_string()));
}

/// Called by the verifier when the chain passed: what of it the connection keeps.
pub(crate) fn report_kept(kept: Kept) {
    with_slot(|r| r.kept = kept);
}

fn take_slot() -> Option<VerifierReport> {
    SLOT.with(|s| s.borrow_mut().take())
}

/// A handshake future that collects the verifier's reports made while it is polled.
pub struct Observed<F> {
    inner: Pin<Box<F>>,
    report: VerifierReport,
}

impl<F: Future> Observed<F> {
    /// Boxed: a TLS handshake's state is large and only needed until it ends, so it must not
    /// widen the connection task for the connection's whole life.
    pub fn new(inner: F) -> Self {
        Observed {
            inner: Box::pin(inner),
            report: VerifierReport::default(),
        }
    }
}

impl<F: Future> Future for Observed<F> {
    type Output = (F::Output, VerifierReport);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Whatever an earlier poll on this thread left behind belongs to someone else.
        take_slot();
        let polled = this.inner.as_mut().poll(cx);
        if let Some(seen) = take_slot() {
            this.report.absorb(seen);
        }
        polled.map(|out| (out, std::mem::take(&mut this.report)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mtls::status::VerifyCode;

    fn failure(detail: &str) -> Failure {
        Failure::new(VerifyCode::CrlHit, detail)
    }

    #[tokio::test]
    async fn reports_made_inside_the_poll_reach_the_future() {
        let (out, report) = Observed::new(async {
            report_failure(failure("revoked"));
            7
        })
        .await;
        assert_eq!(out, 7);
        assert_eq!(report.failure, Some(failure("revoked")));
    }

    #[tokio::test]
    async fn a_stale_report_on_the_thread_is_not_taken() {
        report_failure(failure("someone else's"));
        let ((), report) = Observed::new(async {}).await;
        assert_eq!(report, VerifierReport::default());
    }

    #[tokio::test]
    async fn reports_from_several_polls_are_combined() {
        let ((), report) = Observed::new(async {
            report_failure(failure("first flight"));
            tokio::task::yield_now().await;
            report_failure(failure("second flight"));
        })
        .await;
        assert_eq!(report.failure, Some(failure("second flight")));
        assert!(take_slot().is_none(), "the slot is left empty");
    }
}
