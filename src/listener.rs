//! Accept loop and per-connection task: TLS handshake under one deadline, the connection-log
//! record, then HTTP/1.1 or HTTP/2 serving until the client leaves or the proxy drains.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::{GracefulConnection, Watcher};
use rustls::pki_types::{CertificateDer, UnixTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::Mode;
use crate::logs::connection::ConnectionRecord;
use crate::logs::LogSink;
use crate::proxy::framing::FramingGuard;
use crate::proxy::{self, headers, ConnContext, ListenerShared};
use crate::tls::hello_tap::HelloTap;
use crate::tls::status::{self, Failure, HandshakeRecord, VerifyCode};
use crate::tls::{self as tlsmod, ListenerTls};
use crate::x509;

/// A running listener: its fixed settings and its swappable TLS state.
pub struct ListenerRuntime {
    pub shared: Arc<ListenerShared>,
    pub tls: ArcSwap<ListenerTls>,
    pub local: SocketAddr,
}

impl ListenerRuntime {
    /// Re-checks every open verify-mode connection against the listener's current TLS state
    /// (call it right after swapping that state in) and asks each one whose chain no longer
    /// verifies to close once its in-flight requests are done. A revoked certificate must not
    /// keep a keep-alive connection, or an HTTP/2 one, in service for hours.
    ///
    /// Inside a tokio runtime the checks (signatures and CRL lookups for every connection) run
    /// on the blocking pool and this returns at once; elsewhere they run before it returns.
    pub fn revalidate(self: &Arc<Self>) {
        if self.tls.load().mode != Mode::Verify || self.shared.open_conns.is_empty() {
            return;
        }
        let rt = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || rt.revalidate_now());
            }
            Err(_) => rt.revalidate_now(),
        }
    }

    /// `revalidate`, on this thread. Blocking: keep it off the async worker threads.
    pub fn revalidate_now(&self) {
        let tls = self.tls.load_full();
        if tls.mode != Mode::Verify {
            return;
        }
        let open = self.shared.open_conns.snapshot();
        if open.is_empty() {
            return;
        }
        let now = UnixTime::now();
        let checked = open.len();
        let mut closed = 0usize;
        for (id, trace_id, chain) in open {
            if self.close_if_refused(&tls, now, id, &trace_id, &chain) {
                closed += 1;
            }
        }
        tracing::debug!(listener = %self.shared.name, checked, closed, "open connections re-checked");
    }

    /// Checks one registered connection against `tls`; if its chain fails, asks it to close
    /// and logs why. True if it was asked now.
    fn close_if_refused(
        &self,
        tls: &ListenerTls,
        now: UnixTime,
        id: u64,
        trace_id: &str,
        chain: &[CertificateDer<'static>],
    ) -> bool {
        let Err(failure) = tls.verify_chain(chain, now) else {
            return false;
        };
        if !self.shared.open_conns.close(id) {
            return false;
        }
        tracing::warn!(
            listener = %self.shared.name,
            conn_trace_id = %trace_id,
            tls_verify_status = %failure.code.status(),
            tls_verify_detail = %failure.detail,
            trust_store_version = tls.trust_store_version.as_deref().unwrap_or("-"),
            "closing connection after its in-flight requests: client certificate no longer verifies against the reloaded trust store"
        );
        true
    }
}

/// The verify-mode connections of one listener that are open now, with the chain each client
/// presented, so that a trust-store reload can re-check them.
///
/// Every verify-mode handshake registers and every close unregisters, from whichever worker
/// thread runs the connection, so the map is split into shards by id: workers rarely meet on
/// the same lock.
#[derive(Debug, Default)]
pub struct OpenConns {
    next_id: AtomicU64,
    shards: [Mutex<HashMap<u64, OpenConn>>; SHARDS],
}

const SHARDS: usize = 16;

#[derive(Debug)]
struct OpenConn {
    trace_id: String,
    chain: Arc<[CertificateDer<'static>]>,
    close: watch::Sender<bool>,
}

impl OpenConns {
    /// Registers a connection until the returned guard is dropped; the receiver turns true
    /// when the connection should close.
    fn register(
        self: &Arc<Self>,
        trace_id: &str,
        chain: Arc<[CertificateDer<'static>]>,
    ) -> (Registration, watch::Receiver<bool>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (close, closing) = watch::channel(false);
        let conn = OpenConn {
            trace_id: trace_id.to_string(),
            chain,
            close,
        };
        self.shard(id).insert(id, conn);
        (
            Registration {
                conns: self.clone(),
                id,
            },
            closing,
        )
    }

    /// The shard holding `id`. A poisoned lock only means a panic elsewhere; the map itself
    /// stays consistent.
    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, HashMap<u64, OpenConn>> {
        self.shards[(id % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The open connections, copied out so that checking them holds no lock.
    fn snapshot(&self) -> Vec<(u64, String, Arc<[CertificateDer<'static>]>)> {
        (0..SHARDS as u64)
            .flat_map(|i| {
                self.shard(i)
                    .iter()
                    .map(|(id, c)| (*id, c.trace_id.clone(), c.chain.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Asks connection `id` to close; false if it is gone or was already asked.
    fn close(&self, id: u64) -> bool {
        self.shard(id)
            .get(&id)
            .is_some_and(|c| !c.close.send_replace(true))
    }

    /// How many connections are registered now.
    pub fn len(&self) -> usize {
        (0..SHARDS as u64).map(|i| self.shard(i).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps a connection in `OpenConns` for as long as it lives.
struct Registration {
    conns: Arc<OpenConns>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.conns.shard(self.id).remove(&self.id);
    }
}

/// Accepts until `stop` turns true; each connection runs in its own task, watched by `graceful`.
pub async fn accept_loop(
    listener: TcpListener,
    rt: Arc<ListenerRuntime>,
    conn_log: LogSink,
    conn_log_alb: bool,
    mut stop: watch::Receiver<bool>,
    graceful: Arc<hyper_util::server::graceful::GracefulShutdown>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(slot) = rt.shared.conn_slots.clone().try_acquire_owned() else {
                    refuse_over_limit(stream, peer, &rt, &conn_log, conn_log_alb);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let rt = rt.clone();
                let log = conn_log.clone();
                let watcher = graceful.watcher();
                let stop = stop.clone();
                tokio::spawn(async move {
                    connection(stream, peer, rt, log, conn_log_alb, watcher, stop).await;
                    drop(slot);
                });
            }
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(listener = %rt.shared.name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    rt: Arc<ListenerRuntime>,
    conn_log: LogSink,
    alb_format: bool,
    watcher: Watcher,
    stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let tls = rt.tls.load_full();
    let shared = rt.shared.clone();
    let record = Arc::new(HandshakeRecord::default());
    let mut out = ConnectionRecord::accepted(
        peer,
        rt.local,
        &shared.name,
        tls.mode.as_str(),
        tls.trust_store_version.clone(),
    );
    let trace_id = out.conn_trace_id.clone();
    let emit = |out: ConnectionRecord| {
        let line = if alb_format {
            out.to_alb()
        } else {
            out.to_json()
        };
        conn_log.write(line);
    };

    let config = match tls.config_for_connection(&record) {
        Ok(c) => c,
        Err(e) => {
            out.tls_verify_status = VerifyCode::Unmapped.status();
            out.tls_verify_detail = Some(format!("cannot build TLS config: {e}"));
            emit(out);
            return;
        }
    };
    if *stop.borrow() {
        fail(
            &mut out,
            Failure::new(
                VerifyCode::Unmapped,
                "proxy is shutting down; connection closed before the handshake",
            ),
        );
        emit(out);
        return;
    }
    let (stream, hello) = HelloTap::new(stream);
    let accept = TlsAcceptor::from(config).accept(stream).into_fallible();
    // Boxed: the handshake's state is large and only needed until the handshake ends, so it
    // must not widen this task for the whole life of the connection.
    let result = Box::pin(tokio::time::timeout(shared.timeouts.handshake, accept)).await;
    out.timestamp = time::OffsetDateTime::now_utc();
    let seen = record.take();
    out.leaf = seen.leaf.clone();
    if let Some(h) = hello.get() {
        out.tls_protocol = Some(tlsmod::protocol_name(h.version));
        out.tls_cipher = Some(tlsmod::cipher_name(h.suite));
        out.tls_keyexchange = h.group.map(tlsmod::group_name);
    }
    let tls_stream = match result {
        Err(_) => {
            let f = Failure::new(
                VerifyCode::Unmapped,
                format!(
                    "TLS handshake not completed within {}s",
                    shared.timeouts.handshake.as_secs()
                ),
            );
            fail(&mut out, seen.failure.unwrap_or(f));
            emit(out);
            return;
        }
        Ok(Err((e, io))) => {
            let f = seen
                .failure
                .unwrap_or_else(|| status::from_handshake_error(&e));
            fail(&mut out, f);
            emit(out);
            // Boxed, like the handshake: only refused connections need this state.
            Box::pin(close_gently(io)).await;
            return;
        }
        Ok(Ok(s)) => s,
    };

    let conn = tls_stream.get_ref().1;
    let protocol = conn
        .protocol_version()
        .map(tlsmod::protocol_name)
        .unwrap_or("unknown");
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| tlsmod::cipher_name(s.suite()))
        .unwrap_or("unknown");
    let chain = conn.peer_certificates().unwrap_or(&[]);
    // The verifier saw the leaf; recompute only if it could not (never in practice).
    let leaf = out
        .leaf
        .clone()
        .or_else(|| chain.first().and_then(|c| x509::leaf_facts(c).ok()));
    let conn_headers = headers::connection_headers(
        tls.mode,
        &shared.header_names,
        chain,
        leaf.as_ref(),
        protocol,
        cipher,
    );
    out.tls_protocol = Some(protocol);
    out.tls_cipher = Some(cipher);
    out.tls_keyexchange = conn
        .negotiated_key_exchange_group()
        .map(|g| tlsmod::group_name(g.name()));
    out.tls_handshake_latency_ms = Some(started.elapsed().as_millis() as u64);
    let sni = conn.server_name().map(str::to_string);
    out.sni = sni.clone();
    out.alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let conn_alpn_is_h2 = conn.alpn_protocol() == Some(b"h2");
    out.leaf = leaf.clone();
    out.tls_verify_status = "Success".to_string();
    emit(out);

    // Verify-mode connections stay on record so that a trust-store reload can re-check them.
    let (registration, revoked) = if tls.mode == Mode::Verify {
        let (reg, rx) = shared.open_conns.register(&trace_id, Arc::from(chain));
        // A reload that swapped the TLS state during this handshake re-checked the connections
        // registered at the time, not this one: check it against the current state here.
        let current = rt.tls.load_full();
        if !Arc::ptr_eq(&current, &tls) {
            rt.close_if_refused(&current, UnixTime::now(), reg.id, &trace_id, chain);
        }
        (Some(reg), Some(rx))
    } else {
        (None, None)
    };

    // Past this hyper answers 431 itself; below it `proxy` applies the configured limits with a
    // message saying which. The framing guard refuses longer heads first, with a reason.
    let max_head = shared
        .limits
        .max_header_bytes
        .saturating_mul(2)
        .max(16 * 1024);
    let (io, activity) = IdleIo::new(tls_stream);
    let (io, framing) = if conn_alpn_is_h2 {
        (FramingGuard::passthrough(io), None)
    } else {
        let (guard, verdict) = FramingGuard::http1(io, max_head);
        (guard, Some(verdict))
    };
    let ctx = Arc::new(ConnContext {
        framing,
        requests: AtomicU64::new(0),
        trace_id: trace_id.clone(),
        client: peer,
        client_ip: http::HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("")),
        listener: shared.clone(),
        headers: conn_headers,
        leaf_subject: leaf.map(|l| l.subject),
        sni: sni.clone(),
    });
    let service = service_fn(move |req| proxy::handle(ctx.clone(), req));
    let timer = hyper_util::rt::TokioTimer::new();
    let io = TokioIo::new(io);
    // ALPN already decided the protocol; serving exactly that one means no waiting to sniff a
    // preface, so the idle clock covers a client that completes TLS and then says nothing. Each
    // protocol's connection lives in its own allocation, sized for that protocol only.
    let drive = Drive {
        listener: &shared.name,
        trace_id: &trace_id,
        idle: shared.timeouts.idle,
        activity: &activity,
        stop,
        revoked,
    };
    if conn_alpn_is_h2 {
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(timer).max_header_list_size(
            u32::try_from(shared.limits.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
        );
        drive.run(Box::pin(b.serve_connection(io, service))).await;
    } else {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.keep_alive(true)
            .timer(timer)
            .header_read_timeout(shared.timeouts.idle)
            .max_buf_size(max_head);
        drive.run(Box::pin(b.serve_connection(io, service))).await;
    }
    drop(registration);
    drop(watcher);
}

/// Runs a served connection to its end: graceful close on SIGTERM, on a revoked client and
/// after `idle` without traffic.
struct Drive<'a> {
    listener: &'a str,
    trace_id: &'a str,
    idle: std::time::Duration,
    activity: &'a Activity,
    stop: watch::Receiver<bool>,
    revoked: Option<watch::Receiver<bool>>,
}

impl Drive<'_> {
    async fn run<C>(mut self, mut conn: Pin<Box<C>>)
    where
        C: GracefulConnection<Error = hyper::Error>,
    {
        let idle = self.idle;
        let mut draining = *self.stop.borrow();
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
                _ = self.stop.changed(), if !draining => {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                _ = close_requested(&mut self.revoked), if !draining => {
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

/// A connection past `max_connections`: closed at once, before any TLS work, and logged, so an
/// overload costs the proxy as little as possible.
fn refuse_over_limit(
    stream: TcpStream,
    peer: SocketAddr,
    rt: &ListenerRuntime,
    log: &LogSink,
    alb: bool,
) {
    drop(stream);
    let tls = rt.tls.load();
    let mut record = ConnectionRecord::accepted(
        peer,
        rt.local,
        &rt.shared.name,
        tls.mode.as_str(),
        tls.trust_store_version.clone(),
    );
    fail(
        &mut record,
        Failure::new(
            VerifyCode::Unmapped,
            format!(
                "listener has {} open connections (max_connections); connection closed",
                rt.shared.max_connections
            ),
        ),
    );
    log.write(if alb {
        record.to_alb()
    } else {
        record.to_json()
    });
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

/// Tracks when a connection last moved bytes either way, for the idle timeout.
struct IdleIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> std::time::Duration {
        let now = self.start.elapsed().as_millis() as u64;
        std::time::Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

impl<T> IdleIo<T> {
    fn new(inner: T) -> (Self, Arc<Activity>) {
        let activity = Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        });
        (
            IdleIo {
                inner,
                activity: activity.clone(),
            },
            activity,
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Closes a connection whose handshake failed so that the client still reads the TLS alert.
/// The alert is already written; closing a socket with unread client bytes (curl sends its
/// request right after its side of a TLS 1.3 handshake) would make the kernel answer with a
/// reset that destroys the alert in flight. So: shut the write side, drain input for a bounded
/// time and amount, then close.
async fn close_gently<T: AsyncRead + AsyncWrite + Unpin>(mut io: T) {
    let _ = io.shutdown().await;
    let drain = async {
        let mut buf = vec![0u8; 4096]; // on the heap: an array here would widen every connection task
        let mut total = 0usize;
        while total < 256 * 1024 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Longest a refused client is given to read its alert and close.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

fn fail(r: &mut ConnectionRecord, f: Failure) {
    r.tls_verify_status = f.code.status();
    r.tls_verify_detail = Some(f.detail);
}
