//! A large WebSocket message through the certgate binary with bounded memory (issue 17): after
//! the 101 the relay copies bytes both ways with fixed buffers, so a 1 GiB message reaches the
//! target whole while certgate's peak resident memory grows by far less than that.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::pki::Pki;
use support::process::ChildGuard;
use support::{client_config, connect, write_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MESSAGE: u64 = 1 << 30;

/// A target that accepts any upgrade with a 101 and then counts every byte it receives.
async fn counting_target() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                             Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
                if tcp.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            count.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    (addr, received)
}

/// Peak resident memory of a process, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_1_gib_message_is_relayed_with_bounded_memory() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (target, received) = counting_target().await;
    write_config(
        dir.path(),
        &pki,
        target,
        "mode = \"verify\"\ntrust_store = \"corp\"",
        "",
    );
    let mut proxy = ChildGuard::spawn(&["run", "--config", "certgate.toml"], dir.path(), &[]);
    let addr = proxy.listening_addr();

    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);
    let mut tls = connect(addr, cfg).await.unwrap();
    tls.write_all(
        b"GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tls.read(&mut byte).await.unwrap(),
            1,
            "closed before the 101"
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );

    let before = peak_rss_kib(proxy.pid());
    let chunk = vec![0x5au8; 64 * 1024];
    let mut sent = 0u64;
    while sent < MESSAGE {
        tls.write_all(&chunk).await.unwrap();
        sent += chunk.len() as u64;
    }
    tls.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.load(Ordering::Relaxed) < MESSAGE {
        assert!(
            Instant::now() < deadline,
            "only {} bytes arrived",
            received.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = peak_rss_kib(proxy.pid());
    assert_eq!(received.load(Ordering::Relaxed), MESSAGE);
    let grown = after.saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "peak RSS grew by {grown} KiB relaying {} MiB",
        MESSAGE >> 20
    );
    eprintln!("peak RSS {before} KiB before, {after} KiB after relaying 1 GiB");
}
