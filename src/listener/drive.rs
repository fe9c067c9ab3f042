//! Running a served connection to its end: graceful close on SIGTERM, on a revoked client, at
//! the client certificate's expiry and after the idle timeout; and, for HTTP/1.1, parking it
//! while quiet and waking it for the next request.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::io::Activity;
use super::park::{park_after, ParkState, Parkable};
use super::signals::{close_requested, expired, Signals};
use crate::mtls::VerifyCode;

/// A connection that can be asked to finish its in-flight requests and close.
pub trait Winding: std::future::Future<Output = Result<(), hyper::Error>> {
    fn wind_down(self: Pin<&mut Self>);
}

impl<I, B, S> Winding for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn wind_down(self: Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, B, S, E> Winding for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn wind_down(self: Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self);
    }
}

/// Runs a served connection to its end: graceful close on SIGTERM, on a revoked client and
/// after `idle` without use (as its `Activity` counts it).
pub struct Drive<'a> {
    listener: &'a str,
    trace_id: &'a str,
    idle: Duration,
    activity: &'a Activity,
    signals: Signals,
    /// HTTP/1.1: where the connection is asked to park when quiet.
    pub park: Option<Arc<ParkState>>,
}

impl<'a> Drive<'a> {
    /// After hyper handed an accepted WebSocket upgrade over: the relay, under the same rules.
    pub async fn relay(&mut self, relay: crate::proxy::websocket::Relay) {
        super::relay::run(
            relay,
            &mut self.signals,
            self.idle,
            self.activity,
            self.listener,
            self.trace_id,
        )
        .await;
    }

    /// The drive of one connection of `listener` closed after `idle` without use.
    pub fn new(
        (listener, idle): (&'a str, Duration),
        trace_id: &'a str,
        activity: &'a Activity,
        signals: Signals,
    ) -> Self {
        Drive {
            listener,
            trace_id,
            idle,
            activity,
            signals,
            park: None,
        }
    }

    /// How long until the connection may be quiet enough to park; `None` where it never parks.
    /// With a request open, it looks again a park interval later.
    fn park_in(&self) -> Option<Duration> {
        let park = self.park.as_ref()?;
        let after = park_after(self.idle);
        if !park.no_request_open() {
            return Some(after);
        }
        Some(after.saturating_sub(self.activity.quiet_for()))
    }

    fn ask_to_park(&self) {
        let Some(park) = &self.park else { return };
        if park.no_request_open() && self.activity.quiet_for() >= park_after(self.idle) {
            park.ask();
        }
    }

    /// Waits, parked, until the client sends its next request or the connection must close:
    /// on SIGTERM, revocation, the certificate's expiry or the idle timeout (nothing is in
    /// flight, so each of those closes at once).
    pub async fn parked<T: Parkable>(&mut self, io: &T) -> Wake {
        if *self.signals.stop.borrow() {
            return Wake::Close;
        }
        let wait = self.idle.saturating_sub(self.activity.quiet_for());
        tokio::select! {
            r = std::future::poll_fn(|cx| io.poll_readable(cx)) => {
                if r.is_ok() { Wake::Request } else { Wake::Close }
            }
            _ = self.signals.stop.changed() => Wake::Close,
            _ = close_requested(&mut self.signals.revoked) => Wake::Close,
            _ = expired(self.signals.expires) => {
                self.report_expired();
                Wake::Close
            }
            _ = tokio::time::sleep(wait) => {
                self.report_idle();
                Wake::Close
            }
        }
    }

    fn report_expired(&self) {
        tracing::warn!(
            listener = %self.listener,
            conn_trace_id = %self.trace_id,
            tls_verify_status = %VerifyCode::Expired.status(),
            "closing connection after its in-flight requests: client certificate expired"
        );
    }

    fn report_idle(&self) {
        tracing::debug!(listener = %self.listener, conn_trace_id = %self.trace_id, "closing idle connection");
    }

    pub async fn run<C: Winding + ?Sized>(&mut self, mut conn: Pin<Box<C>>) {
        let idle = self.idle;
        let mut draining = *self.signals.stop.borrow();
        if draining {
            conn.as_mut().wind_down();
        }
        // After an idle close is asked for, the connection gets as long again to wind down; an
        // HTTP/2 client that never sent its preface would otherwise never let it finish.
        let mut hard_close: Option<tokio::time::Instant> = None;
        loop {
            let wait = idle.saturating_sub(self.activity.quiet_for());
            let hard = hard_close.unwrap_or_else(|| tokio::time::Instant::now() + idle);
            let park_in = self.park_in();
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        report_connection_error(self.listener, self.trace_id, &e);
                    }
                    break;
                }
                _ = self.signals.stop.changed(), if !draining => {
                    conn.as_mut().wind_down();
                    draining = true;
                }
                _ = close_requested(&mut self.signals.revoked), if !draining => {
                    conn.as_mut().wind_down();
                    draining = true;
                }
                _ = expired(self.signals.expires), if !draining => {
                    self.report_expired();
                    conn.as_mut().wind_down();
                    draining = true;
                }
                _ = tokio::time::sleep(wait), if !draining => {
                    if self.activity.quiet_for() >= idle {
                        self.report_idle();
                        conn.as_mut().wind_down();
                        draining = true;
                        hard_close = Some(tokio::time::Instant::now() + idle);
                    }
                }
                _ = tokio::time::sleep(park_in.unwrap_or_default()), if park_in.is_some() && !draining => {
                    self.ask_to_park();
                }
                _ = tokio::time::sleep_until(hard), if hard_close.is_some() => break,
            }
        }
    }
}

/// Malformed requests are answered by hyper itself (400/431); say so with the trace id.
fn report_connection_error(listener: &str, trace_id: &str, e: &(dyn std::error::Error + 'static)) {
    match e.downcast_ref::<hyper::Error>() {
        Some(h) if h.is_parse() || h.is_parse_too_large() => {
            tracing::warn!(
                listener,
                conn_trace_id = trace_id,
                "malformed request from client: {e}"
            );
        }
        Some(h) if h.is_timeout() => {
            tracing::info!(
                listener,
                conn_trace_id = trace_id,
                "client sent no complete request in time: {e}"
            );
        }
        _ => tracing::debug!(listener, conn_trace_id = trace_id, "connection ended: {e}"),
    }
}

/// Why a parked connection stopped waiting.
pub enum Wake {
    /// The client sent something: serve it.
    Request,
    /// Close the connection.
    Close,
}

/// Closes a parked connection the way hyper closes an idle one: TLS close_notify, then FIN;
/// bounded, since the client need not read.
pub async fn close_parked<T: Parkable>(mut io: T, within: Duration) {
    let _ = tokio::time::timeout(within, io.shutdown()).await;
}
