//! Serving HTTP on an established connection: HTTP/1.1 (through the framing guard) or HTTP/2 as
//! ALPN chose, until the client leaves, goes idle, is revoked, or the proxy drains.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::watch;

use super::handshake::ClientStream;
use super::io::{Activity, IdleIo};
use crate::config::{RequestLimits, Timeouts};
use crate::proxy::framing::{FramingGuard, FramingVerdict};
use crate::proxy::{self, ConnContext};

/// What a served connection answers to besides its own traffic.
pub struct Signals {
    /// Turns true when the proxy drains (SIGTERM).
    pub stop: watch::Receiver<bool>,
    /// Turns true when a trust-store reload revoked this client (verify mode only).
    pub revoked: Option<watch::Receiver<bool>>,
}

/// How a connection is served: limits and timeouts of its listener.
pub struct ServeSettings<'a> {
    pub listener: &'a str,
    pub limits: RequestLimits,
    pub timeouts: Timeouts,
}

/// The longest request head the framing guard lets through: past this hyper answers 431
/// itself; below it `proxy` applies the configured limits with a message saying which.
fn max_head(limits: &RequestLimits) -> usize {
    limits.max_header_bytes.saturating_mul(2).max(16 * 1024)
}

/// Serves `stream` until it ends. `context` receives the connection's framing verdict (HTTP/1.1
/// only) and returns the per-connection state every request handler shares.
pub async fn serve(
    stream: ClientStream,
    h2: bool,
    settings: ServeSettings<'_>,
    signals: Signals,
    context: impl FnOnce(Option<Arc<FramingVerdict>>) -> ConnContext,
) {
    let (io, activity) = IdleIo::new(stream);
    let (io, framing) = if h2 {
        (FramingGuard::passthrough(io), None)
    } else {
        let (guard, verdict) = FramingGuard::http1(io, max_head(&settings.limits));
        (guard, Some(verdict))
    };
    let ctx = Arc::new(context(framing));
    let trace_id = ctx.trace_id.clone();
    let service = service_fn(move |req| proxy::handle(ctx.clone(), req));
    let io = TokioIo::new(io);
    let drive = Drive {
        listener: settings.listener,
        trace_id: &trace_id,
        idle: settings.timeouts.idle,
        activity: &activity,
        signals,
    };
    // ALPN already decided the protocol; serving exactly that one means no waiting to sniff a
    // preface, so the idle clock covers a client that completes TLS and then says nothing. Each
    // protocol's connection lives in its own allocation, sized for that protocol only.
    if h2 {
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new()).max_header_list_size(
            u32::try_from(settings.limits.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
        );
        drive.run(Box::pin(b.serve_connection(io, service))).await;
    } else {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(settings.timeouts.idle)
            .max_buf_size(max_head(&settings.limits));
        drive.run(Box::pin(b.serve_connection(io, service))).await;
    }
}

/// Runs a served connection to its end: graceful close on SIGTERM, on a revoked client and
/// after `idle` without traffic.
struct Drive<'a> {
    listener: &'a str,
    trace_id: &'a str,
    idle: Duration,
    activity: &'a Activity,
    signals: Signals,
}

impl Drive<'_> {
    async fn run<C>(mut self, mut conn: Pin<Box<C>>)
    where
        C: GracefulConnection<Error = hyper::Error>,
    {
        let idle = self.idle;
        let mut draining = *self.signals.stop.borrow();
        if draining {
            conn.as_mut().graceful_shutdown();
        }
        // After an idle close is asked for, the connection gets as long again to wind down; an
        // HTTP/2 client that never sent its preface would otherwise never let it finish.
        let mut hard_close: Option<tokio::time::Instant> = None;
        loop {
            let wait = idle.saturating_sub(self.activity.quiet_for());
            let hard = hard_close.unwrap_or_else(|| tokio::time::Instant::now() + idle);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        report_connection_error(self.listener, self.trace_id, &e);
                    }
                    break;
                }
                _ = self.signals.stop.changed(), if !draining => {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                _ = close_requested(&mut self.signals.revoked), if !draining => {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                _ = tokio::time::sleep(wait), if !draining => {
                    if self.activity.quiet_for() >= idle {
                        tracing::debug!(listener = %self.listener, conn_trace_id = %self.trace_id, "closing idle connection");
                        conn.as_mut().graceful_shutdown();
                        draining = true;
                        hard_close = Some(tokio::time::Instant::now() + idle);
                    }
                }
                _ = tokio::time::sleep_until(hard), if hard_close.is_some() => break,
            }
        }
    }
}

/// Resolves once a reload asked this connection to close; never without a registration.
async fn close_requested(rx: &mut Option<watch::Receiver<bool>>) {
    if let Some(rx) = rx {
        if rx.wait_for(|close| *close).await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await
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
