//! End to end over 127.0.0.1: the real proxy, a real backend, rustls clients. For each mode and
//! client case: the handshake outcome, the exact headers the backend receives (expected values
//! written out or computed here, never by certgate), the connection-log line and the access-log
//! link.

mod support;

use std::sync::{Arc, Mutex};

use rcgen::{DnType, DnValue, ExtendedKeyUsagePurpose};
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use serde_json::Value;
use support::pki::*;
use support::*;
use time::macros::datetime;

const VERIFY: &str = "mode = \"verify\"\ntrust_store = \"corp\"";
const PASSTHROUGH: &str = "mode = \"passthrough\"";
const OFF: &str = "mode = \"off\"";

/// Serial header computed independently: uppercase hex of the DER INTEGER content without the
/// leading sign byte.
fn serial_header(raw: &[u8]) -> String {
    let bytes = if raw.len() > 1 && raw[0] == 0 {
        &raw[1..]
    } else {
        raw
    };
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Expects the handshake (or the first read after it) to fail, then returns the connection-log
/// record of that attempt.
async fn refused(
    proxy: &Proxy,
    backend: &Backend,
    cfg: Arc<rustls::ClientConfig>,
    n: usize,
) -> Value {
    let before = backend.count();
    let r = get(proxy.addr, cfg, "/x").await;
    assert!(r.is_err(), "request should have been refused, got {r:?}");
    assert_eq!(
        backend.count(),
        before,
        "a refused client reached the backend"
    );
    proxy.conn_records(n).pop().unwrap()
}

fn assert_failed(rec: &Value, code: &str) {
    assert_eq!(
        rec["tls_verify_status"],
        format!("Failed:{code}"),
        "record: {rec}"
    );
    let detail = rec["tls_verify_detail"].as_str().unwrap_or("");
    assert!(detail.len() > 10, "detail should say what happened: {rec}");
    assert!(rec["tls_handshake_latency"].is_null());
    assert!(rec["conn_trace_id"].as_str().unwrap().starts_with("TID_"));
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_good_client_gets_exact_alb_headers_and_logs() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);
    assert_eq!(get(proxy.addr, cfg, "/hello?a=1").await.unwrap(), 200);

    let seen = backend.last();
    assert_eq!(seen.path, "/hello?a=1");
    assert_eq!(
        seen.one("x-amzn-mtls-clientcert-serial-number"),
        serial_header(&pki.good.serial)
    );
    assert_eq!(
        seen.one("x-amzn-mtls-clientcert-issuer"),
        "CN=certgate test intermediate"
    );
    assert_eq!(seen.one("x-amzn-mtls-clientcert-subject"), "CN=client");
    let (_, cert) = x509_parser::parse_x509_certificate(&pki.good.der).unwrap();
    let fmt = |t: x509_parser::time::ASN1Time| {
        let d = t.to_datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        )
    };
    assert_eq!(
        seen.one("x-amzn-mtls-clientcert-validity"),
        format!(
            "NotBefore={};NotAfter={}",
            fmt(cert.validity().not_before),
            fmt(cert.validity().not_after)
        )
    );
    assert_eq!(
        seen.one("x-amzn-mtls-clientcert-leaf"),
        expected_url_pem(&[&pki.good.der])
    );
    assert!(
        !seen.has("x-amzn-mtls-clientcert"),
        "passthrough header must not be sent in verify mode"
    );
    assert!(!seen.has("x-amzn-tls-version"));
    assert_eq!(seen.one("x-forwarded-for"), "127.0.0.1");
    assert_eq!(seen.one("x-forwarded-proto"), "https");
    assert_eq!(seen.one("x-forwarded-port"), proxy.addr.port().to_string());
    assert_eq!(seen.one("host"), "localhost");

    let rec = &proxy.conn_records(1)[0];
    assert_eq!(rec["tls_verify_status"], "Success");
    assert!(rec["tls_verify_detail"].is_null());
    assert_eq!(rec["tls_protocol"], "TLSv1.3");
    // The client (rustls) prefers AES-256; the server's order (ALB's) picks AES-128.
    assert_eq!(rec["tls_cipher"], "TLS_AES_128_GCM_SHA256");
    assert_eq!(rec["listener_port"], proxy.addr.port());
    assert_eq!(rec["client_ip"], "127.0.0.1");
    assert_eq!(rec["leaf_client_cert_subject"], "CN=client");
    assert_eq!(
        rec["leaf_client_cert_serial_number"],
        serial_header(&pki.good.serial)
    );
    assert_eq!(
        rec["leaf_client_cert_validity"],
        seen.one("x-amzn-mtls-clientcert-validity")
    );
    assert_eq!(rec["mode"], "verify");
    assert_eq!(rec["listener"], "web");
    assert_eq!(rec["alpn"], "http/1.1");
    assert_eq!(rec["sni"], "localhost");
    assert!(rec["tls_handshake_latency"].as_f64().unwrap() >= 0.0);
    assert!(rec["tls_keyexchange"].is_string());
    assert!(rec["trust_store_version"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let tid = rec["conn_trace_id"].as_str().unwrap();
    assert_eq!(tid.len(), 36);

    let acc = &proxy.access_records(1)[0];
    assert_eq!(acc["conn_trace_id"], tid);
    assert_eq!(acc["elb_status_code"], 200);
    assert_eq!(acc["target_status_code"], 200);
    assert_eq!(acc["request"], "GET /hello?a=1 HTTP/1.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_connection_has_one_connection_record_and_many_access_records() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);
    let req = "GET /a HTTP/1.1\r\nHost: localhost\r\n\r\nGET /b HTTP/1.1\r\nHost: localhost\r\n\r\nGET /c HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let resp = raw_http1(proxy.addr, cfg, req).await.unwrap();
    assert_eq!(resp.matches("HTTP/1.1 200").count(), 3, "{resp}");
    let acc = proxy.access_records(3);
    let conns = proxy.conn_records(1);
    assert_eq!(conns.len(), 1);
    for a in &acc {
        assert_eq!(a["conn_trace_id"], conns[0]["conn_trace_id"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_refuses_each_bad_client_with_albs_code() {
    let mut pki = Pki::new();
    let now = time::OffsetDateTime::now_utc();
    let untrusted_root = root_ca("some other root");
    let deep = pki.root.chain_of(4);
    let deep_refs: Vec<&Ca> = deep.iter().rev().collect();
    let three = pki.root.chain_of(3);
    let three_refs: Vec<&Ca> = three.iter().rev().collect();
    let cases: Vec<(&str, Leaf, Vec<&Ca>, &str)> = vec![
        (
            "revoked leaf",
            pki.revoked.clone(),
            vec![&pki.inter],
            "ClientCertCrlHit",
        ),
        (
            "expired",
            pki.inter.leaf(&LeafSpec {
                not_before: now - time::Duration::days(30),
                not_after: now - time::Duration::days(1),
                ..LeafSpec::client("expired")
            }),
            vec![&pki.inter],
            "ClientCertExpired",
        ),
        (
            "not yet valid",
            pki.inter.leaf(&LeafSpec {
                not_before: now + time::Duration::days(1),
                not_after: now + time::Duration::days(30),
                ..LeafSpec::client("future")
            }),
            vec![&pki.inter],
            "ClientCertNotYetValid",
        ),
        (
            "untrusted CA",
            untrusted_root.leaf(&LeafSpec::client("stranger")),
            vec![],
            "ClientCertUntrusted",
        ),
        (
            "wrong EKU",
            pki.inter.leaf(&LeafSpec {
                eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
                ..LeafSpec::client("server-only")
            }),
            vec![&pki.inter],
            "ClientCertPurposeInvalid",
        ),
        (
            "presented chain too deep",
            deep[3].leaf(&LeafSpec::client("deep")),
            deep_refs,
            "ClientCertMaxChainDepthExceeded",
        ),
        (
            "path too deep",
            three[2].leaf(&LeafSpec::client("deep path")),
            three_refs,
            "ClientCertMaxChainDepthExceeded",
        ),
        (
            "oversize certificate",
            pki.inter.leaf(&LeafSpec {
                pad_bytes: 17 * 1024,
                ..LeafSpec::client("big")
            }),
            vec![&pki.inter],
            "ClientCertMaxSizeExceeded",
        ),
        (
            "Ed25519 key",
            pki.inter.leaf(&LeafSpec {
                key: KeyKind::Ed25519,
                ..LeafSpec::client("edwards")
            }),
            vec![&pki.inter],
            "ClientCertTypeUnsupported",
        ),
    ];
    // Revoke the intermediate through the root's CRL in a second store, below.
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    // The client sends its certificate whatever the CertificateRequest lists, so that the
    // key policy itself refuses the Ed25519 key; a client that honours the list sends no
    // certificate at all (tests/openssl_interop.rs).
    for (i, (what, leaf, cas, code)) in cases.iter().enumerate() {
        let cfg = client_config_insisting(&pki, leaf, cas);
        let rec = refused(&proxy, &backend, cfg, i + 1).await;
        assert_eq!(
            rec["tls_verify_status"],
            format!("Failed:{code}"),
            "case {what}: {rec}"
        );
        assert_failed(&rec, code);
        // The leaf facts and the negotiated protocol are logged on failure too.
        assert_eq!(rec["tls_protocol"], "TLSv1.3", "case {what}");
        assert!(
            rec["tls_cipher"].as_str().unwrap().starts_with("TLS_AES_"),
            "case {what}: {rec}"
        );
        assert!(rec["tls_keyexchange"].is_string(), "case {what}: {rec}");
        assert_eq!(
            rec["leaf_client_cert_serial_number"],
            serial_header(&leaf.serial),
            "case {what}"
        );
    }
    // The proxy still serves a good client after all of that.
    let good = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);
    assert_eq!(get(proxy.addr, good, "/").await.unwrap(), 200);

    // An intermediate revoked by the root's CRL refuses every leaf below it.
    pki.root_crl = pki.root.crl(&[&pki.inter.serial]);
    let proxy2 = Proxy::verify(&pki, backend.addr).await;
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);
    let rec = refused(&proxy2, &backend, cfg, 1).await;
    assert_failed(&rec, "ClientCertCrlHit");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_without_certificate_is_unmapped_with_detail() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let rec = refused(&proxy, &backend, client_config(&pki, None, &[]), 1).await;
    assert_failed(&rec, "UnmappedConnectionError");
    assert!(
        rec["tls_verify_detail"]
            .as_str()
            .unwrap()
            .contains("no certificate"),
        "{rec}"
    );
    assert!(rec["leaf_client_cert_subject"].is_null());
    assert!(
        !proxy.access_log.exists() || proxy.access_records(0).is_empty(),
        "failed handshakes have no access record"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ignore_expiry_accepts_an_expired_client_but_not_a_future_one() {
    let pki = Pki::new();
    let now = time::OffsetDateTime::now_utc();
    let expired = pki.inter.leaf(&LeafSpec {
        not_before: now - time::Duration::days(30),
        not_after: now - time::Duration::days(1),
        ..LeafSpec::client("expired")
    });
    let future = pki.inter.leaf(&LeafSpec {
        not_before: now + time::Duration::days(1),
        ..LeafSpec::client("future")
    });
    let backend = Backend::start().await;
    let proxy = Proxy::start(
        &pki,
        backend.addr,
        &format!("{VERIFY}\nignore_client_certificate_expiry = true"),
        "",
    )
    .await;
    let cfg = client_config(&pki, Some((&expired, &[&pki.inter])), &[]);
    assert_eq!(get(proxy.addr, cfg, "/").await.unwrap(), 200);
    assert_eq!(
        backend.last().one("x-amzn-mtls-clientcert-subject"),
        "CN=expired"
    );
    let cfg = client_config(&pki, Some((&future, &[&pki.inter])), &[]);
    let rec = refused(&proxy, &backend, cfg, 2).await;
    assert_failed(&rec, "ClientCertNotYetValid");
}

#[tokio::test(flavor = "multi_thread")]
async fn rsa_and_ecdsa_clients_are_accepted() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    for kind in [KeyKind::Rsa2048, KeyKind::EcP384, KeyKind::EcP256] {
        let leaf = pki.inter.leaf(&LeafSpec {
            key: kind,
            ..LeafSpec::client(&format!("{kind:?}"))
        });
        let cfg = client_config(&pki, Some((&leaf, &[&pki.inter])), &[]);
        assert_eq!(get(proxy.addr, cfg, "/").await.unwrap(), 200, "{kind:?}");
        assert_eq!(
            backend.last().one("x-amzn-mtls-clientcert-subject"),
            format!("CN={kind:?}")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dn_escaping_and_high_bit_serial_are_byte_exact() {
    let pki = Pki::new();
    let leaf = pki.inter.leaf(&LeafSpec {
        subject: vec![
            (
                DnType::CountryName,
                DnValue::PrintableString("US".try_into().unwrap()),
            ),
            (DnType::StateOrProvinceName, DnValue::from("Washington")),
            (DnType::LocalityName, DnValue::from(" Seattle")),
            (
                DnType::OrganizationName,
                DnValue::from("Smith, Jones + \"Co\""),
            ),
            (
                DnType::OrganizationalUnitName,
                DnValue::from("#1 <dev>;ops\\qa "),
            ),
            (DnType::CommonName, DnValue::from("Zoë")),
        ],
        serial: Some(vec![0xFE, 0xF2, 0x57, 0x37, 0x2D, 0x5C, 0x14, 0xD4]),
        ..LeafSpec::default()
    });
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let cfg = client_config(&pki, Some((&leaf, &[&pki.inter])), &[]);
    assert_eq!(get(proxy.addr, cfg, "/").await.unwrap(), 200);
    let seen = backend.last();
    assert_eq!(
        seen.one("x-amzn-mtls-clientcert-subject"),
        r#"CN=Zo\C3\AB,OU=\#1 \<dev\>\;ops\\qa\ ,O=Smith\, Jones \+ \"Co\",L=\ Seattle,ST=Washington,C=US"#
    );
    assert_eq!(
        seen.one("x-amzn-mtls-clientcert-serial-number"),
        "FEF257372D5C14D4"
    );
    let rec = &proxy.conn_records(1)[0];
    assert_eq!(rec["leaf_client_cert_serial_number"], "FEF257372D5C14D4");
    assert_eq!(
        rec["leaf_client_cert_subject"],
        seen.one("x-amzn-mtls-clientcert-subject")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn passthrough_forwards_the_presented_chain_and_accepts_any_issuer() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&pki, backend.addr, PASSTHROUGH, "").await;

    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    assert_eq!(get(proxy.addr, cfg, "/").await.unwrap(), 200);
    let seen = backend.last();
    assert_eq!(
        seen.one("x-amzn-mtls-clientcert"),
        expected_url_pem(&[&pki.good.der, &pki.inter.der])
    );
    for h in [
        "x-amzn-mtls-clientcert-subject",
        "x-amzn-mtls-clientcert-leaf",
        "x-amzn-mtls-clientcert-serial-number",
    ] {
        assert!(!seen.has(h), "{h} is a verify-mode header");
    }

    // Not validated against any store: a stranger's certificate is forwarded as presented.
    let stranger = root_ca("stranger root").leaf(&LeafSpec::client("stranger"));
    let cfg = client_config(&pki, Some((&stranger, &[])), &[]);
    assert_eq!(get(proxy.addr, cfg, "/").await.unwrap(), 200);
    assert_eq!(
        backend.last().one("x-amzn-mtls-clientcert"),
        expected_url_pem(&[&stranger.der])
    );

    // Without a certificate the request goes through without the header.
    assert_eq!(
        get(proxy.addr, client_config(&pki, None, &[]), "/")
            .await
            .unwrap(),
        200
    );
    assert!(!backend.last().has("x-amzn-mtls-clientcert"));

    let recs = proxy.conn_records(3);
    assert!(recs
        .iter()
        .all(|r| r["tls_verify_status"] == "Success" && r["mode"] == "passthrough"));
    assert_eq!(recs[1]["leaf_client_cert_subject"], "CN=stranger");
    assert!(recs[2]["leaf_client_cert_subject"].is_null());
}

/// Presents a certificate with a private key that does not belong to it.
#[derive(Debug)]
struct WrongKey(Arc<CertifiedKey>);

impl ResolvesClientCert for WrongKey {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn passthrough_still_checks_possession_of_the_key() {
    let pki = Pki::new();
    let other = pki.inter.leaf(&LeafSpec::client("other"));
    let provider = provider();
    let signer = provider
        .key_provider
        .load_private_key(other.private_key_der())
        .unwrap();
    let certified = Arc::new(CertifiedKey::new(vec![pki.good.cert_der()], signer));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.server_ca.cert_der()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(WrongKey(certified)));
    let backend = Backend::start().await;
    let proxy = Proxy::start(&pki, backend.addr, PASSTHROUGH, "").await;
    let rec = refused(&proxy, &backend, Arc::new(cfg), 1).await;
    assert_failed(&rec, "ClientCertRejected");
    assert_eq!(rec["leaf_client_cert_subject"], "CN=client");
}

#[tokio::test(flavor = "multi_thread")]
async fn off_mode_asks_for_no_certificate_and_adds_no_mtls_header() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&pki, backend.addr, OFF, "").await;
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    let mut tls = connect(proxy.addr, cfg.clone()).await.unwrap();
    // The server never asked, so the client sent nothing.
    use tokio::io::AsyncWriteExt;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    use tokio::io::AsyncReadExt;
    tls.read_to_string(&mut out).await.unwrap();
    assert_eq!(status_of(&out), Some(200));
    let seen = backend.last();
    assert!(
        seen.headers.iter().all(|(n, _)| !n.starts_with("x-amzn-")),
        "{:?}",
        seen.headers
    );
    let rec = &proxy.conn_records(1)[0];
    assert_eq!(rec["mode"], "off");
    assert_eq!(rec["tls_verify_status"], "Success");
    assert!(rec["leaf_client_cert_subject"].is_null());
    assert!(rec["trust_store_version"].is_null());
}

fn forged_h1(extra: &str) -> String {
    format!(
        "GET /spoof HTTP/1.1\r\nHost: localhost\r\n\
         X-Amzn-Mtls-Clientcert: forged-1\r\n\
         x-amzn-mtls-clientcert: forged-2\r\n\
         X-AMZN-MTLS-CLIENTCERT-SUBJECT: CN=admin\r\n\
         x-Amzn-Mtls-Clientcert-Subject: CN=root\r\n\
         X-Amzn-Mtls-Clientcert-Issuer: CN=evil\r\n\
         X-Amzn-Mtls-Clientcert-Serial-Number: 01\r\n\
         X-Amzn-Mtls-Clientcert-Validity: NotBefore=x\r\n\
         X-Amzn-Mtls-Clientcert-Leaf: forged\r\n\
         X-Amzn-Tls-Version: TLSv1.0\r\n\
         X-Amzn-Tls-Cipher-Suite: NULL\r\n\
         X_Amzn_Mtls_Clientcert: underscored\r\n\
         x_amzn_mtls_clientcert_subject: CN=underscored\r\n\
         {extra}Connection: close\r\n\r\n"
    )
}

const FORGED_VALUES: [&str; 12] = [
    "underscored",
    "CN=underscored",
    "forged-1",
    "forged-2",
    "CN=admin",
    "CN=root",
    "CN=evil",
    "01",
    "NotBefore=x",
    "forged",
    "TLSv1.0",
    "NULL",
];

fn assert_no_forged(seen: &Seen) {
    for (n, v) in &seen.headers {
        assert!(
            !FORGED_VALUES.contains(&v.as_str()),
            "forged header reached the backend: {n}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_headers_never_reach_the_backend_in_any_mode_over_http1() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    for mutual in [OFF, PASSTHROUGH, VERIFY] {
        let proxy = Proxy::start(&pki, backend.addr, mutual, "").await;
        for client in [None, Some((&pki.good, &[&pki.inter][..]))] {
            if mutual == VERIFY && client.is_none() {
                continue;
            }
            let cfg = client_config(&pki, client, &[b"http/1.1"]);
            let resp = raw_http1(proxy.addr, cfg, &forged_h1("")).await.unwrap();
            assert_eq!(status_of(&resp), Some(200), "{mutual}: {resp}");
            let seen = backend.last();
            assert_no_forged(&seen);
            if mutual == VERIFY {
                assert_eq!(seen.one("x-amzn-mtls-clientcert-subject"), "CN=client");
            }
            if mutual == PASSTHROUGH && client.is_some() {
                assert_eq!(
                    seen.one("x-amzn-mtls-clientcert"),
                    expected_url_pem(&[&pki.good.der, &pki.inter.der])
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_headers_never_reach_the_backend_over_http2() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let forged = [
        ("x-amzn-mtls-clientcert", "forged-1"),
        ("x-amzn-mtls-clientcert", "forged-2"),
        ("x-amzn-mtls-clientcert-subject", "CN=admin"),
        ("x-amzn-mtls-clientcert-subject", "CN=root"),
        ("x-amzn-mtls-clientcert-issuer", "CN=evil"),
        ("x-amzn-mtls-clientcert-serial-number", "01"),
        ("x-amzn-mtls-clientcert-validity", "NotBefore=x"),
        ("x-amzn-mtls-clientcert-leaf", "forged"),
        ("x-amzn-tls-version", "TLSv1.0"),
        ("x-amzn-tls-cipher-suite", "NULL"),
    ];
    for mutual in [OFF, PASSTHROUGH, VERIFY] {
        let proxy = Proxy::start(&pki, backend.addr, mutual, "").await;
        let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"h2"]);
        assert_eq!(
            get_h2(proxy.addr, cfg, "/h2", &forged).await.unwrap(),
            200,
            "{mutual}"
        );
        let seen = backend.last();
        assert_no_forged(&seen);
        assert_eq!(seen.one("host"), "localhost");
        if mutual == VERIFY {
            assert_eq!(seen.one("x-amzn-mtls-clientcert-subject"), "CN=client");
        }
        let rec = proxy.conn_records(1).pop().unwrap();
        assert_eq!(rec["alpn"], "h2");
        let acc = proxy.access_records(1).pop().unwrap();
        assert_eq!(acc["http_version"], "HTTP/2.0");
        assert_eq!(acc["conn_trace_id"], rec["conn_trace_id"]);
    }
}

/// CGI-style backends read `X_Forwarded_For` as X-Forwarded-For: a client must not be able to
/// set the client address, scheme or port that way, over either protocol.
#[tokio::test(flavor = "multi_thread")]
async fn underscore_spellings_of_x_forwarded_never_reach_the_backend() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&pki, backend.addr, OFF, "").await;
    let forged = [
        ("X_Forwarded_For", "10.6.6.6"),
        ("x-forwarded_for", "10.7.7.7"),
        ("X_Forwarded_Proto", "http"),
        ("X_FORWARDED_PORT", "1"),
    ];
    let extra: String = forged
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let h1 = format!("GET /xff HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n");
    let cfg = client_config(&pki, None, &[b"http/1.1"]);
    let resp = raw_http1(proxy.addr, cfg, &h1).await.unwrap();
    assert_eq!(status_of(&resp), Some(200), "{resp}");
    let over_h1 = backend.last();
    let lower: Vec<(String, &str)> = forged
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), *v))
        .collect();
    let lower: Vec<(&str, &str)> = lower.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let cfg = client_config(&pki, None, &[b"h2"]);
    assert_eq!(get_h2(proxy.addr, cfg, "/xff", &lower).await.unwrap(), 200);
    let over_h2 = backend.last();
    let port = proxy.addr.port().to_string();
    for seen in [over_h1, over_h2] {
        assert!(
            seen.headers.iter().all(|(n, _)| !n.contains('_')),
            "{:?}",
            seen.headers
        );
        assert_eq!(seen.one("x-forwarded-for"), "127.0.0.1");
        assert_eq!(seen.one("x-forwarded-proto"), "https");
        assert_eq!(seen.one("x-forwarded-port"), port);
    }
}

/// A backend that maps `_` to `-` would read `Transfer_Encoding` as framing certgate never
/// applied: the `_` spellings of framing and hop-by-hop headers are dropped, over either
/// protocol, and the body the backend gets is framed by the real Content-Length.
#[tokio::test(flavor = "multi_thread")]
async fn underscore_spellings_of_framing_headers_never_reach_the_backend() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&pki, backend.addr, OFF, "").await;
    let disguised = [
        ("Transfer_Encoding", "chunked"),
        ("Content_Length", "3"),
        ("Keep_Alive", "timeout=99"),
        ("Proxy_Connection", "keep-alive"),
        ("proxy_authorization", "Basic Zm9vOmJhcg=="),
        ("X_Kept_Header", "kept"),
    ];
    let extra: String = disguised
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let h1 = format!(
        "POST /smuggle HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n{extra}\
         Connection: close\r\n\r\nhello"
    );
    let cfg = client_config(&pki, None, &[b"http/1.1"]);
    let resp = raw_http1(proxy.addr, cfg, &h1).await.unwrap();
    assert_eq!(status_of(&resp), Some(200), "{resp}");
    let over_h1 = backend.last();
    assert_eq!(over_h1.one("content-length"), "5");
    let lower: Vec<(String, &str)> = disguised
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), *v))
        .collect();
    let lower: Vec<(&str, &str)> = lower.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let cfg = client_config(&pki, None, &[b"h2"]);
    assert_eq!(
        get_h2(proxy.addr, cfg, "/smuggle", &lower).await.unwrap(),
        200
    );
    let over_h2 = backend.last();
    for seen in [over_h1, over_h2] {
        let underscored: Vec<&str> = seen
            .headers
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| n.contains('_'))
            .collect();
        assert_eq!(underscored, ["x_kept_header"], "{:?}", seen.headers);
        assert!(!seen.has("transfer-encoding"), "{:?}", seen.headers);
    }
}

/// ALB's `routing.http.drop_invalid_header_fields.enabled`: off by default (names with `_` or
/// `.` pass), on with `drop_invalid_header_fields = true`, over either protocol.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_header_field_names_are_dropped_when_the_listener_asks() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let fields = [("x_under", "1"), ("x.dot", "2"), ("x-valid-9", "3")];
    let h1 = "GET /names HTTP/1.1\r\nHost: localhost\r\nX_Under: 1\r\nX.Dot: 2\r\n\
              X-Valid-9: 3\r\nConnection: close\r\n\r\n";
    for drop in [false, true] {
        let proxy = Proxy::start_edited(&pki, backend.addr, OFF, "", |t| {
            t.replacen(
                "backend =",
                &format!("drop_invalid_header_fields = {drop}\nbackend ="),
                1,
            )
        })
        .await;
        let cfg = client_config(&pki, None, &[b"http/1.1"]);
        let resp = raw_http1(proxy.addr, cfg, h1).await.unwrap();
        assert_eq!(status_of(&resp), Some(200), "{resp}");
        let over_h1 = backend.last();
        let cfg = client_config(&pki, None, &[b"h2"]);
        assert_eq!(
            get_h2(proxy.addr, cfg, "/names", &fields).await.unwrap(),
            200
        );
        let over_h2 = backend.last();
        for seen in [over_h1, over_h2] {
            assert_eq!(
                seen.has("x_under"),
                !drop,
                "drop={drop}: {:?}",
                seen.headers
            );
            assert_eq!(seen.has("x.dot"), !drop, "drop={drop}: {:?}", seen.headers);
            assert_eq!(seen.one("x-valid-9"), "3");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn renamed_headers_and_tls_headers_are_sent_and_all_names_stripped() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let extra = "";
    let mutual = format!(
        "{VERIFY}\n\n[listener.headers]\nx_amzn_mtls_clientcert_subject = \"X-Client-Subject\"\n\
         x_amzn_tls_version = \"X-Tls-Ver\"\ntls_version_and_cipher_suite = true"
    );
    let proxy = Proxy::start(&pki, backend.addr, &mutual, extra).await;

    // TLS 1.2 so the cipher has a distinct OpenSSL name.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.server_ca.cert_der()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            pki.good.chain_der(&[&pki.inter]),
            pki.good.private_key_der(),
        )
        .unwrap();
    let req = forged_h1("X-Client-Subject: CN=forged-renamed\r\nX-Tls-Ver: forged-ver\r\n");
    let resp = raw_http1(proxy.addr, Arc::new(cfg), &req).await.unwrap();
    assert_eq!(status_of(&resp), Some(200), "{resp}");
    let seen = backend.last();
    assert_no_forged(&seen);
    assert_eq!(seen.one("x-client-subject"), "CN=client");
    assert!(
        !seen.has("x-amzn-mtls-clientcert-subject"),
        "the default name is stripped, not sent"
    );
    assert_eq!(seen.one("x-tls-ver"), "TLSv1.2");
    assert_eq!(
        seen.one("x-amzn-tls-cipher-suite"),
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "the server's order decides, AES-128-GCM first as on ALB"
    );
    assert_eq!(
        seen.one("x-amzn-mtls-clientcert-issuer"),
        "CN=certgate test intermediate"
    );
    let rec = &proxy.conn_records(1)[0];
    assert_eq!(rec["tls_protocol"], "TLSv1.2");
    assert_eq!(rec["tls_cipher"], "ECDHE-ECDSA-AES128-GCM-SHA256");
}

/// Records the CA names the server advertised in its CertificateRequest.
#[derive(Debug)]
struct HintRecorder {
    inner: Arc<CertifiedKey>,
    hints: Mutex<Vec<Vec<u8>>>,
}

impl ResolvesClientCert for HintRecorder {
    fn resolve(&self, hints: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        *self.hints.lock().unwrap() = hints.iter().map(|h| h.to_vec()).collect();
        Some(self.inner.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

async fn advertised_names(pki: &Pki, mutual: &str) -> Vec<Vec<u8>> {
    let provider = provider();
    let signer = provider
        .key_provider
        .load_private_key(pki.good.private_key_der())
        .unwrap();
    let recorder = Arc::new(HintRecorder {
        inner: Arc::new(CertifiedKey::new(pki.good.chain_der(&[&pki.inter]), signer)),
        hints: Mutex::new(Vec::new()),
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.server_ca.cert_der()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(recorder.clone());
    let backend = Backend::start().await;
    let proxy = Proxy::start(pki, backend.addr, mutual, "").await;
    assert_eq!(get(proxy.addr, Arc::new(cfg), "/").await.unwrap(), 200);
    let hints = recorder.hints.lock().unwrap().clone();
    hints
}

#[tokio::test(flavor = "multi_thread")]
async fn advertise_trust_store_ca_names_sends_the_bundle_subjects() {
    let pki = Pki::new();
    let on = advertised_names(
        &pki,
        &format!("{VERIFY}\nadvertise_trust_store_ca_names = \"on\""),
    )
    .await;
    let (_, root) = x509_parser::parse_x509_certificate(&pki.root.der).unwrap();
    // The hint is the DER Name of the root, the only CA in the test bundle.
    assert_eq!(on.len(), 1, "{on:?}");
    assert!(on[0].ends_with(root.subject().as_raw()) || on[0] == root.subject().as_raw());
    let off = advertised_names(&pki, VERIFY).await;
    assert!(off.is_empty(), "off by default, as on ALB: {off:?}");
}

async fn handshake_kinds(pki: &Pki, mutual: &str) -> Vec<rustls::HandshakeKind> {
    let backend = Backend::start().await;
    let proxy = Proxy::start(pki, backend.addr, mutual, "").await;
    let cfg = client_config(pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let mut tls = connect(proxy.addr, cfg.clone()).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        kinds.push(tls.get_ref().1.handshake_kind().unwrap());
    }
    kinds
}

#[tokio::test(flavor = "multi_thread")]
async fn session_resumption_is_off_in_verify_and_passthrough() {
    let pki = Pki::new();
    for mutual in [VERIFY, PASSTHROUGH] {
        let kinds = handshake_kinds(&pki, mutual).await;
        assert!(
            kinds.iter().all(|k| *k == rustls::HandshakeKind::Full),
            "{mutual}: {kinds:?}"
        );
    }
    let kinds = handshake_kinds(&pki, OFF).await;
    assert!(
        kinds.contains(&rustls::HandshakeKind::Resumed),
        "off mode may resume: {kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_down_gives_502_and_slow_backend_504_and_the_proxy_keeps_serving() {
    let pki = Pki::new();
    // A port with nothing listening.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::verify(&pki, dead).await;
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    assert_eq!(get(proxy.addr, cfg.clone(), "/").await.unwrap(), 502);
    let acc = &proxy.access_records(1)[0];
    assert_eq!(acc["elb_status_code"], 502);
    assert!(acc["target_status_code"].is_null());
    assert!(
        acc["error_reason"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{acc}"
    );
    assert_eq!(acc["target_processing_time"], -1.0);

    let backend = Backend::start().await;
    let proxy = Proxy::start_edited(&pki, backend.addr, VERIFY, "", |t| {
        t.replace("backend = ", "backend_timeout_secs = 1\nbackend = ")
    })
    .await;
    let (addr, dir) = (proxy.addr, &proxy.dir);
    assert_eq!(get(addr, cfg.clone(), "/slow").await.unwrap(), 504);
    assert_eq!(get(addr, cfg, "/fast").await.unwrap(), 200);
    let acc = json_lines(&dir.path().join("access.log"), 2);
    assert!(
        acc[0]["error_reason"]
            .as_str()
            .unwrap()
            .contains("no response within 1s"),
        "{}",
        acc[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn alb_format_writes_albs_space_separated_line() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start_edited(&pki, backend.addr, VERIFY, "", |t| {
        t.replace(
            "path = \"conn.log\"",
            "path = \"conn.log\"\nformat = \"alb\"",
        )
    })
    .await;
    let (addr, dir) = (proxy.addr, &proxy.dir);
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    assert_eq!(get(addr, cfg, "/").await.unwrap(), 200);
    let cfg = client_config(&pki, Some((&pki.revoked, &[&pki.inter])), &[]);
    assert!(get(addr, cfg, "/").await.is_err());
    let log = dir.path().join("conn.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let lines = loop {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        if t.lines().count() >= 2 || std::time::Instant::now() > deadline {
            break t.lines().map(str::to_string).collect::<Vec<_>>();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(lines.len(), 2, "{lines:?}");
    // timestamp ip port listener_port proto cipher latency "subject" validity serial status tid kx elb ip
    let ok: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(ok.len(), 15, "{}", lines[0]);
    assert!(ok[0].ends_with('Z') && ok[0].len() == 27);
    assert_eq!(ok[1], "127.0.0.1");
    assert_eq!(ok[3], addr.port().to_string());
    assert_eq!(ok[4], "TLSv1.3");
    assert_eq!(ok[7], "\"CN=client\"");
    assert_eq!(ok[9], serial_header(&pki.good.serial));
    assert_eq!(ok[10], "Success");
    assert!(ok[11].starts_with("TID_"));
    assert_eq!(ok[13], "web");
    let bad: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(bad[6], "-", "no latency for a failed handshake");
    assert_eq!(bad[7], "\"CN=revoked\"");
    assert_eq!(bad[10], "Failed:ClientCertCrlHit");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_style_reload_revokes_without_dropping_open_connections() {
    let mut pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"h2"]);
    // An open HTTP/2 connection before the reload.
    let tls = connect(proxy.addr, cfg.clone()).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = || {
        hyper::Request::builder()
            .uri("https://localhost/open")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    assert_eq!(send.send_request(req()).await.unwrap().status(), 200);
    let v1 = proxy.server.trust_store_version("corp").unwrap();

    // Revoke the good client on disk and reload.
    pki.inter_crl = pki.inter.crl(&[&pki.revoked.serial, &pki.good.serial]);
    write_pem(proxy.dir.path(), "inter.crl.pem", &pki.inter_crl.pem);
    assert!(proxy.server.reload().await.is_empty());
    let v2 = proxy.server.trust_store_version("corp").unwrap();
    assert_ne!(v1, v2);
    assert!(
        get(proxy.addr, cfg.clone(), "/").await.is_err(),
        "revoked after reload"
    );
    let rec = proxy.conn_records(2).pop().unwrap();
    assert_failed(&rec, "ClientCertCrlHit");
    assert_eq!(rec["trust_store_version"], v2.as_str());
    // The connection opened before the reload belongs to a now-revoked client: it is closed
    // (asynchronously, so allow a bounded moment for the GOAWAY to arrive).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while send.send_request(req()).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "revoked client's open connection must be closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // A broken CRL keeps the last good store.
    write_pem(
        proxy.dir.path(),
        "inter.crl.pem",
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    );
    let problems = proxy.server.reload().await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("inter.crl.pem"), "{problems:?}");
    assert_eq!(proxy.server.trust_store_version("corp").unwrap(), v2);
    let other = pki.inter.leaf(&LeafSpec::client("other"));
    assert_eq!(
        get(
            proxy.addr,
            client_config(&pki, Some((&other, &[&pki.inter])), &[]),
            "/"
        )
        .await
        .unwrap(),
        200
    );
    assert!(
        get(proxy.addr, cfg, "/").await.is_err(),
        "still revoked by the last good store"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn handshake_deadline_drops_a_silent_client() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start_edited(&pki, backend.addr, VERIFY, "", |t| {
        t.replace("backend = ", "handshake_timeout_secs = 1\nbackend = ")
    })
    .await;
    let (addr, dir) = (proxy.addr, &proxy.dir);
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    use tokio::io::AsyncReadExt;
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "silent client should be closed: {n:?}"
    );
    let rec = &json_lines(&dir.path().join("conn.log"), 1)[0];
    assert_failed(rec, "UnmappedConnectionError");
    assert!(
        rec["tls_verify_detail"]
            .as_str()
            .unwrap()
            .contains("within 1s"),
        "{rec}"
    );
}

#[test]
fn validity_header_example_from_alb_docs() {
    // A fixed-date certificate checks the format independently of "now".
    let pki_root = root_ca("fixed");
    let leaf = pki_root.leaf(&LeafSpec {
        not_before: datetime!(2023-09-21 01:50:17 UTC),
        not_after: datetime!(2024-09-20 01:50:17 UTC),
        ..LeafSpec::client("fixed")
    });
    let facts = certgate::x509::leaf_facts(&leaf.der).unwrap();
    assert_eq!(
        facts.validity,
        "NotBefore=2023-09-21T01:50:17Z;NotAfter=2024-09-20T01:50:17Z"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn several_listeners_serve_side_by_side_in_their_own_modes() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let extra = "[[listener]]\nname = \"open\"\nbind = \"127.0.0.1:0\"\ncertificate_chain = \"server.pem\"\n\
                 private_key = \"server.key\"\nbackend = \"http://BACKEND\"\n";
    let proxy = Proxy::start(
        &pki,
        backend.addr,
        VERIFY,
        &extra.replace("BACKEND", &backend.addr.to_string()),
    )
    .await;
    let open = proxy.server.local_addr("open").unwrap();
    assert_ne!(open, proxy.addr);
    // The verify listener refuses a client without a certificate; the off listener serves it.
    assert!(get(proxy.addr, client_config(&pki, None, &[]), "/")
        .await
        .is_err());
    assert_eq!(
        get(open, client_config(&pki, None, &[]), "/")
            .await
            .unwrap(),
        200
    );
    let recs = proxy.conn_records(2);
    let by = |name: &str| {
        recs.iter()
            .find(|r| r["listener"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(by("web")["mode"], "verify");
    assert_eq!(by("open")["mode"], "off");
    assert_eq!(by("open")["listener_port"], open.port());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_for_logs_never_stops_the_proxy() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    // /dev/full accepts the open and fails every write with ENOSPC.
    let proxy = Proxy::start_edited(&pki, backend.addr, VERIFY, "", |t| {
        t.replace("path = \"conn.log\"", "path = \"/dev/full\"")
            .replace("path = \"access.log\"", "path = \"/dev/full\"")
    })
    .await;
    let (addr, server) = (proxy.addr, &proxy.server);
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    for _ in 0..20 {
        assert_eq!(get(addr, cfg.clone(), "/").await.unwrap(), 200);
    }
    assert!(server.conn_log.flush(std::time::Duration::from_secs(5)));
    assert_eq!(server.conn_log.dropped(), 20, "every line counted as lost");
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_swaps_the_server_certificate_and_keeps_it_when_the_new_one_is_broken() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&pki, backend.addr, OFF, "").await;
    let cfg = client_config(&pki, None, &[]);
    let served = |tls: &Tls| {
        tls.get_ref().1.peer_certificates().unwrap()[0]
            .as_ref()
            .to_vec()
    };
    let first = served(&connect(proxy.addr, cfg.clone()).await.unwrap());
    assert_eq!(first, pki.server.der);

    let renewed = pki.server_ca.server_leaf(&["localhost", "127.0.0.1"]);
    write_pem(proxy.dir.path(), "server.pem", &renewed.cert_pem);
    write_pem(proxy.dir.path(), "server.key", &renewed.key_pem);
    assert!(proxy.server.reload().await.is_empty());
    assert_eq!(
        served(&connect(proxy.addr, cfg.clone()).await.unwrap()),
        renewed.der
    );

    // A key that does not match the certificate is refused; the renewed pair stays in service.
    let other = pki.server_ca.server_leaf(&["localhost"]);
    write_pem(proxy.dir.path(), "server.key", &other.key_pem);
    let problems = proxy.server.reload().await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("private_key") && problems[0].contains("server.key"),
        "{problems:?}"
    );
    assert_eq!(
        served(&connect(proxy.addr, cfg).await.unwrap()),
        renewed.der
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn timed_refresh_picks_up_a_changed_crl_without_a_signal() {
    let mut pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start_edited(&pki, backend.addr, VERIFY, "", |t| {
        t.replace(
            "[trust_store.corp]",
            "[trust_store.corp]\nrefresh_interval_secs = 1",
        )
    })
    .await;
    let (addr, dir, server) = (proxy.addr, &proxy.dir, &proxy.server);
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    assert_eq!(get(addr, cfg.clone(), "/").await.unwrap(), 200);
    let v1 = server.trust_store_version("corp").unwrap();

    pki.inter_crl = pki.inter.crl(&[&pki.revoked.serial, &pki.good.serial]);
    write_pem(dir.path(), "inter.crl.pem", &pki.inter_crl.pem);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(addr, cfg.clone(), "/").await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "CRL change not picked up within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_ne!(server.trust_store_version("corp").unwrap(), v1);

    // Garbage is not picked up: the last good store stays and other clients keep working.
    let v2 = server.trust_store_version("corp").unwrap();
    write_pem(dir.path(), "inter.crl.pem", "not a CRL at all");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(server.trust_store_version("corp").unwrap(), v2);
    let other = pki.inter.leaf(&LeafSpec::client("other"));
    assert_eq!(
        get(
            addr,
            client_config(&pki, Some((&other, &[&pki.inter])), &[]),
            "/"
        )
        .await
        .unwrap(),
        200
    );
    assert!(get(addr, cfg, "/").await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crl_with_a_bad_signature_never_replaces_the_store() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let v1 = proxy.server.trust_store_version("corp").unwrap();
    // Same issuer name as the trusted root, different key: it would revoke the intermediate.
    let imposter = root_ca("certgate test root");
    std::fs::write(
        proxy.dir.path().join("root.crl.der"),
        imposter.crl_der(&[&pki.inter.serial]),
    )
    .unwrap();
    let problems = proxy.server.reload().await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("root.crl.der") && problems[0].contains("signature does not verify"),
        "{problems:?}"
    );
    assert_eq!(proxy.server.trust_store_version("corp").unwrap(), v1);
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    assert_eq!(get(proxy.addr, cfg, "/").await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn key_types_are_checked_on_the_path_not_on_stray_certificates() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::verify(&pki, backend.addr).await;
    // An Ed25519 intermediate on the path is refused...
    let ed_inter = pki
        .root
        .intermediate_with("edwards intermediate", KeyKind::Ed25519);
    let leaf = ed_inter.leaf(&LeafSpec::client("below edwards"));
    let rec = refused(
        &proxy,
        &backend,
        client_config(&pki, Some((&leaf, &[&ed_inter])), &[]),
        1,
    )
    .await;
    assert_failed(&rec, "ClientCertTypeUnsupported");
    assert!(
        rec["tls_verify_detail"]
            .as_str()
            .unwrap()
            .contains("intermediate"),
        "{rec}"
    );
    // ...but the same certificate sent as an unused extra does not matter.
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter, &ed_inter])), &[]);
    assert_eq!(get(proxy.addr, cfg, "/").await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_cookies_are_joined_and_authority_becomes_host() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&pki, backend.addr, OFF, "").await;
    let cfg = client_config(&pki, None, &[b"h2"]);
    let headers = [
        ("cookie", "a=1"),
        ("cookie", "b=2"),
        ("host", "evil.example"),
    ];
    assert_eq!(get_h2(proxy.addr, cfg, "/c", &headers).await.unwrap(), 200);
    let seen = backend.last();
    assert_eq!(seen.one("cookie"), "a=1; b=2");
    assert_eq!(seen.one("host"), "localhost");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_client_after_the_handshake_is_closed_at_the_idle_timeout() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start_edited(&pki, backend.addr, OFF, "", |t| {
        t.replace("backend = ", "idle_timeout_secs = 1\nbackend = ")
    })
    .await;
    let addr = proxy.addr;
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let mut tls = connect(addr, client_config(&pki, None, &[alpn]))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        use tokio::io::AsyncReadExt;
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read_to_end(&mut buf))
            .await;
        assert!(r.is_ok(), "{alpn:?}: connection still open after 5 s");
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(900),
            "{alpn:?}: closed too early"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crl_for_a_client_sent_intermediate_is_checked_against_that_intermediates_key() {
    let mut pki = Pki::new();
    let backend = Backend::start().await;
    // The bundle holds the root only, so the intermediate's CRL cannot be checked at load;
    // one signed by another key with the intermediate's name must not be trusted at use. One
    // that also claims the intermediate's key (authority key identifier) is a broken CRL for
    // that chain; one naming its own key is another key's CRL and does not apply (SPEC §16,
    // key rollover: see tests/trust_anchors.rs).
    let imposter = root_ca("certgate test intermediate");
    pki.inter_crl = imposter.crl_claiming_key_id(&pki.inter.key_id(), &[&pki.good.serial]);
    let proxy = Proxy::verify(&pki, backend.addr).await;
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    let rec = refused(&proxy, &backend, cfg, 1).await;
    assert_failed(&rec, "ClientCertCrlProcessingError");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_certgate_answers_itself() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&pki, backend.addr, VERIFY, "").await;
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);
    let big = "a".repeat(17 * 1024);
    let many: String = (0..70)
        .map(|i| format!("X-Filler-{i}: {}\r\n", "b".repeat(1000)))
        .collect();
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "h2c upgrade (WebSockets are relayed: tests/websocket.rs)",
            "GET /h2c HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                .into(),
            501,
            "not supported",
        ),
        (
            "one header over 16 KiB",
            format!(
                "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
            ),
            431,
            "x-big",
        ),
        (
            "headers over 64 KiB in total",
            format!("GET / HTTP/1.1\r\nHost: localhost\r\n{many}Connection: close\r\n\r\n"),
            431,
            "request headers are",
        ),
        (
            "Host other than the TLS server name",
            "GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n".into(),
            421,
            "other.example",
        ),
    ];
    for (what, req, status, body) in cases {
        let resp = raw_http1(proxy.addr, cfg.clone(), &req).await.unwrap();
        assert_eq!(status_of(&resp), Some(status), "{what}: {resp}");
        assert!(resp.contains(body), "{what}: {resp}");
        assert!(
            resp.to_ascii_lowercase().contains("connection: close"),
            "{what}: {resp}"
        );
    }
    assert_eq!(backend.count(), 0, "none of them reached the backend");
    let acc = proxy.access_records(4);
    assert!(acc.iter().all(|a| a["error_reason"].is_string()), "{acc:?}");
    // Both framings at once is the request-smuggling shape: refused with 400, in either order,
    // after the requests before it on the same connection were answered normally.
    let before = backend.count();
    let pipelined = "POST /first HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc\
        POST /te HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n\
        3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let resp = raw_http1(proxy.addr, cfg.clone(), pipelined).await.unwrap();
    let first = resp.find("HTTP/1.1 200").expect(&resp);
    let refused_at = resp.find("HTTP/1.1 400").expect(&resp);
    assert!(first < refused_at, "{resp}");
    assert_eq!(
        resp.matches("HTTP/1.1 ").count(),
        2,
        "nothing after the refusal: {resp}"
    );
    assert!(
        resp.contains("both Content-Length and Transfer-Encoding"),
        "{resp}"
    );
    assert_eq!(
        backend.count(),
        before + 1,
        "only the first request was forwarded"
    );
    assert_eq!(backend.last().path, "/first");
    let acc = proxy.access_records(6);
    let refused = &acc[5];
    assert_eq!(refused["elb_status_code"], 400, "{refused}");
    assert_eq!(
        refused["request"], "POST /te HTTP/1.1",
        "the client's request is logged"
    );
    assert_eq!(refused["conn_trace_id"], acc[4]["conn_trace_id"]);
    let cl_first = "POST /te HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let resp = raw_http1(proxy.addr, cfg.clone(), cl_first).await.unwrap();
    assert_eq!(status_of(&resp), Some(400), "{resp}");
    assert_eq!(backend.count(), before + 1);
    // Host with a port, and no Host mismatch, still works.
    let ok = "GET / HTTP/1.1\r\nHost: LOCALHOST:8443\r\nConnection: close\r\n\r\n";
    assert_eq!(
        status_of(&raw_http1(proxy.addr, cfg, ok).await.unwrap()),
        Some(200)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_past_max_connections_are_closed_and_logged() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start_edited(&pki, backend.addr, OFF, "", |t| {
        t.replace("backend = ", "max_connections = 2\nbackend = ")
    })
    .await;
    let cfg = client_config(&pki, None, &[b"http/1.1"]);
    let a = connect(proxy.addr, cfg.clone()).await.unwrap();
    let b = connect(proxy.addr, cfg.clone()).await.unwrap();
    assert!(
        connect(proxy.addr, cfg.clone()).await.is_err(),
        "third connection refused"
    );
    let recs = proxy.conn_records(3);
    let refused: Vec<_> = recs
        .iter()
        .filter(|r| {
            r["tls_verify_detail"]
                .as_str()
                .unwrap_or("")
                .contains("max_connections")
        })
        .collect();
    assert_eq!(refused.len(), 1, "{recs:?}");
    drop((a, b));
    // Slots come back when connections end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match get(proxy.addr, cfg.clone(), "/").await {
            Ok(200) => break,
            other => assert!(std::time::Instant::now() < deadline, "{other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A backend that misbehaves at the TCP level in the way `how` says, for every connection.
async fn broken_backend(how: &'static str) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                match how {
                    // Reset as soon as the request arrives.
                    "reset" => {
                        let _ = s.read(&mut buf).await;
                        // A zero linger turns the close into a reset; with zero it cannot block,
                        // which is what the deprecation is about.
                        #[allow(deprecated)]
                        let _ = s.set_linger(Some(std::time::Duration::ZERO));
                        drop(s);
                    }
                    // Half a status line, then close.
                    "partial" => {
                        let _ = s.read(&mut buf).await;
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").await;
                        drop(s);
                    }
                    // Close our write side without answering, keep reading.
                    "half-closed" => {
                        let _ = s.read(&mut buf).await;
                        let _ = s.shutdown().await;
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    }
                    // Not HTTP at all.
                    _ => {
                        let _ = s.read(&mut buf).await;
                        let _ = s.write_all(b"SSH-2.0-OpenSSH\r\n").await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_faults_give_502_with_a_reason_and_the_proxy_keeps_serving() {
    let pki = Pki::new();
    for how in ["reset", "partial", "half-closed", "garbage"] {
        let backend = broken_backend(how).await;
        let proxy = Proxy::verify(&pki, backend).await;
        let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
        for _ in 0..2 {
            assert_eq!(
                get(proxy.addr, cfg.clone(), "/").await.unwrap(),
                502,
                "{how}"
            );
        }
        let acc = proxy.access_records(2);
        for a in &acc {
            assert_eq!(a["elb_status_code"], 502, "{how}: {a}");
            assert!(a["target_status_code"].is_null(), "{how}: {a}");
            assert!(
                a["error_reason"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("target http://{backend}")),
                "{how}: {a}"
            );
            assert_eq!(a["target"], format!("http://{backend}"), "{how}: {a}");
            assert_eq!(a["target_group"], "web/backend", "{how}: {a}");
        }
    }
}

/// ALB's header modification attributes: configured headers replace the target's on every
/// answer (certgate's own too), `server_enabled = false` removes Server; bad values are refused
/// by key.
#[tokio::test(flavor = "multi_thread")]
async fn response_headers_are_set_on_every_answer_and_server_can_be_removed() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let section = "\n[listener.response_headers]\n\
        strict_transport_security = \"max-age=31536000; includeSubDomains\"\n\
        x_content_type_options = \"nosniff\"\n\
        x_frame_options = \"DENY\"\n\
        access_control_allow_origin = \"https://app.example\"\n\
        access_control_max_age = \"600\"\n\
        server_enabled = false\n";
    let proxy = Proxy::start_edited(&pki, backend.addr, OFF, "", |t| {
        t.replacen(
            "[listener.mutual_authentication]",
            &format!("{section}\n[listener.mutual_authentication]"),
            1,
        )
    })
    .await;
    let cfg = client_config(&pki, None, &[b"http/1.1"]);
    for path in ["/with-headers", "/plain"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let resp = raw_http1(proxy.addr, cfg.clone(), &req)
            .await
            .unwrap()
            .to_lowercase();
        assert_eq!(status_of(&resp), Some(200), "{resp}");
        for line in [
            "strict-transport-security: max-age=31536000; includesubdomains",
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
            "access-control-allow-origin: https://app.example",
            "access-control-max-age: 600",
        ] {
            assert!(resp.contains(line), "{path}: no {line:?} in\n{resp}");
        }
        assert!(
            !resp.contains("server:") && !resp.contains("allowall"),
            "{resp}"
        );
    }
    // certgate's own answers carry them too.
    let req = "GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n";
    let resp = raw_http1(proxy.addr, cfg, req)
        .await
        .unwrap()
        .to_lowercase();
    assert_eq!(status_of(&resp), Some(421), "{resp}");
    assert!(resp.contains("x-frame-options: deny"), "{resp}");
}
