//! A listener's server certificates (`certificate_chain`/`private_key`, or `certificates =
//! [...]` chosen by SNI), the password of an encrypted key, and the TLS policy it serves.

use std::path::PathBuf;
use std::time::Duration;

use super::Source;
pub use crate::crypto::policy::SslPolicy;

/// How often a listener checks its certificate sources for a new version (as EMQX does).
pub const DEFAULT_CERTIFICATE_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// One certificate chain and its key, from files or S3 objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCertificate {
    /// Where it is in the config, for messages: `certificates[1]`, or empty for the
    /// one-certificate form.
    pub label: String,
    pub certificate_chain: Source,
    pub private_key: Source,
    /// Set when the key is a PKCS#8 `ENCRYPTED PRIVATE KEY`.
    pub password: Option<KeyPassword>,
}

/// Where the password of an encrypted private key is read from (at every load, never kept in
/// the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPassword {
    /// `private_key_password_file`: the file's content, one trailing newline removed.
    File(PathBuf),
    /// `private_key_password_env`: the environment variable of that name.
    Env(String),
}

impl std::fmt::Display for KeyPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPassword::File(p) => write!(f, "private_key_password_file {}", p.display()),
            KeyPassword::Env(v) => write!(f, "private_key_password_env {v}"),
        }
    }
}

/// `ocsp_stapling = true`: every server certificate is served with a current `good` OCSP
/// response from its responder (SPEC §13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspStapling {
    /// `ocsp_responder_url`: asked instead of the responder in each certificate's AIA.
    pub responder_url: Option<String>,
}
