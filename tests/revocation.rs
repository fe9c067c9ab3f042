//! Revocation reaches open connections: after a trust-store reload, keep-alive connections
//! (HTTP/1.1 and HTTP/2) of verify-mode clients whose chain no longer verifies are closed once
//! their in-flight requests are done, and each close is logged; every other connection, and
//! every passthrough connection, keeps serving.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use support::pki::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// The logged lines that mention `trace_id`.
fn warnings_for(trace_id: &str) -> Vec<String> {
    let log = warnings();
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| l.contains(trace_id))
        .map(str::to_string)
        .collect()
}

/// The close of a revoked connection was logged with the fields users grep for.
fn assert_close_logged(trace_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = warnings_for(trace_id);
        if let Some(line) = lines.first() {
            assert!(line.contains("WARN"), "{line}");
            assert!(line.contains("listener=web"), "{line}");
            assert!(
                line.contains("tls_verify_status=Failed:ClientCertCrlHit"),
                "{line}"
            );
            assert!(
                line.contains("is revoked by a CRL of the trust store"),
                "{line}"
            );
            return;
        }
        assert!(Instant::now() < deadline, "no close logged for {trace_id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The trace id of the connection-log record of the client with this subject CN.
fn trace_id_of(proxy: &Proxy, listener: &str, cn: &str, n: usize) -> String {
    let recs: Vec<Value> = proxy.conn_records(n);
    recs.iter()
        .find(|r| {
            r["listener"] == listener
                && r["leaf_client_cert_subject"] == format!("CN={cn}")
                && r["tls_verify_status"] == "Success"
        })
        .and_then(|r| r["conn_trace_id"].as_str())
        .unwrap_or_else(|| panic!("no record for CN={cn} on {listener}: {recs:?}"))
        .to_string()
}

/// Writes a CRL revoking the good client (besides `revoked`) and reloads.
async fn revoke_good_client(pki: &mut Pki, proxy: &Proxy) {
    pki.inter_crl = pki.inter.crl(&[&pki.revoked.serial, &pki.good.serial]);
    write_pem(proxy.dir.path(), "inter.crl.pem", &pki.inter_crl.pem);
    let problems = proxy.server.reload().await;
    assert!(problems.is_empty(), "{problems:?}");
}

fn other_client(pki: &Pki) -> Leaf {
    pki.inter.leaf(&LeafSpec::client("other"))
}

// ---- HTTP/1.1 over a raw TLS stream ----

async fn h1_open(addr: SocketAddr, pki: &Pki, leaf: &Leaf) -> Tls {
    let cfg = client_config(pki, Some((leaf, &[&pki.inter])), &[b"http/1.1"]);
    connect(addr, cfg).await.unwrap()
}

async fn h1_send(tls: &mut Tls, path: &str) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
}

async fn h1_get(tls: &mut Tls, path: &str) -> u16 {
    h1_send(tls, path).await;
    h1_read(tls).await.unwrap().0
}

/// The server closes the connection (EOF or a TLS/TCP error) within 5 s.
async fn h1_assert_closed(tls: &mut Tls) {
    let mut buf = [0u8; 256];
    let r = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "connection should have been closed by the server: {r:?}"
    );
}

// ---- HTTP/2 through hyper's client ----

struct H2 {
    send: SendRequest<Empty<Bytes>>,
    conn: JoinHandle<()>,
}

async fn h2_open(addr: SocketAddr, pki: &Pki, leaf: &Leaf) -> H2 {
    let cfg = client_config(pki, Some((leaf, &[&pki.inter])), &[b"h2"]);
    let tls = connect(addr, cfg).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    H2 { send, conn }
}

fn h2_req(path: &str) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::builder()
        .uri(format!("https://localhost{path}"))
        .body(Empty::new())
        .unwrap()
}

async fn h2_get(h2: &mut H2, path: &str) -> Result<u16, hyper::Error> {
    let resp = tokio::time::timeout(Duration::from_secs(10), h2.send.send_request(h2_req(path)))
        .await
        .expect("HTTP/2 response timeout")?;
    Ok(resp.status().as_u16())
}

/// The server ends the HTTP/2 connection within 5 s; no request goes through after that.
async fn h2_assert_closed(h2: &mut H2) {
    let done = tokio::time::timeout(Duration::from_secs(5), &mut h2.conn).await;
    assert!(
        done.is_ok(),
        "HTTP/2 connection should have been closed by the server"
    );
    assert!(h2_get(h2, "/after").await.is_err());
}

// ---- the tests ----

#[tokio::test(flavor = "multi_thread")]
async fn http1_keep_alive_of_a_revoked_client_is_closed_and_others_keep_serving() {
    warnings();
    let mut pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let other = other_client(&pki);
    let mut good = h1_open(proxy.addr, &pki, &pki.good).await;
    assert_eq!(h1_get(&mut good, "/one").await, 200);
    let mut still = h1_open(proxy.addr, &pki, &other).await;
    assert_eq!(h1_get(&mut still, "/one").await, 200);
    let good_id = trace_id_of(&proxy, "web", "client", 2);
    let other_id = trace_id_of(&proxy, "web", "other", 2);

    revoke_good_client(&mut pki, &proxy).await;
    h1_assert_closed(&mut good).await;
    assert_close_logged(&good_id);

    // The other client's connection is the same one, and it still serves.
    assert_eq!(h1_get(&mut still, "/two").await, 200);
    assert_eq!(h1_get(&mut still, "/three").await, 200);
    assert!(warnings_for(&other_id).is_empty());
    assert_eq!(proxy.conn_records(2).len(), 2, "no new connection was made");
    // New connections of the revoked client are refused as before.
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    assert!(get(proxy.addr, cfg, "/").await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_connection_of_a_revoked_client_is_closed_and_others_keep_serving() {
    warnings();
    let mut pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let other = other_client(&pki);
    let mut good = h2_open(proxy.addr, &pki, &pki.good).await;
    assert_eq!(h2_get(&mut good, "/one").await.unwrap(), 200);
    let mut still = h2_open(proxy.addr, &pki, &other).await;
    assert_eq!(h2_get(&mut still, "/one").await.unwrap(), 200);
    let good_id = trace_id_of(&proxy, "web", "client", 2);
    let other_id = trace_id_of(&proxy, "web", "other", 2);

    revoke_good_client(&mut pki, &proxy).await;
    h2_assert_closed(&mut good).await;
    assert_close_logged(&good_id);

    assert!(!still.conn.is_finished());
    assert_eq!(h2_get(&mut still, "/two").await.unwrap(), 200);
    assert!(warnings_for(&other_id).is_empty());
    assert_eq!(proxy.conn_records(2).len(), 2, "no new connection was made");
}

#[tokio::test(flavor = "multi_thread")]
async fn in_flight_requests_of_a_revoked_client_complete_before_the_close() {
    warnings();
    let mut pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let mut h1 = h1_open(proxy.addr, &pki, &pki.good).await;
    let mut h2 = h2_open(proxy.addr, &pki, &pki.good).await;
    assert_eq!(h2_get(&mut h2, "/warm").await.unwrap(), 200);

    // Both slow requests are at the backend (which holds them 3 s) when the reload happens.
    h1_send(&mut h1, "/slow/h1").await;
    let h2_slow = h2.send.send_request(h2_req("/slow/h2"));
    let h2_slow = tokio::spawn(h2_slow);
    let deadline = Instant::now() + Duration::from_secs(5);
    while backend
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path.starts_with("/slow"))
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "slow requests never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    revoke_good_client(&mut pki, &proxy).await;
    let recs = proxy.conn_records(2);
    for r in &recs {
        assert_close_logged(r["conn_trace_id"].as_str().unwrap());
    }

    let (status, text) = h1_read(&mut h1).await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("backend saw /slow/h1"), "{text}");
    h1_assert_closed(&mut h1).await;

    let resp = tokio::time::timeout(Duration::from_secs(10), h2_slow)
        .await
        .expect("HTTP/2 slow response timeout")
        .unwrap()
        .expect("the in-flight HTTP/2 request completes");
    assert_eq!(resp.status(), 200);
    h2_assert_closed(&mut h2).await;
    assert!(
        asked.elapsed() >= Duration::from_secs(1),
        "the close waited for the backend's answers"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn passthrough_connections_are_never_closed_by_a_reload() {
    warnings();
    let mut pki = Pki::new();
    let backend = Backend::start().await;
    // "web" in passthrough, "strict" in verify, the same client on both.
    let strict = format!(
        "[[listener]]\nname = \"strict\"\nbind = \"127.0.0.1:0\"\ncertificate_chain = \"server.pem\"\n\
         private_key = \"server.key\"\nbackend = \"http://{}\"\n\n\
         [listener.mutual_authentication]\nmode = \"verify\"\ntrust_store = \"corp\"\n",
        backend.addr
    );
    let proxy = Proxy::start(&pki, backend.addr, "mode = \"passthrough\"", &strict).await;
    let strict_addr = proxy.server.local_addr("strict").unwrap();
    let mut pass_h1 = h1_open(proxy.addr, &pki, &pki.good).await;
    let mut pass_h2 = h2_open(proxy.addr, &pki, &pki.good).await;
    let mut verify_h1 = h1_open(strict_addr, &pki, &pki.good).await;
    assert_eq!(h1_get(&mut pass_h1, "/one").await, 200);
    assert_eq!(h2_get(&mut pass_h2, "/one").await.unwrap(), 200);
    assert_eq!(h1_get(&mut verify_h1, "/one").await, 200);

    revoke_good_client(&mut pki, &proxy).await;
    // The reload did reach the verify listener's connection...
    h1_assert_closed(&mut verify_h1).await;
    // ...and left the passthrough ones alone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h1_get(&mut pass_h1, "/two").await, 200);
    assert!(!pass_h2.conn.is_finished());
    assert_eq!(h2_get(&mut pass_h2, "/two").await.unwrap(), 200);
    for r in proxy.conn_records(3) {
        if r["listener"] == "web" {
            assert!(warnings_for(r["conn_trace_id"].as_str().unwrap()).is_empty());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn timed_refresh_closes_the_connection_of_a_client_revoked_on_disk() {
    warnings();
    let mut pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start_edited(
        &pki,
        backend.addr,
        "mode = \"verify\"\ntrust_store = \"corp\"",
        "",
        |t| {
            t.replace(
                "[trust_store.corp]",
                "[trust_store.corp]\nrefresh_interval_secs = 1",
            )
        },
    )
    .await;
    let mut good = h1_open(proxy.addr, &pki, &pki.good).await;
    assert_eq!(h1_get(&mut good, "/one").await, 200);
    let good_id = trace_id_of(&proxy, "web", "client", 1);

    pki.inter_crl = pki.inter.crl(&[&pki.revoked.serial, &pki.good.serial]);
    write_pem(proxy.dir.path(), "inter.crl.pem", &pki.inter_crl.pem);
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(10), good.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "refresh should have closed the connection: {r:?}"
    );
    assert_close_logged(&good_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_ending_at_a_bundle_intermediate_is_closed_when_its_root_revokes_it() {
    warnings();
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    // The intermediate joins the bundle, and the client sends its leaf only: the path ends at
    // the intermediate as a trust anchor.
    let bundle = format!("{}{}", pki.root.pem, pki.inter.pem);
    write_pem(proxy.dir.path(), "bundle.pem", &bundle);
    assert!(proxy.server.reload().await.is_empty());
    let cfg = client_config(&pki, Some((&pki.good, &[])), &[b"http/1.1"]);
    let mut conn = connect(proxy.addr, cfg).await.unwrap();
    assert_eq!(h1_get(&mut conn, "/one").await, 200);
    let id = trace_id_of(&proxy, "web", "client", 1);

    let root_crl = pki.root.crl_der(&[&pki.inter.serial]);
    std::fs::write(proxy.dir.path().join("root.crl.der"), root_crl).unwrap();
    let problems = proxy.server.reload().await;
    assert!(problems.is_empty(), "{problems:?}");
    h1_assert_closed(&mut conn).await;
    assert_close_logged(&id);
    let line = warnings_for(&id).join("\n");
    let serial = certgate::x509::serial_hex(&pki.inter.serial);
    assert!(
        line.contains("CN=certgate test intermediate") && line.contains(&serial),
        "the close names the revoked CA: {line}"
    );
}

/// Issue 11: a connection does not outlive its client's certificate. At notAfter it is closed
/// after its in-flight requests (logged as `ClientCertExpired`), while a client whose certificate
/// is still valid keeps its connection; with `ignore_client_certificate_expiry` it stays open.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_is_closed_when_its_client_certificate_expires() {
    warnings();
    let pki = Pki::new();
    let backend = Backend::start().await;
    let brief = |pki: &Pki| {
        pki.inter.leaf(&LeafSpec {
            not_after: time::OffsetDateTime::now_utc() + time::Duration::seconds(3),
            ..LeafSpec::client("brief")
        })
    };
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let leaf = brief(&pki);
    let mut expiring = h1_open(proxy.addr, &pki, &leaf).await;
    assert_eq!(h1_get(&mut expiring, "/one").await, 200);
    let mut still = h1_open(proxy.addr, &pki, &other_client(&pki)).await;
    assert_eq!(h1_get(&mut still, "/one").await, 200);
    let brief_id = trace_id_of(&proxy, "web", "brief", 2);
    tokio::time::sleep(Duration::from_secs(4)).await;
    h1_assert_closed(&mut expiring).await;
    let logged = warnings_for(&brief_id);
    assert!(
        logged
            .iter()
            .any(|l| l.contains("tls_verify_status=Failed:ClientCertExpired")),
        "{logged:?}"
    );
    assert_eq!(h1_get(&mut still, "/two").await, 200);

    let ignoring = Proxy::start(
        &pki,
        backend.addr,
        "mode = \"verify\"\ntrust_store = \"corp\"\nignore_client_certificate_expiry = true",
        "",
    )
    .await;
    let leaf = brief(&pki);
    let mut kept = h1_open(ignoring.addr, &pki, &leaf).await;
    assert_eq!(h1_get(&mut kept, "/one").await, 200);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(h1_get(&mut kept, "/two").await, 200);
}
