//! Benchmarks of one token check (SPEC §10), per algorithm certgate accepts by default.
//!
//! Measured: `jwt/check_{RS256,PS256,ES256,ES384}` — `Validator::check` on a request whose
//! `Authorization: Bearer` token is good: header extraction, the shape checks, signature
//! verification with the issuer's key (aws-lc-rs), and the exp/nbf/iat/iss/aud and
//! `additional_claims` checks. `jwt/refused_expired_ES256` is the same for an expired token
//! (signature verified, then refused). The JWKS is a file read once at start.
//!
//! Run with: `cargo bench --bench jwt`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{KeyPair, RsaKeySize};
use serde_json::json;

use certgate::config::{
    ClaimCondition, ClaimFormat, JwksSource, JwtValidatorConfig, Source, TokenSource,
};
use certgate::jwt::Validator;
use certgate::metrics::JwtMetrics;
use certgate::truststore::source::Sources;

const ISSUER: &str = "https://issuer.bench";

struct Key {
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: serde_json::Value,
}

fn key(alg: Algorithm) -> Key {
    let pair = match alg {
        Algorithm::ES256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        Algorithm::ES384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        _ => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
    }
    .expect("generate a key");
    let pem = pair.serialize_pem();
    let encoding = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .expect("an encoding key");
    let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("a JWK");
    jwk.common.key_id = Some(format!("{alg:?}"));
    Key {
        alg,
        encoding,
        jwk: serde_json::to_value(jwk).expect("JWK as JSON"),
    }
}

fn token(k: &Key, exp_offset: i64) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let mut header = Header::new(k.alg);
    header.kid = Some(format!("{:?}", k.alg));
    let claims = json!({
        "iss": ISSUER, "sub": "client-42", "aud": "rabbitmq",
        "exp": now + exp_offset, "iat": now - 10,
        "scope": "rabbitmq/read:*/* rabbitmq/write:*/*",
    });
    jsonwebtoken::encode(&header, &claims, &k.encoding).expect("sign")
}

fn validator(rt: &tokio::runtime::Runtime, dir: &std::path::Path, keys: &[&Key]) -> Arc<Validator> {
    let path = dir.join("jwks.json");
    let doc = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    std::fs::write(&path, serde_json::to_vec(&doc).expect("JWKS")).expect("write JWKS");
    let cfg = JwtValidatorConfig {
        name: "bench".into(),
        issuer: ISSUER.into(),
        jwks: JwksSource::Stored(Source::File(path)),
        jwks_ca_bundle: None,
        audience: vec!["rabbitmq".into()],
        algorithms: vec![
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::ES384,
        ],
        token_sources: vec![TokenSource::Bearer],
        clock_skew: Duration::from_secs(60),
        refresh_interval: Duration::from_secs(3600),
        require_certificate_binding: false,
        additional_claims: vec![ClaimCondition {
            name: "scope".into(),
            format: ClaimFormat::SpaceSeparatedValues,
            values: vec!["rabbitmq/read:*/*".into()],
        }],
    };
    let sources = Arc::new(Sources::new(Default::default()));
    rt.block_on(Validator::load(cfg, sources, JwtMetrics::default()))
        .expect("load the validator")
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value");
    h.insert(http::header::AUTHORIZATION, value);
    h
}

fn checks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let keys: Vec<Key> = [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
    ]
    .into_iter()
    .map(key)
    .collect();
    let v = validator(&rt, dir.path(), &keys.iter().collect::<Vec<_>>());
    let mut group = c.benchmark_group("jwt");
    for k in &keys {
        let headers = bearer(&token(k, 300));
        assert!(rt.block_on(v.check(&headers, None)).is_ok());
        group.bench_function(format!("check_{:?}", k.alg), |b| {
            b.iter(|| rt.block_on(v.check(black_box(&headers), None)))
        });
    }
    let expired = bearer(&token(&keys[2], -3600));
    assert!(rt.block_on(v.check(&expired, None)).is_err());
    group.bench_function("refused_expired_ES256", |b| {
        b.iter(|| rt.block_on(v.check(black_box(&expired), None)))
    });
    group.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
