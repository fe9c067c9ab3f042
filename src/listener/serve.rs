//! Serving HTTP on an established connection: HTTP/1.1 (through the framing guard) or HTTP/2 as
//! ALPN chose, until the client leaves, goes idle, is revoked, or the proxy drains.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::drive::{close_parked, Drive, Wake, Winding};
use super::handshake::ClientStream;
use super::io::{Activity, IdleIo};
use super::park::{take_returned, Counted, Lease, ParkState, Parkable, Socket};
pub use super::signals::Signals;
use crate::config::{RequestLimits, Timeouts};
use crate::proxy::framing::{FramingGuard, FramingVerdict};
use crate::proxy::{self, ConnContext};

/// How a connection is served: limits and timeouts of its listener.
pub struct ServeSettings<'a> {
    pub listener: &'a str,
    pub limits: RequestLimits,
    pub timeouts: Timeouts,
    /// The listener's count of parked connections.
    pub parked: &'a AtomicUsize,
}

impl<'a> ServeSettings<'a> {
    /// What the drive loop needs: the listener's name and idle timeout.
    fn drive(&self) -> (&'a str, Duration) {
        (self.listener, self.timeouts.idle)
    }
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
/// timeout bounds a request head). A quiet connection parks between requests (see `park`): hyper
/// lets go of it, and the next request gets a new hyper connection on the same I/O.
async fn serve_h1<S>(
    stream: S,
    settings: ServeSettings<'_>,
    signals: Signals,
    context: impl FnOnce(Option<Arc<FramingVerdict>>) -> ConnContext,
) where
    S: Socket + tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (io, activity) = IdleIo::new(stream);
    let (mut io, verdict) = FramingGuard::http1(io, max_head(&settings.limits));
    let ctx = Arc::new(context(Some(verdict)));
    let trace_id = ctx.trace_id.clone();
    let park = Arc::new(ParkState::new(activity.clone()));
    let mut drive = Drive::new(settings.drive(), &trace_id, &activity, signals);
    drive.park = Some(park.clone());
    loop {
        let (lease, returned) = Lease::new(io, park.clone());
        drive.run(http1(lease, &ctx, &activity, &settings)).await;
        let relay = ctx.relay.lock().ok().and_then(|mut r| r.take());
        if let Some(relay) = relay {
            drive.relay(relay).await;
            return;
        }
        let Some(parked) = take_returned(&returned) else {
            return;
        };
        let counted = Counted::new(settings.parked);
        let wake = drive.parked(&parked).await;
        drop(counted);
        match wake {
            Wake::Request => io = parked,
            Wake::Close => return close_parked(parked, settings.timeouts.idle).await,
        }
    }
}

/// One hyper HTTP/1.1 connection over `lease`, its requests counted open in `activity`.
fn http1<T: Parkable + Send + 'static>(
    lease: Lease<T>,
    ctx: &Arc<ConnContext>,
    activity: &Arc<Activity>,
    settings: &ServeSettings<'_>,
) -> Pin<Box<impl Winding>> {
    let handler = ctx.clone();
    let clock = activity.clone();
    let service = service_fn(move |req| {
        let open = clock.begin();
        let handler = handler.clone();
        // The handler's future is created inside this one, not moved into it: moved, it
        // would be held twice (once as the captured value, once as the awaited one).
        async move {
            let response = proxy::handle(handler, req).await?;
            Ok::<_, Infallible>(response.map(|body| open.track(body)))
        }
    });
    let mut b = hyper::server::conn::http1::Builder::new();
    b.keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(settings.timeouts.idle)
        .max_buf_size(max_head(&settings.limits));
    Box::pin(
        b.serve_connection(TokioIo::new(lease), service)
            .with_upgrades(),
    )
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
        let ctx = ctx.clone();
        async move {
            let response = proxy::handle(ctx, req).await?;
            Ok::<_, Infallible>(response.map(|body| open.track(body)))
        }
    });
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2_limits(&mut b, &settings.limits);
    let conn = b
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    let mut drive = Drive::new(settings.drive(), &trace_id, &activity, signals);
    drive.run(Box::pin(conn)).await;
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
