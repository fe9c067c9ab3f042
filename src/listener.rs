//! Accept loop and per-connection task: TLS handshake under one deadline, the connection-log
//! record, then HTTP/1.1 or HTTP/2 serving until the client leaves or the proxy drains.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::certinfo;
use crate::logs::connection::ConnectionRecord;
use crate::logs::LogSink;
use crate::proxy::{self, headers, ConnContext, ListenerShared};
use crate::tls::hello_tap::HelloTap;
use crate::tls::status::{self, Failure, HandshakeRecord, VerifyCode};
use crate::tls::{self as tlsmod, ListenerTls};

/// A running listener: its fixed settings and its swappable TLS state.
pub struct ListenerRuntime {
    pub shared: Arc<ListenerShared>,
    pub tls: ArcSwap<ListenerTls>,
    pub local: SocketAddr,
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
                let _ = stream.set_nodelay(true);
                let rt = rt.clone();
                let log = conn_log.clone();
                let watcher = graceful.watcher();
                let stop = stop.clone();
                tokio::spawn(async move {
                    connection(stream, peer, rt, log, conn_log_alb, watcher, stop).await;
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
    let trace_id = crate::logs::new_trace_id();
    let record = Arc::new(HandshakeRecord::default());
    let mut out = ConnectionRecord {
        timestamp: time::OffsetDateTime::now_utc(),
        client: peer,
        local: rt.local,
        tls_protocol: None,
        tls_cipher: None,
        tls_handshake_latency_ms: None,
        leaf: None,
        tls_verify_status: String::new(),
        conn_trace_id: trace_id.clone(),
        tls_keyexchange: None,
        listener: shared.name.clone(),
        mode: tls.mode.as_str(),
        sni: None,
        alpn: None,
        trust_store_version: tls.trust_store_version.clone(),
        tls_verify_detail: None,
    };
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
    let result = tokio::time::timeout(shared.timeouts.handshake, accept).await;
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
            close_gently(io).await;
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
        .or_else(|| chain.first().and_then(|c| certinfo::leaf_facts(c).ok()));
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
    out.sni = conn.server_name().map(str::to_string);
    out.alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let conn_alpn_is_h2 = conn.alpn_protocol() == Some(b"h2");
    out.leaf = leaf.clone();
    out.tls_verify_status = "Success".to_string();
    emit(out);

    let ctx = Arc::new(ConnContext {
        trace_id: trace_id.clone(),
        client: peer,
        client_ip: peer.ip().to_string(),
        listener: shared.clone(),
        headers: conn_headers,
        leaf_subject: leaf.map(|l| l.subject),
    });
    let service = service_fn(move |req| proxy::handle(ctx.clone(), req));
    let timer = hyper_util::rt::TokioTimer::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(timer.clone())
        .header_read_timeout(shared.timeouts.idle);
    builder.http2().timer(timer);
    // ALPN already decided the protocol; serving exactly that one means no waiting to sniff a
    // preface, so the idle clock below covers a client that completes TLS and then says nothing.
    let builder = if conn_alpn_is_h2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    let (io, activity) = IdleIo::new(tls_stream);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = shared.timeouts.idle;
    let mut draining = *stop.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    let mut stop = stop;
    // After an idle close is asked for, the connection gets as long again to wind down; an
    // HTTP/2 client that never sent its preface would otherwise never let it finish.
    let mut hard_close: Option<tokio::time::Instant> = None;
    loop {
        let wait = idle.saturating_sub(activity.quiet_for());
        let hard = hard_close.unwrap_or_else(|| tokio::time::Instant::now() + idle);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    report_connection_error(&shared.name, &trace_id, &*e);
                }
                break;
            }
            _ = stop.changed(), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            _ = tokio::time::sleep(wait), if !draining => {
                if activity.quiet_for() >= idle {
                    tracing::debug!(listener = %shared.name, conn_trace_id = %trace_id, "closing idle connection");
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                    hard_close = Some(tokio::time::Instant::now() + idle);
                }
            }
            _ = tokio::time::sleep_until(hard), if hard_close.is_some() => break,
        }
    }
    drop(watcher);
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
        let mut buf = [0u8; 4096];
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
