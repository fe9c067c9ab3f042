//! Rule actions that ALB listeners have (SPEC §9, §14), end to end over 127.0.0.1: redirects
//! with ALB's placeholders read by curl, a weighted forward whose split is counted over 10,000
//! requests at two real backends, a listener's `[listener.default_action]`, and `check`
//! refusing wrong actions by key path.

mod support;

use std::process::Command;

use support::pki::*;
use support::*;
use tokio::io::AsyncWriteExt;

const OFF: &str = "mode = \"off\"";

/// Writes the server CA for curl beside the config.
async fn start(pki: &Pki, backend: &Backend, extra: &str, edit: fn(String) -> String) -> Proxy {
    let proxy = Proxy::start_edited(pki, backend.addr, OFF, extra, edit).await;
    write_pem(proxy.dir.path(), "server_ca.pem", &pki.server_ca.pem);
    proxy
}

/// curl -i on a path (never following redirects): status and the Location header, if any.
fn curl_location(proxy: &Proxy, path_and_query: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.current_dir(proxy.dir.path())
        .args(["-q", "-sS", "-i", "--noproxy", "*", "--max-time", "10"])
        .args(["--cacert", "server_ca.pem"]);
    let url = format!("https://localhost:{}{path_and_query}", proxy.addr.port());
    let out = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let location = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    (status_of(&text).unwrap_or(0), location)
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_fill_albs_placeholders_from_the_request() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let extra = r##"
[[listener.rule]]
path = "/old/*"
redirect = { host = "new.#{host}", path = "/v2/#{path}", query = "from=old&#{query}", status_code = "HTTP_302" }

[[listener.rule]]
path = "/shop"
redirect = { host = "example.com", port = "443", status_code = "HTTP_301" }
"##;
    let proxy = start(&pki, &backend, extra, |t| t).await;
    let port = proxy.addr.port();

    let (status, location) = curl_location(&proxy, "/old/a/b?x=1");
    assert_eq!(status, 302);
    assert_eq!(
        location,
        format!("https://new.localhost:{port}/v2/old/a/b?from=old&x=1")
    );
    let (status, location) = curl_location(&proxy, "/shop?q=1");
    assert_eq!(status, 301);
    assert_eq!(
        location, "https://example.com/shop?q=1",
        "no :443 for https"
    );
    assert_eq!(backend.count(), 0, "redirects never reach a target");

    let (status, _) = curl_location(&proxy, "/other");
    assert_eq!(status, 200, "the default action still forwards");
    let access = proxy.access_records(3);
    assert_eq!(access[0]["elb_status_code"], 302, "{}", access[0]);
    assert!(access[0]["target"].is_null(), "{}", access[0]);
}

/// Sends `n` requests over one keep-alive connection; returns how many got a 200.
async fn keep_alive_requests(proxy: &Proxy, pki: &Pki, path: &str, n: usize) -> usize {
    let cfg = client_config(pki, None, &[b"http/1.1"]);
    let mut tls = connect(proxy.addr, cfg).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut ok = 0;
    for _ in 0..n {
        tls.write_all(req.as_bytes()).await.unwrap();
        let (status, _) = h1_read(&mut tls).await.unwrap();
        ok += usize::from(status == 200);
    }
    ok
}

#[tokio::test(flavor = "multi_thread")]
async fn a_weighted_forward_splits_traffic_by_weight() {
    let pki = Pki::new();
    let blue = Backend::start().await;
    let green = Backend::start().await;
    let extra = format!(
        r#"
[[listener.rule]]
path = "/app/*"
forward = [{{ target_group = "blue", weight = 90 }}, {{ target_group = "green", weight = 10 }}, {{ target_group = "spare", weight = 0 }}]

[target_group.blue]
targets = ["http://{}"]
[target_group.blue.health_check]
enabled = false
[target_group.green]
targets = ["http://{}"]
[target_group.green.health_check]
enabled = false
[target_group.spare]
targets = ["http://127.0.0.1:9"]
[target_group.spare.health_check]
enabled = false
"#,
        blue.addr, green.addr
    );
    let proxy = start(&pki, &blue, &extra, |t| t).await;
    let ok = keep_alive_requests(&proxy, &pki, "/app/x", 10_000).await;
    assert_eq!(
        ok, 10_000,
        "every request answered, none sent to the weight-0 group"
    );
    let (b, g) = (blue.count(), green.count());
    assert_eq!(b + g, 10_000);
    let green_share = g as f64 / 10_000.0;
    assert!(
        (green_share - 0.10).abs() < 0.02,
        "green got {g} of 10000 ({green_share:.3}), blue {b}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_default_action_answers_what_no_rule_matches() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let extra = r#"
[[listener.rule]]
path = "/api/*"
target_group = "api"

[target_group.api]
targets = ["http://BACKEND"]
[target_group.api.health_check]
enabled = false
"#
    .replace("BACKEND", &backend.addr.to_string());
    let edit = |t: String| {
        let start = t.find("backend = ").unwrap();
        let end = start + t[start..].find('\n').unwrap();
        let default = "[listener.default_action]\nfixed_response = { status_code = 404, content_type = \"application/json\", message_body = \"{\\\"error\\\":\\\"no route\\\"}\" }";
        format!("{}{}", &t[..start], &t[end..]).replacen(
            "[listener.mutual_authentication]",
            &format!("{default}\n\n[listener.mutual_authentication]"),
            1,
        )
    };
    let proxy = start(&pki, &backend, &extra, edit).await;
    let cfg = || client_config(&pki, None, &[b"http/1.1"]);
    assert_eq!(get(proxy.addr, cfg(), "/api/users").await.unwrap(), 200);
    let resp = raw_http1(
        proxy.addr,
        cfg(),
        "GET /elsewhere HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(status_of(&resp), Some(404), "{resp}");
    assert!(resp.ends_with("{\"error\":\"no route\"}"), "{resp}");
    assert_eq!(backend.count(), 1);
}

/// `check`'s output for a config whose first listener gets `rule` (a `[[listener.rule]]` body).
fn check_rule(rule: &str) -> String {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("[[listener.rule]]\npath = \"/x\"\n{rule}\n\n[target_group.g]\ntargets = [\"http://127.0.0.1:9\"]\n");
    let path = write_config(
        dir.path(),
        &pki,
        "127.0.0.1:9".parse().unwrap(),
        OFF,
        &extra,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_certgate"))
        .arg("check")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{rule}: accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_refuses_wrong_actions_by_key_path() {
    let key = "listener[0] (web).rule[0]";
    let cases = [
        (
            "target_group = \"g\"\nredirect = { protocol = \"HTTPS\", status_code = \"HTTP_301\" }",
            format!("{key}: give exactly one action"),
        ),
        (
            "redirect = { status_code = \"HTTP_301\" }",
            format!("{key}.redirect: would send the client to the URL it asked for"),
        ),
        (
            "redirect = { protocol = \"HTTP\", status_code = \"HTTP_301\" }",
            format!("{key}.redirect.protocol: an HTTPS listener cannot redirect to HTTP"),
        ),
        (
            "redirect = { host = \"#{hots}\", status_code = \"HTTP_301\" }",
            format!("{key}.redirect.host"),
        ),
        (
            "forward = [{ target_group = \"g\", weight = 1000 }]",
            format!("{key}.forward[0].weight: 1000 is not a weight from 0 to 999"),
        ),
        (
            "forward = [{ target_group = \"g\", weight = 0 }]",
            format!("{key}.forward: every weight is 0"),
        ),
        (
            "forward = [{ target_group = \"g\" }, { target_group = \"g\" }]",
            format!("{key}.forward[1].target_group: \"g\" is listed twice"),
        ),
        (
            "forward = [{ target_group = \"nope\" }]",
            format!("{key}.forward[0].target_group: \"nope\""),
        ),
        (
            "target_group = \"g\"\nauthenticate_jwt = \"corp\"",
            format!("{key}.authenticate_jwt: no [jwt_validation.corp] is declared"),
        ),
    ];
    for (rule, want) in cases {
        let err = check_rule(rule);
        assert!(err.contains(&want), "{rule}\nwant: {want}\ngot: {err}");
    }
}

const PLAIN: &str = r##"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocol = "HTTP"
[listener.default_action]
redirect = { protocol = "HTTPS", port = "8443", status_code = "HTTP_301" }

[[listener.rule]]
path = "/through/*"
target_group = "direct"

[target_group.direct]
targets = ["http://BACKEND"]
[target_group.direct.health_check]
enabled = false
"##;

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_http_listener_redirects_to_https_and_forwards_without_mtls_headers() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let extra = PLAIN.replace("BACKEND", &backend.addr.to_string());
    let proxy = start(&pki, &backend, &extra, |t| t).await;
    let plain = proxy.server.local_addr("plain").unwrap();

    let out = Command::new("curl")
        .args(["-q", "-sS", "-i", "--noproxy", "*", "--max-time", "10"])
        .arg(format!("http://localhost:{}/cart?id=7", plain.port()))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(status_of(&text), Some(301), "{text}");
    assert!(text.contains("https://localhost:8443/cart?id=7"), "{text}");

    let out = Command::new("curl")
        .args([
            "-q",
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "10",
            "-w",
            "%{http_code}",
        ])
        .args(["-H", "X-Amzn-Mtls-Clientcert-Subject: CN=forged"])
        .arg(format!("http://localhost:{}/through/x", plain.port()))
        .output()
        .expect("run curl");
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("200"));
    let seen = backend.last();
    assert_eq!(seen.one("x-forwarded-proto"), "http");
    assert_eq!(seen.one("x-forwarded-port"), plain.port().to_string());
    assert!(
        !seen.has("x-amzn-mtls-clientcert-subject"),
        "owned headers stripped"
    );
    let access = proxy.access_records(2);
    assert_eq!(access[0]["elb_status_code"], 301, "{}", access[0]);
    assert_eq!(access[1]["listener"], "plain", "{}", access[1]);
}

#[test]
fn check_refuses_tls_settings_on_a_plain_listener() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let extra = PLAIN.replace("BACKEND", "127.0.0.1:9").replace(
        "protocol = \"HTTP\"",
        "protocol = \"HTTP\"\ncertificate_chain = \"server.pem\"\nssl_policy = \"ELBSecurityPolicy-TLS13-1-2-2021-06\"\n[listener.mutual_authentication]\nmode = \"verify\"\ntrust_store = \"corp\"",
    );
    let path = write_config(
        dir.path(),
        &pki,
        "127.0.0.1:9".parse().unwrap(),
        OFF,
        &extra,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_certgate"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for attr in ["certificate_chain", "ssl_policy", "mutual_authentication"] {
        let want = format!("listener[1] (plain).{attr}: is a TLS setting");
        assert!(err.contains(&want), "want {want}\n{err}");
    }
}
