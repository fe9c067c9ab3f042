//! JWT validation at the edge (SPEC §10): a validator per `[jwt_validation.NAME]` holds the
//! issuer's current key set (fetched at start, refreshed on its interval, on SIGHUP and when a
//! token names an unknown key), and judges each request's token: signature, `exp`/`nbf`/`iat`,
//! issuer, audience, ALB's additional claims and RFC 8705 certificate binding.

pub mod claims;
mod fetch;
pub mod keys;
mod shape;
mod token;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use crate::config::JwtValidatorConfig;
use crate::metrics::{JwtMetrics, JwtResult};
use crate::truststore::source::Sources;
pub use keys::KeySet;

/// A token naming an unknown key refetches the JWKS at most this often.
const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(30);
/// How long a request waits for the refetch its unknown key caused.
const UNKNOWN_KID_WAIT: Duration = Duration::from_secs(3);

/// Why a token was not accepted, or a JWKS not loaded. The text is what the client reads in
/// `error_description` and the access log in `error_reason`: it never quotes the token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwtError {
    #[error("the request carries no token")]
    Missing,
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the token's key id {0:?} is not in the issuer's key set")]
    UnknownKey(String),
    /// The token is good but its claims do not allow the request: 403.
    #[error("{0}")]
    ClaimRefused(String),
    #[error("{0}")]
    Jwks(String),
}

impl JwtError {
    /// 401 for a missing or bad token, 403 for a good one whose claims do not fit.
    pub fn status(&self) -> http::StatusCode {
        match self {
            JwtError::ClaimRefused(_) => http::StatusCode::FORBIDDEN,
            _ => http::StatusCode::UNAUTHORIZED,
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3): a bare challenge when there is no token.
    pub fn challenge(&self, realm: &str) -> String {
        let quote = |s: &str| s.replace(['"', '\\'], "'");
        match self {
            JwtError::Missing => format!("Bearer realm=\"{}\"", quote(realm)),
            JwtError::ClaimRefused(why) => format!(
                "Bearer realm=\"{}\", error=\"insufficient_scope\", error_description=\"{}\"",
                quote(realm),
                quote(why)
            ),
            other => format!(
                "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"{}\"",
                quote(realm),
                quote(&other.to_string())
            ),
        }
    }
}

/// What a verified token says, for the access log.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    pub sub: Option<String>,
    pub iss: Option<String>,
}

/// One `[jwt_validation.NAME]` at run time.
pub struct Validator {
    pub cfg: JwtValidatorConfig,
    keys: ArcSwap<KeySet>,
    fetcher: fetch::Fetcher,
    /// Wakes the refresh task early (SIGHUP).
    wake: Arc<tokio::sync::Notify>,
    /// When a token's unknown key last caused a refetch; held while that refetch runs.
    kid_refetch: tokio::sync::Mutex<Option<Instant>>,
    /// Whether the last refresh failed, so that a failing issuer is logged once, not per try.
    failing: AtomicBool,
    /// `certgate_jwt_validations_total` of this validator.
    metrics: JwtMetrics,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("name", &self.cfg.name)
            .field("keys", &self.keys.load())
            .finish()
    }
}

impl Validator {
    /// Fetches the JWKS once; failing that, the validator cannot start.
    pub async fn load(
        cfg: JwtValidatorConfig,
        stored: Arc<Sources>,
        metrics: JwtMetrics,
    ) -> Result<Arc<Validator>, JwtError> {
        let fetcher = fetch::Fetcher::new(&cfg, stored).map_err(|why| load_error(&cfg, &why))?;
        let keys = fetch_keys(&cfg, &fetcher).await?;
        for skipped in &keys.skipped {
            tracing::warn!(validator = %cfg.name, "JWKS key not used: {skipped}");
        }
        Ok(Arc::new(Validator {
            cfg,
            keys: ArcSwap::from_pointee(keys),
            fetcher,
            wake: Arc::new(tokio::sync::Notify::new()),
            kid_refetch: tokio::sync::Mutex::new(None),
            failing: AtomicBool::new(false),
            metrics,
        }))
    }

    /// The key ids in service.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.load().kids()
    }

    /// Refetches the JWKS; a failed or malformed fetch keeps the key set in service.
    pub async fn refresh(&self) -> Result<(), JwtError> {
        match fetch_keys(&self.cfg, &self.fetcher).await {
            Ok(keys) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(validator = %self.cfg.name, kids = ?keys.kids(), "JWKS fetched again");
                }
                self.keys.store(Arc::new(keys));
                Ok(())
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(validator = %self.cfg.name, "{e}; keeping the last good key set");
                }
                Err(e)
            }
        }
    }

    /// Refreshes every `refresh_interval_secs`, and at once when woken ([`Validator::wake`]),
    /// for as long as the validator is in use.
    pub fn spawn_refresh(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let wake = self.wake.clone();
        let every = self.cfg.refresh_interval;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = wake.notified() => {}
                }
                let Some(v) = weak.upgrade() else { return };
                let _ = v.refresh().await;
            }
        });
    }

    /// Asks the refresh task to refetch now (SIGHUP).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Judges the request's token. `thumbprint` is the SHA-256 of the verified client
    /// certificate, if the connection has one.
    pub async fn check(
        &self,
        headers: &http::HeaderMap,
        thumbprint: Option<&[u8; 32]>,
    ) -> Result<Verified, JwtError> {
        let verdict = self.judge(headers, thumbprint).await;
        self.metrics.record(match &verdict {
            Ok(_) => JwtResult::Success,
            Err(JwtError::Missing) => JwtResult::Missing,
            Err(JwtError::ClaimRefused(_)) => JwtResult::Forbidden,
            Err(_) => JwtResult::Invalid,
        });
        verdict
    }

    async fn judge(
        &self,
        headers: &http::HeaderMap,
        thumbprint: Option<&[u8; 32]>,
    ) -> Result<Verified, JwtError> {
        let token = token::extract(headers, &self.cfg.token_sources)?.ok_or(JwtError::Missing)?;
        match self.verify(&token, thumbprint) {
            Err(JwtError::UnknownKey(kid)) if self.refetch_for(&kid).await => {
                self.verify(&token, thumbprint)
            }
            other => other,
        }
    }

    /// After a token named a key the set lacks: refetches (at most once per 30 s, shared by
    /// the requests that wait) and says whether the key is there now.
    async fn refetch_for(&self, kid: &str) -> bool {
        let Ok(mut last) = tokio::time::timeout(UNKNOWN_KID_WAIT, self.kid_refetch.lock()).await
        else {
            return false;
        };
        if self.keys.load().has_kid(kid) {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_REFETCH) {
            return false;
        }
        *last = Some(Instant::now());
        let _ = tokio::time::timeout(UNKNOWN_KID_WAIT, self.refresh()).await;
        self.keys.load().has_kid(kid)
    }

    fn verify(&self, token: &str, thumbprint: Option<&[u8; 32]>) -> Result<Verified, JwtError> {
        shape::check(token)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| JwtError::Malformed(format!("the token is not a JWT: {e}")))?;
        if !self.cfg.algorithms.contains(&header.alg) {
            return Err(JwtError::Invalid(format!(
                "the token's alg {:?} is not accepted",
                header.alg
            )));
        }
        let keys = self.keys.load();
        let validation = self.validation(header.alg);
        let mut tried = false;
        for key in keys.candidates(header.kid.as_deref(), header.alg) {
            tried = true;
            match jsonwebtoken::decode::<Value>(token, key, &validation) {
                Ok(data) => return self.after_signature(&data.claims, thumbprint),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {}
                Err(e) => return Err(describe(&e, &self.cfg)),
            }
        }
        Err(match header.kid {
            _ if tried => JwtError::Invalid("the token's signature does not verify".into()),
            Some(kid) if !keys.has_kid(&kid) => JwtError::UnknownKey(kid),
            Some(kid) => JwtError::Invalid(format!(
                "the key {kid:?} cannot verify alg {:?}",
                header.alg
            )),
            None => JwtError::Invalid(format!(
                "no key of the issuer verifies alg {:?}",
                header.alg
            )),
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.cfg.clock_skew.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_issuer(&[&self.cfg.issuer]);
        let mut required = vec!["exp", "iss"];
        if self.cfg.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.cfg.audience);
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        v
    }

    fn after_signature(
        &self,
        claims: &Value,
        thumbprint: Option<&[u8; 32]>,
    ) -> Result<Verified, JwtError> {
        let now = jsonwebtoken::get_current_timestamp();
        claims::check_issued_at(claims, now, self.cfg.clock_skew.as_secs())?;
        claims::check_binding(claims, thumbprint, self.cfg.require_certificate_binding)?;
        claims::check_additional(claims, &self.cfg.additional_claims)?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
        Ok(Verified {
            sub: text("sub"),
            iss: text("iss"),
        })
    }
}

async fn fetch_keys(
    cfg: &JwtValidatorConfig,
    fetcher: &fetch::Fetcher,
) -> Result<KeySet, JwtError> {
    let bytes = fetcher.fetch().await.map_err(|why| load_error(cfg, &why))?;
    KeySet::parse(&bytes, &cfg.algorithms).map_err(|e| load_error(cfg, &e.to_string()))
}

fn load_error(cfg: &JwtValidatorConfig, why: &str) -> JwtError {
    JwtError::Jwks(format!(
        "jwt_validation.{}: JWKS {}: {why}",
        cfg.name, cfg.jwks
    ))
}

/// jsonwebtoken's verdict in words a client can act on.
fn describe(e: &jsonwebtoken::errors::Error, cfg: &JwtValidatorConfig) -> JwtError {
    let why = match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".to_string(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_string(),
        ErrorKind::InvalidIssuer => format!("the token's issuer is not {}", cfg.issuer),
        ErrorKind::InvalidAudience => "the token's audience is not accepted".to_string(),
        ErrorKind::MissingRequiredClaim(c) => format!("the token has no {c} claim"),
        ErrorKind::InvalidClaimFormat(c) => format!("the token's {c} claim is malformed"),
        ErrorKind::InvalidAlgorithm => "the token's alg does not fit the key".to_string(),
        _ => format!("the token is malformed: {e}"),
    };
    JwtError::Invalid(why)
}
