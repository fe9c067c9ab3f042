//! Keeping the OCSP staples of a listener's server certificates current (`ocsp_stapling`):
//! each answer is fetched again when it falls due (`ocsp::staple` decides when), and the
//! certificates that a reload puts in service are stapled before they serve.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Listener;
use crate::ocsp::staple::refresh_due;
use crate::tls::ServerCerts;

/// How long new certificates may wait for their first staples before they serve anyway (the
/// refresh loop fetches what is left).
const FIRST_STAPLES_BUDGET: Duration = Duration::from_secs(3);

/// Fetches the staples of `certs` that are due now (all of them, for new certificates).
pub async fn staple_now(certs: &ServerCerts) -> Option<i64> {
    refresh_due(certs.staplers(), &crate::ocsp::checker()).await
}

/// [`staple_now`] for certificates about to go in service, within [`FIRST_STAPLES_BUDGET`]:
/// a responder that does not answer delays start-up or a reload by that much at most.
pub async fn first_staples(certs: &ServerCerts) {
    let _ = tokio::time::timeout(FIRST_STAPLES_BUDGET, staple_now(certs)).await;
}

/// Refreshes the staples of the listener's certificates in service as they fall due, until
/// `stop` turns true. Certificates that a reload swaps in are followed at once.
pub async fn staple_loop(listener: Arc<Listener>, mut stop: watch::Receiver<bool>) {
    if listener.config.ocsp_stapling.is_none() {
        return;
    }
    loop {
        let certs = listener.tls.load().certificates().clone();
        let next = staple_now(&certs).await;
        drop(certs);
        // Without a staple to look after (none can be), wake only for new certificates.
        let wait = next.map_or(Duration::from_secs(3600), |due| {
            Duration::from_secs((due - crate::ocsp::now()).clamp(1, 3600) as u64)
        });
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = listener.certificates_changed.notified() => {}
        }
    }
}
