//! JWT validation end to end (SPEC §10): tokens minted here, verified by certgate against the
//! key set a real JWKS server on 127.0.0.1 publishes, with curl and a hyper client as callers.
//! Covers the answers (401 challenge, 401 invalid_token, 403), rotation through an unknown
//! `kid`, a broken JWKS that keeps the last good keys, certificate-bound tokens (RFC 8705),
//! and configuration and start-up errors.

mod support;

#[path = "support/s3.rs"]
mod s3_support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::jwt::*;
use support::pki::*;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_verified_against_the_issuers_jwks_with_the_documented_answers() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let es = SigningKey::new("es-1", Algorithm::ES384);
    let rs = SigningKey::new("rs-1", Algorithm::RS256);
    let jwks = JwksServer::start(&[&es, &rs]).await;
    let proxy = proxy_with_jwt(
        &pki,
        &backend,
        "mode = \"off\"",
        &validator_section(&jwks.url(), ""),
    )
    .await;
    let cfg = || client_config(&pki, None, &[b"http/1.1"]);

    // Good tokens, from either key, reach the backend with the token unchanged.
    for key in [&es, &rs] {
        let token = key.sign(&claims(json!({})));
        let (status, _) = call(&proxy, cfg(), Some(&bearer(&token))).await;
        assert_eq!(status, 200, "{}", key.kid);
        assert_eq!(backend.last().one("authorization"), bearer(&token));
    }
    let acc = proxy.access_records(2).pop().unwrap();
    assert_eq!(acc["jwt_sub"], "client-42", "{acc}");
    assert_eq!(acc["jwt_iss"], ISSUER);

    // No token: a bare challenge, no error code (RFC 6750 §3.1).
    let (status, challenge) = call(&proxy, cfg(), None).await;
    assert_eq!((status, challenge.as_str()), (401, "Bearer realm=\"corp\""));

    let other = SigningKey::new("es-1", Algorithm::ES384);
    let hs = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("es-1".into());
        jsonwebtoken::encode(
            &h,
            &claims(json!({})),
            &EncodingKey::from_secret(b"k").unwrap(),
        )
        .unwrap()
    };
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "es-1"})),
        b64(&claims(json!({})))
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            es.sign(&claims(json!({"exp": now() - 60}))),
            "expired",
        ),
        (
            "not yet valid",
            es.sign(&claims(json!({"nbf": now() + 600}))),
            "not valid yet",
        ),
        (
            "issued in the future",
            es.sign(&claims(json!({"iat": now() + 600}))),
            "iat",
        ),
        (
            "wrong issuer",
            es.sign(&claims(json!({"iss": "https://evil.test"}))),
            "issuer",
        ),
        (
            "wrong audience",
            es.sign(&claims(json!({"aud": "other"}))),
            "audience",
        ),
        (
            "no exp",
            es.sign(&json!({"iss": ISSUER, "aud": "rabbitmq", "scope": "rabbitmq/read:*/*"})),
            "exp",
        ),
        (
            "signed by another key",
            other.sign(&claims(json!({}))),
            "signature",
        ),
        ("HMAC", hs, "not accepted"),
        ("alg none", none, "not a JWT"),
        ("not a JWT", "abc.def".to_string(), "not a JWT"),
    ];
    for (what, token, says) in &cases {
        let (status, challenge) = call(&proxy, cfg(), Some(&bearer(token))).await;
        assert_eq!(status, 401, "{what}");
        assert!(
            challenge.starts_with(
                "Bearer realm=\"corp\", error=\"invalid_token\", error_description=\""
            ) && challenge.contains(says),
            "{what}: {challenge}"
        );
    }
    // A good token whose claims do not allow the request: 403.
    let narrow = es.sign(&claims(json!({"scope": "rabbitmq/write:*/*"})));
    let (status, challenge) = call(&proxy, cfg(), Some(&bearer(&narrow))).await;
    assert_eq!(status, 403);
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    let acc = proxy.access_records(3 + cases.len() + 1).pop().unwrap();
    assert_eq!(acc["elb_status_code"], 403);
    assert!(
        acc["error_reason"].as_str().unwrap().contains("scope"),
        "{acc}"
    );
    // None of the refused requests reached the backend.
    assert_eq!(backend.count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_sends_the_token_as_basic_password_like_amazon_mq_users_do() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let es = SigningKey::new("es-1", Algorithm::ES384);
    let jwks = JwksServer::start(&[&es]).await;
    let proxy = proxy_with_jwt(
        &pki,
        &backend,
        "mode = \"off\"",
        &validator_section(&jwks.url(), ""),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_pem(dir.path(), "server-ca.pem", &pki.server_ca.pem);
    let token = es.sign(&claims(json!({})));
    let curl = |user: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .arg("--cacert")
            .arg(&ca)
            .args(["-u", user])
            .arg(format!("https://localhost:{}/mq", proxy.addr.port()))
            .args([
                "--resolve",
                &format!("localhost:{}:127.0.0.1", proxy.addr.port()),
            ])
            .output()
            .expect("curl is needed (scripts/test installs it)");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(curl(&format!(":{token}")), "200");
    assert_eq!(curl(&format!("guest:{token}")), "401");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_key_is_fetched_when_a_token_names_it_and_a_broken_jwks_keeps_the_last_good_keys() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let old = SigningKey::new("2026-11", Algorithm::ES384);
    let jwks = JwksServer::start(&[&old]).await;
    let proxy = proxy_with_jwt(
        &pki,
        &backend,
        "mode = \"off\"",
        &validator_section(&jwks.url(), ""),
    )
    .await;
    let cfg = || client_config(&pki, None, &[b"http/1.1"]);
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);

    // The issuer rotates: a token signed by the new key is accepted at once.
    let new = SigningKey::new("2026-12", Algorithm::ES384);
    jwks.publish(&[&old, &new]);
    let (status, _) = call(&proxy, cfg(), Some(&bearer(&new.sign(&claims(json!({})))))).await;
    assert_eq!(status, 200);
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);

    // Another unknown key within 30 s: refused without hammering the issuer.
    let stranger = SigningKey::new("never-published", Algorithm::ES384);
    for _ in 0..3 {
        let (status, challenge) = call(
            &proxy,
            cfg(),
            Some(&bearer(&stranger.sign(&claims(json!({}))))),
        )
        .await;
        assert_eq!(status, 401);
        assert!(challenge.contains("never-published"), "{challenge}");
    }
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);

    // A reload that finds garbage, an empty set or a set of encryption keys keeps the keys.
    let enc = {
        let mut k = new.jwk.clone();
        k["use"] = json!("enc");
        json!({"keys": [k]}).to_string()
    };
    for broken in [&b"<html>oops</html>"[..], b"{\"keys\": []}", enc.as_bytes()] {
        jwks.publish_raw(broken);
        let problems = proxy.server.reload().await;
        assert!(
            problems
                .iter()
                .any(|p| p.contains("jwt_validation.corp") && p.contains("JWKS")),
            "{problems:?}"
        );
        let (status, _) = call(&proxy, cfg(), Some(&bearer(&old.sign(&claims(json!({})))))).await;
        assert_eq!(status, 200, "after {:?}", String::from_utf8_lossy(broken));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_bound_tokens_need_the_certificate_they_are_bound_to() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let es = SigningKey::new("es-1", Algorithm::ES384);
    let jwks = JwksServer::start(&[&es]).await;
    let section = validator_section(&jwks.url(), "require_certificate_binding = true");
    let proxy = proxy_with_jwt(
        &pki,
        &backend,
        "mode = \"verify\"\ntrust_store = \"corp\"",
        &section,
    )
    .await;
    let cfg = || client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);
    let thumb = |der: &[u8]| {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
    };
    let bound = es.sign(&claims(json!({"cnf": {"x5t#S256": thumb(&pki.good.der)}})));
    assert_eq!(call(&proxy, cfg(), Some(&bearer(&bound))).await.0, 200);

    let elsewhere = es.sign(&claims(json!({"cnf": {"x5t#S256": thumb(b"another")}})));
    let (status, challenge) = call(&proxy, cfg(), Some(&bearer(&elsewhere))).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("bound to another client certificate"),
        "{challenge}"
    );

    let unbound = es.sign(&claims(json!({})));
    let (status, challenge) = call(&proxy, cfg(), Some(&bearer(&unbound))).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("not bound"), "{challenge}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_can_demand_a_token_that_the_rest_of_the_listener_does_not() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let es = SigningKey::new("es-1", Algorithm::ES384);
    let jwks = JwksServer::start(&[&es]).await;
    let section = format!(
        r#"{}
[[listener.rule]]
path = "/api"
authenticate_jwt = "corp"
target_group = "api"

[target_group.api]
targets = ["http://{}"]
[target_group.api.health_check]
enabled = false

[admin]
bind = "127.0.0.1:0"
"#,
        validator_section(&jwks.url(), "require_certificate_binding = true"),
        backend.addr
    );
    let verify = "mode = \"verify\"\ntrust_store = \"corp\"";
    let proxy = Proxy::start(&pki, backend.addr, verify, &section).await;
    let cfg = || client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);

    let (status, challenge) = call(&proxy, cfg(), None).await;
    assert_eq!((status, challenge.as_str()), (401, "Bearer realm=\"corp\""));
    // Bound to the client's certificate: the thumbprint is taken for a rule's check too.
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &pki.good.der);
    let thumb = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref());
    let token = es.sign(&claims(json!({"cnf": {"x5t#S256": thumb}})));
    assert_eq!(call(&proxy, cfg(), Some(&bearer(&token))).await.0, 200);
    assert_eq!(backend.last().one("authorization"), bearer(&token));

    let open = get(proxy.addr, cfg(), "/elsewhere").await.unwrap();
    assert_eq!(open, 200, "the default action asks for no token");
    let access = proxy.access_records(3);
    assert_eq!(access[0]["elb_status_code"], 401, "{}", access[0]);
    assert_eq!(access[1]["jwt_sub"], "client-42", "{}", access[1]);
    assert!(access[2]["jwt_sub"].is_null(), "{}", access[2]);

    let admin = proxy.server.admin_addr().unwrap();
    let metrics = raw_tcp(
        admin,
        "GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
    )
    .await;
    for (result, n) in [
        ("success", 1),
        ("missing", 1),
        ("invalid", 0),
        ("forbidden", 0),
    ] {
        let series =
            format!("certgate_jwt_validations_total{{validator=\"corp\",result=\"{result}\"}} {n}");
        assert!(metrics.contains(&series), "{series} not in\n{metrics}");
    }
}

/// Sends `request` over plain TCP and reads until the peer closes.
async fn raw_tcp(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_jwks_stops_the_start_naming_the_url() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let url = format!("http://127.0.0.1:{}/jwks.json", free_port());
    let path = write_config(
        dir.path(),
        &pki,
        backend.addr,
        "mode = \"off\"",
        &validator_section(&url, ""),
    );
    let cfg = certgate::config::load(&path).unwrap();
    let err = match certgate::app::Server::start(cfg).await {
        Ok(_) => panic!("started without its JWKS"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("jwt_validation.corp") && err.contains(&url),
        "{err}"
    );
}

#[test]
fn validator_mistakes_are_refused_with_their_key_path() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let backend: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let section = r#"
[jwt_validation.corp]
jwks_url = "ftp://x"
algorithms = ["HS256", "none", "EdDSA"]
token_sources = ["cookie"]
clock_skew_secs = 9999
[[jwt_validation.corp.additional_claims]]
name = "scope"
format = "csv"
values = ["x"]
"#;
    let path = write_config(dir.path(), &pki, backend, "mode = \"off\"", section);
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "backend =",
        "authenticate_jwt = \"nope\"\nbackend =",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let err = match certgate::config::load(&path) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    for expected in [
        "jwt_validation.corp.issuer: is required",
        "jwt_validation.corp.jwks_url",
        "jwt_validation.corp.algorithms[0]: \"HS256\" is never accepted",
        "jwt_validation.corp.algorithms[1]: \"none\" is never accepted",
        "jwt_validation.corp.algorithms[2]",
        "jwt_validation.corp.token_sources[0]",
        "jwt_validation.corp.clock_skew_secs",
        "jwt_validation.corp.additional_claims[0].format",
        "listener[0] (web).authenticate_jwt: no [jwt_validation.nope]",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fetches_each_jwks_and_lists_its_key_ids() {
    let pki = Pki::new();
    let es = SigningKey::new("es-1", Algorithm::ES384);
    let rs = SigningKey::new("rs-1", Algorithm::RS256);
    let jwks = JwksServer::start(&[&es, &rs]).await;
    let dir = tempfile::tempdir().unwrap();
    let backend: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let path = write_config(
        dir.path(),
        &pki,
        backend,
        "mode = \"off\"",
        &validator_section(&jwks.url(), ""),
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_certgate"))
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("jwt validation corp: issuer https://issuer.test")
            && stdout.contains("key ids [es-1, rs-1]"),
        "{stdout}"
    );
    // The issuer is down: check fails and says which JWKS.
    jwks.publish_raw(b"not json");
    let path = dir.path().join("certgate.toml");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_certgate"))
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("jwt_validation.corp") && stderr.contains("not JSON"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_jwks_can_be_a_file_beside_the_config_or_an_s3_object() {
    s3_support::aws_env_in_process();
    let pki = Pki::new();
    let backend = Backend::start().await;
    let es = SigningKey::new("es-1", Algorithm::ES384);
    let doc = json!({"keys": [es.jwk.clone()]}).to_string();
    let moto = s3_support::Moto::start();
    let s3 = moto.client();
    s3.create_bucket("issuer").await;
    s3.put("issuer", "keys/jwks.json", doc.clone()).await;
    let token = es.sign(&claims(json!({})));
    let from_s3 = format!(
        "{}\n{}",
        s3_support::s3_table(&moto.endpoint()),
        validator_section("s3://issuer/keys/jwks.json", "")
    );
    let file_proxy =
        start_with_file(&pki, &backend, &validator_section("jwks.json", ""), &doc).await;
    let s3_proxy = Proxy::start_edited(&pki, backend.addr, "mode = \"off\"", &from_s3, |t| {
        t.replacen("backend =", "authenticate_jwt = \"corp\"\nbackend =", 1)
    })
    .await;
    for (what, proxy) in [("file", &file_proxy), ("s3", &s3_proxy)] {
        let cfg = client_config(&pki, None, &[b"http/1.1"]);
        let (status, _) = call(proxy, cfg, Some(&bearer(&token))).await;
        assert_eq!(status, 200, "{what}");
    }
}

/// A proxy whose validator reads `jwks.json` beside its config file.
async fn start_with_file(pki: &Pki, backend: &Backend, section: &str, doc: &str) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwks.json"), doc).unwrap();
    let path = write_config(dir.path(), pki, backend.addr, "mode = \"off\"", section);
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "backend =",
        "authenticate_jwt = \"corp\"\nbackend =",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let server = certgate::app::Server::start(certgate::config::load(&path).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = server.local_addr("web").unwrap();
    Proxy {
        conn_log: dir.path().join("conn.log"),
        access_log: dir.path().join("access.log"),
        server,
        addr,
        dir,
    }
}
