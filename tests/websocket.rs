//! WebSockets through certgate (SPEC §14): a real WebSocket echo server (tokio-tungstenite)
//! behind a verify listener, a WebSocket client over mTLS. The upgrade request carries the
//! mTLS and X-Forwarded headers; messages flow both ways; the relay closes on the idle
//! timeout, when the target closes, and when a trust-store reload revokes the client; other
//! upgrades stay 501.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::pki::*;
use support::*;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// The header fields of one upgrade request, in order.
type Fields = Vec<(String, String)>;

/// A WebSocket server echoing every text message, recording each upgrade request's headers.
/// A message "bye" makes it close the connection.
struct EchoServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Fields>>>,
}

impl EchoServer {
    async fn start() -> EchoServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Fields>>> = Arc::default();
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    // The callback's types are tungstenite's (its error is a whole response).
                    #[allow(clippy::result_large_err)]
                    let callback = |req: &Request, resp: Response| {
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect();
                        record.lock().unwrap().push(headers);
                        Ok(resp)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await
                    else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        match msg {
                            Message::Text(t) if t.as_str() == "bye" => {
                                let _ = ws.close(None).await;
                                return;
                            }
                            Message::Text(t) => {
                                let echo = format!("echo: {}", t.as_str());
                                if ws.send(Message::text(echo)).await.is_err() {
                                    return;
                                }
                            }
                            _ => {}
                        }
                    }
                });
            }
        });
        EchoServer { addr, seen }
    }

    fn last_headers(&self) -> Fields {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

type Ws = tokio_tungstenite::WebSocketStream<Tls>;

/// A WebSocket client over mTLS (as `pki.good`, or as `leaf`).
async fn open(proxy: &Proxy, pki: &Pki, leaf: &Leaf) -> Ws {
    let cfg = client_config(pki, Some((leaf, &[&pki.inter])), &[b"http/1.1"]);
    let tls = connect(proxy.addr, cfg).await.expect("TLS connect");
    let (ws, resp) = tokio_tungstenite::client_async("wss://localhost/chat", tls)
        .await
        .expect("WebSocket handshake through certgate");
    assert_eq!(resp.status(), 101);
    ws
}

/// The next text message, within 5 s.
async fn next_text(ws: &mut Ws) -> Option<String> {
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => Some(t.as_str().to_string()),
        _ => None,
    }
}

/// How long until the relay closes the client's connection (bounded by `limit`).
async fn closed_within(ws: &mut Ws, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    loop {
        match tokio::time::timeout_at((start + limit).into(), ws.next()).await {
            Err(_) => return None,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                return Some(start.elapsed())
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

async fn proxy(pki: &Pki, echo: &EchoServer, listener_extra: &str) -> Proxy {
    let extra = listener_extra.to_string();
    Proxy::start_edited(
        pki,
        echo.addr,
        "mode = \"verify\"\ntrust_store = \"corp\"",
        "",
        move |t| t.replacen("backend =", &format!("{extra}\nbackend ="), 1),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_messages_flow_both_ways_with_the_mtls_headers_on_the_upgrade() {
    let pki = Pki::new();
    let echo = EchoServer::start().await;
    let proxy = proxy(&pki, &echo, "").await;
    let mut ws = open(&proxy, &pki, &pki.good).await;
    for i in 0..20 {
        ws.send(Message::text(format!("m{i}"))).await.unwrap();
        assert_eq!(
            next_text(&mut ws).await.as_deref(),
            Some(format!("echo: m{i}").as_str())
        );
    }
    let headers = echo.last_headers();
    let one = |name: &str| {
        let v: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(v.len(), 1, "{name} in {headers:?}");
        v[0].to_string()
    };
    assert_eq!(one("x-amzn-mtls-clientcert-subject"), "CN=client");
    assert_eq!(one("x-forwarded-for"), "127.0.0.1");
    assert_eq!(one("x-forwarded-proto"), "https");
    assert_eq!(one("upgrade"), "websocket");
    // A large message, in both directions, with backpressure on the way.
    let big = "x".repeat(1 << 20);
    ws.send(Message::text(big.clone())).await.unwrap();
    assert_eq!(
        next_text(&mut ws).await.map(|t| t.len()),
        Some(big.len() + 6)
    );
    // The target closes: the client's connection closes too.
    ws.send(Message::text("bye")).await.unwrap();
    assert!(closed_within(&mut ws, Duration::from_secs(5))
        .await
        .is_some());
    let acc = proxy.access_records(1).pop().unwrap();
    assert_eq!(acc["elb_status_code"], 101, "{acc}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_websocket_is_closed_at_the_idle_timeout_and_traffic_keeps_it_open() {
    let pki = Pki::new();
    let echo = EchoServer::start().await;
    let proxy = proxy(&pki, &echo, "idle_timeout_secs = 1").await;
    let mut ws = open(&proxy, &pki, &pki.good).await;
    // Traffic every 400 ms for 2 s keeps it open past the 1 s idle timeout...
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        ws.send(Message::text(format!("k{i}"))).await.unwrap();
        assert!(next_text(&mut ws).await.is_some(), "closed while in use");
    }
    // ...silence closes it after about a second.
    let after = closed_within(&mut ws, Duration::from_secs(5)).await;
    let after = after.expect("the idle WebSocket stayed open");
    assert!(
        after >= Duration::from_millis(800),
        "closed after {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_closes_when_a_reload_revokes_its_client() {
    let pki = Pki::new();
    let echo = EchoServer::start().await;
    let proxy = proxy(&pki, &echo, "").await;
    let mut ws = open(&proxy, &pki, &pki.good).await;
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(next_text(&mut ws).await.as_deref(), Some("echo: before"));
    write_pem(
        proxy.dir.path(),
        "inter.crl.pem",
        &pki.inter.crl_pem(&[&pki.good.serial]),
    );
    let problems = proxy.server.reload().await;
    assert!(problems.is_empty(), "{problems:?}");
    assert!(
        closed_within(&mut ws, Duration::from_secs(5))
            .await
            .is_some(),
        "the revoked client's WebSocket stayed open"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn other_upgrades_and_websocket_over_http2_stay_501() {
    let pki = Pki::new();
    let echo = EchoServer::start().await;
    let proxy = proxy(&pki, &echo, "").await;
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);
    let h2c = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    let resp = raw_http1(proxy.addr, cfg.clone(), h2c).await.unwrap();
    assert_eq!(status_of(&resp), Some(501), "{resp}");
    let post =
        "POST /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                Content-Length: 0\r\n\r\n";
    let resp = raw_http1(proxy.addr, cfg, post).await.unwrap();
    assert_eq!(status_of(&resp), Some(501), "{resp}");
    assert!(echo.seen.lock().unwrap().is_empty());
}

/// A raw target: answers the first request head it reads with `reply`, then closes.
async fn raw_target(reply: &'static [u8]) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp.write_all(reply).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

const UPGRADE: &str = "GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
    Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn broken_upgrades_get_the_targets_answer_and_the_proxy_keeps_serving() {
    let pki = Pki::new();
    let cfg = || client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);

    // A version the real WebSocket server does not speak: it hangs up without an answer, which
    // the client gets as 502 with the reason (a target's own refusal would be relayed as is).
    let echo = EchoServer::start().await;
    let proxy_ws = proxy(&pki, &echo, "").await;
    let wrong = format!("{UPGRADE}Sec-WebSocket-Version: 8\r\n\r\n");
    let (status, resp) = ask(proxy_ws.addr, cfg(), &wrong).await;
    assert!(
        (400..500).contains(&status) || (status == 502 && resp.contains("closed")),
        "{resp}"
    );

    // A target that answers the upgrade with a plain 200: relayed as a normal response.
    let plain =
        raw_target(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno").await;
    let fake = EchoServer {
        addr: plain,
        seen: Arc::default(),
    };
    let proxy_plain = proxy(&pki, &fake, "").await;
    let upgrade = format!("{UPGRADE}Sec-WebSocket-Version: 13\r\n\r\n");
    let (status, resp) = ask(proxy_plain.addr, cfg(), &upgrade).await;
    assert_eq!(status, 200, "{resp}");
    assert!(resp.ends_with("\r\n\r\nno"), "{resp}");

    // A target that accepts, sends half a frame and closes: the client's connection ends.
    let half = raw_target(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x7e\x01\x00abc",
    )
    .await;
    let fake = EchoServer {
        addr: half,
        seen: Arc::default(),
    };
    let proxy_half = proxy(&pki, &fake, "").await;
    let upgraded = raw_http1(proxy_half.addr, cfg(), &upgrade).await;
    let text = upgraded.expect("the relay ends when the target closes");
    assert_eq!(status_of(&text), Some(101), "{text}");
    assert!(
        text.ends_with("abc"),
        "the half frame is relayed, then the end: {text:?}"
    );

    // Each proxy still serves WebSockets or plain requests afterwards.
    let mut ws = open(&proxy_ws, &pki, &pki.good).await;
    ws.send(Message::text("still")).await.unwrap();
    assert_eq!(next_text(&mut ws).await.as_deref(), Some("echo: still"));
    assert_eq!(ask(proxy_plain.addr, cfg(), &upgrade).await.0, 200);
}

/// One request on a new connection; the first response, whether or not the connection stays.
async fn ask(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>, request: &str) -> (u16, String) {
    let mut tls = connect(addr, cfg).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tls, request.as_bytes())
        .await
        .unwrap();
    h1_read(&mut tls).await.unwrap()
}
