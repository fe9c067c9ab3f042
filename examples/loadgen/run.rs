//! The load itself: connections, requests, and what each one counts. Every wait is bounded by
//! the per-operation timeout and by the end of the run; an operation the end of the run cuts
//! short is not counted either way, one that times out is an error.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::histogram::Histogram;

/// What failed, counted separately and always reported.
#[derive(Debug, Clone, Copy)]
pub enum ErrorKind {
    /// TCP connect refused or failed.
    Connect,
    /// TLS handshake failed (alert, bad certificate, no h2 ALPN...).
    Tls,
    /// The request could not be sent or its response not read (includes a TLS 1.3 refusal of
    /// the client certificate, which the client only sees on its first read).
    Http,
    /// Connect, handshake or request took longer than the per-operation timeout.
    Timeout,
    /// A response with a status other than 2xx.
    Status,
}

pub const ERROR_KINDS: [(ErrorKind, &str); 5] = [
    (ErrorKind::Connect, "connect"),
    (ErrorKind::Tls, "tls"),
    (ErrorKind::Http, "http"),
    (ErrorKind::Timeout, "timeout"),
    (ErrorKind::Status, "status"),
];

/// The negotiated parameters of the first successful handshake.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    pub kx: String,
    pub alpn: String,
}

#[derive(Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub handshakes: AtomicU64,
    pub reconnects: AtomicU64,
    pub errors: [AtomicU64; 5],
    pub warmup_errors: AtomicU64,
    pub statuses: Mutex<BTreeMap<u16, u64>>,
    /// The first few distinct error messages, so a failing run says why.
    pub samples: Mutex<Vec<String>>,
}

pub struct Target {
    pub addr: SocketAddr,
    pub server_name: ServerName<'static>,
    /// Host header / :authority.
    pub authority: String,
    pub path: String,
    pub http2: bool,
    /// Extra headers sent with every request (`--header`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// A `--header` argument, "Name: value", as a header name and value.
pub fn parse_header(arg: &str) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| format!("--header {arg:?}: expected \"Name: value\""))?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|e| format!("--header {arg:?}: bad name: {e}"))?;
    let value = http::HeaderValue::from_str(value.trim())
        .map_err(|e| format!("--header {arg:?}: bad value: {e}"))?;
    Ok((name, value))
}

pub struct Shared {
    pub target: Target,
    pub connector: TlsConnector,
    pub op_timeout: Duration,
    /// Results completed before this instant are warm-up and not counted.
    pub measure_from: Instant,
    pub deadline: Instant,
    pub latency: Histogram,
    pub counters: Counters,
    pub tls_info: OnceLock<TlsInfo>,
}

pub enum Outcome<T> {
    Done(T),
    Failed,
    /// The run is over.
    Stop,
}

pub enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    pub fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }
}

enum Bounded<T> {
    Done(T),
    TimedOut,
    Deadline,
}

impl Shared {
    async fn bounded<F: Future>(&self, fut: F) -> Bounded<F::Output> {
        let limit = (Instant::now() + self.op_timeout).min(self.deadline);
        match tokio::time::timeout_at(limit.into(), fut).await {
            Ok(v) => Bounded::Done(v),
            Err(_) if Instant::now() >= self.deadline => Bounded::Deadline,
            Err(_) => Bounded::TimedOut,
        }
    }

    fn in_window(&self, at: Instant) -> bool {
        at >= self.measure_from && at <= self.deadline
    }

    pub fn error(&self, kind: ErrorKind, what: &str, detail: impl std::fmt::Display) {
        let now = Instant::now();
        if now < self.measure_from {
            self.counters.warmup_errors.fetch_add(1, Ordering::Relaxed);
        } else if now <= self.deadline {
            self.counters.errors[kind as usize].fetch_add(1, Ordering::Relaxed);
        } else {
            return;
        }
        let mut samples = self
            .counters
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if samples.len() < 8 {
            let mut msg = format!("{what}: {detail}");
            msg.truncate(300);
            if !samples.contains(&msg) {
                samples.push(msg);
            }
        }
    }

    /// TCP connect, mTLS handshake and HTTP connection setup.
    pub async fn connect(&self) -> Outcome<Sender> {
        let tcp = match self.bounded(TcpStream::connect(self.target.addr)).await {
            Bounded::Done(Ok(s)) => s,
            Bounded::Done(Err(e)) => {
                self.error(ErrorKind::Connect, "connect", e);
                return Outcome::Failed;
            }
            Bounded::TimedOut => {
                self.error(ErrorKind::Timeout, "connect", "timed out");
                return Outcome::Failed;
            }
            Bounded::Deadline => return Outcome::Stop,
        };
        let _ = tcp.set_nodelay(true);
        let name = self.target.server_name.clone();
        let tls = match self.bounded(self.connector.connect(name, tcp)).await {
            Bounded::Done(Ok(s)) => s,
            Bounded::Done(Err(e)) => {
                self.error(ErrorKind::Tls, "TLS handshake", e);
                return Outcome::Failed;
            }
            Bounded::TimedOut => {
                self.error(ErrorKind::Timeout, "TLS handshake", "timed out");
                return Outcome::Failed;
            }
            Bounded::Deadline => return Outcome::Stop,
        };
        let (_, conn) = tls.get_ref();
        let alpn = conn
            .alpn_protocol()
            .map(|a| String::from_utf8_lossy(a).into_owned());
        if self.tls_info.get().is_none() {
            let _ = self.tls_info.set(TlsInfo {
                version: conn
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default(),
                cipher: conn
                    .negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()))
                    .unwrap_or_default(),
                kx: conn
                    .negotiated_key_exchange_group()
                    .map(|g| format!("{:?}", g.name()))
                    .unwrap_or_default(),
                alpn: alpn.clone().unwrap_or_else(|| "-".to_string()),
            });
        }
        if self.target.http2 && alpn.as_deref() != Some("h2") {
            self.error(ErrorKind::Tls, "ALPN", "the server did not select h2");
            return Outcome::Failed;
        }
        if self.in_window(Instant::now()) {
            self.counters.handshakes.fetch_add(1, Ordering::Relaxed);
        }
        let io = TokioIo::new(tls);
        let sender = if self.target.http2 {
            let builder = http2::Builder::new(TokioExecutor::new());
            match self.bounded(builder.handshake(io)).await {
                Bounded::Done(Ok((sender, conn))) => {
                    tokio::spawn(conn);
                    Sender::H2(sender)
                }
                Bounded::Done(Err(e)) => {
                    self.error(ErrorKind::Http, "HTTP/2 connection", e);
                    return Outcome::Failed;
                }
                Bounded::TimedOut => {
                    self.error(ErrorKind::Timeout, "HTTP/2 connection", "timed out");
                    return Outcome::Failed;
                }
                Bounded::Deadline => return Outcome::Stop,
            }
        } else {
            match http1::handshake(io).await {
                Ok((sender, conn)) => {
                    tokio::spawn(conn);
                    Sender::H1(sender)
                }
                Err(e) => {
                    self.error(ErrorKind::Http, "HTTP/1.1 connection", e);
                    return Outcome::Failed;
                }
            }
        };
        Outcome::Done(sender)
    }

    fn request(&self, close: bool) -> hyper::Request<Empty<Bytes>> {
        let t = &self.target;
        let mut b = hyper::Request::builder();
        if t.http2 {
            b = b.uri(format!("https://{}{}", t.authority, t.path));
        } else {
            b = b.uri(t.path.as_str()).header("host", t.authority.as_str());
            if close {
                b = b.header("connection", "close");
            }
        }
        b = b.header("user-agent", "certgate-loadgen");
        for (name, value) in &t.headers {
            b = b.header(name, value);
        }
        b.body(Empty::new()).expect("request from validated parts")
    }

    /// One GET and its whole response; latency is counted from `started`. `Done(false)`: the
    /// response came but was not 2xx.
    pub async fn get(&self, sender: &mut Sender, close: bool, started: Instant) -> Outcome<bool> {
        let req = self.request(close);
        let exchange = async {
            let resp = match sender {
                Sender::H1(s) => {
                    s.ready().await?;
                    s.send_request(req).await?
                }
                Sender::H2(s) => {
                    s.ready().await?;
                    s.send_request(req).await?
                }
            };
            let status = resp.status();
            resp.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        };
        let status = match self.bounded(exchange).await {
            Bounded::Done(Ok(s)) => s,
            Bounded::Done(Err(e)) => {
                self.error(ErrorKind::Http, "request", error_chain(&e));
                return Outcome::Failed;
            }
            Bounded::TimedOut => {
                self.error(ErrorKind::Timeout, "request", "timed out");
                return Outcome::Failed;
            }
            Bounded::Deadline => return Outcome::Stop,
        };
        let now = Instant::now();
        if !status.is_success() {
            if self.in_window(now) {
                *self
                    .counters
                    .statuses
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(status.as_u16())
                    .or_default() += 1;
            }
            self.error(ErrorKind::Status, "response", status);
            return Outcome::Done(false);
        }
        if self.in_window(now) {
            self.counters.ok.fetch_add(1, Ordering::Relaxed);
            self.latency
                .record(now.saturating_duration_since(started).as_nanos() as u64);
        }
        Outcome::Done(true)
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// A pause after a failure, so a refusing server does not turn the client into a busy loop.
async fn back_off(sh: &Shared) {
    let until = (Instant::now() + Duration::from_millis(5)).min(sh.deadline);
    tokio::time::sleep_until(until.into()).await;
}

/// New connection per request: full mTLS handshake, one GET, close. The latency is that of
/// the whole connection.
pub async fn handshake_worker(sh: Arc<Shared>) {
    while Instant::now() < sh.deadline {
        let started = Instant::now();
        let mut sender = match sh.connect().await {
            Outcome::Done(s) => s,
            Outcome::Failed => {
                back_off(&sh).await;
                continue;
            }
            Outcome::Stop => break,
        };
        match sh.get(&mut sender, true, started).await {
            Outcome::Stop => break,
            Outcome::Failed => back_off(&sh).await,
            Outcome::Done(_) => {}
        }
        // Dropping the sender ends the connection (HTTP/2: GOAWAY; HTTP/1.1: the server
        // closes after a `Connection: close` response).
    }
}

/// One HTTP/1.1 keep-alive connection, one request at a time; reconnects when the server closes
/// it (counted as a reconnect) or after an error.
pub async fn keepalive_h1_worker(sh: Arc<Shared>) {
    let mut conn: Option<Sender> = None;
    while Instant::now() < sh.deadline {
        let sender = match &mut conn {
            Some(s) if !s.is_closed() => s,
            _ => {
                if conn.take().is_some() {
                    sh.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                match sh.connect().await {
                    Outcome::Done(s) => conn.insert(s),
                    Outcome::Failed => {
                        back_off(&sh).await;
                        continue;
                    }
                    Outcome::Stop => break,
                }
            }
        };
        match sh.get(sender, false, Instant::now()).await {
            Outcome::Done(_) => {}
            Outcome::Failed => {
                conn = None;
                back_off(&sh).await;
            }
            Outcome::Stop => break,
        }
    }
}

/// One HTTP/2 connection carrying `streams` concurrent request loops; reconnects once the
/// connection is gone and every loop has given up on it.
pub async fn keepalive_h2_connection(sh: Arc<Shared>, streams: usize) {
    let mut first = true;
    while Instant::now() < sh.deadline {
        let h2 = match sh.connect().await {
            Outcome::Done(Sender::H2(s)) => s,
            // `connect` makes HTTP/2 connections whenever the target is HTTP/2.
            Outcome::Done(Sender::H1(_)) => return,
            Outcome::Failed => {
                back_off(&sh).await;
                continue;
            }
            Outcome::Stop => break,
        };
        if !first {
            sh.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        let mut loops = tokio::task::JoinSet::new();
        for _ in 0..streams {
            let sh = sh.clone();
            let mut sender = Sender::H2(h2.clone());
            loops.spawn(async move {
                while Instant::now() < sh.deadline && !sender.is_closed() {
                    match sh.get(&mut sender, false, Instant::now()).await {
                        Outcome::Done(_) => {}
                        Outcome::Failed => back_off(&sh).await,
                        Outcome::Stop => break,
                    }
                }
            });
        }
        drop(h2);
        while loops.join_next().await.is_some() {}
    }
}
