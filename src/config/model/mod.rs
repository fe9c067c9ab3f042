//! The validated configuration the proxy runs on. Every choice the file leaves open is decided
//! here, once, so the data path never looks at an `Option` that validation already settled.
//! `Config` and the top-level sections ([s3], [connection_log], [access_log]) are here; the
//! listener, trust-store, target-group and route sections have a file each.

mod actions;
mod jwt;
mod listener;
mod routes;
mod server_cert;
mod target_group;
mod trust_store;

pub use actions::*;
pub use jwt::*;
pub use listener::*;
pub use routes::*;
pub use server_cert::*;
pub use target_group::*;
pub use trust_store::*;

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Config {
    pub listeners: Vec<ListenerConfig>,
    pub trust_stores: BTreeMap<String, TrustStoreConfig>,
    /// Settings for S3 sources; credentials always come from the standard AWS chain.
    pub s3: S3Settings,
    /// Declared groups and the one-target groups of `backend = "URL"` listeners.
    pub target_groups: BTreeMap<String, TargetGroupConfig>,
    pub connection_log: LogConfig,
    /// None when `[access_log]` is absent (or has neither `path` nor `s3`).
    pub access_log: Option<LogConfig>,
    /// `[jwt_validation.NAME]`, by name.
    pub jwt_validators: BTreeMap<String, JwtValidatorConfig>,
    /// The admin endpoint; none when `[admin]` is absent.
    pub admin: Option<AdminConfig>,
}

/// How long `/readyz` answers 503 after SIGTERM before the listeners close, by default.
pub const DEFAULT_SHUTDOWN_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub bind: std::net::SocketAddr,
    pub shutdown_delay: std::time::Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// For S3-compatible stores; `None` = AWS's endpoint for the region.
    pub endpoint_url: Option<String>,
    /// `None` = the region from the AWS environment/profile.
    pub region: Option<String>,
    pub force_path_style: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogDestination {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Alb,
}

/// `[connection_log]` or `[access_log]`.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The local copy; None when the log only goes to S3.
    pub destination: Option<LogDestination>,
    pub format: LogFormat,
    pub s3: Option<LogDelivery>,
}

/// A log delivered to S3 as ALB delivers its logs: gzip files of ALB lines under ALB's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDelivery {
    pub bucket: String,
    /// Key prefix without leading or trailing `/`; may be empty.
    pub prefix: String,
    pub interval: std::time::Duration,
    pub account_id: String,
    pub load_balancer_name: String,
    /// `[s3] region`, which ALB's key layout names.
    pub region: String,
    /// Where lines wait until uploaded (one subdirectory per log).
    pub spool_dir: PathBuf,
    /// Bytes the spool may take on disk; beyond it the oldest lines are dropped.
    pub spool_max_bytes: u64,
}

/// ALB's default delivery interval is 5 minutes.
pub const DEFAULT_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);
/// Spool cap by default: 1 GiB.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 1 << 30;
