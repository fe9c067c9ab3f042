//! A listener: its socket, its swappable TLS state, and the connections it serves. Each
//! connection is accepted, handshaken, logged, then served (`accept`, `connection`,
//! `handshake`, `serve`); open verify-mode connections are re-checked when trust stores change.

mod accept;
pub mod certs;
mod connection;
mod drive;
pub mod handshake;
pub mod io;
mod online;
pub mod open_conns;
mod park;
mod plain;
mod relay;
pub mod serve;
mod signals;
pub mod staple;

pub use accept::{accept_loop, AcceptContext};
pub use connection::ConnLog;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, UnixTime};
use tokio::sync::Semaphore;

use crate::config::{ListenerConfig, Mode};
use crate::metrics::ListenerMetrics;
use crate::proxy::ProxySettings;
use crate::tls::{ListenerTls, TlsError};
use crate::truststore::Stores;
use open_conns::OpenConns;

/// A running listener.
pub struct Listener {
    /// Its configuration, kept whole so that a reload rebuilds exactly this listener.
    pub config: ListenerConfig,
    pub local: SocketAddr,
    pub tls: ArcSwap<ListenerTls>,
    /// What its request handlers share.
    pub proxy: Arc<ProxySettings>,
    /// Open verify-mode connections, re-checked when the trust store is reloaded.
    pub open_conns: Arc<OpenConns>,
    /// Its handshake metrics, resolved once.
    pub metrics: ListenerMetrics,
    /// One permit per open client connection (`max_connections`).
    conn_slots: Arc<Semaphore>,
    /// HTTP/1.1 connections parked between requests now (see `park`).
    parked: std::sync::atomic::AtomicUsize,
    /// Held while the TLS state is rebuilt, so that a SIGHUP's rebuild (new certificate) and
    /// one following published stores (kept certificate) cannot undo each other.
    rebuilding: Mutex<()>,
    /// What the certificate refresh last saw of the certificate sources.
    certificate_watch: tokio::sync::Mutex<certs::CertWatch>,
    /// Told when new server certificates go in service (their OCSP staples follow them).
    certificates_changed: tokio::sync::Notify,
}

impl Listener {
    pub fn new(
        config: ListenerConfig,
        local: SocketAddr,
        tls: ListenerTls,
        proxy: Arc<ProxySettings>,
    ) -> Listener {
        Listener {
            conn_slots: Arc::new(Semaphore::new(config.max_connections)),
            config,
            local,
            tls: ArcSwap::from_pointee(tls),
            proxy,
            open_conns: Arc::default(),
            metrics: ListenerMetrics::detached(),
            parked: std::sync::atomic::AtomicUsize::new(0),
            rebuilding: Mutex::new(()),
            certificate_watch: tokio::sync::Mutex::default(),
            certificates_changed: tokio::sync::Notify::new(),
        }
    }

    /// The listener, counting into `metrics`.
    pub fn with_metrics(mut self, metrics: ListenerMetrics) -> Listener {
        self.metrics = metrics;
        self
    }

    /// Client connections open now (handshaking or served).
    pub fn connections_open(&self) -> usize {
        self.config
            .max_connections
            .saturating_sub(self.conn_slots.available_permits())
    }

    /// Of those, HTTP/1.1 keep-alive connections parked between requests.
    pub fn connections_parked(&self) -> usize {
        self.parked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How a connection of this listener is served.
    pub fn serve_settings(&self) -> serve::ServeSettings<'_> {
        serve::ServeSettings {
            listener: self.name(),
            limits: self.config.limits,
            timeouts: self.config.timeouts,
            parked: &self.parked,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The trust store this listener verifies clients against, if any.
    pub fn trust_store(&self) -> Option<&str> {
        match self.config.mutual_authentication.mode {
            Mode::Verify => self.config.mutual_authentication.trust_store.as_deref(),
            Mode::Off | Mode::Passthrough => None,
        }
    }

    /// Rebuilds the TLS state on `stores`, keeping the server certificates, swaps it in, then
    /// re-checks open connections. On failure the current state stays in service.
    pub fn rebuild_tls(&self, stores: &Stores) -> Result<(), TlsError> {
        let _one_at_a_time = self
            .rebuilding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.rebuild_locked(stores)
    }

    fn rebuild_locked(&self, stores: &Stores) -> Result<(), TlsError> {
        let built = self.tls.load().with_stores(&self.config, stores)?;
        self.tls.store(Arc::new(built));
        self.revalidate();
        Ok(())
    }

    /// Serves `certs` to new handshakes from now on; open connections keep theirs.
    pub fn replace_certificates(
        &self,
        certs: Arc<crate::tls::ServerCerts>,
    ) -> Result<(), TlsError> {
        let _one_at_a_time = self
            .rebuilding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let built = self.tls.load().with_certificates(&self.config, certs)?;
        self.tls.store(Arc::new(built));
        self.certificates_changed.notify_one();
        Ok(())
    }

    /// Follows a newly published set of stores: rebuilds when this listener's store has a
    /// version other than the one it serves (a SIGHUP may already have rebuilt it).
    fn follow_stores(&self, stores: &Stores) {
        let Some(name) = self.trust_store() else {
            return;
        };
        let Some(store) = stores.get(name) else {
            return;
        };
        let _one_at_a_time = self
            .rebuilding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.tls.load().trust_store_version.as_deref() == Some(store.version.as_str()) {
            return;
        }
        if let Err(e) = self.rebuild_locked(stores) {
            tracing::error!(listener = %self.name(), "reload failed, keeping the current TLS settings: {e}");
        }
    }

    /// Re-checks every open verify-mode connection against the listener's current TLS state
    /// (call it right after swapping that state in) and asks each one whose chain no longer
    /// verifies to close once its in-flight requests are done. A revoked certificate must not
    /// keep a keep-alive connection, or an HTTP/2 one, in service for hours.
    ///
    /// Inside a tokio runtime the checks (signatures and CRL lookups for every connection) run
    /// on the blocking pool and this returns at once; elsewhere they run before it returns.
    pub fn revalidate(&self) {
        if self.tls.load().mode != Mode::Verify || self.open_conns.is_empty() {
            return;
        }
        let tls = self.tls.load_full();
        let open = self.open_conns.clone();
        let name = self.name().to_string();
        let metrics = self.metrics.clone();
        let check = move || revalidate_now(&name, &tls, &open, &metrics);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(check);
            }
            Err(_) => check(),
        }
    }
}

/// `revalidate`, on this thread. Blocking: keep it off the async worker threads.
fn revalidate_now(listener: &str, tls: &ListenerTls, open: &OpenConns, metrics: &ListenerMetrics) {
    let conns = open.snapshot();
    if conns.is_empty() {
        return;
    }
    let now = UnixTime::now();
    let checked = conns.len();
    let closed = conns
        .iter()
        .filter(|(id, trace_id, chain)| {
            close_if_refused(listener, tls, open, now, *id, trace_id, chain)
        })
        .inspect(|_| metrics.closed_by_revocation())
        .count();
    tracing::debug!(listener = %listener, checked, closed, "open connections re-checked");
}

/// Checks one registered connection against `tls`; if its chain fails, asks it to close and
/// logs why. True if it was asked now.
fn close_if_refused(
    listener: &str,
    tls: &ListenerTls,
    open: &OpenConns,
    now: UnixTime,
    id: u64,
    trace_id: &str,
    chain: &[CertificateDer<'static>],
) -> bool {
    let Err(failure) = tls.verify_chain(chain, now) else {
        return false;
    };
    if !open.close(id) {
        return false;
    }
    tracing::warn!(
        listener = %listener,
        conn_trace_id = %trace_id,
        tls_verify_status = %failure.code.status(),
        tls_verify_detail = %failure.detail,
        trust_store_version = tls.trust_store_version.as_deref().unwrap_or("-"),
        "closing connection after its in-flight requests: client certificate no longer verifies against the reloaded trust store"
    );
    true
}
