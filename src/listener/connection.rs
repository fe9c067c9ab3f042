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
use super::serve::{serve, ServeSettings, Signals};
use super::{close_if_refused, Listener};
use crate::config::Mode;
use crate::mtls::{Failure, VerifyCode};
use crate::observe::connection::ConnectionRecord;
use crate::observe::LogSink;
use crate::proxy::framing::FramingVerdict;
use crate::proxy::ConnContext;
use crate::tls::ListenerTls;

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
    let outcome = if *stop.borrow() {
        Handshake::Refused(Box::new(Refused::before_tls(Failure::new(
            VerifyCode::Unmapped,
            "proxy is shutting down; connection closed before the handshake",
        ))))
    } else {
        handshake(stream, &tls, listener.config.timeouts.handshake).await
    };
    let trace_id = log_outcome(&listener, &tls, peer, &outcome, &log, started.elapsed());
    match outcome {
        Handshake::Refused(refused) => {
            drop(tls);
            refused.close().await;
        }
        Handshake::Established(est) => {
            admitted(est, peer, &listener, tls, trace_id, stop).await;
        }
    }
    drop(watcher);
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
    let headers = crate::alb::connection_headers(
        mode,
        &listener.config.headers,
        &est.chain,
        est.leaf.as_ref(),
        est.negotiated.protocol.unwrap_or("unknown"),
        est.negotiated.cipher.unwrap_or("unknown"),
    );
    let h2 = est.is_h2();
    let Established {
        stream, sni, leaf, ..
    } = *est;
    let leaf_not_after = leaf.as_ref().map(|l| l.not_after_unix);
    let leaf_subject = leaf.map(|l| l.subject);
    let settings = ServeSettings {
        listener: listener.name(),
        limits: listener.config.limits,
        timeouts: listener.config.timeouts,
    };
    let context = |framing: Option<Arc<FramingVerdict>>| {
        let proxy = listener.proxy.clone();
        ConnContext::new(proxy, trace_id, peer, headers, leaf_subject, sni, framing)
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
/// when a reload revoked the client.
fn register(
    est: &Established,
    listener: &Listener,
    tls: &Arc<ListenerTls>,
    trace_id: &str,
) -> (Option<Registration>, Option<watch::Receiver<bool>>) {
    if tls.mode != Mode::Verify {
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
