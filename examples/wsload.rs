//! WebSocket load through certgate: `echo` runs a WebSocket echo server (tokio-tungstenite) to
//! stand behind it; `run` opens mTLS WebSocket connections through certgate and measures echoed
//! messages per second (and certgate's CPU per message with `--server-pid`); `hold` opens N
//! WebSockets, leaves them idle and reports certgate's resident memory per open WebSocket.
//! `scripts/bench-websocket` drives all three.

#[allow(dead_code)] // the load generator's modules, of which this uses a part
#[path = "loadgen/procstat.rs"]
mod procstat;
#[allow(dead_code)]
#[path = "loadgen/tls.rs"]
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct Client {
    /// certgate's listener, e.g. 127.0.0.1:8443.
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long)]
    ca: PathBuf,
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    /// certgate's process id: its CPU time and memory are read from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Subcommand)]
enum Cmd {
    /// A WebSocket echo server on --bind.
    Echo {
        #[arg(long)]
        bind: SocketAddr,
    },
    /// Echoed messages per second over --connections WebSockets for --duration seconds.
    Run {
        #[command(flatten)]
        client: Client,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value_t = 64)]
        message_bytes: usize,
    },
    /// Opens --connections WebSockets, holds them idle, reports memory per WebSocket.
    Hold {
        #[command(flatten)]
        client: Client,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
    },
}

type BoxError = tls::BoxError;
type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    match Cli::parse().command {
        Cmd::Echo { bind } => echo(bind).await,
        Cmd::Run {
            client,
            connections,
            duration,
            message_bytes,
        } => run(&client, connections, duration, message_bytes).await,
        Cmd::Hold {
            client,
            connections,
        } => hold(&client, connections).await,
    }
}

async fn echo(bind: SocketAddr) -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn open(c: &Client, cfg: &Arc<rustls::ClientConfig>) -> Result<Ws, BoxError> {
    let tcp = tokio::net::TcpStream::connect(c.addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost")?;
    let tls = tokio_rustls::TlsConnector::from(cfg.clone())
        .connect(name, tcp)
        .await?;
    let (ws, _) = tokio_tungstenite::client_async("wss://localhost/ws", tls).await?;
    Ok(ws)
}

fn config(c: &Client) -> Result<Arc<rustls::ClientConfig>, BoxError> {
    tls::client_config(&tls::ClientOptions {
        ca: Some(&c.ca),
        cert: &c.cert,
        key: &c.key,
        kx: tls::Kx::X25519,
        http2: false,
        skip_server_verify: false,
    })
}

async fn run(c: &Client, n: usize, secs: f64, size: usize) -> Result<(), BoxError> {
    let cfg = config(c)?;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(open(c, &cfg).await?);
    }
    let echoed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let before = c.server_pid.and_then(procstat::usage);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut ws in conns {
        let echoed = echoed.clone();
        let msg = "x".repeat(size);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                if ws.send(Message::text(msg.clone())).await.is_err() {
                    return;
                }
                match ws.next().await {
                    Some(Ok(_)) => {
                        echoed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => return,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let count = echoed.load(Ordering::Relaxed);
    let after = c.server_pid.and_then(procstat::usage);
    let cpu = match (before, after) {
        (Some(b), Some(a)) if count > 0 => {
            format!(
                ", server CPU {:.2} µs per message",
                (a.cpu_secs - b.cpu_secs) * 1e6 / count as f64
            )
        }
        _ => String::new(),
    };
    println!(
        "websocket echo: {n} connections, {size}-byte messages: {:.0} messages/s{cpu}",
        count as f64 / elapsed
    );
    Ok(())
}

async fn hold(c: &Client, n: usize) -> Result<(), BoxError> {
    let pid = c.server_pid.ok_or("hold needs --server-pid")?;
    let cfg = config(c)?;
    let before = procstat::usage(pid).ok_or("cannot read the server's /proc")?;
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut ws = open(c, &cfg).await?;
        ws.send(Message::text("hi")).await?;
        ws.next().await.ok_or("closed")??;
        held.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = procstat::usage(pid).ok_or("cannot read the server's /proc")?;
    let per = (after.rss_kib.saturating_sub(before.rss_kib)) as f64 / n as f64;
    println!("websocket hold: {n} open WebSockets, server RSS {per:.1} KiB per WebSocket");
    drop(held);
    Ok(())
}
