//! Configuration: the TOML file (`file`), the validated model the proxy runs on (`model/`), and
//! the conversion between them (`validate/`), which reports every problem with its key path.

pub mod file;
mod model;
mod validate;

pub use model::{
    AdminConfig, Algorithm, CertFacts, ChainLimits, ClaimCondition, ClaimFormat,
    ClientIdentityConfig, Config, ExpiredCrls, FixedResponse, HeaderNames, HealthCheckConfig,
    JwksSource, JwtAlgorithm, JwtValidatorConfig, KeyPassword, ListenerConfig, ListenerProtocol,
    LogConfig, LogDelivery, LogDestination, LogFormat, Matcher, Mode, MutualAuth, OcspMode,
    ProtocolVersion, Redirect, RequestFacts, RequestLimits, ResponseHeaders, Routes, Rule,
    RuleAction, S3Settings, ServerCertificate, Source, SslPolicy, TargetGroupConfig, TargetTls,
    TargetUrl, Timeouts, TokenSource, TrustStoreConfig, WeightedGroup,
    DEFAULT_BACKEND_CONNECT_TIMEOUT, DEFAULT_BACKEND_TIMEOUT, DEFAULT_CERTIFICATE_REFRESH_INTERVAL,
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CHAIN_DEPTH,
    DEFAULT_MAX_CLIENT_CERT_SIZE, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADER_FIELD_BYTES, DEFAULT_REFRESH_INTERVAL, DEFAULT_SHUTDOWN_DELAY,
    GRPC_HEALTH_PATH, RFC9440_CLIENT_CERT, RFC9440_CLIENT_CERT_CHAIN,
};
pub use validate::validate;

use std::path::{Path, PathBuf};

/// Why a configuration was refused. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {file} is not valid: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("config file {file} has {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "))]
    Invalid {
        file: PathBuf,
        problems: Vec<String>,
    },
}

/// Reads, parses and validates a config file. Relative paths inside it are resolved against the
/// directory the file is in, so the proxy behaves the same whatever directory it is started from.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    from_str(&text, path, &base)
}

/// Parses and validates config text; `file` is only used in messages.
pub fn from_str(text: &str, file: &Path, base_dir: &Path) -> Result<Config, ConfigError> {
    let mut unknown = Vec::new();
    let deserializer = toml::Deserializer::new(text);
    let mut on_unknown = |path: serde_ignored::Path<'_>| {
        unknown.push(format!("{}: unknown key", key_path(&path)));
    };
    let ignoring = serde_ignored::Deserializer::new(deserializer, &mut on_unknown);
    // A value of the wrong type stops the parse; name its key path, then toml's position.
    let parsed: file::FileConfig = serde_path_to_error::deserialize(ignoring).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        ConfigError::Parse {
            file: file.to_path_buf(),
            message: if path.is_empty() || path == "." {
                inner.trim_end().to_string()
            } else {
                format!("{path}: {}", inner.trim_end())
            },
        }
    })?;
    let problems = match validate(parsed, base_dir) {
        Ok(cfg) if unknown.is_empty() => return Ok(cfg),
        Ok(_) => unknown,
        Err(mut problems) => {
            unknown.append(&mut problems);
            unknown
        }
    };
    Err(ConfigError::Invalid {
        file: file.to_path_buf(),
        problems,
    })
}

/// `listener[0].mutual_authentication.mode` style, as validation messages use.
fn key_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        P::Map { parent, key } => {
            let p = key_path(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            key_path(parent)
        }
    }
}
