//! Accept loop and per-connection task: TLS handshake under one deadline, the connection-log
//! record, then HTTP/1.1 or HTTP/2 serving until the client leaves or the proxy drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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

struct Outcome {
    record: ConnectionRecord,
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
    let mut out = Outcome {
        record: ConnectionRecord {
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
        },
    };
    let emit = |out: Outcome| {
        let line = if alb_format {
            out.record.to_alb()
        } else {
            out.record.to_json()
        };
        conn_log.write(line);
    };

    let config = match tls.config_for_connection(&record) {
        Ok(c) => c,
        Err(e) => {
            out.record.tls_verify_status = VerifyCode::Unmapped.status();
            out.record.tls_verify_detail = Some(format!("cannot build TLS config: {e}"));
            emit(out);
            return;
        }
    };
    if *stop.borrow() {
        return;
    }
    let (stream, hello) = HelloTap::new(stream);
    let accept = TlsAcceptor::from(config).accept(stream).into_fallible();
    let result = tokio::time::timeout(shared.timeouts.handshake, accept).await;
    out.record.timestamp = time::OffsetDateTime::now_utc();
    let seen = record.take();
    out.record.leaf = seen.leaf.clone();
    if let Some(h) = hello.get() {
        out.record.tls_protocol = Some(tlsmod::protocol_name(h.version));
        out.record.tls_cipher = Some(tlsmod::cipher_name(h.suite));
        out.record.tls_keyexchange = h.group.map(tlsmod::group_name);
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
            fail(&mut out.record, seen.failure.unwrap_or(f));
            emit(out);
            return;
        }
        Ok(Err((e, io))) => {
            let f = seen
                .failure
                .unwrap_or_else(|| status::from_handshake_error(&e));
            fail(&mut out.record, f);
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
        .record
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
    out.record.tls_protocol = Some(protocol);
    out.record.tls_cipher = Some(cipher);
    out.record.tls_keyexchange = conn
        .negotiated_key_exchange_group()
        .map(|g| tlsmod::group_name(g.name()));
    out.record.tls_handshake_latency_ms = Some(started.elapsed().as_millis() as u64);
    out.record.sni = conn.server_name().map(str::to_string);
    out.record.alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    out.record.leaf = leaf.clone();
    out.record.tls_verify_status = "Success".to_string();
    emit(out);

    let ctx = Arc::new(ConnContext {
        trace_id,
        client: peer,
        client_ip: peer.ip().to_string(),
        listener: shared.clone(),
        headers: conn_headers,
        leaf_subject: leaf.map(|l| l.subject),
    });
    let service = service_fn(move |req| proxy::handle(ctx.clone(), req));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new());
    let conn = builder
        .serve_connection(TokioIo::new(tls_stream), service)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(listener = %shared.name, error = %e, "connection ended with an error");
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
