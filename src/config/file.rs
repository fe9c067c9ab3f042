//! The TOML file as written by users: serde types only. Nothing here is trusted or defaulted;
//! `validate/` turns it into the validated model (`model/`) the proxy runs on. Unknown keys are
//! not refused by serde (that would stop at the first one); `config::from_str` collects them all.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct FileConfig {
    #[serde(default)]
    pub listener: Vec<ListenerFile>,
    #[serde(default)]
    pub trust_store: BTreeMap<String, TrustStoreFile>,
    pub s3: Option<S3File>,
    #[serde(default)]
    pub target_group: BTreeMap<String, TargetGroupFile>,
    pub connection_log: Option<ConnectionLogFile>,
    pub access_log: Option<AccessLogFile>,
}

#[derive(Debug, Deserialize)]
pub struct ListenerFile {
    pub name: Option<String>,
    pub bind: Option<String>,
    pub certificate_chain: Option<String>,
    pub private_key: Option<String>,
    /// One-target shorthand for a target group.
    pub backend: Option<String>,
    pub default_target_group: Option<String>,
    #[serde(default)]
    pub rule: Vec<RuleFile>,
    pub mutual_authentication: Option<MutualAuthFile>,
    pub headers: Option<HeadersFile>,
    /// Seconds a client has to complete the TLS handshake.
    pub handshake_timeout_secs: Option<u64>,
    /// Seconds a client connection may stay unused before it is closed: HTTP/1.1, no bytes either
    /// way; HTTP/2, no request open, started or ended.
    pub idle_timeout_secs: Option<u64>,
    /// Largest single request header field, name and value (ALB: 16 KB).
    pub max_request_header_field_bytes: Option<usize>,
    /// Largest request header section in total (ALB: 64 KB).
    pub max_request_header_bytes: Option<usize>,
    /// Open client connections at most; further ones are closed at once and logged.
    pub max_connections: Option<usize>,
    /// Seconds to establish the TCP connection to the backend.
    pub backend_connect_timeout_secs: Option<u64>,
    /// Seconds the backend has to send its response headers.
    pub backend_timeout_secs: Option<u64>,
    /// ALB security policy name (protocols, cipher suites, key-exchange groups).
    pub ssl_policy: Option<String>,
    /// Several certificates chosen by SNI, instead of `certificate_chain`/`private_key`.
    pub certificates: Option<Vec<CertificateFile>>,
    /// Password of an encrypted `private_key`: a file holding it, or an environment variable.
    pub private_key_password_file: Option<String>,
    pub private_key_password_env: Option<String>,
    /// Seconds between checks of the certificate files / s3 objects for a new version.
    pub refresh_interval_secs: Option<u64>,
}

/// One entry of a listener's `certificates = [...]`.
#[derive(Debug, Deserialize)]
pub struct CertificateFile {
    pub certificate_chain: Option<String>,
    pub private_key: Option<String>,
    pub private_key_password_file: Option<String>,
    pub private_key_password_env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeFile {
    Off,
    Passthrough,
    Verify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Default, Deserialize)]
pub struct MutualAuthFile {
    pub mode: Option<ModeFile>,
    pub trust_store: Option<String>,
    pub ignore_client_certificate_expiry: Option<bool>,
    pub advertise_trust_store_ca_names: Option<OnOff>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HeadersFile {
    pub x_amzn_mtls_clientcert: Option<String>,
    pub x_amzn_mtls_clientcert_serial_number: Option<String>,
    pub x_amzn_mtls_clientcert_issuer: Option<String>,
    pub x_amzn_mtls_clientcert_subject: Option<String>,
    pub x_amzn_mtls_clientcert_validity: Option<String>,
    pub x_amzn_mtls_clientcert_leaf: Option<String>,
    pub x_amzn_tls_version: Option<String>,
    pub x_amzn_tls_cipher_suite: Option<String>,
    pub tls_version_and_cipher_suite: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct TrustStoreFile {
    pub ca_certificates_bundle: Option<String>,
    #[serde(default)]
    pub revocation_lists: Vec<String>,
    pub refresh_interval_secs: Option<u64>,
    /// Longest accepted chain, leaf and trust anchor included (ALB: 4).
    pub max_chain_depth: Option<usize>,
    /// Largest accepted client certificate in bytes of DER (ALB: 16 KiB).
    pub max_client_certificate_size: Option<usize>,
    /// `"use"` (default) or `"reject"`: what a CRL past its nextUpdate means.
    pub revocation_lists_expired: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct S3File {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub force_path_style: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatFile {
    Json,
    Alb,
}

#[derive(Debug, Default, Deserialize)]
pub struct ConnectionLogFile {
    pub path: Option<String>,
    pub format: Option<LogFormatFile>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AccessLogFile {
    pub path: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RuleFile {
    pub host: Option<String>,
    pub path: Option<String>,
    pub target_group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmFile {
    RoundRobin,
    LeastOutstandingRequests,
}

#[derive(Debug, Default, Deserialize)]
pub struct TargetGroupFile {
    #[serde(default)]
    pub targets: Vec<String>,
    pub algorithm: Option<AlgorithmFile>,
    pub health_check: Option<HealthCheckFile>,
    /// CA bundle for https targets; the system roots when absent.
    pub ca_bundle: Option<String>,
    /// certgate's own certificate and key for mTLS to https targets.
    pub client_certificate: Option<String>,
    pub client_private_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HealthCheckFile {
    pub enabled: Option<bool>,
    pub path: Option<String>,
    pub interval_secs: Option<u64>,
    pub timeout_secs: Option<u64>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
    pub matcher: Option<String>,
}
