//! Fetching a JWKS document: over HTTP(S) with hyper (the issuer's CA bundle or the system
//! roots, a deadline, and a size cap applied while reading), or from a file or an S3 object
//! the way trust-store sources are read.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::keys::MAX_JWKS_BYTES;
use crate::config::{JwksSource, JwtValidatorConfig, TargetTls};
use crate::truststore::source::Sources;

/// How long one JWKS fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

type HttpsClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector>, http_body_util::Empty<bytes::Bytes>>;

/// Reads one validator's JWKS document wherever it is published.
pub struct Fetcher {
    source: JwksSource,
    http: Option<HttpsClient>,
    stored: Arc<Sources>,
}

impl Fetcher {
    pub fn new(cfg: &JwtValidatorConfig, stored: Arc<Sources>) -> Result<Fetcher, String> {
        let http = match &cfg.jwks {
            JwksSource::Url(u) => Some(https_client(cfg, u.scheme_str() == Some("https"))?),
            JwksSource::Stored(_) => None,
        };
        Ok(Fetcher {
            source: cfg.jwks.clone(),
            http,
            stored,
        })
    }

    /// The document's bytes, or why they could not be had (naming the source).
    pub async fn fetch(&self) -> Result<Vec<u8>, String> {
        match (&self.source, &self.http) {
            (JwksSource::Url(url), Some(client)) => {
                tokio::time::timeout(FETCH_TIMEOUT, get(client, url))
                    .await
                    .map_err(|_| format!("{url}: no answer within {}s", FETCH_TIMEOUT.as_secs()))?
                    .map_err(|why| format!("{url}: {why}"))
            }
            (JwksSource::Stored(src), _) => self
                .stored
                .fetch(src, MAX_JWKS_BYTES)
                .await
                .map(|f| f.bytes.to_vec()),
            (JwksSource::Url(url), None) => Err(format!("{url}: no HTTP client")),
        }
    }
}

fn https_client(cfg: &JwtValidatorConfig, https: bool) -> Result<HttpsClient, String> {
    let tls = if https {
        let target_tls = TargetTls {
            ca_bundle: cfg.jwks_ca_bundle.clone(),
            client_identity: None,
        };
        crate::upstream::client::tls_config(&format!("jwt_validation.{}", cfg.name), &target_tls)
            .map_err(|e| e.to_string())?
    } else {
        rustls::ClientConfig::builder_with_provider(crate::crypto::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(FETCH_TIMEOUT));
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// One GET; a status other than 200, or a body over the limit, is an error.
async fn get(client: &HttpsClient, url: &http::Uri) -> Result<Vec<u8>, String> {
    let req = http::Request::get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .body(http_body_util::Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| crate::error_chain(&e))?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("answered HTTP {}", resp.status().as_u16()));
    }
    let limit = usize::try_from(MAX_JWKS_BYTES).unwrap_or(usize::MAX);
    crate::http::read_capped(resp.into_body(), limit, "the JWKS").await
}
