//! JWT bad input end to end (issue 13): tokens of every broken or ambiguous shape, each with
//! its documented answer from a running proxy that keeps serving good tokens afterwards; JWKS
//! documents that are HTML, truncated, oversized or with a kid used twice, behind a refresh
//! that keeps the last good keys; and a JWKS served over HTTPS with its CA given to certgate.

mod support;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use support::jwt::*;
use support::pki::*;
use support::*;

const OFF: &str = "mode = \"off\"";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with exactly this header and claims text, signed by `key` (so that only its shape
/// can be wrong).
fn signed_raw(key: &SigningKey, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key.key, key.alg).unwrap();
    format!("{input}.{sig}")
}

fn claims_text(extra: Value) -> String {
    serde_json::to_string(&claims(extra)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_and_ambiguous_tokens_get_their_answer_and_good_ones_still_pass() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let es = SigningKey::new("es-1", Algorithm::ES384);
    let rs = SigningKey::new("rs-1", Algorithm::RS256);
    let jwks = JwksServer::start(&[&es, &rs]).await;
    let proxy = proxy_with_jwt(&pki, &backend, OFF, &validator_section(&jwks.url(), "")).await;
    let cfg = || client_config(&pki, None, &[b"http/1.1"]);
    let es_header = r#"{"alg":"ES384","kid":"es-1","typ":"JWT"}"#;

    // Key confusion: HS256 keyed with the issuer's RSA public key as the secret.
    let rs_public = serde_json::to_vec(&rs.jwk).unwrap();
    let confused = {
        let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
        h.kid = Some("rs-1".into());
        let secret = EncodingKey::from_secret(&rs_public).unwrap();
        jsonwebtoken::encode(&h, &claims(json!({})), &secret).unwrap()
    };
    let good_claims = claims_text(json!({}));
    let duplicated = good_claims.replacen('{', r#"{"sub":"someone-else","#, 1);
    let cases: Vec<(&str, String, &str)> = vec![
        ("no dots", "abcdef".into(), "no dots"),
        ("not base64url", "a!b.c$d.e".into(), "not base64url"),
        ("key confusion", confused, "not accepted"),
        (
            "crit header",
            signed_raw(
                &es,
                r#"{"alg":"ES384","kid":"es-1","crit":["exp"]}"#,
                &good_claims,
            ),
            "crit",
        ),
        (
            "nested JWT",
            signed_raw(
                &es,
                r#"{"alg":"ES384","kid":"es-1","cty":"JWT"}"#,
                &good_claims,
            ),
            "nested",
        ),
        (
            "duplicate claim",
            signed_raw(&es, es_header, &duplicated),
            "appears twice",
        ),
        (
            "exp as a string",
            signed_raw(&es, es_header, &claims_text(json!({"exp": "9999999999"}))),
            "exp",
        ),
        (
            "far exp, future nbf",
            es.sign(&claims(
                json!({"exp": now() + 10 * 365 * 86400, "nbf": now() + 3600}),
            )),
            "not valid yet",
        ),
    ];
    for (what, token, says) in &cases {
        let (status, challenge) = call(&proxy, cfg(), Some(&bearer(token))).await;
        assert_eq!(status, 401, "{what}: {challenge}");
        assert!(
            challenge.contains("error=\"invalid_token\"") && challenge.contains(says),
            "{what}: {challenge}"
        );
    }
    // A 1 MB token is stopped by the header size limit before any JWT work.
    let huge = format!("{}.{}.x", "a".repeat(1 << 19), "b".repeat(1 << 19));
    assert_eq!(call(&proxy, cfg(), Some(&bearer(&huge))).await.0, 431);

    assert_eq!(backend.count(), 0, "no refused token reached the backend");
    let good = es.sign(&claims(json!({})));
    assert_eq!(call(&proxy, cfg(), Some(&bearer(&good))).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_key_sets_keep_the_last_good_keys_and_a_reused_kid_tries_each_key() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let old = SigningKey::new("k1", Algorithm::ES384);
    let jwks = JwksServer::start(&[&old]).await;
    let proxy = proxy_with_jwt(&pki, &backend, OFF, &validator_section(&jwks.url(), "")).await;
    let cfg = || client_config(&pki, None, &[b"http/1.1"]);
    let token = old.sign(&claims(json!({})));

    let mut doc = serde_json::to_vec(&json!({"keys": [old.jwk]})).unwrap();
    doc.truncate(doc.len() / 2);
    let ten_mb = format!("{{\"keys\": [], \"pad\": \"{}\"}}", "x".repeat(10 << 20));
    for broken in [
        &b"<html><body>login</body></html>"[..],
        &doc,
        ten_mb.as_bytes(),
    ] {
        jwks.publish_raw(broken);
        let problems = proxy.server.reload().await;
        assert!(
            problems.iter().any(|p| p.contains("jwt_validation.corp")),
            "{problems:?}"
        );
        assert_eq!(call(&proxy, cfg(), Some(&bearer(&token))).await.0, 200);
    }

    // Rotation that reuses the kid: both keys are tried, so old and new tokens verify.
    let new = SigningKey::new("k1", Algorithm::ES384);
    jwks.publish(&[&old, &new]);
    assert!(proxy.server.reload().await.is_empty());
    let fresh = new.sign(&claims(json!({})));
    for t in [&token, &fresh] {
        assert_eq!(call(&proxy, cfg(), Some(&bearer(t))).await.0, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jwks_over_https_needs_its_ca() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let es = SigningKey::new("es-1", Algorithm::ES384);
    let jwks = JwksServer::start_https(&[&es], &pki).await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("issuer-ca.pem");
    std::fs::write(&ca, &pki.server_ca.pem).unwrap();
    let with_ca = format!("jwks_ca_bundle = \"{}\"", ca.display());
    let proxy = proxy_with_jwt(
        &pki,
        &backend,
        OFF,
        &validator_section(&jwks.url(), &with_ca),
    )
    .await;
    let cfg = client_config(&pki, None, &[b"http/1.1"]);
    let token = es.sign(&claims(json!({})));
    assert_eq!(call(&proxy, cfg, Some(&bearer(&token))).await.0, 200);

    // Without the CA, the system roots do not know the issuer's certificate.
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        &pki,
        backend.addr,
        OFF,
        &validator_section(&jwks.url(), ""),
    );
    let cfg = certgate::config::load(&path).unwrap();
    let err = match certgate::app::Server::start(cfg).await {
        Ok(_) => panic!("started with a JWKS it cannot trust"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&jwks.url()), "{err}");
}
