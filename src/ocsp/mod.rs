//! OCSP (SPEC §13). For client certificates: the leaf is checked with the responder named in
//! its AIA extension, the answer verified (`response`), cached until its nextUpdate in a
//! bounded cache, with a 2 s deadline and a bounded number of queries in flight, so that a slow
//! or absent responder costs a handshake at most that and never piles up. For certgate's own
//! certificates: `staple` fetches, verifies and refreshes the responses it staples.

pub mod issuer;
pub mod request;
pub mod response;
pub mod staple;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use x509_parser::prelude::*;

pub use issuer::Issuer;
use response::Status;

/// How long one query may take, connection included.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Queries in flight at once; a handshake that finds none free counts as unreachable.
const MAX_IN_FLIGHT: usize = 32;
/// Answers kept; beyond it the entries closest to expiry go first.
const MAX_CACHED: usize = 10_000;
/// An answer without nextUpdate is reused this long.
const NO_NEXT_UPDATE_TTL: i64 = 300;
/// Largest response read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What the responder said, or why it could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Good {
        responder: String,
    },
    Revoked {
        responder: String,
        detail: String,
    },
    /// The responder does not know the certificate.
    Unknown {
        responder: String,
    },
    /// No answer that could be believed: unreachable, timed out, malformed, badly signed.
    Failed {
        responder: String,
        why: String,
    },
    /// The certificate names no OCSP responder.
    NoResponder,
}

type Body = http_body_util::Full<bytes::Bytes>;

/// Asks responders and remembers their answers; one per process.
pub struct Checker {
    /// Why there is none: the TLS settings for https responders could not be built.
    client: Result<Client<HttpsConnector<HttpConnector>, Body>, String>,
    in_flight: tokio::sync::Semaphore,
    cache: Mutex<HashMap<Vec<u8>, (i64, Verdict)>>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").finish_non_exhaustive()
    }
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}

impl Checker {
    pub fn new() -> Checker {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(QUERY_TIMEOUT));
        http.enforce_http(false);
        let client = https_config().map(|tls| {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            Client::builder(TokioExecutor::new()).build(connector)
        });
        Checker {
            client,
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The status of `leaf` (DER) issued by `issuer`, from the cache or its responder.
    pub async fn check(&self, leaf: &[u8], issuer: &Issuer) -> Verdict {
        let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
            return Verdict::NoResponder;
        };
        let Some(responder) = issuer::responder_url(&cert) else {
            return Verdict::NoResponder;
        };
        let failed = |why: String| Verdict::Failed {
            responder: responder.clone(),
            why,
        };
        let id = match request::cert_id(issuer, cert.raw_serial()) {
            Ok(id) => id,
            Err(why) => return failed(why),
        };
        let key = cache_key(&responder, &id);
        let now = now();
        if let Some(v) = self.cached(&key, now) {
            return v;
        }
        let Ok(_permit) = self.in_flight.try_acquire() else {
            return failed(format!("{MAX_IN_FLIGHT} OCSP queries already in flight"));
        };
        let answer = match self.fetch(&responder, &id).await {
            Err(why) => return failed(why),
            Ok(der) => der,
        };
        match verify(&answer, &id, issuer, now) {
            Err(why) => failed(why),
            Ok(checked) => {
                let verdict = match checked.status {
                    Status::Good => Verdict::Good { responder },
                    Status::Revoked(detail) => Verdict::Revoked { responder, detail },
                    Status::Unknown => Verdict::Unknown { responder },
                };
                let until = checked.next_update.unwrap_or(now + NO_NEXT_UPDATE_TTL);
                self.remember(key, until, verdict.clone());
                verdict
            }
        }
    }

    fn cached(&self, key: &[u8], now: i64) -> Option<Verdict> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(key)
            .filter(|(until, _)| *until >= now)
            .map(|(_, v)| v.clone())
    }

    fn remember(&self, key: Vec<u8>, until: i64, verdict: Verdict) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= MAX_CACHED {
            let now = now();
            cache.retain(|_, (u, _)| *u >= now);
            if cache.len() >= MAX_CACHED {
                // Still full of live answers: drop the soonest to expire.
                let mut ends: Vec<i64> = cache.values().map(|(u, _)| *u).collect();
                ends.sort_unstable();
                let cut = ends[ends.len() / 10];
                cache.retain(|_, (u, _)| *u > cut);
            }
        }
        cache.insert(key, (until, verdict));
    }

    /// The DER answer of `responder` about `id`, within [`QUERY_TIMEOUT`]; not yet verified.
    pub async fn fetch(&self, responder: &str, id: &x509_ocsp::CertId) -> Result<Vec<u8>, String> {
        match tokio::time::timeout(QUERY_TIMEOUT, self.query(responder, id)).await {
            Err(_) => Err(format!("no answer within {}s", QUERY_TIMEOUT.as_secs())),
            Ok(answer) => answer,
        }
    }

    /// One request to `responder`: GET when it fits a URL, else POST.
    async fn query(&self, responder: &str, id: &x509_ocsp::CertId) -> Result<Vec<u8>, String> {
        let der = request::encode(id)?;
        let req = match request::get_url(responder, &der) {
            Some(url) => http::Request::get(url).body(Body::default()),
            None => http::Request::post(responder)
                .header(http::header::CONTENT_TYPE, "application/ocsp-request")
                .body(Body::from(der)),
        }
        .map_err(|e| format!("cannot build the request: {e}"))?;
        let resp = self
            .client
            .as_ref()
            .map_err(Clone::clone)?
            .request(req)
            .await
            .map_err(|e| crate::error_chain(&e))?;
        if resp.status() != http::StatusCode::OK {
            return Err(format!("answered HTTP {}", resp.status().as_u16()));
        }
        crate::http::read_capped(resp.into_body(), MAX_RESPONSE_BYTES, "the answer").await
    }
}

/// Checks an answer about `id` from `issuer`'s responder at unix time `now` (see
/// [`response::check`]) with the signature algorithms of certgate's crypto provider.
pub fn verify(
    der: &[u8],
    id: &x509_ocsp::CertId,
    issuer: &Issuer,
    now: i64,
) -> Result<response::Checked, String> {
    let algorithms = crate::crypto::crypto_provider()
        .signature_verification_algorithms
        .all;
    response::check(der, id, issuer, now, algorithms)
}

/// TLS for `https://` responders, with the system's roots (an OCSP responder is public
/// infrastructure; without readable roots such a responder fails with that reason).
fn https_config() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(crate::crypto::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("no TLS settings for https OCSP responders: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn cache_key(responder: &str, id: &x509_ocsp::CertId) -> Vec<u8> {
    let mut key = responder.as_bytes().to_vec();
    key.extend_from_slice(id.issuer_key_hash.as_bytes());
    key.extend_from_slice(id.serial_number.as_bytes());
    key
}

pub(crate) fn now() -> i64 {
    ::time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Shared by every listener: one cache, one limit on queries in flight.
pub fn checker() -> Arc<Checker> {
    static CHECKER: std::sync::OnceLock<Arc<Checker>> = std::sync::OnceLock::new();
    CHECKER.get_or_init(|| Arc::new(Checker::new())).clone()
}
