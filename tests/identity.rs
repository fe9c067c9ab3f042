//! Who the client is (SPEC §9), end to end over 127.0.0.1 with the real curl and a real backend:
//! optional client certificates, the identity taken from the certificate (every `from` and
//! `san_type`), the identity header a client cannot forge, RFC 9440 headers, and rules that
//! authorize by identity with fixed responses.

mod support;

use std::path::Path;

use support::pki::*;
use support::*;

/// Verify mode that admits clients without a certificate.
const OPTIONAL: &str = "mode = \"verify\"\ntrust_store = \"corp\"\nfail_if_no_peer_cert = false";

/// What curl got: its exit code, the status line's code (0 when none) and the body.
struct Curled {
    exit: Option<i32>,
    status: u16,
    body: String,
}

/// Runs the real curl against `url` in `dir` (bounded, no ~/.curlrc), presenting `who`'s
/// `{who}.pem`/`{who}.key` from `dir` when given.
async fn curl(dir: &Path, url: &str, who: Option<&str>, extra: &[&str]) -> Curled {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.current_dir(dir)
        .args(["-q", "-sS", "--noproxy", "*", "--max-time", "10"])
        .args(["--cacert", "server_ca.pem", "-w", "\n%{http_code}"]);
    if let Some(who) = who {
        cmd.args([
            "--cert",
            &format!("{who}.pem"),
            "--key",
            &format!("{who}.key"),
        ]);
    }
    let out = cmd.args(extra).arg(url).output().await.expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Curled {
        exit: out.status.code(),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_string(),
    }
}

/// Writes a client's chain (leaf + intermediate) and key as `{who}.pem`/`{who}.key`.
fn write_client(dir: &Path, pki: &Pki, who: &str, leaf: &Leaf) {
    write_pem(dir, &format!("{who}.pem"), &leaf.chain_pem(&[&pki.inter]));
    write_pem(dir, &format!("{who}.key"), &leaf.key_pem);
}

fn url(proxy: &Proxy, path: &str) -> String {
    format!("https://localhost:{}{path}", proxy.addr.port())
}

/// Starts a proxy with `mutual` and `extra`, with the server CA and the standard good and
/// revoked clients written for curl.
async fn start(pki: &Pki, backend: &Backend, mutual: &str, extra: &str) -> Proxy {
    let proxy = Proxy::start(pki, backend.addr, mutual, extra).await;
    let dir = proxy.dir.path();
    write_pem(dir, "server_ca.pem", &pki.server_ca.pem);
    write_client(dir, pki, "good", &pki.good);
    write_client(dir, pki, "revoked", &pki.revoked);
    proxy
}

fn mtls_headers(seen: &Seen) -> Vec<&str> {
    seen.headers
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.starts_with("x-amzn-mtls") || *n == "x-client-identity")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_certificates_admit_no_certificate_and_still_refuse_a_bad_one() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = start(&pki, &backend, OPTIONAL, "").await;
    let dir = proxy.dir.path();

    let none = curl(dir, &url(&proxy, "/none"), None, &[]).await;
    assert_eq!((none.exit, none.status), (Some(0), 200), "{}", none.body);
    let seen = backend.last();
    assert!(
        mtls_headers(&seen).is_empty(),
        "no certificate, no mTLS headers: {:?}",
        seen.headers
    );

    let good = curl(dir, &url(&proxy, "/good"), Some("good"), &[]).await;
    assert_eq!(good.status, 200);
    assert_eq!(
        backend.last().one("x-amzn-mtls-clientcert-subject"),
        "CN=client"
    );

    let revoked = curl(dir, &url(&proxy, "/revoked"), Some("revoked"), &[]).await;
    assert!(
        matches!(revoked.exit, Some(35) | Some(56)),
        "a revoked certificate is still refused: {:?} {}",
        revoked.exit,
        revoked.body
    );
    assert_eq!(backend.count(), 2, "the revoked client reached the backend");

    let recs = proxy.conn_records(3);
    let no_cert = &recs[0];
    assert_eq!(no_cert["tls_verify_status"], "Success", "{no_cert}");
    assert!(no_cert["leaf_client_cert_subject"].is_null(), "{no_cert}");
    let detail = no_cert["tls_verify_detail"].as_str().unwrap_or("");
    assert!(detail.contains("no certificate"), "{no_cert}");
    assert!(recs[1]["tls_verify_detail"].is_null(), "{}", recs[1]);
    assert_eq!(recs[2]["tls_verify_status"], "Failed:ClientCertCrlHit");

    // The jq line of the README finds exactly the client that came without a certificate.
    let jq = std::process::Command::new("jq")
        .args([
            "-c",
            "select(.leaf_client_cert_subject == null and .tls_verify_status == \"Success\") | .client_port",
        ])
        .arg(&proxy.conn_log)
        .output()
        .expect("run jq");
    let ports = String::from_utf8_lossy(&jq.stdout);
    assert_eq!(ports.trim(), no_cert["client_port"].to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_required_certificate_is_still_required_by_default() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = start(
        &pki,
        &backend,
        "mode = \"verify\"\ntrust_store = \"corp\"",
        "",
    )
    .await;
    let none = curl(proxy.dir.path(), &url(&proxy, "/"), None, &[]).await;
    assert!(matches!(none.exit, Some(35) | Some(56)), "{:?}", none.exit);
    let rec = proxy.conn_records(1).pop().unwrap();
    assert_eq!(rec["tls_verify_status"], "Failed:UnmappedConnectionError");
    assert_eq!(backend.count(), 0);
}
