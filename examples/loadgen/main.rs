//! A load generator for mTLS servers: presents a client certificate over rustls (which wrk,
//! h2load and most load tools cannot) and measures full-handshake rate or keep-alive request
//! rate, latency percentiles, errors by kind, and the CPU time and memory of the server process.
//!
//!     cargo build --release --example loadgen
//!     target/release/examples/loadgen --url https://127.0.0.1:8443/ --sni localhost \
//!         --ca truststores/demo/root-ca.pem --cert truststores/demo/good-client.pem \
//!         --key truststores/demo/good-client.key --mode handshake --concurrency 32 \
//!         --duration 10 --server-pid $(pgrep -n certgate)
//!
//! Modes: `--mode handshake` opens a new connection per request (full mTLS handshake, one GET,
//! close: handshakes/s); `--mode keepalive` sends requests over persistent connections
//! (requests/s); `--idle-conns N` opens N keep-alive connections, makes one request on each,
//! holds them and reports the server's resident memory per connection. TLS session resumption
//! is off, so every connection is a full handshake. `--json` prints one JSON line on stdout (the
//! human summary then goes to stderr). `--header "Name: value"` (repeatable) adds a header to
//! every request, e.g. a bearer token for a listener that checks JWTs.

mod histogram;
mod procstat;
mod report;
mod run;
mod tls;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rustls::pki_types::ServerName;
use serde_json::json;

use crate::histogram::Histogram;
use crate::run::{Counters, Outcome, Sender, Shared, Target, ERROR_KINDS};
use crate::tls::BoxError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// A new connection (full mTLS handshake) for every request.
    Handshake,
    /// Requests over persistent connections.
    Keepalive,
}

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "mTLS load generator: handshakes/s, requests/s, latency, server CPU and memory"
)]
struct Args {
    /// https://HOST:PORT/PATH of the server under test.
    #[arg(long)]
    url: String,
    #[arg(long, value_enum, default_value = "handshake")]
    mode: Mode,
    /// HTTP version: 1 (HTTP/1.1) or 2 (HTTP/2, negotiated with ALPN).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    http: u8,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// HTTP/2 keep-alive only: connections the concurrent streams are spread over
    /// (default: one per 16 streams).
    #[arg(long)]
    connections: Option<usize>,
    /// Seconds measured, after the warm-up. With --idle-conns: the time allowed to open them.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts (default: a fifth of --duration, at most 2).
    #[arg(long)]
    warmup: Option<f64>,
    /// PEM file of the CA(s) that issued the server certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate chain, PEM, leaf first.
    #[arg(long)]
    cert: PathBuf,
    /// Client private key, PEM.
    #[arg(long)]
    key: PathBuf,
    /// TLS server name to send and check (default: the URL's host; none for an IP address).
    /// Also used as the Host header, as a browser would.
    #[arg(long)]
    sni: Option<String>,
    /// Benchmark-only: do not verify the server certificate or its handshake signature, so the
    /// client spends less CPU per handshake than the server it measures.
    #[arg(long)]
    insecure_skip_server_verify: bool,
    /// Key exchange group(s) offered.
    #[arg(long, value_enum, default_value = "x25519")]
    kx: tls::Kx,
    /// Seconds allowed for each connect, handshake and request.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Process id of the server under test: its CPU time and memory (with its child processes)
    /// are sampled over the measured window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Open this many keep-alive connections, make one request on each, hold them for --hold
    /// seconds and report the server's memory per connection (needs --server-pid).
    #[arg(long)]
    idle_conns: Option<usize>,
    /// Seconds to hold idle connections before measuring memory.
    #[arg(long, default_value_t = 3.0)]
    hold: f64,
    /// Runtime threads of the load generator (default: the CPUs it may run on).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON line with every figure on stdout (the summary goes to stderr).
    #[arg(long)]
    json: bool,
    /// A name copied into the JSON line (e.g. the server under test).
    #[arg(long)]
    label: Option<String>,
    /// An extra request header, "Name: value" (e.g. "Authorization: Bearer TOKEN"); repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
}

fn main() {
    let args = Args::parse();
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let code = match rt
        .map_err(BoxError::from)
        .and_then(|rt| rt.block_on(start(args, threads)))
    {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// Lets the process hold as many sockets as the hard limit allows (idle-connection runs).
fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn target(args: &Args) -> Result<Target, BoxError> {
    let uri: http::Uri = args.url.parse().map_err(|e| format!("--url: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err("--url must start with https://".into());
    }
    let host = uri.host().ok_or("--url has no host")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(443);
    let addr: SocketAddr = match bare.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => (bare, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| format!("{bare} does not resolve"))?,
    };
    let (server_name, host_header) = match &args.sni {
        Some(sni) => (ServerName::try_from(sni.clone())?, sni.clone()),
        None => match bare.parse::<IpAddr>() {
            Ok(ip) => (ServerName::IpAddress(ip.into()), host.to_string()),
            Err(_) => (ServerName::try_from(bare.to_string())?, host.to_string()),
        },
    };
    let authority = if port == 443 {
        host_header
    } else {
        format!("{host_header}:{port}")
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_string());
    Ok(Target {
        addr,
        server_name,
        authority,
        path,
        http2: args.http == 2,
        headers: args
            .headers
            .iter()
            .map(String::as_str)
            .map(run::parse_header)
            .collect::<Result<_, _>>()?,
    })
}

async fn start(args: Args, threads: usize) -> Result<i32, BoxError> {
    raise_fd_limit();
    if args.concurrency == 0 || args.duration <= 0.0 || args.timeout <= 0.0 {
        return Err("--concurrency, --duration and --timeout must be positive".into());
    }
    let target = target(&args)?;
    let config = tls::client_config(&tls::ClientOptions {
        ca: args.ca.as_deref(),
        cert: &args.cert,
        key: &args.key,
        kx: args.kx,
        http2: target.http2,
        skip_server_verify: args.insecure_skip_server_verify,
    })?;
    let idle = args.idle_conns.is_some();
    let warmup = if idle {
        0.0
    } else {
        args.warmup.unwrap_or((args.duration / 5.0).min(2.0))
    };
    let now = Instant::now();
    let measure_from = now + Duration::from_secs_f64(warmup);
    let sh = Arc::new(Shared {
        target,
        connector: tokio_rustls::TlsConnector::from(config),
        op_timeout: Duration::from_secs_f64(args.timeout),
        measure_from,
        deadline: measure_from + Duration::from_secs_f64(args.duration),
        latency: Histogram::new(),
        counters: Counters::default(),
        tls_info: OnceLock::new(),
    });
    let mut report = match args.idle_conns {
        Some(n) => idle_run(&args, &sh, n).await?,
        None => load_run(&args, &sh, warmup).await,
    };
    report["label"] = json!(args.label);
    report["url"] = json!(args.url);
    report["client_threads"] = json!(threads);
    report["kx_offered"] = json!(format!("{:?}", args.kx).to_lowercase());
    report["server_verified"] = json!(!args.insecure_skip_server_verify);
    let summary = report::summary(&report);
    if args.json {
        eprint!("{summary}");
        println!("{report}");
    } else {
        print!("{summary}");
    }
    let ok = report["ok"].as_u64().unwrap_or(0);
    Ok(if ok == 0 { 2 } else { 0 })
}

/// Server CPU and memory over the measured window, and the client's own CPU.
struct Window {
    secs: f64,
    server: Option<(procstat::Usage, procstat::Usage, u64)>,
    client_cpu_secs: f64,
}

async fn sample(pid: Option<u32>, from: Instant, until: Instant) -> Window {
    tokio::time::sleep_until(from.into()).await;
    let t0 = Instant::now();
    let client0 = procstat::own_cpu_secs();
    let first = pid.and_then(procstat::usage);
    let mut max_rss = first.map(|u| u.rss_kib).unwrap_or(0);
    while Instant::now() < until {
        let next = (Instant::now() + Duration::from_millis(200)).min(until);
        tokio::time::sleep_until(next.into()).await;
        if let Some(u) = pid.and_then(procstat::usage) {
            max_rss = max_rss.max(u.rss_kib);
        }
    }
    let last = pid.and_then(procstat::usage);
    Window {
        secs: t0.elapsed().as_secs_f64(),
        server: first.zip(last).map(|(a, b)| (a, b, max_rss.max(b.rss_kib))),
        client_cpu_secs: procstat::own_cpu_secs() - client0,
    }
}

async fn load_run(args: &Args, sh: &Arc<Shared>, warmup: f64) -> serde_json::Value {
    let sampler = tokio::spawn(sample(args.server_pid, sh.measure_from, sh.deadline));
    let mut workers = tokio::task::JoinSet::new();
    let mut connections = args.concurrency;
    match (args.mode, sh.target.http2) {
        (Mode::Handshake, _) => {
            for _ in 0..args.concurrency {
                workers.spawn(run::handshake_worker(sh.clone()));
            }
        }
        (Mode::Keepalive, false) => {
            for _ in 0..args.concurrency {
                workers.spawn(run::keepalive_h1_worker(sh.clone()));
            }
        }
        (Mode::Keepalive, true) => {
            connections = args
                .connections
                .unwrap_or(args.concurrency.div_ceil(16))
                .clamp(1, args.concurrency);
            for i in 0..connections {
                // Spread the streams as evenly as possible over the connections.
                let streams = args.concurrency / connections
                    + usize::from(i < args.concurrency % connections);
                workers.spawn(run::keepalive_h2_connection(sh.clone(), streams));
            }
        }
    }
    // Every wait inside a worker ends at the deadline; this only guards against a bug.
    let grace = sh.deadline + sh.op_timeout + Duration::from_secs(2);
    let drained = tokio::time::timeout_at(grace.into(), async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        workers.abort_all();
    }
    let window = sampler.await.unwrap_or(Window {
        secs: 0.0,
        server: None,
        client_cpu_secs: 0.0,
    });

    let c = &sh.counters;
    let ok = c.ok.load(Ordering::Relaxed);
    let secs = (sh.deadline - sh.measure_from).as_secs_f64();
    let h = &sh.latency;
    let us = |v: u64| (v as f64 / 100.0).round() / 10.0;
    let mut errors = serde_json::Map::new();
    let mut error_total = 0;
    for (kind, name) in ERROR_KINDS {
        let n = c.errors[kind as usize].load(Ordering::Relaxed);
        error_total += n;
        errors.insert(name.to_string(), json!(n));
    }
    let statuses: serde_json::Map<String, serde_json::Value> = c
        .statuses
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut report = json!({
        "tool": "certgate-loadgen",
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "http": args.http,
        "concurrency": args.concurrency,
        "connections": connections,
        "duration_s": secs,
        "warmup_s": warmup,
        "ok": ok,
        "rate": ok as f64 / secs,
        "handshakes": c.handshakes.load(Ordering::Relaxed),
        "reconnects": c.reconnects.load(Ordering::Relaxed),
        "errors": errors,
        "error_total": error_total,
        "non_2xx": statuses,
        "warmup_errors": c.warmup_errors.load(Ordering::Relaxed),
        "error_samples": *c.samples.lock().unwrap_or_else(|e| e.into_inner()),
        "latency_us": {
            "p50": us(h.quantile(0.5)),
            "p90": us(h.quantile(0.9)),
            "p99": us(h.quantile(0.99)),
            "p999": us(h.quantile(0.999)),
            "max": us(h.max()),
            "mean": (h.mean() / 100.0).round() / 10.0,
        },
        "tls": sh.tls_info.get().map(|t| json!({
            "version": t.version, "cipher": t.cipher, "kx": t.kx, "alpn": t.alpn,
        })),
        "client_cpu_util": window.client_cpu_secs / window.secs.max(1e-9),
    });
    if let Some((a, b, max_rss)) = window.server {
        let cpu = b.cpu_secs - a.cpu_secs;
        report["server"] = json!({
            "pid": args.server_pid,
            "processes": b.processes,
            "cpu_s": cpu,
            "cpu_util": cpu / window.secs.max(1e-9),
            "cpu_us_per_op": if ok > 0 { cpu * 1e6 / ok as f64 } else { 0.0 },
            "rss_kib_start": a.rss_kib,
            "rss_kib_end": b.rss_kib,
            "rss_kib_max": max_rss,
            "hwm_kib": b.hwm_kib,
        });
    }
    report
}

/// The server's RSS, averaged over a few readings so one allocator hiccup does not count.
async fn settled_rss(pid: u32) -> Result<f64, BoxError> {
    let mut sum = 0.0;
    for i in 0..5 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let u = procstat::usage(pid).ok_or_else(|| format!("server process {pid} is gone"))?;
        sum += u.rss_kib as f64;
    }
    Ok(sum / 5.0)
}

async fn idle_run(args: &Args, sh: &Arc<Shared>, n: usize) -> Result<serde_json::Value, BoxError> {
    let pid = args
        .server_pid
        .ok_or("--idle-conns needs --server-pid to measure the server's memory")?;
    let before = settled_rss(pid).await?;
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        let sh = sh.clone();
        opening.spawn(async move {
            let _permit = permit;
            let mut sender = match sh.connect().await {
                Outcome::Done(s) => s,
                _ => return None,
            };
            match sh.get(&mut sender, false, Instant::now()).await {
                Outcome::Done(true) => Some(sender),
                _ => None,
            }
        });
    }
    let mut held: Vec<Sender> = Vec::with_capacity(n);
    while let Some(r) = opening.join_next().await {
        if let Ok(Some(s)) = r {
            held.push(s);
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let after = settled_rss(pid).await?;
    let still_open = held.iter().filter(|s| !s.is_closed()).count();
    let usage = procstat::usage(pid).unwrap_or_default();
    let c = &sh.counters;
    let mut errors = serde_json::Map::new();
    let mut error_total = 0;
    for (kind, name) in ERROR_KINDS {
        let v = c.errors[kind as usize].load(Ordering::Relaxed);
        error_total += v;
        errors.insert(name.to_string(), json!(v));
    }
    let per_conn = if held.is_empty() {
        0.0
    } else {
        (after - before) / held.len() as f64
    };
    let report = json!({
        "tool": "certgate-loadgen",
        "mode": "idle",
        "http": args.http,
        "requested": n,
        "ok": held.len(),
        "still_open": still_open,
        "open_s": open_secs,
        "hold_s": args.hold,
        "errors": errors,
        "error_total": error_total,
        "error_samples": *c.samples.lock().unwrap_or_else(|e| e.into_inner()),
        "tls": sh.tls_info.get().map(|t| json!({
            "version": t.version, "cipher": t.cipher, "kx": t.kx, "alpn": t.alpn,
        })),
        "server": {
            "pid": pid,
            "processes": usage.processes,
            "rss_kib_before": before.round(),
            "rss_kib_after": after.round(),
            "rss_kib_per_conn": (per_conn * 10.0).round() / 10.0,
            "hwm_kib": usage.hwm_kib,
        },
    });
    drop(held);
    Ok(report)
}
