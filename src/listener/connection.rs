//! The life of one client connection in three steps: `handshake`, one connection-log record
//! built from its outcome, then `serve` (admitted clients only).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::Watcher;
use rustls::pki_types::UnixTime;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::handshake::{handshake, Established, Handshake, Refused};
use super::open_conns::Registration;
use super::serve::{serve, Signals};
use super::{close_if_refused, Listener};
use crate::config::{ListenerConfig, Mode};
use crate::mtls::{Failure, VerifyCode};
use crate::observe::connection::ConnectionRecord;
use crate::observe::LogSink;
use crate::proxy::framing::FramingVerdict;
use crate::proxy::{ClientCert, ConnContext};
use crate::tls::ListenerTls;
use crate::x509::{self, Identity};
use http::{HeaderName, HeaderValue};

/// Where a listener's connection-log records go.
#[derive(Clone)]
pub struct ConnLog {
    pub sink: LogSink,
    /// ALB's space-separated line instead of JSON.
    pub alb_format: bool,
}

impl ConnLog {
    pub fn write(&self, record: &ConnectionRecord) {
        self.sink.write(if self.alb_format {
            record.to_alb()
        } else {
            record.to_json()
        });
    }
}

/// The record of a connection accepted now, before any TLS work.
pub fn accepted(listener: &Listener, tls: &ListenerTls, peer: SocketAddr) -> ConnectionRecord {
    ConnectionRecord::accepted(
        peer,
        listener.local,
        listener.name(),
        tls.mode.as_str(),
        tls.trust_store_version.clone(),
    )
}

/// Fills the record from how the handshake ended. The one place a record learns its outcome.
pub fn record_outcome(record: &mut ConnectionRecord, outcome: &Handshake) {
    record.timestamp = time::OffsetDateTime::now_utc();
    let judged_by = match outcome {
        Handshake::Established(e) => &e.trust_store_version,
        Handshake::Refused(r) => &r.trust_store_version,
    };
    if judged_by.is_some() {
        record.trust_store_version.clone_from(judged_by);
    }
    match outcome {
        Handshake::Established(e) => {
            record.tls_protocol = e.negotiated.protocol;
            record.tls_cipher = e.negotiated.cipher;
            record.tls_keyexchange = e.negotiated.group.clone();
            record.tls_handshake_latency_ms = Some(e.latency.as_millis() as u64);
            record.leaf = e.leaf.clone();
            record.sni = e.sni.clone();
            record.alpn = e.alpn.clone();
            record.tls_verify_status = "Success".to_string();
            record.tls_verify_detail.clone_from(&e.ocsp_note);
            record.client_identity = e.identity.value().map(str::to_string);
            if e.chain.is_empty() && record.mode == Mode::Verify.as_str() {
                record.tls_verify_detail = Some(NO_CERTIFICATE_ADMITTED.to_string());
            }
        }
        Handshake::Refused(r) => {
            record.tls_protocol = r.negotiated.protocol;
            record.tls_cipher = r.negotiated.cipher;
            record.tls_keyexchange = r.negotiated.group.clone();
            record.leaf = r.leaf.clone();
            record_failure(record, &r.failure);
        }
    }
}

/// The connection-log detail of a verify-mode client admitted without a certificate.
const NO_CERTIFICATE_ADMITTED: &str =
    "client sent no certificate; admitted without one (fail_if_no_peer_cert = false)";

pub fn record_failure(record: &mut ConnectionRecord, failure: &Failure) {
    record.tls_verify_status = failure.code.status();
    record.tls_verify_detail = Some(failure.detail.clone());
}

/// Runs one accepted connection to its end.
pub async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<Listener>,
    log: ConnLog,
    watcher: Watcher,
    stop: watch::Receiver<bool>,
) {
    let tls = listener.tls.load_full();
    let started = Instant::now();
    let mut outcome = if *stop.borrow() {
        Handshake::Refused(Box::new(Refused::before_tls(Failure::new(
            VerifyCode::Unmapped,
            "proxy is shutting down; connection closed before the handshake",
        ))))
    } else {
        // Each phase in its own allocation, freed when it ends: the task itself stays small
        // for the connection's whole life instead of as large as its largest phase.
        let outcome = Box::pin(handshake(stream, &tls, listener.config.timeouts.handshake)).await;
        Box::pin(super::online::admit(outcome, &listener, &tls)).await
    };
    if let Handshake::Established(est) = &mut outcome {
        est.identity = identify(&listener.config, tls.mode, est);
    }
    let trace_id = log_outcome(&listener, &tls, peer, &outcome, &log, started.elapsed());
    match outcome {
        Handshake::Refused(refused) => {
            drop(tls);
            refused.close().await;
        }
        Handshake::Established(est) => {
            Box::pin(admitted(est, peer, &listener, tls, trace_id, stop)).await;
        }
    }
    drop(watcher);
}

/// Who the client is: the configured field of a verified leaf. A client admitted without a
/// certificate has no identity (and needs no reason).
fn identify(config: &ListenerConfig, mode: Mode, est: &Established) -> Identity {
    match (&config.client_identity, est.chain.first()) {
        (Some(c), Some(leaf)) if mode == Mode::Verify => x509::identity_of(leaf, c.field),
        _ => Identity::NotTaken,
    }
}

/// The identity header of `config`, when it names one and the client has an identity.
fn identity_header(
    config: &ListenerConfig,
    identity: &Identity,
) -> Option<(HeaderName, HeaderValue)> {
    let name = config.client_identity.as_ref()?.header.clone()?;
    // Identities are escaped to printable ASCII, so this only fails on a bug.
    let value = HeaderValue::from_str(identity.value()?).ok()?;
    Some((name, value))
}

/// Writes the connection-log record of a handshake's outcome; returns its trace id. Not async:
/// the record is not needed afterwards and must not widen the connection task.
fn log_outcome(
    listener: &Listener,
    tls: &ListenerTls,
    peer: SocketAddr,
    outcome: &Handshake,
    log: &ConnLog,
    took: Duration,
) -> String {
    let mut record = accepted(listener, tls, peer);
    record_outcome(&mut record, outcome);
    log.write(&record);
    listener.metrics.handshake(&record.tls_verify_status, took);
    record.conn_trace_id
}

/// Serves an admitted client; in verify mode the connection stays registered for re-checks
/// while it is open.
///
/// `tls`, the generation the handshake ran with, is let go as soon as the client is admitted:
/// an open connection must not keep the trust store of its day alive through later reloads.
async fn admitted(
    est: Box<Established>,
    peer: SocketAddr,
    listener: &Arc<Listener>,
    tls: Arc<ListenerTls>,
    trace_id: String,
    stop: watch::Receiver<bool>,
) {
    let mode = tls.mode;
    let (registration, revoked) = register(&est, listener, &tls, &trace_id);
    drop(tls);
    let mut headers = crate::alb::connection_headers(
        mode,
        &listener.config.headers,
        &est.chain,
        est.leaf.as_ref(),
        est.negotiated.protocol.unwrap_or("unknown"),
        est.negotiated.cipher.unwrap_or("unknown"),
    );
    headers.extend(identity_header(&listener.config, &est.identity));
    let h2 = est.is_h2();
    let tls = (est.negotiated.protocol, est.negotiated.cipher);
    let thumbprint = cert_thumbprint(listener, mode, &est.chain);
    let Established {
        stream,
        sni,
        leaf,
        identity,
        ..
    } = *est;
    let leaf_not_after = leaf.as_ref().map(|l| l.not_after_unix);
    let cert = ClientCert {
        verified: mode == Mode::Verify && leaf.is_some(),
        identity,
        leaf,
    };
    let settings = listener.serve_settings();
    let context = |framing: Option<Arc<FramingVerdict>>| {
        let proxy = listener.proxy.clone();
        let mut cx = ConnContext::new(proxy, trace_id, peer, headers, cert, sni, framing);
        cx.cert_thumbprint = thumbprint;
        cx.tls = tls;
        cx
    };
    let expires = expiry(listener, mode, leaf_not_after);
    let signals = Signals {
        stop,
        revoked,
        expires,
    };
    serve(stream, h2, settings, signals, context).await;
    drop(registration);
}

/// Longest a connection is planned ahead for; a certificate valid longer is re-judged by reloads
/// (and the idle timeout) long before, and a far-off instant could overflow the clock.
const MAX_EXPIRY_AHEAD: Duration = Duration::from_secs(365 * 24 * 3600);

/// In verify mode, when the client's certificate stops being valid: the connection closes then
/// (after its in-flight requests), unless the listener ignores client certificate expiry.
fn expiry(listener: &Listener, mode: Mode, not_after_unix: Option<i64>) -> Option<Instant> {
    let auth = &listener.config.mutual_authentication;
    if mode != Mode::Verify || auth.ignore_client_certificate_expiry {
        return None;
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let left = u64::try_from(not_after_unix?.saturating_sub(now)).unwrap_or(0);
    let left = Duration::from_secs(left);
    (left <= MAX_EXPIRY_AHEAD).then(|| Instant::now() + left)
}

/// In verify mode, registers the connection for re-checks on reload; the receiver turns true
/// when a reload revoked the client. A client admitted without a certificate has nothing a
/// reload could revoke.
fn register(
    est: &Established,
    listener: &Listener,
    tls: &Arc<ListenerTls>,
    trace_id: &str,
) -> (Option<Registration>, Option<watch::Receiver<bool>>) {
    if tls.mode != Mode::Verify || est.chain.is_empty() {
        return (None, None);
    }
    let (reg, rx) = listener.open_conns.register(trace_id, est.chain.clone());
    // A reload that swapped the TLS state during this handshake re-checked the connections
    // registered at the time, not this one: check it against the current state here.
    let current = listener.tls.load_full();
    if !Arc::ptr_eq(&current, tls) {
        let now = UnixTime::now();
        let open = &listener.open_conns;
        if close_if_refused(
            listener.name(),
            &current,
            open,
            now,
            reg.id,
            trace_id,
            &est.chain,
        ) {
            listener.metrics.closed_by_revocation();
        }
    }
    (Some(reg), Some(rx))
}

/// RFC 8705's certificate thumbprint of a verified client, computed only where tokens are
/// checked.
fn cert_thumbprint(
    listener: &Listener,
    mode: crate::config::Mode,
    chain: &[rustls::pki_types::CertificateDer<'_>],
) -> Option<[u8; 32]> {
    if mode != crate::config::Mode::Verify || !listener.proxy.checks_tokens() {
        return None;
    }
    let leaf = chain.first()?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.as_ref());
    digest.as_ref().try_into().ok()
}
