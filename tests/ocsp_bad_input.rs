//! OCSP bad input (issue 16): a responder that answers garbage, an HTML error page, 10 MB or
//! HTTP 500; an answer whose thisUpdate is in the future or that has no nextUpdate; leaves whose
//! AIA lists several responders (the http one is asked) or none over http (CRLs only, as
//! documented). Never a crash, never an admitted client under hard_fail when an answer cannot
//! be believed, always a named reason.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::ocsp::{client, proxy, Ca};
use support::*;

/// What the fake responder answers: a status, a content type and a body.
type Answer = (u16, &'static str, Vec<u8>);

/// A responder on `port` that answers every request with the answer in place.
async fn fake_responder(port: u16, answer: Arc<Mutex<Answer>>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    let (status, ctype, body) = answer.lock().unwrap().clone();
                    async move {
                        let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        r.headers_mut()
                            .insert("content-type", ctype.parse().unwrap());
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
}

/// The last connection-log record of `proxy` (after `n` connections).
fn last(proxy: &Proxy, n: usize) -> serde_json::Value {
    proxy.conn_records(n).pop().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_answers_are_named_refused_under_hard_fail_and_admitted_under_soft_fail() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (leaf, key) = ca.issue("leaf", "/CN=leaf", "0x2001", "client.ext");
    let backend = Backend::start().await;
    let hard = proxy(&pki, &ca, &backend, "hard_fail").await;
    let soft = proxy(&pki, &ca, &backend, "soft_fail").await;
    let answer = Arc::new(Mutex::new((200, "application/ocsp-response", Vec::new())));
    fake_responder(ca.ocsp_port, answer.clone()).await;

    let answers: Vec<(&str, Answer)> = vec![
        (
            "garbage",
            (
                200,
                "application/ocsp-response",
                b"\x30\x03\x0a\x01".to_vec(),
            ),
        ),
        (
            "HTML page",
            (
                200,
                "text/html",
                b"<html><body>Service Unavailable</body></html>".to_vec(),
            ),
        ),
        (
            "10 MB",
            (200, "application/ocsp-response", vec![0x30; 10 << 20]),
        ),
        ("HTTP 500", (500, "text/plain", b"oops".to_vec())),
    ];
    for (i, (what, a)) in answers.into_iter().enumerate() {
        *answer.lock().unwrap() = a;
        let refused = get(hard.addr, client(&pki, &leaf, &key), "/").await;
        assert!(refused.is_err(), "{what}: admitted under hard_fail");
        let rec = last(&hard, i + 1);
        assert_eq!(
            rec["tls_verify_status"], "Failed:ClientCertCrlProcessingError",
            "{what}: {rec}"
        );
        let detail = rec["tls_verify_detail"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            detail.contains("OCSP") && detail.len() > 20,
            "{what}: {detail}"
        );

        let admitted = get(soft.addr, client(&pki, &leaf, &key), "/")
            .await
            .unwrap();
        assert_eq!(admitted, 200, "{what}: soft_fail refused");
        let detail = last(&soft, i + 1)["tls_verify_detail"].to_string();
        assert!(detail.contains("soft_fail"), "{what}: {detail}");
    }
    assert_eq!(backend.count(), 4, "only soft_fail admitted the client");
}

/// A CA with one client leaf, and a hard_fail listener trusting it.
async fn one_leaf(
    pki: &pki::Pki,
    dir: &Path,
    backend: &Backend,
) -> (Ca, Proxy, Arc<rustls::ClientConfig>) {
    let ca = Ca::new(dir);
    let (leaf, key) = ca.issue("leaf", "/CN=leaf", "0x2002", "client.ext");
    let hard = proxy(pki, &ca, backend, "hard_fail").await;
    let cfg = client(pki, &leaf, &key);
    (ca, hard, cfg)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_from_the_future_is_not_believed() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let (ca, hard, cfg) = one_leaf(&pki, dir.path(), &backend).await;
    // The responder's clock runs a day ahead: thisUpdate is tomorrow.
    let _future = ca.responder_at(Ca::delegated(), Some("+1d"));
    assert!(get(hard.addr, cfg, "/").await.is_err());
    let rec = last(&hard, 1);
    assert_eq!(
        rec["tls_verify_status"], "Failed:ClientCertCrlProcessingError",
        "{rec}"
    );
    assert_eq!(backend.count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_without_next_update_is_believed() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let (ca, hard, cfg) = one_leaf(&pki, dir.path(), &backend).await;
    let _open_ended = ca.responder_with(Ca::delegated(), None, false);
    assert_eq!(
        get(hard.addr, cfg, "/").await.unwrap(),
        200,
        "{}",
        last(&hard, 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_responder_of_a_mixed_aia_is_asked_and_an_aia_without_one_leaves_it_to_crls() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let port = ca.ocsp_port;
    let ext = |aia: &str| {
        format!(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n\
             authorityInfoAccess={aia}\n"
        )
    };
    std::fs::write(
        dir.path().join("mixed.ext"),
        ext(&format!(
            "OCSP;URI:ldap://ldap.example/ocsp,OCSP;URI:http://127.0.0.1:{port}"
        )),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ldap.ext"),
        ext("OCSP;URI:ldap://ldap.example/ocsp"),
    )
    .unwrap();
    let (mixed, mixed_key) = ca.issue("mixed", "/CN=mixed", "0x2003", "mixed.ext");
    let (ldap, ldap_key) = ca.issue("ldap", "/CN=ldap", "0x2004", "ldap.ext");
    let backend = Backend::start().await;
    let hard = proxy(&pki, &ca, &backend, "hard_fail").await;
    let _responder = ca.responder(Ca::delegated());

    let status = get(hard.addr, client(&pki, &mixed, &mixed_key), "/")
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", last(&hard, 1));
    // With no http:// responder the leaf is judged by CRLs only, even under hard_fail (as
    // documented), and the connection log says nothing about OCSP.
    let status = get(hard.addr, client(&pki, &ldap, &ldap_key), "/")
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", last(&hard, 2));
    assert!(last(&hard, 2)["tls_verify_detail"].is_null());
}
