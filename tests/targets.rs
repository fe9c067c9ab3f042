//! Target groups over 127.0.0.1 with several real backends: distribution, a target stopped and
//! restarted under load, fail-open, rules by host and path, an HTTPS target that requires a
//! client certificate, and the configuration checks.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use support::pki::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const OFF: &str = "mode = \"off\"";

/// A backend that answers `target NAME saw PATH`, counts requests, answers `/healthz` with 200
/// or 503 as told, and can be stopped (listener and every open connection) and restarted on the
/// same port.
struct Target {
    name: String,
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    delay: Arc<Mutex<Duration>>,
    stop: Option<watch::Sender<bool>>,
    tls: Option<Arc<rustls::ServerConfig>>,
    peer_subjects: Arc<Mutex<Vec<String>>>,
}

impl Target {
    async fn start(name: &str) -> Target {
        Self::start_tls(name, None).await
    }

    async fn start_tls(name: &str, tls: Option<Arc<rustls::ServerConfig>>) -> Target {
        let mut t = Target {
            name: name.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            hits: Arc::default(),
            healthy: Arc::new(AtomicBool::new(true)),
            delay: Arc::default(),
            stop: None,
            tls,
            peer_subjects: Arc::default(),
        };
        t.run().await;
        t
    }

    async fn run(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(false);
        self.stop = Some(tx);
        let (name, hits, healthy, delay, tls, subjects) = (
            self.name.clone(),
            self.hits.clone(),
            self.healthy.clone(),
            self.delay.clone(),
            self.tls.clone(),
            self.peer_subjects.clone(),
        );
        tokio::spawn(async move {
            let mut stop = rx.clone();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.wait_for(|s| *s) => return,
                };
                let Ok((stream, _)) = accepted else { return };
                let (name, hits, healthy, delay, tls, subjects) = (
                    name.clone(),
                    hits.clone(),
                    healthy.clone(),
                    delay.clone(),
                    tls.clone(),
                    subjects.clone(),
                );
                let mut stop = rx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<Incoming>| {
                        let (name, hits, healthy, delay) =
                            (name.clone(), hits.clone(), healthy.clone(), delay.clone());
                        async move {
                            let path = req.uri().path().to_string();
                            let mut resp = if path == "/healthz" {
                                let ok = healthy.load(Ordering::SeqCst);
                                let mut r = hyper::Response::new(Full::new(Bytes::from("ok")));
                                if !ok {
                                    *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                                }
                                r
                            } else {
                                hits.fetch_add(1, Ordering::SeqCst);
                                let d = *delay.lock().unwrap();
                                if !d.is_zero() {
                                    tokio::time::sleep(d).await;
                                }
                                hyper::Response::new(Full::new(Bytes::from(format!(
                                    "target {name} saw {path}"
                                ))))
                            };
                            resp.headers_mut().insert("x-target", name.parse().unwrap());
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let serve = async {
                        match tls {
                            None => {
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                            }
                            Some(cfg) => {
                                let Ok(tls) =
                                    tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await
                                else {
                                    return;
                                };
                                if let Some(c) = tls.get_ref().1.peer_certificates() {
                                    let (_, cert) =
                                        x509_parser::parse_x509_certificate(c[0].as_ref()).unwrap();
                                    subjects.lock().unwrap().push(cert.subject().to_string());
                                }
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(tls), svc)
                                    .await;
                            }
                        }
                    };
                    tokio::select! {
                        _ = serve => {}
                        _ = stop.wait_for(|s| *s) => {}
                    }
                });
            }
        });
    }

    /// Closes the listener and every connection, as a crashed process would.
    fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
    }

    async fn restart(&mut self) {
        self.run().await;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A config with one listener whose default group is `app`, plus `groups` (TOML text).
async fn proxy_with(pki: &Pki, listener_extra: &str, groups: &str) -> Proxy {
    let dummy = SocketAddr::from(([127, 0, 0, 1], 9));
    Proxy::start_edited(pki, dummy, OFF, groups, |t| {
        t.replace(
            &format!("backend = \"http://{dummy}\"\n"),
            &format!("default_target_group = \"app\"\n{listener_extra}"),
        )
    })
    .await
}

fn list(targets: &[&Target]) -> String {
    let urls: Vec<String> = targets.iter().map(|t| format!("{:?}", t.url())).collect();
    format!("[{}]", urls.join(", "))
}

/// One GET on a new connection without SNI (so any Host may be sent); status and body.
async fn get_host(proxy: SocketAddr, pki: &Pki, host: &str, path: &str) -> (u16, String) {
    let cfg = client_config(pki, None, &[b"http/1.1"]);
    let tcp = TcpStream::connect(proxy).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out))
        .await
        .expect("response within 10 s")
        .ok();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = status_of(&text).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

async fn get_path(proxy: &Proxy, pki: &Pki, path: &str) -> (u16, String) {
    get_host(proxy.addr, pki, "localhost", path).await
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_spreads_requests_and_the_access_log_names_each_target() {
    let pki = Pki::new();
    let (a, b, c) = (
        Target::start("a").await,
        Target::start("b").await,
        Target::start("c").await,
    );
    let groups = format!(
        "[target_group.app]\ntargets = {}\n[target_group.app.health_check]\npath = \"/healthz\"\n",
        list(&[&a, &b, &c])
    );
    let proxy = proxy_with(&pki, "", &groups).await;
    for i in 0..30 {
        let (status, body) = get_path(&proxy, &pki, &format!("/r{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!((a.hits(), b.hits(), c.hits()), (10, 10, 10));
    let acc = proxy.access_records(30);
    for t in [&a, &b, &c] {
        let n = acc.iter().filter(|r| r["target"] == t.url()).count();
        assert_eq!(n, 10, "access log names target {}: {acc:?}", t.name);
    }
    assert!(acc.iter().all(|r| r["target_group"] == "app"));
    assert!(acc
        .iter()
        .all(|r| r["target_processing_time"].as_f64().unwrap() >= 0.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn least_outstanding_requests_sends_new_work_away_from_a_slow_target() {
    let pki = Pki::new();
    let (slow, fast) = (Target::start("slow").await, Target::start("fast").await);
    *slow.delay.lock().unwrap() = Duration::from_millis(1500);
    let groups = format!(
        "[target_group.app]\ntargets = {}\nalgorithm = \"least_outstanding_requests\"\n",
        list(&[&slow, &fast])
    );
    let proxy = Arc::new(proxy_with(&pki, "", &groups).await);
    let pki = Arc::new(pki);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (proxy, pki) = (proxy.clone(), pki.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30 * i)).await;
            get_path(&proxy, &pki, "/work").await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // The slow target holds its first request for 1.5 s; everything after goes to the other.
    assert!(
        slow.hits() <= 2,
        "slow {} fast {}",
        slow.hits(),
        fast.hits()
    );
    assert!(
        fast.hits() >= 10,
        "slow {} fast {}",
        slow.hits(),
        fast.hits()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_target_leaves_rotation_and_rejoins_after_restart_without_client_errors() {
    let pki = Pki::new();
    let (a, b) = (Target::start("a").await, Target::start("b").await);
    let mut c = Target::start("c").await;
    let groups = format!(
        "[target_group.app]\ntargets = {}\n[target_group.app.health_check]\npath = \"/healthz\"\n\
         interval_secs = 1\nhealthy_threshold = 2\nunhealthy_threshold = 2\n",
        list(&[&a, &b, &c])
    );
    let proxy = proxy_with(&pki, "", &groups).await;
    let mut failures = Vec::new();
    for i in 0..30 {
        let (status, body) = get_path(&proxy, &pki, &format!("/before{i}")).await;
        if status != 200 {
            failures.push(format!("{status} {body}"));
        }
    }
    assert_eq!(c.hits(), 10);
    c.stop();
    for i in 0..60 {
        let (status, body) = get_path(&proxy, &pki, &format!("/down{i}")).await;
        if status != 200 {
            failures.push(format!("{status} {body}"));
        }
    }
    assert!(failures.is_empty(), "client-visible errors: {failures:?}");
    assert_eq!(c.hits(), 10, "a stopped target gets nothing");

    let restarted = Instant::now();
    c.restart().await;
    let rejoined = loop {
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "target not back in rotation 15 s after restart"
        );
        let (status, body) = get_path(&proxy, &pki, "/after").await;
        assert_eq!(status, 200, "{body}");
        if c.hits() > 10 {
            break restarted.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Two passed checks one second apart, plus the tick already pending.
    assert!(
        rejoined >= Duration::from_millis(900),
        "rejoined after {rejoined:?}, before the healthy threshold could pass"
    );
    eprintln!("target rejoined rotation {rejoined:?} after restart");
    let acc = proxy.access_records(91);
    assert!(acc.iter().all(|r| r["elb_status_code"] == 200), "{acc:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_targets_get_no_traffic_until_all_are_unhealthy_then_all_do() {
    let pki = Pki::new();
    let (a, b) = (Target::start("a").await, Target::start("b").await);
    let groups = format!(
        "[target_group.app]\ntargets = {}\n[target_group.app.health_check]\npath = \"/healthz\"\n\
         interval_secs = 1\nhealthy_threshold = 2\nunhealthy_threshold = 2\nmatcher = \"200-299\"\n",
        list(&[&a, &b])
    );
    let proxy = proxy_with(&pki, "", &groups).await;
    a.healthy.store(false, Ordering::SeqCst);
    // Two failed checks (about 2 s) take `a` out.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let before = a.hits();
    for _ in 0..10 {
        assert_eq!(get_path(&proxy, &pki, "/x").await.0, 200);
    }
    assert_eq!(a.hits(), before, "an unhealthy target gets no requests");
    // Both unhealthy: ALB fails open and sends to all.
    b.healthy.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (a0, b0) = (a.hits(), b.hits());
    for _ in 0..10 {
        assert_eq!(get_path(&proxy, &pki, "/y").await.0, 200);
    }
    assert_eq!(
        (a.hits() - a0, b.hits() - b0),
        (5, 5),
        "fail-open spreads over all"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_route_by_host_and_path_first_match_wins() {
    let pki = Pki::new();
    let (app, api, admin, empty_hit) = (
        Target::start("app").await,
        Target::start("api").await,
        Target::start("admin").await,
        Target::start("unused").await,
    );
    let groups = format!(
        "[target_group.app]\ntargets = {}\n[target_group.app.health_check]\nenabled = false\n\
         [target_group.api]\ntargets = {}\n[target_group.api.health_check]\nenabled = false\n\
         [target_group.admin]\ntargets = {}\n[target_group.admin.health_check]\nenabled = false\n\
         [target_group.none]\ntargets = []\n",
        list(&[&app]),
        list(&[&api]),
        list(&[&admin])
    );
    let rules = "\n[[listener.rule]]\nhost = \"admin.example.com\"\ntarget_group = \"admin\"\n\
                 [[listener.rule]]\nhost = \"*.example.com\"\npath = \"/v1/*\"\ntarget_group = \"api\"\n\
                 [[listener.rule]]\npath = \"/img/??.png\"\ntarget_group = \"api\"\n\
                 [[listener.rule]]\npath = \"/nothing/*\"\ntarget_group = \"none\"\n";
    let proxy = proxy_with(&pki, rules, &groups).await;
    let cases = [
        ("admin.example.com", "/v1/x", "admin"),
        ("ADMIN.example.com:443", "/", "admin"),
        ("api.example.com", "/v1/users", "api"),
        ("api.example.com", "/v2/users", "app"),
        ("other.test", "/v1/users", "app"),
        ("other.test", "/img/ab.png", "api"),
        ("other.test", "/img/abc.png", "app"),
        ("other.test", "/img/ab.png?size=2", "api"),
    ];
    for (host, path, want) in cases {
        let (status, body) = get_host(proxy.addr, &pki, host, path).await;
        assert_eq!(status, 200, "{host} {path}: {body}");
        assert!(
            body.starts_with(&format!("target {want} saw")),
            "{host} {path} should go to {want}: {body}"
        );
    }
    let (status, body) = get_host(proxy.addr, &pki, "x.test", "/nothing/here").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("target group none has no targets"), "{body}");
    assert_eq!(empty_hit.hits(), 0);
}

/// A TLS server config for an https target: the test server certificate, and client
/// certificates required, verified against the test root.
fn target_tls(pki: &Pki) -> Arc<rustls::ServerConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.root.cert_der()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server.cert_der()], pki.server.private_key_der())
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_target_is_verified_and_gets_certgates_client_certificate() {
    let pki = Pki::new();
    let target = Target::start_tls("secure", Some(target_tls(&pki))).await;
    let url = format!("https://localhost:{}", target.addr.port());
    let dir = tempfile::tempdir().unwrap();
    write_pem(dir.path(), "target-ca.pem", &pki.server_ca.pem);
    write_pem(
        dir.path(),
        "certgate-client.pem",
        &pki.good.chain_pem(&[&pki.inter]),
    );
    write_pem(dir.path(), "certgate-client.key", &pki.good.key_pem);
    let p = |f: &str| dir.path().join(f).display().to_string();
    let groups = format!(
        "[target_group.app]\ntargets = [\"{url}\"]\nca_bundle = {:?}\nclient_certificate = {:?}\nclient_private_key = {:?}\n\
         [target_group.app.health_check]\npath = \"/healthz\"\ninterval_secs = 1\n\
         [target_group.nocert]\ntargets = [\"{url}\"]\nca_bundle = {:?}\n\
         [target_group.nocert.health_check]\nenabled = false\n\
         [target_group.untrusted]\ntargets = [\"{url}\"]\nca_bundle = {:?}\n\
         [target_group.untrusted.health_check]\nenabled = false\n",
        p("target-ca.pem"),
        p("certgate-client.pem"),
        p("certgate-client.key"),
        p("target-ca.pem"),
        p("bundle-other.pem"),
    );
    write_pem(
        dir.path(),
        "bundle-other.pem",
        &root_ca("not the target's CA").pem,
    );
    let rules = "[[listener.rule]]\npath = \"/nocert/*\"\ntarget_group = \"nocert\"\n\
                 [[listener.rule]]\npath = \"/untrusted/*\"\ntarget_group = \"untrusted\"\n";
    let proxy = proxy_with(&pki, rules, &groups).await;
    let (status, body) = get_path(&proxy, &pki, "/hello").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "target secure saw /hello");
    assert!(
        target
            .peer_subjects
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == "CN=client"),
        "the target saw certgate's client certificate"
    );
    let acc = proxy.access_records(1);
    assert_eq!(acc[0]["target"], url);

    // Without a client certificate the target refuses the handshake: 502 saying so.
    let (status, body) = get_path(&proxy, &pki, "/nocert/x").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains(&url), "{body}");
    // A target whose certificate does not chain to the configured CA is never sent the request.
    let before = target.hits();
    let (status, body) = get_path(&proxy, &pki, "/untrusted/x").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.to_lowercase().contains("certificate"), "{body}");
    assert_eq!(target.hits(), before);
}

fn config_problems(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let path = write_config(
        dir.path(),
        &pki,
        SocketAddr::from(([127, 0, 0, 1], 9)),
        OFF,
        "",
    );
    let base = std::fs::read_to_string(&path).unwrap();
    let full = base.replace("backend = \"http://127.0.0.1:9\"\n", text);
    match certgate::config::from_str(&full, &path, dir.path()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn check_names_every_group_and_rule_problem() {
    let groups = "\n[target_group.app]\ntargets = [\"http://127.0.0.1:1\", \"http://127.0.0.1:1\", \"ftp://x\"]\n\
                  [target_group.app.health_check]\nmatcher = \"300-250\"\ninterval_secs = 5\ntimeout_secs = 10\n";
    let listener = format!(
        "default_target_group = \"missing\"\n\
         [[listener.rule]]\npath = \"/api/*\"\ntarget_group = \"app\"\n\
         [[listener.rule]]\npath = \"/api/v1/*\"\ntarget_group = \"app\"\n\
         [[listener.rule]]\nhost = \"a.example:443\"\ntarget_group = \"app\"\n\
         [[listener.rule]]\npath = \"/x\"\ntarget_group = \"nope\"\n\
         [[listener.rule]]\ntarget_group = \"app\"\n{groups}"
    );
    let msg = config_problems(&listener);
    for expected in [
        "listener[0] (web).default_target_group: \"missing\": no such target group (defined: app)",
        "listener[0] (web).rule[1]: can never match: every request it matches is taken by rule[0] before it",
        "listener[0] (web).rule[2].host: \"a.example:443\"",
        "listener[0] (web).rule[3].target_group: \"nope\": no such target group",
        "listener[0] (web).rule[4]: a rule needs a host or a path condition",
        "target_group.app.targets[1]: http://127.0.0.1:1 is listed twice",
        "target_group.app.targets[2]: \"ftp://x\" must start with http:// or https://",
        "target_group.app.health_check.matcher: \"300-250\": range 300-250 is empty",
        "target_group.app.health_check.timeout_secs: must not exceed interval_secs (5)",
    ] {
        assert!(msg.contains(expected), "missing {expected:?} in:\n{msg}");
    }
    let both = config_problems(
        "backend = \"http://127.0.0.1:9\"\ndefault_target_group = \"app\"\n[target_group.app]\ntargets = []\n",
    );
    assert!(
        both.contains(
            "give one of backend, default_target_group and [listener.default_action], not several"
        ),
        "{both}"
    );
    let neither = config_problems("");
    assert!(
        neither.contains("default_target_group: is required"),
        "{neither}"
    );
    let tls_without_https = config_problems(
        "default_target_group = \"app\"\n[target_group.app]\ntargets = [\"http://127.0.0.1:1\"]\nca_bundle = \"server.pem\"\n",
    );
    assert!(
        tls_without_https.contains("apply to https:// targets"),
        "{tls_without_https}"
    );
}

/// As a user would: the real binary in front of three backends, curl in a loop, one backend
/// stopped and restarted. No request fails; stderr tells the story once per change.
#[tokio::test(flavor = "multi_thread")]
async fn the_binary_keeps_serving_curl_while_a_target_is_stopped_and_restarted() {
    use support::process::ChildGuard;
    let pki = Pki::new();
    let (a, b) = (Target::start("a").await, Target::start("b").await);
    let mut c = Target::start("c").await;
    let dir = tempfile::tempdir().unwrap();
    let dummy = SocketAddr::from(([127, 0, 0, 1], 9));
    let groups = format!(
        "[target_group.app]\ntargets = {}\n[target_group.app.health_check]\npath = \"/healthz\"\n\
         interval_secs = 1\nhealthy_threshold = 2\nunhealthy_threshold = 2\n",
        list(&[&a, &b, &c])
    );
    let cfg = write_config(dir.path(), &pki, dummy, OFF, &groups);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("backend = \"http://{dummy}\""),
        "default_target_group = \"app\"",
    );
    std::fs::write(&cfg, text).unwrap();
    write_pem(dir.path(), "server_ca.pem", &pki.server_ca.pem);
    let mut proxy = ChildGuard::spawn(&["run", "-c", cfg.to_str().unwrap()], dir.path(), &[]);
    let addr = proxy.listening_addr();

    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, dir) = (stop.clone(), dir.path().to_path_buf());
        let url = format!("https://localhost:{}/load", addr.port());
        std::thread::spawn(move || {
            let mut codes = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let out = std::process::Command::new("curl")
                    .current_dir(&dir)
                    .args([
                        "-q",
                        "-sS",
                        "--max-time",
                        "10",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                    ])
                    .args(["--cacert", "server_ca.pem", "--resolve"])
                    .arg(format!("localhost:{}:127.0.0.1", addr.port()))
                    .arg(&url)
                    .env_remove("https_proxy")
                    .env_remove("HTTPS_PROXY")
                    .output()
                    .expect("run curl");
                codes.push(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            codes
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c_url = c.url();
    let stopped = Instant::now();
    c.stop();
    let needle = format!("target={c_url} ");
    let unhealthy = "target unhealthy";
    poll(Duration::from_secs(10), "the unhealthy line", || {
        let err = proxy.stderr();
        err.lines()
            .any(|l| l.contains(unhealthy) && l.contains(&needle))
            .then_some(())
    });
    let left = stopped.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hits_down = c.hits();
    let restarted = Instant::now();
    c.restart().await;
    poll(Duration::from_secs(15), "the healthy line", || {
        let err = proxy.stderr();
        err.lines()
            .any(|l| l.contains("target healthy") && l.contains(&needle))
            .then_some(())
    });
    let rejoined = restarted.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let codes = load.join().unwrap();
    proxy.assert_running();
    let failed: Vec<&String> = codes.iter().filter(|c| c.as_str() != "200").collect();
    assert!(codes.len() > 20, "load ran: {} requests", codes.len());
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        codes.len()
    );
    assert!(c.hits() > hits_down, "the restarted target serves again");
    let err = proxy.stderr();
    let changes = |what: &str| {
        err.lines()
            .filter(|l| l.contains(what) && l.contains(&needle))
            .count()
    };
    assert_eq!(
        changes("target unhealthy"),
        1,
        "one line per change:\n{err}"
    );
    assert_eq!(changes("target healthy"), 1, "one line per change:\n{err}");
    eprintln!(
        "{} curl requests, 0 failed; left rotation {left:?} after stop, rejoined {rejoined:?} after restart",
        codes.len()
    );
}
