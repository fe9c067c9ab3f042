//! The validated `[jwt_validation.NAME]` sections (SPEC §10): who issues the tokens, where
//! the issuer's keys are published, and what a token must say to be let through.

use std::path::PathBuf;
use std::time::Duration;

pub use jsonwebtoken::Algorithm as JwtAlgorithm;

use super::Source;

/// Default of `clock_skew_secs`.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Default of `refresh_interval_secs`.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
/// The algorithms a validator accepts when `algorithms` is not set.
pub const DEFAULT_ALGORITHMS: [JwtAlgorithm; 4] = [
    JwtAlgorithm::RS256,
    JwtAlgorithm::PS256,
    JwtAlgorithm::ES256,
    JwtAlgorithm::ES384,
];
/// ALB's limit on `AdditionalClaims`.
pub const MAX_ADDITIONAL_CLAIMS: usize = 10;

#[derive(Debug, Clone)]
pub struct JwtValidatorConfig {
    pub name: String,
    /// `iss` must equal it.
    pub issuer: String,
    pub jwks: JwksSource,
    /// CA bundle for an https:// JWKS; the system roots when `None`.
    pub jwks_ca_bundle: Option<PathBuf>,
    /// `aud` must contain one of them; not checked when empty.
    pub audience: Vec<String>,
    /// Asymmetric algorithms only: `none` and HMAC are refused by validation.
    pub algorithms: Vec<JwtAlgorithm>,
    pub token_sources: Vec<TokenSource>,
    pub clock_skew: Duration,
    pub refresh_interval: Duration,
    /// RFC 8705: `cnf."x5t#S256"` must be the SHA-256 thumbprint of the client certificate.
    pub require_certificate_binding: bool,
    pub additional_claims: Vec<ClaimCondition>,
}

/// Where the issuer publishes its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// An `https://` (or, for tests and sidecars, `http://`) URL.
    Url(http::Uri),
    /// A file or an S3 object, as trust-store sources.
    Stored(Source),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::Url(u) => write!(f, "{u}"),
            JwksSource::Stored(s) => write!(f, "{s}"),
        }
    }
}

/// Where a request carries its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer TOKEN` (RFC 6750).
    Bearer,
    /// `Authorization: Basic base64(":TOKEN")`: an empty user name and the token as password,
    /// as `curl -u ":$TOKEN"` sends it.
    BasicPassword,
}

/// One of ALB's `AdditionalClaims`: the claim must hold at least one of `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimCondition {
    pub name: String,
    pub format: ClaimFormat,
    pub values: Vec<String>,
}

/// How a claim's value is read (ALB's three formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimFormat {
    /// A JSON string, compared whole.
    SingleString,
    /// A JSON string of space-separated values (as OAuth `scope`).
    SpaceSeparatedValues,
    /// A JSON array of strings.
    StringArray,
}

impl ClaimFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimFormat::SingleString => "single-string",
            ClaimFormat::SpaceSeparatedValues => "space-separated-values",
            ClaimFormat::StringArray => "string-array",
        }
    }
}
