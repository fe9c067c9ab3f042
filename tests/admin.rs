//! The admin endpoint (SPEC §11): probes, the Prometheus scrape after real clients (curl with a
//! good, a revoked and an expired certificate), `/truststores`, trust-store metrics following
//! reloads, the stale-CRL gauge, and the bounds that keep the port from wearing the process out.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::pki::{write_pem, LeafSpec, Pki};
use support::{Backend, Proxy};

const ADMIN: &str = "[admin]\nbind = \"127.0.0.1:0\"\n";
const VERIFY: &str = "mode = \"verify\"\ntrust_store = \"corp\"";

/// One request to the admin port; returns (status, head, body).
async fn admin(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("admin answer within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = support::status_of(head).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    admin(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"),
    )
    .await
}

async fn scrape(p: &Proxy) -> String {
    let (status, _, body) = get(p.server.admin_addr().unwrap(), "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample written exactly as `series` (name and labels), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn curl(dir: &Path, port: u16, who: &str) -> Output {
    Command::new("curl")
        .current_dir(dir)
        .args(["-q", "-sS", "--noproxy", "*", "--max-time", "10"])
        .args(["--cacert", "server_ca.pem", "--resolve"])
        .arg(format!("localhost:{port}:127.0.0.1"))
        .args([
            "--cert",
            &format!("{who}_chain.pem"),
            "--key",
            &format!("{who}.key"),
        ])
        .arg(format!("https://localhost:{port}/"))
        .stdin(Stdio::null())
        .output()
        .expect("run curl (is it installed?)")
}

/// `promtool check metrics` on a scrape, when promtool is installed (scripts/test installs it).
fn promtool_check_metrics(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed; exposition not checked by it");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_good_revoked_and_expired_clients_counts_each_status() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let p = Proxy::start(&pki, backend.addr, VERIFY, ADMIN).await;
    let dir = p.dir.path();
    write_pem(dir, "server_ca.pem", &pki.server_ca.pem);
    let now = OffsetDateTime::now_utc();
    let expired = pki.inter.leaf(&LeafSpec {
        not_before: now - time::Duration::days(30),
        not_after: now - time::Duration::days(1),
        ..LeafSpec::client("expired")
    });
    for (who, leaf) in [
        ("good", &pki.good),
        ("revoked", &pki.revoked),
        ("expired", &expired),
    ] {
        write_pem(
            dir,
            &format!("{who}_chain.pem"),
            &leaf.chain_pem(&[&pki.inter]),
        );
        write_pem(dir, &format!("{who}.key"), &leaf.key_pem);
    }
    assert_eq!(curl(dir, p.addr.port(), "good").status.code(), Some(0));
    for who in ["revoked", "expired"] {
        let code = curl(dir, p.addr.port(), who).status.code();
        assert!(
            matches!(code, Some(35) | Some(56)),
            "{who}: curl exit {code:?}"
        );
    }
    p.conn_records(3);

    let text = scrape(&p).await;
    let hs = |status: &str| {
        let series = format!(
            "certgate_tls_handshakes_total{{listener=\"web\",mode=\"verify\",tls_verify_status=\"{status}\"}}"
        );
        sample(&text, &series)
    };
    assert_eq!(hs("Success"), Some(1.0), "{text}");
    assert_eq!(hs("Failed:ClientCertCrlHit"), Some(1.0), "{text}");
    assert_eq!(hs("Failed:ClientCertExpired"), Some(1.0), "{text}");
    assert_eq!(hs("Failed:ClientCertUntrusted"), Some(0.0), "{text}");
    let count = "certgate_tls_handshake_duration_seconds_count{listener=\"web\"}";
    assert_eq!(sample(&text, count), Some(3.0), "{text}");
    assert!(
        text.contains(
            "certgate_tls_handshake_duration_seconds_bucket{listener=\"web\",le=\"0.0005\"}"
        ),
        "{text}"
    );
    let requests = text
        .lines()
        .find(|l| {
            l.starts_with("certgate_requests_total{listener=\"web\"") && l.contains("code=\"200\"")
        })
        .unwrap_or_else(|| panic!("no 200 in {text}"));
    assert!(requests.ends_with(" 1"), "{requests}");
    assert_eq!(
        sample(
            &text,
            "certgate_request_duration_seconds_count{listener=\"web\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "certgate_connections_open{listener=\"web\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "certgate_log_lines_dropped_total{log=\"connection\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE certgate_tls_handshakes_total counter"),
        "{text}"
    );
    promtool_check_metrics(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_is_served_when_the_scraper_asks_for_it() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let p = Proxy::start(&pki, backend.addr, VERIFY, ADMIN).await;
    let addr = p.server.admin_addr().unwrap();
    let (status, head, body) = admin(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(
        body.contains("# TYPE certgate_tls_handshakes counter"),
        "{body}"
    );
    let (_, head, body) = get(addr, "/metrics").await;
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(!body.contains("# EOF"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_truststores_and_every_other_path() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let p = Proxy::start(&pki, backend.addr, VERIFY, ADMIN).await;
    let addr = p.server.admin_addr().unwrap();
    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(get(addr, "/readyz").await.0, 200);
    for path in ["/", "/metricsx", "/healthz/x", "/web", "/admin"] {
        assert_eq!(get(addr, path).await.0, 404, "{path}");
    }
    let post =
        "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    assert_eq!(admin(addr, post).await.0, 405);

    let (status, head, body) = get(addr, "/truststores").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let corp = &json["corp"];
    assert_eq!(
        corp["version"],
        p.server.trust_store_version("corp").unwrap()
    );
    assert_eq!(corp["revoked_entries"], 1);
    assert_eq!(
        corp["ca_certificates"][0]["subject"],
        "CN=certgate test root"
    );
    assert_eq!(corp["revocation_lists"].as_array().unwrap().len(), 2);

    // Draining: /readyz turns 503 while the data listener and /healthz still serve.
    p.server.readiness.drain();
    let (status, _, body) = get(addr, "/readyz").await;
    assert_eq!((status, body.as_str()), (503, "draining: shutting down\n"));
    assert_eq!(get(addr, "/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_store_metrics_follow_reloads_at_once() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let p = Proxy::start(&pki, backend.addr, VERIFY, ADMIN).await;
    let entries = "certgate_truststore_revocation_entries{trust_store=\"corp\"}";
    let success = "certgate_truststore_reloads_total{trust_store=\"corp\",result=\"success\"}";
    let failure = "certgate_truststore_reloads_total{trust_store=\"corp\",result=\"failure\"}";
    let text = scrape(&p).await;
    assert_eq!(sample(&text, entries), Some(1.0), "{text}");
    assert_eq!(sample(&text, success), Some(0.0), "{text}");
    let next = "certgate_truststore_crl_next_update_timestamp_seconds{trust_store=\"corp\",issuer=\"CN=certgate test intermediate\"}";
    let next_update = sample(&text, next).unwrap_or_else(|| panic!("{text}"));
    assert!(
        next_update > OffsetDateTime::now_utc().unix_timestamp() as f64,
        "{next_update}"
    );
    let stale = "certgate_truststore_crl_expired{trust_store=\"corp\",issuer=\"CN=certgate test intermediate\"}";
    assert_eq!(sample(&text, stale), Some(0.0), "{text}");
    let not_after = "certgate_server_certificate_not_after_timestamp_seconds{listener=\"web\",name=\"localhost\"}";
    assert!(sample(&text, not_after).is_some_and(|t| t > 0.0), "{text}");

    // A CRL with one more entry: the next scrape shows it.
    let extra = pki.inter.leaf(&LeafSpec::client("extra"));
    let crl = pki.inter.crl(&[&pki.revoked.serial, &extra.serial]);
    write_pem(p.dir.path(), "inter.crl.pem", &crl.pem);
    assert!(p.server.reload().await.is_empty());
    let text = scrape(&p).await;
    assert_eq!(sample(&text, entries), Some(2.0), "{text}");
    assert_eq!(sample(&text, success), Some(1.0), "{text}");

    // A broken CRL: counted as a failure; the store in service (and its gauges) stay.
    write_pem(
        p.dir.path(),
        "inter.crl.pem",
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    );
    assert!(!p.server.reload().await.is_empty());
    let text = scrape(&p).await;
    assert_eq!(sample(&text, failure), Some(1.0), "{text}");
    assert_eq!(sample(&text, entries), Some(2.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_past_its_next_update_is_flagged_by_a_metric() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let own = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let stale = pki
        .inter
        .crl_at(&[&pki.revoked.serial], now - day * 10, now - day);
    let stale_path = write_pem(own.path(), "stale.crl.pem", &stale.pem);
    let stale_path = stale_path.to_str().unwrap().to_string();
    let p = Proxy::start_edited(&pki, backend.addr, VERIFY, ADMIN, |t| {
        t.replace("\"inter.crl.pem\"", &format!("{stale_path:?}"))
    })
    .await;
    let text = scrape(&p).await;
    let labels = "{trust_store=\"corp\",issuer=\"CN=certgate test intermediate\"}";
    assert_eq!(
        sample(&text, &format!("certgate_truststore_crl_expired{labels}")),
        Some(1.0),
        "{text}"
    );
    let next = sample(
        &text,
        &format!("certgate_truststore_crl_next_update_timestamp_seconds{labels}"),
    );
    assert_eq!(next, Some((now - day).unix_timestamp() as f64), "{text}");
    let root =
        "certgate_truststore_crl_expired{trust_store=\"corp\",issuer=\"CN=certgate test root\"}";
    assert_eq!(sample(&text, root), Some(0.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_bounds_huge_heads_slow_clients_and_connection_floods() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let p = Proxy::start(&pki, backend.addr, VERIFY, ADMIN).await;
    let addr = p.server.admin_addr().unwrap();

    // A 64 KiB header: refused (431) or cut, never buffered whole.
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(huge.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    // A flood of idle connections: past 32 they are closed at once.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut closed_at_once = 0;
    for s in &mut idle {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await {
            closed_at_once += 1;
        }
    }
    assert!(
        closed_at_once >= 8,
        "only {closed_at_once} of 40 closed at once"
    );

    // Slow clients (a head that never ends) are closed by the header deadline (5 s).
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr).await;
    if let Ok(s) = &mut slow {
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n").await;
    }
    for s in idle.iter_mut().chain(slow.as_mut().ok()) {
        let mut b = [0u8; 64];
        let end = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await;
        assert!(
            end.is_ok(),
            "an idle admin connection stayed open past 10 s"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(get(addr, "/healthz").await.0, 200);
}
