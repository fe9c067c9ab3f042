//! The validated `[trust_store.NAME]` section: where the CA bundle and revocation lists come
//! from (files or S3 objects), how often they are re-read, and the chain limits they enforce.

use std::path::PathBuf;
use std::time::Duration;

/// ALB's quota: leaf plus intermediates, and the path from leaf to anchor, at most 4 certificates.
pub const DEFAULT_MAX_CHAIN_DEPTH: usize = 4;
/// ALB's quota on the size of one client certificate.
pub const DEFAULT_MAX_CLIENT_CERT_SIZE: usize = 16 * 1024;
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct TrustStoreConfig {
    pub name: String,
    pub ca_certificates_bundle: Source,
    pub revocation_lists: Vec<Source>,
    pub refresh_interval: Duration,
    pub limits: ChainLimits,
    pub revocation_lists_expired: ExpiredCrls,
    /// OCSP checks of client leaves (SPEC §13).
    pub ocsp: OcspMode,
}

impl TrustStoreConfig {
    /// A store of files named on the command line (`--ca-bundle`, `--crl`), with every other
    /// setting at its default.
    pub fn from_files(bundle: std::path::PathBuf, crls: Vec<std::path::PathBuf>) -> Self {
        TrustStoreConfig {
            name: "(command line)".to_string(),
            ca_certificates_bundle: Source::File(bundle),
            revocation_lists: crls.into_iter().map(Source::File).collect(),
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            limits: ChainLimits::default(),
            revocation_lists_expired: ExpiredCrls::Use,
            ocsp: OcspMode::Off,
        }
    }
}

/// `ocsp` of a trust store: whether leaves are checked with their OCSP responder, and what an
/// answer that cannot be had means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcspMode {
    #[default]
    Off,
    /// No believable answer: admitted (and logged).
    SoftFail,
    /// No believable answer: `ClientCertCrlProcessingError`.
    HardFail,
}

/// What a CRL past its nextUpdate means for the certificates it covers
/// (`revocation_lists_expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpiredCrls {
    /// Still used as it is (a warning at load): a late CRL publisher does not lock clients out.
    #[default]
    Use,
    /// The revocation status is unknown: `ClientCertCrlProcessingError`.
    Reject,
}

/// Where trust-store material comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// `s3://bucket/key`, optionally pinned with `?versionId=`.
    S3 {
        bucket: String,
        key: String,
        version_id: Option<String>,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::S3 {
                bucket,
                key,
                version_id: None,
            } => write!(f, "s3://{bucket}/{key}"),
            Source::S3 {
                bucket,
                key,
                version_id: Some(v),
            } => write!(f, "s3://{bucket}/{key}?versionId={v}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLimits {
    pub max_chain_depth: usize,
    pub max_client_certificate_size: usize,
}

impl Default for ChainLimits {
    fn default() -> Self {
        ChainLimits {
            max_chain_depth: DEFAULT_MAX_CHAIN_DEPTH,
            max_client_certificate_size: DEFAULT_MAX_CLIENT_CERT_SIZE,
        }
    }
}
