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
    #[serde(default)]
    pub jwt_validation: BTreeMap<String, JwtValidationFile>,
    pub admin: Option<AdminFile>,
}

#[derive(Debug, Default, Deserialize)]
pub struct JwtValidationFile {
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    pub jwks_ca_bundle: Option<String>,
    #[serde(default)]
    pub audience: Vec<String>,
    pub algorithms: Option<Vec<String>>,
    pub token_sources: Option<Vec<String>>,
    pub clock_skew_secs: Option<u64>,
    pub refresh_interval_secs: Option<u64>,
    pub require_certificate_binding: Option<bool>,
    #[serde(default)]
    pub additional_claims: Vec<AdditionalClaimFile>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AdditionalClaimFile {
    pub name: Option<String>,
    pub format: Option<String>,
    #[serde(default)]
    pub values: Vec<String>,
}

/// `[admin]`: the plain-HTTP endpoint for probes, metrics and trust-store state.
#[derive(Debug, Default, Deserialize)]
pub struct AdminFile {
    pub bind: Option<String>,
    /// After SIGTERM, seconds `/readyz` answers 503 before the listeners close.
    pub shutdown_delay_secs: Option<u64>,
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
    pub default_action: Option<DefaultActionFile>,
    #[serde(default)]
    pub rule: Vec<RuleFile>,
    /// `HTTPS` (default) or `HTTP`: a plain listener, without TLS.
    pub protocol: Option<String>,
    pub mutual_authentication: Option<MutualAuthFile>,
    pub headers: Option<HeadersFile>,
    pub client_identity: Option<ClientIdentityFile>,
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
    /// ALB's `routing.http.drop_invalid_header_fields.enabled`: remove request headers whose
    /// names are not letters, digits and `-` before forwarding.
    #[serde(default)]
    pub drop_invalid_header_fields: bool,
    /// A `[jwt_validation.NAME]` every request of the listener must pass.
    pub authenticate_jwt: Option<String>,
    pub response_headers: Option<ResponseHeadersFile>,
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
    /// Staple an OCSP response to every server certificate.
    #[serde(default)]
    pub ocsp_stapling: bool,
    /// The OCSP responder asked for the staples instead of each certificate's AIA responder.
    pub ocsp_responder_url: Option<String>,
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
    /// Verify only: `false` admits a client that sends no certificate (RabbitMQ's name).
    pub fail_if_no_peer_cert: Option<bool>,
}

/// `[listener.client_identity]`: RabbitMQ's `ssl_cert_login_*` settings.
#[derive(Debug, Default, Deserialize)]
pub struct ClientIdentityFile {
    pub from: Option<IdentityFromFile>,
    pub san_type: Option<SanTypeFile>,
    /// Signed, so that a negative index is refused by validation with its key path.
    pub san_index: Option<i64>,
    pub header_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityFromFile {
    DistinguishedName,
    CommonName,
    SubjectAlternativeName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SanTypeFile {
    Dns,
    Ip,
    Email,
    Uri,
    OtherName,
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
    /// Adds RFC 9440 `Client-Cert` and `Client-Cert-Chain`.
    pub client_cert_rfc9440: Option<bool>,
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
    /// `"off"` (default), `"soft_fail"` or `"hard_fail"`: OCSP checks of client leaves.
    pub ocsp: Option<String>,
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

/// `[connection_log]` and `[access_log]`: where the lines go, their format, and the optional
/// delivery to S3 the way ALB delivers its logs.
#[derive(Debug, Default, Deserialize)]
pub struct LogFile {
    pub path: Option<String>,
    pub format: Option<LogFormatFile>,
    /// `s3://bucket[/prefix]`.
    pub s3: Option<String>,
    pub s3_interval_secs: Option<u64>,
    pub account_id: Option<String>,
    pub load_balancer_name: Option<String>,
    pub s3_spool_dir: Option<String>,
    pub s3_spool_max_bytes: Option<u64>,
}

pub type ConnectionLogFile = LogFile;
pub type AccessLogFile = LogFile;

#[derive(Debug, Deserialize)]
pub struct RuleFile {
    pub host: Option<String>,
    pub path: Option<String>,
    pub client_identity: Option<Vec<String>>,
    pub client_issuer: Option<Vec<String>>,
    pub target_group: Option<String>,
    pub forward: Option<Vec<WeightedGroupFile>>,
    pub fixed_response: Option<FixedResponseFile>,
    pub redirect: Option<RedirectFile>,
    /// A `[jwt_validation.NAME]` the request must pass before the action runs.
    pub authenticate_jwt: Option<String>,
}

impl RuleFile {
    pub fn action(&self) -> ActionFields<'_> {
        ActionFields {
            target_group: self.target_group.as_ref(),
            forward: self.forward.as_deref(),
            fixed_response: self.fixed_response.as_ref(),
            redirect: self.redirect.as_ref(),
        }
    }
}

/// `[listener.default_action]`: what runs when no rule matches, one action as a rule has.
#[derive(Debug, Deserialize)]
pub struct DefaultActionFile {
    pub target_group: Option<String>,
    pub forward: Option<Vec<WeightedGroupFile>>,
    pub fixed_response: Option<FixedResponseFile>,
    pub redirect: Option<RedirectFile>,
}

impl DefaultActionFile {
    pub fn action(&self) -> ActionFields<'_> {
        ActionFields {
            target_group: self.target_group.as_ref(),
            forward: self.forward.as_deref(),
            fixed_response: self.fixed_response.as_ref(),
            redirect: self.redirect.as_ref(),
        }
    }
}

/// The action keys of a rule or a default action, as given.
#[derive(Debug, Clone, Copy)]
pub struct ActionFields<'a> {
    pub target_group: Option<&'a String>,
    pub forward: Option<&'a [WeightedGroupFile]>,
    pub fixed_response: Option<&'a FixedResponseFile>,
    pub redirect: Option<&'a RedirectFile>,
}

#[derive(Debug, Deserialize)]
pub struct WeightedGroupFile {
    pub target_group: Option<String>,
    pub weight: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct RedirectFile {
    pub protocol: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub path: Option<String>,
    pub query: Option<String>,
    pub status_code: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct FixedResponseFile {
    pub status_code: Option<i64>,
    pub content_type: Option<String>,
    pub message_body: Option<String>,
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
    /// `"HTTP1"` (default), `"HTTP2"` or `"GRPC"`.
    pub protocol_version: Option<String>,
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

/// `[listener.response_headers]`: ALB's header modification attributes.
#[derive(Debug, Default, Deserialize)]
pub struct ResponseHeadersFile {
    pub strict_transport_security: Option<String>,
    pub content_security_policy: Option<String>,
    pub x_content_type_options: Option<String>,
    pub x_frame_options: Option<String>,
    pub access_control_allow_origin: Option<String>,
    pub access_control_allow_methods: Option<String>,
    pub access_control_allow_headers: Option<String>,
    pub access_control_allow_credentials: Option<String>,
    pub access_control_expose_headers: Option<String>,
    pub access_control_max_age: Option<String>,
    /// `false` removes the `Server` header of responses.
    pub server_enabled: Option<bool>,
}
