//! JWT test parts: signing keys minted here with real RSA and EC keys, claims that pass the
//! standard validator, a JWKS server on 127.0.0.1 (plain HTTP, or HTTPS with the test PKI's
//! server certificate) that serves whatever document a test puts in place, and callers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::pki::*;
use super::*;

pub const ISSUER: &str = "https://issuer.test";

/// A signing key of the issuer and its public JWK.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub key: EncodingKey,
    pub jwk: Value,
}

impl SigningKey {
    pub fn new(kid: &str, alg: Algorithm) -> SigningKey {
        let kind = match alg {
            Algorithm::ES256 => KeyKind::EcP256,
            Algorithm::ES384 => KeyKind::EcP384,
            _ => KeyKind::Rsa2048,
        };
        let pem = kind.generate().serialize_pem();
        let key = match kind {
            KeyKind::Rsa2048 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(pem.as_bytes()),
        }
        .unwrap();
        let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
        jwk.common.key_id = Some(kid.to_string());
        SigningKey {
            kid: kid.to_string(),
            alg,
            key,
            jwk: serde_json::to_value(jwk).unwrap(),
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims that pass the validator below, with `extra` merged in.
pub fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": ISSUER,
        "sub": "client-42",
        "aud": "rabbitmq",
        "exp": now() + 300,
        "iat": now(),
        "scope": "rabbitmq/read:*/* other",
    });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

/// A JWKS server: serves whatever document the test puts in place, counting fetches.
pub struct JwksServer {
    pub addr: SocketAddr,
    pub doc: Arc<Mutex<Vec<u8>>>,
    pub fetches: Arc<AtomicUsize>,
    /// Served over TLS (with the test PKI's server certificate for `localhost`).
    pub https: bool,
}

impl JwksServer {
    pub async fn start(keys: &[&SigningKey]) -> JwksServer {
        Self::start_with(keys, None).await
    }

    /// Over HTTPS, with `pki`'s server certificate (its CA is `pki.server_ca`).
    pub async fn start_https(keys: &[&SigningKey], pki: &Pki) -> JwksServer {
        let cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![pki.server.cert_der()], pki.server.private_key_der())
            .unwrap();
        Self::start_with(keys, Some(Arc::new(cfg))).await
    }

    async fn start_with(
        keys: &[&SigningKey],
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = JwksServer {
            addr,
            doc: Arc::new(Mutex::new(Vec::new())),
            fetches: Arc::new(AtomicUsize::new(0)),
            https: tls.is_some(),
        };
        server.publish(keys);
        let (doc, fetches) = (server.doc.clone(), server.fetches.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (doc, fetches, tls) = (doc.clone(), fetches.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |_req| {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let body = doc.lock().unwrap().clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from(body),
                            )))
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                        Some(cfg) => {
                            let Ok(stream) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await
                            else {
                                return;
                            };
                            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        server
    }

    pub fn publish(&self, keys: &[&SigningKey]) {
        let doc = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        *self.doc.lock().unwrap() = serde_json::to_vec(&doc).unwrap();
    }

    pub fn publish_raw(&self, bytes: &[u8]) {
        *self.doc.lock().unwrap() = bytes.to_vec();
    }

    pub fn url(&self) -> String {
        if self.https {
            format!(
                "https://localhost:{}/.well-known/jwks.json",
                self.addr.port()
            )
        } else {
            format!("http://{}/.well-known/jwks.json", self.addr)
        }
    }
}

pub fn validator_section(jwks_url: &str, extra: &str) -> String {
    format!(
        r#"
[jwt_validation.corp]
issuer = "{ISSUER}"
jwks_url = "{jwks_url}"
audience = ["rabbitmq"]
algorithms = ["RS256", "ES384"]
token_sources = ["bearer", "basic_password"]
clock_skew_secs = 5
{extra}
[[jwt_validation.corp.additional_claims]]
name = "scope"
format = "space-separated-values"
values = ["rabbitmq/read:*/*"]
"#
    )
}

pub async fn proxy_with_jwt(pki: &Pki, backend: &Backend, mutual: &str, section: &str) -> Proxy {
    Proxy::start_edited(pki, backend.addr, mutual, section, |t| {
        t.replacen("backend =", "authenticate_jwt = \"corp\"\nbackend =", 1)
    })
    .await
}

/// One request over HTTP/1.1 with `authorization` (if any): status and WWW-Authenticate.
pub async fn call(
    proxy: &Proxy,
    cfg: Arc<rustls::ClientConfig>,
    authorization: Option<&str>,
) -> (u16, String) {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let req = format!("GET /api HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    let resp = raw_http1(proxy.addr, cfg, &req).await.unwrap();
    let challenge = resp
        .lines()
        .find_map(|l| {
            l.strip_prefix("www-authenticate: ")
                .or_else(|| l.strip_prefix("WWW-Authenticate: "))
        })
        .unwrap_or("")
        .to_string();
    (status_of(&resp).unwrap_or(0), challenge)
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
