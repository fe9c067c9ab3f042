//! What a served connection answers to besides its own traffic: the proxy draining, a reload
//! revoking its client, and its client certificate expiring; each as a future that resolves
//! when it happens and never when it cannot.

use tokio::sync::watch;

/// What a served connection answers to besides its own traffic.
pub struct Signals {
    /// Turns true when the proxy drains (SIGTERM).
    pub stop: watch::Receiver<bool>,
    /// Turns true when a trust-store reload revoked this client (verify mode only).
    pub revoked: Option<watch::Receiver<bool>>,
    /// When the client's certificate expires, if the connection must not outlive it.
    pub expires: Option<tokio::time::Instant>,
}

/// Resolves when the client's certificate expires; never without an expiry.
pub async fn expired(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending::<()>().await,
    }
}

/// Resolves once a reload asked this connection to close; never without a registration.
pub async fn close_requested(rx: &mut Option<watch::Receiver<bool>>) {
    if let Some(rx) = rx {
        if rx.wait_for(|close| *close).await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await
}
