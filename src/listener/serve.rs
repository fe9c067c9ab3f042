//! Serving HTTP on an established connection: HTTP/1.1 (through the framing guard) or HTTP/2 as
//! ALPN chose, until the client leaves, goes idle, is revoked, or the proxy drains.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::handshake::ClientStream;
use super::io::{Activity, IdleIo};
pub use super::signals::Signals;
use super::signals::{close_requested, expired};
use crate::config::{RequestLimits, Timeouts};
use crate::mtls::VerifyCode;
use crate::proxy::framing::{FramingGuard, FramingVerdict};
use crate::proxy::{self, ConnContext};

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
    stream: Box<ClientStream>,
    h2: bool,
    settings: ServeSettings<'_>,
    signals: Signals,
    context: impl FnOnce(Option<Arc<FramingVerdict>>) -> ConnContext,
) {
    // ALPN already decided the protocol; serving exactly that one means no waiting to sniff a
    // preface, so the idle clock covers a client that completes TLS and then says nothing. Each
    // protocol's connection lives in its own allocation, sized for that protocol only.
    if h2 {
        serve_h2(stream, settings, signals, context(None)).await;
    } else {
        serve_h1(stream, settings, signals, context).await;
    }
}

/// Serves a plain HTTP listener's connection: HTTP/1.1 only, as for TLS clients.
pub async fn serve_plain(
    stream: tokio::net::TcpStream,
    settings: ServeSettings<'_>,
    signals: Signals,
    context: impl FnOnce(Option<Arc<FramingVerdict>>) -> ConnContext,
) {
    serve_h1(stream, settings, signals, context).await;
}

/// HTTP/1.1 through the framing guard; idle means no bytes either way (and hyper's header read
/// timeout bounds a request head).
async fn serve_h1<S>(
    stream: S,
    settings: ServeSettings<'_>,
    signals: Signals,
    context: impl FnOnce(Option<Arc<FramingVerdict>>) -> ConnContext,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (io, activity) = IdleIo::new(stream);
    let (io, verdict) = FramingGuard::http1(io, max_head(&settings.limits));
    let ctx = Arc::new(context(Some(verdict)));
    let trace_id = ctx.trace_id.clone();
    let handler = ctx.clone();
    let service = service_fn(move |req| proxy::handle(handler.clone(), req));
    let mut b = hyper::server::conn::http1::Builder::new();
    b.keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(settings.timeouts.idle)
        .max_buf_size(max_head(&settings.limits));
    let conn = b
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut drive = Drive::new(&settings, &trace_id, &activity, signals);
    drive.run(Box::pin(conn)).await;
    let relay = ctx.relay.lock().ok().and_then(|mut r| r.take());
    if let Some(relay) = relay {
        drive.relay(relay).await;
    }
}

/// HTTP/2; idle means no request open and none started or ended for the idle timeout. Frames
/// that carry no request (PING, SETTINGS, WINDOW_UPDATE) do not count.
async fn serve_h2(
    stream: Box<ClientStream>,
    settings: ServeSettings<'_>,
    signals: Signals,
    ctx: ConnContext,
) {
    let activity = Activity::new();
    let ctx = Arc::new(ctx);
    let trace_id = ctx.trace_id.clone();
    let clock = activity.clone();
    let service = service_fn(move |req| {
        let open = clock.begin();
        let response = proxy::handle(ctx.clone(), req);
        async move { Ok::<_, Infallible>(response.await?.map(|body| open.track(body))) }
    });
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2_limits(&mut b, &settings.limits);
    let conn = b
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    let mut drive = Drive::new(&settings, &trace_id, &activity, signals);
    drive.run(Box::pin(conn)).await;
}

/// A connection that can be asked to finish its in-flight requests and close.
trait Winding: std::future::Future<Output = Result<(), hyper::Error>> {
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

/// Concurrent streams per connection: nginx's default (`http2_max_concurrent_streams`).
const H2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// Streams a client resets before certgate has taken them up, the rapid-reset attack
/// (CVE-2023-44487): past this many at once the connection gets GOAWAY (ENHANCE_YOUR_CALM).
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams certgate resets for a client's errors over a connection's life (MadeYouReset,
/// CVE-2025-8671) before it sends GOAWAY.
const H2_MAX_LOCAL_ERROR_RESETS: usize = 256;
/// A PING every 20 s, unanswered after 20 s closes the connection: a client that vanished with
/// a request open (which stops the idle clock) is found.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// Every HTTP/2 limit set explicitly, so that a hyper or h2 upgrade cannot change them.
fn h2_limits<E>(b: &mut hyper::server::conn::http2::Builder<E>, limits: &RequestLimits) {
    b.max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
        .keep_alive_interval(H2_KEEP_ALIVE)
        .keep_alive_timeout(H2_KEEP_ALIVE)
        .max_header_list_size(h2_header_list_ceiling(limits));
}

/// The decoded header list size past which h2 refuses a stream itself
/// (SETTINGS_MAX_HEADER_LIST_SIZE; past four times this it closes the connection). It stays
/// far above the configured limits, so that certgate's own check answers first, with 431 and
/// the reason: h2 refuses with a bare 431 and REFUSED_STREAM, which curl retries and then
/// reports as "Connection died". h2 counts 32 bytes per field where certgate counts 4, hence
/// the margin: four times `max_request_header_bytes`, at least 256 KiB, at most 16 MiB.
fn h2_header_list_ceiling(limits: &RequestLimits) -> u32 {
    let ceiling = limits
        .max_header_bytes
        .saturating_mul(4)
        .clamp(256 * 1024, 16 * 1024 * 1024);
    u32::try_from(ceiling).unwrap_or(u32::MAX)
}

/// Runs a served connection to its end: graceful close on SIGTERM, on a revoked client and
/// after `idle` without use (as its `Activity` counts it).
struct Drive<'a> {
    listener: &'a str,
    trace_id: &'a str,
    idle: Duration,
    activity: &'a Activity,
    signals: Signals,
}

impl<'a> Drive<'a> {
    /// After hyper handed an accepted WebSocket upgrade over: the relay, under the same rules.
    async fn relay(&mut self, relay: crate::proxy::websocket::Relay) {
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

    fn new(
        settings: &ServeSettings<'a>,
        trace_id: &'a str,
        activity: &'a Activity,
        signals: Signals,
    ) -> Self {
        Drive {
            listener: settings.listener,
            trace_id,
            idle: settings.timeouts.idle,
            activity,
            signals,
        }
    }

    async fn run<C: Winding + ?Sized>(&mut self, mut conn: Pin<Box<C>>) {
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
                    tracing::warn!(
                        listener = %self.listener,
                        conn_trace_id = %self.trace_id,
                        tls_verify_status = %VerifyCode::Expired.status(),
                        "closing connection after its in-flight requests: client certificate expired"
                    );
                    conn.as_mut().wind_down();
                    draining = true;
                }
                _ = tokio::time::sleep(wait), if !draining => {
                    if self.activity.quiet_for() >= idle {
                        tracing::debug!(listener = %self.listener, conn_trace_id = %self.trace_id, "closing idle connection");
                        conn.as_mut().wind_down();
                        draining = true;
                        hard_close = Some(tokio::time::Instant::now() + idle);
                    }
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
