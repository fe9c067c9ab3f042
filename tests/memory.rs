//! What an open connection keeps alive: not the trust store it was admitted under (a reload
//! frees the old store while the connection keeps serving), and of its client's chain only the
//! leaf and the verified path, not the extra certificates a client may attach.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use support::pki::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A keep-alive HTTP/1.1 GET on an open connection; the status.
async fn keep_alive_get(tls: &mut Tls, path: &str) -> u16 {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    h1_read(tls).await.unwrap().0
}

async fn open(addr: SocketAddr, pki: &Pki, cas: &[&Ca]) -> Tls {
    let cfg = client_config(pki, Some((&pki.good, cas)), &[b"http/1.1"]);
    let mut tls = connect(addr, cfg).await.unwrap();
    assert_eq!(keep_alive_get(&mut tls, "/open").await, 200);
    tls
}

/// Waits (bounded) until nothing holds the store any more; false if something still does.
async fn freed(store: &Weak<certgate::truststore::TrustStore>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.upgrade().is_some() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn open_connections_do_not_pin_the_trust_stores_they_outlived() {
    let mut pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let store = || proxy.server.trust_store("corp").unwrap();
    let first = Arc::downgrade(&store());
    let mut generations = vec![first.clone()];
    let mut conns = Vec::new();
    for i in 0..20u8 {
        // One connection admitted under each generation, held open.
        conns.push(open(proxy.addr, &pki, &[&pki.inter]).await);
        let before = store().version.clone();
        pki.inter_crl = pki.inter.crl(&[&pki.revoked.serial, &[0x70, i]]);
        write_pem(proxy.dir.path(), "inter.crl.pem", &pki.inter_crl.pem);
        let problems = proxy.server.reload().await;
        assert!(problems.is_empty(), "{problems:?}");
        assert_ne!(store().version, before, "reload {i} made a new generation");
        generations.push(Arc::downgrade(&store()));
    }
    for (i, tls) in conns.iter_mut().enumerate() {
        assert_eq!(keep_alive_get(tls, "/still").await, 200, "connection {i}");
    }
    assert!(
        freed(&first).await,
        "the first store is still alive while connections opened under it are open"
    );
    for (i, old) in generations[..20].iter().enumerate() {
        assert!(freed(old).await, "generation {i} is still alive");
    }
    assert!(generations[20].upgrade().is_some(), "the store in service");
    // The connections opened under those stores are still the same ones, and still serve.
    for (i, tls) in conns.iter_mut().enumerate() {
        assert_eq!(keep_alive_get(tls, "/after").await, 200, "connection {i}");
    }
    assert_eq!(
        proxy.conn_records(20).len(),
        20,
        "no new connection was made"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn extra_certificates_a_client_attaches_are_not_kept_for_its_connection() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let (junk_a, junk_b) = (root_ca("junk a"), root_ca("junk b"));
    let _tls = open(proxy.addr, &pki, &[&pki.inter, &junk_a, &junk_b]).await;
    let listener = proxy.server.listener("web").unwrap();
    let open_conns = listener.open_conns.snapshot();
    assert_eq!(open_conns.len(), 1);
    let kept: Vec<Vec<u8>> = open_conns[0].2.iter().map(|c| c.to_vec()).collect();
    assert!(
        kept == vec![pki.good.der.clone(), pki.inter.der.clone()],
        "only the leaf and the intermediate of the verified path are kept, not {} certificates",
        kept.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_request_path_is_truncated_in_the_access_log_and_says_so() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let path = format!("/{}", "p".repeat(60 * 1024));
    let agent = "a".repeat(10_000);
    let mut tls = open(proxy.addr, &pki, &[&pki.inter]).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {agent}\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let records = proxy.access_records(2);
    let rec = records
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/pp")))
        .unwrap_or_else(|| panic!("no record of the huge path"));
    let limit = certgate::observe::access::MAX_FIELD_BYTES;
    let logged = rec["path"].as_str().unwrap();
    let expected = format!(
        "{}…[truncated {} bytes]",
        &path[..limit],
        path.len() - limit
    );
    assert!(logged == expected, "path logged as {} bytes", logged.len());
    let request = rec["request"].as_str().unwrap();
    assert!(
        request.starts_with(&format!("GET {}", &path[..limit - 4])),
        "{request:.80}"
    );
    assert!(request.ends_with(" bytes]"), "{request:.80}");
    let ua = rec["user_agent"].as_str().unwrap();
    let expected = format!("{}…[truncated {} bytes]", &agent[..limit], 10_000 - limit);
    assert!(ua == expected, "user agent logged as {} bytes", ua.len());
    assert!(
        rec.to_string().len() < 5 * limit,
        "the whole record stays small"
    );
}

/// Verifiers read the listener's current policy: a connection accepted before a reload and
/// handshaken after it is judged by the new store, and its record names that store.
#[tokio::test(flavor = "multi_thread")]
async fn a_handshake_after_a_reload_is_judged_and_logged_by_the_new_store() {
    let mut pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let v1 = proxy.server.trust_store_version("corp").unwrap();
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    // Accepted (and its record started) under v1 before the reload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    pki.inter_crl = pki.inter.crl(&[&pki.revoked.serial, &pki.good.serial]);
    write_pem(proxy.dir.path(), "inter.crl.pem", &pki.inter_crl.pem);
    assert!(proxy.server.reload().await.is_empty());
    let v2 = proxy.server.trust_store_version("corp").unwrap();
    assert_ne!(v1, v2);
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let refused = match tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
    {
        Err(_) => true,
        Ok(mut tls) => {
            let _ = tls
                .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await;
            let mut buf = [0u8; 64];
            matches!(tls.read(&mut buf).await, Ok(0) | Err(_))
        }
    };
    assert!(
        refused,
        "the good client is revoked in the store in service"
    );
    let records = proxy.conn_records(1);
    assert_eq!(records[0]["tls_verify_status"], "Failed:ClientCertCrlHit");
    assert_eq!(records[0]["trust_store_version"], v2.as_str());
}
