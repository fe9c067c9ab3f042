//! Bounded soak run on loopback: starts the `certgate` binary (verify mode, demo PKI) in front of
//! an in-process backend, holds many mTLS keep-alive connections making requests, replaces a
//! share of them every second (churn), then closes everything — three rounds — and checks that
//! the proxy's resident memory comes back to its idle baseline after each round (allowing for
//! its pool of idle backend connections) and does not grow from round to round.
//!
//!     cargo build --release && cargo run --release --example soak -- [CONNECTIONS] [SECONDS]
//!
//! Defaults: 2000 connections, 120 s in total. Exits non-zero if memory does not come back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn client_config(pki: &Path) -> Result<Arc<rustls::ClientConfig>, Box<dyn std::error::Error>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(pki.join("root-ca.pem"))?)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki.join("good-client.pem"))?.collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(pki.join("good-client.key"))?;
    let cfg = rustls::ClientConfig::builder_with_provider(certgate::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(cfg))
}

/// One client: connects, then makes a request every `every` until `until`.
async fn client(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    until: Instant,
    every: Duration,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) {
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
        failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let Ok(name) = ServerName::try_from("localhost") else {
        return;
    };
    let Ok(tls) = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
    else {
        failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut tls = BufReader::new(tls);
    while Instant::now() < until {
        let req = b"GET /soak HTTP/1.1\r\nHost: localhost\r\n\r\n";
        if tls.get_mut().write_all(req).await.is_err() {
            failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Read the status line and headers, then the body by Content-Length.
        let mut len = 0usize;
        let mut line = String::new();
        let mut status_ok = false;
        loop {
            line.clear();
            match tls.read_line(&mut line).await {
                Ok(0) | Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(_) => {}
            }
            if line.starts_with("HTTP/1.1 200") {
                status_ok = true;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; len];
        if tls.read_exact(&mut body).await.is_err() || !status_ok {
            failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        ok.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(every).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let connections: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(120);
    let pki = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("truststores/demo");
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("certgate"))
        .ok_or("cannot locate the certgate binary")?;

    let backend = certgate::demo::echo_backend(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("certgate-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let p = |f: &str| pki.join(f).display().to_string();
    let config = format!(
        "[[listener]]\nname = \"soak\"\nbind = \"127.0.0.1:{port}\"\ncertificate_chain = {:?}\nprivate_key = {:?}\n\
         backend = \"http://{backend}\"\nmax_connections = {}\n[listener.mutual_authentication]\nmode = \"verify\"\n\
         trust_store = \"demo\"\n[trust_store.demo]\nca_certificates_bundle = {:?}\nrevocation_lists = [{:?}]\n\
         [connection_log]\npath = \"conn.log\"\n",
        p("server.pem"),
        p("server.key"),
        connections * 2,
        p("ca-bundle.pem"),
        p("intermediate.crl.pem"),
    );
    std::fs::write(dir.join("soak.toml"), config)?;
    let child = Command::new(&bin)
        .args(["run", "-c", "soak.toml"])
        .current_dir(&dir)
        .env("CERTGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {}: {e} (run cargo build --release first)",
                bin.display()
            )
        })?;
    let proxy = Proxy(child);
    let pid = proxy.0.id();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            return Err("certgate did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cfg = client_config(&pki)?;
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));

    // Warm-up, then the baseline.
    let warm_until = Instant::now() + Duration::from_secs(2);
    let warm: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(client(
                addr,
                cfg.clone(),
                warm_until,
                Duration::from_millis(50),
                ok.clone(),
                failed.clone(),
            ))
        })
        .collect();
    for w in warm {
        w.await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = rss_mib(pid);
    println!(
        "baseline: {baseline:.1} MiB resident after warm-up, proxy has {} open fds",
        open_fds(pid)
    );

    // Three rounds: `connections` held open, about 5 % replaced every second, then all closed.
    let mut peak = baseline;
    let mut settled = Vec::new();
    let round_secs = (seconds / 3).max(5);
    for round in 1..=3 {
        let start = Instant::now();
        let end = start + Duration::from_secs(round_secs);
        let mut tasks: Vec<_> = (0..connections)
            .map(|i| {
                let life = Duration::from_millis(1000 + (i as u64 * 20_000 / connections as u64));
                let until = (Instant::now() + life).min(end);
                tokio::spawn(client(
                    addr,
                    cfg.clone(),
                    until,
                    Duration::from_millis(1000),
                    ok.clone(),
                    failed.clone(),
                ))
            })
            .collect();
        let mut next_report = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(200)).await;
            for task in tasks.iter_mut() {
                if task.is_finished() && Instant::now() < end {
                    let until = (Instant::now() + Duration::from_secs(20)).min(end);
                    *task = tokio::spawn(client(
                        addr,
                        cfg.clone(),
                        until,
                        Duration::from_millis(1000),
                        ok.clone(),
                        failed.clone(),
                    ));
                }
            }
            let rss = rss_mib(pid);
            peak = peak.max(rss);
            if Instant::now() >= next_report {
                next_report += Duration::from_secs(10);
                println!(
                    "round {round} t={:>4}s  rss {rss:>7.1} MiB  requests ok {:>8}  failed {:>4}",
                    start.elapsed().as_secs(),
                    ok.load(Ordering::Relaxed),
                    failed.load(Ordering::Relaxed)
                );
            }
        }
        for task in tasks {
            let _ = task.await;
        }
        // All connections are closed now; give the proxy time to release them (it hands freed
        // memory back every 10 s).
        tokio::time::sleep(Duration::from_secs(12)).await;
        let after = rss_mib(pid);
        println!(
            "round {round} done: all connections closed, rss {after:.1} MiB, proxy has {} open fds",
            open_fds(pid)
        );
        settled.push(after);
    }
    if let Some(hold) = std::env::var("SOAK_HOLD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        // Keeps the idle proxy alive for inspection (heap profilers, gdb) before it is stopped.
        println!("holding the idle proxy (pid {pid}) for {hold} s");
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    let requests = ok.load(Ordering::Relaxed);
    let failures = failed.load(Ordering::Relaxed);
    println!(
        "soak: {connections} connections with churn, 3 rounds of {round_secs} s: {requests} requests ok, {failures} failed; \
         rss idle baseline {baseline:.1} MiB, peak {peak:.1} MiB, after each round {:.1} / {:.1} / {:.1} MiB",
        settled[0], settled[1], settled[2]
    );
    let _ = std::fs::remove_dir_all(&dir);
    // Back to the idle baseline, allowing for the backend connections the proxy keeps pooled
    // (up to 256 idle ones), and no growth from round to round.
    if settled.iter().any(|a| *a > baseline + 32.0) {
        return Err(format!(
            "memory did not return to the baseline: {baseline:.1} MiB idle, {:.1} / {:.1} / {:.1} MiB after the rounds",
            settled[0], settled[1], settled[2]
        )
        .into());
    }
    if settled[2] > settled[0] * 1.10 + 4.0 {
        return Err(format!(
            "memory keeps growing: {:.1} MiB after round 1, {:.1} MiB after round 3",
            settled[0], settled[2]
        )
        .into());
    }
    if failures > requests / 100 {
        return Err(format!("too many failures: {failures}").into());
    }
    Ok(())
}
