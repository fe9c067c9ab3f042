//! Quiet HTTP/1.1 keep-alive connections park between requests (hyper lets go of them, the TLS
//! session waits alone) and wake for the next request on the same connection; parked
//! connections still close at the idle timeout, on revocation and on shutdown; a connection in
//! the middle of anything never parks.

mod support;

use std::time::{Duration, Instant};

use support::pki::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VERIFY_CORP: &str = "mode = \"verify\"\ntrust_store = \"corp\"";

async fn proxy_idle(pki: &Pki, backend: &Backend, idle_secs: u64) -> Proxy {
    Proxy::start_edited(pki, backend.addr, VERIFY_CORP, "", |t| {
        t.replace(
            "backend = ",
            &format!("idle_timeout_secs = {idle_secs}\nbackend = "),
        )
    })
    .await
}

fn parked(proxy: &Proxy) -> usize {
    proxy.server.listener("web").unwrap().connections_parked()
}

/// Waits (bounded) until `n` connections are parked; returns how long that took.
async fn until_parked(proxy: &Proxy, n: usize, within: Duration) -> Duration {
    let t0 = Instant::now();
    while parked(proxy) != n {
        assert!(
            t0.elapsed() < within,
            "{} parked after {within:?}, expected {n}",
            parked(proxy)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
}

async fn request(tls: &mut Tls, path: &str) -> u16 {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    h1_read(tls).await.unwrap().0
}

fn good(pki: &Pki) -> std::sync::Arc<rustls::ClientConfig> {
    client_config(pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_connection_parks_and_serves_its_next_requests_on_the_same_session() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = proxy_idle(&pki, &backend, 30).await;
    let mut tls = connect(proxy.addr, good(&pki)).await.unwrap();
    assert_eq!(request(&mut tls, "/one").await, 200);
    assert_eq!(parked(&proxy), 0, "a connection just used is not parked");
    let took = until_parked(&proxy, 1, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(800), "parked after {took:?}");
    for path in ["/two", "/three"] {
        assert_eq!(request(&mut tls, path).await, 200, "{path} after parking");
        assert_eq!(backend.last().path, path);
        until_parked(&proxy, 1, Duration::from_secs(5)).await;
    }
    // One connection throughout: one handshake logged, three requests served.
    assert_eq!(proxy.conn_records(1).len(), 1);
    let access = proxy.access_records(3);
    assert_eq!(access.len(), 3);
    assert!(
        access.iter().all(|r| r["elb_status_code"] == 200),
        "{access:?}"
    );
    // Two requests sent back to back wake it once and are both answered.
    let two =
        "GET /a HTTP/1.1\r\nHost: localhost\r\n\r\nGET /b HTTP/1.1\r\nHost: localhost\r\n\r\n";
    tls.write_all(two.as_bytes()).await.unwrap();
    assert_eq!(h1_read(&mut tls).await.unwrap().0, 200);
    assert_eq!(h1_read(&mut tls).await.unwrap().0, 200);
    assert_eq!(backend.last().path, "/b");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parked_connection_closes_cleanly_at_the_idle_timeout() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = proxy_idle(&pki, &backend, 3).await;
    let mut tls = connect(proxy.addr, good(&pki)).await.unwrap();
    assert_eq!(request(&mut tls, "/").await, 200);
    let answered = Instant::now();
    until_parked(&proxy, 1, Duration::from_secs(3)).await;
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(6), tls.read_to_end(&mut rest)).await;
    let closed = answered.elapsed();
    // close_notify then FIN: a clean end of stream, not a reset or a truncation error.
    assert!(matches!(r, Ok(Ok(0))), "{r:?}");
    assert!(
        closed >= Duration::from_millis(2800),
        "closed after {closed:?}"
    );
    assert_eq!(parked(&proxy), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_in_the_middle_of_a_request_does_not_park() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = proxy_idle(&pki, &backend, 30).await;
    // Half a request head, then silence: the head must not be lost or restarted.
    let mut tls = connect(proxy.addr, good(&pki)).await.unwrap();
    tls.write_all(b"GET /half HTTP/1.1\r\nHo").await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(parked(&proxy), 0, "a partial head parked");
    tls.write_all(b"st: localhost\r\n\r\n").await.unwrap();
    assert_eq!(h1_read(&mut tls).await.unwrap().0, 200);
    assert_eq!(backend.last().path, "/half");
    // A client that leaves while parked is let go.
    until_parked(&proxy, 1, Duration::from_secs(5)).await;
    drop(tls);
    until_parked(&proxy, 0, Duration::from_secs(2)).await;
    // A request whose target answers after 3 s: quiet on the wire, but open.
    let mut slow = connect(proxy.addr, good(&pki)).await.unwrap();
    let t0 = Instant::now();
    let req = "GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n";
    slow.write_all(req.as_bytes()).await.unwrap();
    let watch = async {
        while t0.elapsed() < Duration::from_millis(2500) {
            assert_eq!(parked(&proxy), 0, "the slow request's connection parked");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (answer, ()) = tokio::join!(h1_read(&mut slow), watch);
    assert_eq!(answer.unwrap().0, 200);
    assert!(t0.elapsed() >= Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parked_connection_of_a_revoked_client_is_closed_by_the_reload() {
    let mut pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = proxy_idle(&pki, &backend, 30).await;
    let mut tls = connect(proxy.addr, good(&pki)).await.unwrap();
    assert_eq!(request(&mut tls, "/").await, 200);
    until_parked(&proxy, 1, Duration::from_secs(5)).await;
    pki.inter_crl = pki.inter.crl(&[&pki.revoked.serial, &pki.good.serial]);
    write_pem(proxy.dir.path(), "inter.crl.pem", &pki.inter_crl.pem);
    assert!(proxy.server.reload().await.is_empty());
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut rest)).await;
    assert!(
        matches!(r, Ok(Ok(0))),
        "still open or not closed cleanly: {r:?}"
    );
    until_parked(&proxy, 0, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_parked_connections_at_once() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = proxy_idle(&pki, &backend, 30).await;
    let mut tls = connect(proxy.addr, good(&pki)).await.unwrap();
    assert_eq!(request(&mut tls, "/").await, 200);
    until_parked(&proxy, 1, Duration::from_secs(5)).await;
    let t0 = Instant::now();
    let Proxy { server, dir, .. } = proxy;
    assert!(
        server.shutdown(Duration::from_secs(10)).await,
        "not drained"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "drain took {:?}",
        t0.elapsed()
    );
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(2), tls.read_to_end(&mut rest)).await;
    assert!(matches!(r, Ok(Ok(0))), "{r:?}");
    drop(dir);
}
