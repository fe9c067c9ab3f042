//! The validated `[[listener]]` section: bind address, server certificate, mutual authentication,
//! the header names sent to targets, timeouts and request limits.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;

use super::routes::Routes;
use super::server_cert::{OcspStapling, ServerCertificate, SslPolicy};
use crate::x509::IdentityField;

pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// ALB's default connection idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// ALB's default idle timeout: a backend that sends nothing for this long gets a 504.
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_HEADER_FIELD_BYTES: usize = 16 * 1024;
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub name: String,
    pub bind: SocketAddr,
    pub protocol: ListenerProtocol,
    /// The first is served when no SNI selects another; empty only on a plain HTTP listener.
    pub certificates: Vec<ServerCertificate>,
    pub routes: Routes,
    pub mutual_authentication: MutualAuth,
    pub headers: HeaderNames,
    /// `[listener.client_identity]`; verify listeners only.
    pub client_identity: Option<ClientIdentityConfig>,
    pub timeouts: Timeouts,
    pub limits: RequestLimits,
    pub max_connections: usize,
    pub ssl_policy: &'static SslPolicy,
    /// How often the certificate sources are checked for a new version.
    pub certificate_refresh_interval: Duration,
    /// OCSP stapling of the server certificates; none when `ocsp_stapling` is off.
    pub ocsp_stapling: Option<OcspStapling>,
    /// Request headers whose names are not letters, digits and `-` are removed (ALB's
    /// `routing.http.drop_invalid_header_fields.enabled`).
    pub drop_invalid_header_fields: bool,
    /// A `[jwt_validation.NAME]` every request must pass (SPEC §10).
    pub authenticate_jwt: Option<String>,
    pub response_headers: ResponseHeaders,
}

/// Names the proxy sets or frames messages with; an mTLS header renamed to one would clash.
pub const RESERVED_HEADER_NAMES: [&str; 7] = [
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "connection",
    "content-length",
    "transfer-encoding",
];

/// What a listener speaks to its clients (`protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListenerProtocol {
    /// TLS, with the listener's certificates and mutual-TLS mode.
    #[default]
    Https,
    /// Plain HTTP/1.1, typically to redirect to HTTPS.
    Http,
}

impl ListenerProtocol {
    /// `https` or `http`, as X-Forwarded-Proto and `#{protocol}` name it.
    pub fn scheme(self) -> &'static str {
        match self {
            ListenerProtocol::Https => "https",
            ListenerProtocol::Http => "http",
        }
    }
}

/// `[listener.response_headers]`: headers set on every response (replacing the target's), and
/// whether the `Server` header is removed.
#[derive(Debug, Clone, Default)]
pub struct ResponseHeaders {
    pub set: Vec<(HeaderName, http::HeaderValue)>,
    pub remove_server: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Off,
    Passthrough,
    Verify,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Passthrough => "passthrough",
            Mode::Verify => "verify",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MutualAuth {
    pub mode: Mode,
    /// Set exactly when `mode` is verify.
    pub trust_store: Option<String>,
    pub ignore_client_certificate_expiry: bool,
    pub advertise_trust_store_ca_names: bool,
    /// Verify mode: a client without a certificate is refused (true, the default) or admitted
    /// without identity or mTLS headers (false). A bad certificate is refused either way.
    pub fail_if_no_peer_cert: bool,
}

/// Who the client is, read from its verified certificate.
#[derive(Debug, Clone)]
pub struct ClientIdentityConfig {
    pub field: IdentityField,
    /// Sent to targets with the identity; stripped from clients like every owned header.
    pub header: Option<HeaderName>,
}

impl ListenerConfig {
    /// Every header name a client must never be able to send to this listener's targets.
    pub fn strip_set(&self) -> Vec<HeaderName> {
        let mut out = self.headers.strip_set();
        if let Some(h) = self.client_identity.as_ref().and_then(|c| c.header.clone()) {
            if !out.contains(&h) {
                out.push(h);
            }
        }
        out
    }
}

/// The header names a listener sends (after renames). All of them, and ALB's default names, are
/// stripped from client requests in every mode.
#[derive(Debug, Clone)]
pub struct HeaderNames {
    pub clientcert: HeaderName,
    pub serial_number: HeaderName,
    pub issuer: HeaderName,
    pub subject: HeaderName,
    pub validity: HeaderName,
    pub leaf: HeaderName,
    pub tls_version: HeaderName,
    pub tls_cipher_suite: HeaderName,
    pub send_tls_version_and_cipher_suite: bool,
    /// RFC 9440 `Client-Cert` and `Client-Cert-Chain` (`client_cert_rfc9440`).
    pub send_client_cert_rfc9440: bool,
}

impl HeaderNames {
    pub fn alb_defaults() -> Self {
        HeaderNames {
            clientcert: HeaderName::from_static("x-amzn-mtls-clientcert"),
            serial_number: HeaderName::from_static("x-amzn-mtls-clientcert-serial-number"),
            issuer: HeaderName::from_static("x-amzn-mtls-clientcert-issuer"),
            subject: HeaderName::from_static("x-amzn-mtls-clientcert-subject"),
            validity: HeaderName::from_static("x-amzn-mtls-clientcert-validity"),
            leaf: HeaderName::from_static("x-amzn-mtls-clientcert-leaf"),
            tls_version: HeaderName::from_static("x-amzn-tls-version"),
            tls_cipher_suite: HeaderName::from_static("x-amzn-tls-cipher-suite"),
            send_tls_version_and_cipher_suite: false,
            send_client_cert_rfc9440: false,
        }
    }

    /// The eight names, in the order of ALB's attributes (`[listener.headers]` keys).
    pub(in crate::config) fn all(&self) -> [&HeaderName; 8] {
        [
            &self.clientcert,
            &self.serial_number,
            &self.issuer,
            &self.subject,
            &self.validity,
            &self.leaf,
            &self.tls_version,
            &self.tls_cipher_suite,
        ]
    }

    /// Every name a client must never be able to send: the configured names, ALB's defaults and
    /// RFC 9440's (whether this listener sends them or not: a backend may trust them).
    pub fn strip_set(&self) -> Vec<HeaderName> {
        let defaults = HeaderNames::alb_defaults();
        let rfc9440 = [RFC9440_CLIENT_CERT, RFC9440_CLIENT_CERT_CHAIN];
        let mut out: Vec<HeaderName> = Vec::new();
        for name in self.all().into_iter().chain(defaults.all()).chain(&rfc9440) {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }
}

/// RFC 9440's header names.
pub const RFC9440_CLIENT_CERT: HeaderName = HeaderName::from_static("client-cert");
pub const RFC9440_CLIENT_CERT_CHAIN: HeaderName = HeaderName::from_static("client-cert-chain");

/// Request size limits, ALB's quotas by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    pub max_header_field_bytes: usize,
    pub max_header_bytes: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub handshake: Duration,
    /// Also the limit for a client to send a request's headers.
    pub idle: Duration,
    pub backend_connect: Duration,
    pub backend_response: Duration,
}
