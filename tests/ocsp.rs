//! OCSP checks of client certificates (SPEC §13) against a real responder, `openssl ocsp`,
//! run on 127.0.0.1 with a delegated signing certificate, for certificates made by `openssl`
//! with the responder in their AIA extension: good, revoked, responder down (hard_fail and
//! soft_fail), the answer cached until nextUpdate, and a responder signature that is not
//! trusted.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use support::ocsp::{client, proxy, Ca};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn leaves_are_checked_with_their_ocsp_responder() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (good, good_key) = ca.issue("good", "/CN=good", "0x1001", "client.ext");
    let (revoked, revoked_key) = ca.issue("revoked", "/CN=revoked", "0x1002", "client.ext");
    let (late, late_key) = ca.issue("late", "/CN=late", "0x1003", "client.ext");
    ca.revoke(&revoked);
    let backend = Backend::start().await;
    let hard = proxy(&pki, &ca, &backend, "hard_fail").await;
    let soft = proxy(&pki, &ca, &backend, "soft_fail").await;
    let responder = ca.responder(("ocsp.pem", "ocsp.key"));
    let url = format!("http://127.0.0.1:{}", ca.ocsp_port);

    assert_eq!(
        get(hard.addr, client(&pki, &good, &good_key), "/")
            .await
            .unwrap(),
        200
    );
    let rec = &hard.conn_records(1)[0];
    assert_eq!(rec["tls_verify_status"], "Success", "{rec}");
    assert!(rec["tls_verify_detail"].is_null(), "{rec}");

    assert!(get(hard.addr, client(&pki, &revoked, &revoked_key), "/")
        .await
        .is_err());
    let rec = &hard.conn_records(2)[1];
    assert_eq!(rec["tls_verify_status"], "Failed:ClientCertCrlHit", "{rec}");
    let detail = rec["tls_verify_detail"].as_str().unwrap();
    assert!(detail.contains("OCSP") && detail.contains(&url), "{detail}");
    assert_eq!(rec["leaf_client_cert_subject"], "CN=revoked");

    // The responder goes away: answers already had are used until their nextUpdate...
    drop(responder);
    assert_eq!(
        get(hard.addr, client(&pki, &good, &good_key), "/")
            .await
            .unwrap(),
        200
    );
    // ...a certificate never asked about is refused with hard_fail, admitted with soft_fail.
    assert!(get(hard.addr, client(&pki, &late, &late_key), "/")
        .await
        .is_err());
    let rec = &hard.conn_records(4)[3];
    assert_eq!(
        rec["tls_verify_status"], "Failed:ClientCertCrlProcessingError",
        "{rec}"
    );
    assert!(
        rec["tls_verify_detail"].as_str().unwrap().contains(&url),
        "{rec}"
    );
    assert_eq!(
        get(soft.addr, client(&pki, &late, &late_key), "/")
            .await
            .unwrap(),
        200
    );
    let rec = &soft.conn_records(1)[0];
    assert_eq!(rec["tls_verify_status"], "Success", "{rec}");
    let detail = rec["tls_verify_detail"].as_str().unwrap();
    assert!(
        detail.contains("soft_fail") && detail.contains(&url),
        "{detail}"
    );
    // Refused clients never reached the backend.
    assert_eq!(backend.count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_signed_by_a_certificate_the_issuer_did_not_delegate_is_not_believed() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (good, good_key) = ca.issue("good", "/CN=good", "0x2001", "client.ext");
    // A certificate of the CA, but without the OCSP-signing purpose.
    let (rogue, rogue_key) = ca.issue("rogue", "/CN=Not A Responder", "0x2002", "client.ext");
    let backend = Backend::start().await;
    let hard = proxy(&pki, &ca, &backend, "hard_fail").await;
    let _responder = ca.responder((rogue.to_str().unwrap(), rogue_key.to_str().unwrap()));
    assert!(get(hard.addr, client(&pki, &good, &good_key), "/")
        .await
        .is_err());
    let rec = &hard.conn_records(1)[0];
    assert_eq!(
        rec["tls_verify_status"], "Failed:ClientCertCrlProcessingError",
        "{rec}"
    );
    assert!(
        rec["tls_verify_detail"]
            .as_str()
            .unwrap()
            .contains("not for OCSP signing"),
        "{rec}"
    );
}

#[test]
fn an_unknown_ocsp_mode_is_refused_with_its_key_path() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let backend: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let path = write_config(
        dir.path(),
        &pki,
        backend,
        "mode = \"verify\"\ntrust_store = \"corp\"",
        "",
    );
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "ca_certificates_bundle = \"bundle.pem\"",
        "ca_certificates_bundle = \"bundle.pem\"\nocsp = \"maybe\"",
    );
    std::fs::write(&path, text).unwrap();
    let err = certgate::config::load(&path).err().unwrap().to_string();
    assert!(
        err.contains("trust_store.corp.ocsp: \"maybe\" is not one of"),
        "{err}"
    );
}

/// `certgate verify --json` as the proxy's listener `web` would judge `cert`: (exit code, JSON).
fn verify(proxy: &Proxy, cert: &Path) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certgate"))
        .args(["verify", "--json", "--listener", "web", "--config"])
        .arg(proxy.dir.path().join("certgate.toml"))
        .arg("--cert")
        .arg(cert)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), json)
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_asks_the_ocsp_responder_as_the_listener_does() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (good, _) = ca.issue("good", "/CN=good", "0x4001", "client.ext");
    let (revoked, _) = ca.issue("revoked", "/CN=revoked", "0x4002", "client.ext");
    ca.revoke(&revoked);
    let backend = Backend::start().await;
    let hard = proxy(&pki, &ca, &backend, "hard_fail").await;
    let soft = proxy(&pki, &ca, &backend, "soft_fail").await;
    let off = proxy(&pki, &ca, &backend, "off").await;
    let url = format!("http://127.0.0.1:{}", ca.ocsp_port);

    let responder = ca.responder(("ocsp.pem", "ocsp.key"));
    let (code, v) = verify(&hard, &good);
    assert_eq!(
        (code, v["tls_verify_status"].as_str()),
        (0, Some("Success")),
        "{v}"
    );
    let detail = v["tls_verify_detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("OCSP responder {url} says good")),
        "{detail}"
    );
    let (code, v) = verify(&hard, &revoked);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["tls_verify_status"], "Failed:ClientCertCrlHit", "{v}");
    let detail = v["tls_verify_detail"].as_str().unwrap();
    assert!(
        detail.contains("revoked according to OCSP responder") && detail.contains(&url),
        "{detail}"
    );
    // With ocsp off the responder is not asked: the revoked client passes (no CRL here).
    let (code, v) = verify(&off, &revoked);
    assert_eq!(code, 0, "{v}");

    drop(responder);
    let (code, v) = verify(&hard, &good);
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        v["tls_verify_status"], "Failed:ClientCertCrlProcessingError",
        "{v}"
    );
    assert!(
        v["tls_verify_detail"]
            .as_str()
            .unwrap()
            .contains("hard_fail"),
        "{v}"
    );
    let (code, v) = verify(&soft, &good);
    assert_eq!(code, 0, "{v}");
    let detail = v["tls_verify_detail"].as_str().unwrap();
    assert!(
        detail.contains(&url) && detail.contains("admitted (ocsp = \"soft_fail\")"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_answer_closes_the_other_open_connections_of_that_client() {
    use tokio::io::AsyncWriteExt;
    let log = warnings();
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (leaf, leaf_key) = ca.issue("later", "/CN=later", "0x5001", "client.ext");
    let (other, other_key) = ca.issue("bystander", "/CN=bystander", "0x5002", "client.ext");
    let backend = Backend::start().await;
    let soft = proxy(&pki, &ca, &backend, "soft_fail").await;

    // The responder is down: soft_fail admits both clients on keep-alive connections, and an
    // unanswered question is not cached.
    let mut first = connect(soft.addr, client(&pki, &leaf, &leaf_key))
        .await
        .unwrap();
    let mut bystander = connect(soft.addr, client(&pki, &other, &other_key))
        .await
        .unwrap();
    for tls in [&mut first, &mut bystander] {
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(h1_read(tls).await.unwrap().0, 200);
    }
    // Now it answers, and says the first client is revoked.
    ca.revoke(&leaf);
    let _responder = ca.responder(("ocsp.pem", "ocsp.key"));
    assert!(get(soft.addr, client(&pki, &leaf, &leaf_key), "/")
        .await
        .is_err());
    let recs = soft.conn_records(3);
    assert_eq!(
        recs[2]["tls_verify_status"], "Failed:ClientCertCrlHit",
        "{}",
        recs[2]
    );
    let first_trace = recs
        .iter()
        .find(|r| r["leaf_client_cert_subject"] == "CN=later")
        .and_then(|r| r["conn_trace_id"].as_str())
        .unwrap()
        .to_string();

    // Its connection that was already open is closed; the other client's is not.
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "still open: {r:?}");
    bystander
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(h1_read(&mut bystander).await.unwrap().0, 200);
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains(&first_trace))
        .unwrap_or_else(|| panic!("no close logged for {first_trace}: {text}"));
    assert!(
        line.contains("closing connection") && line.contains("OCSP"),
        "{line}"
    );
}
