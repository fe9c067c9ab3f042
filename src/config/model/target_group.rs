//! The validated `[target_group.NAME]` section (SPEC §8): targets, the algorithm that picks one,
//! active health checks and TLS towards https targets.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct TargetGroupConfig {
    pub name: String,
    pub targets: Vec<TargetUrl>,
    pub algorithm: Algorithm,
    pub health_check: HealthCheckConfig,
    pub tls: TargetTls,
    /// Made from a listener's `backend = "URL"`: one target, no health checks.
    pub from_backend_shorthand: bool,
    /// How certgate speaks to the targets (ALB's protocol version).
    pub protocol_version: ProtocolVersion,
}

/// ALB's target-group protocol versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolVersion {
    /// HTTP/1.1 to the targets.
    #[default]
    Http1,
    /// HTTP/2: prior knowledge (h2c) to `http://` targets, ALPN h2 to `https://` ones.
    Http2,
    /// HTTP/2 carrying gRPC: trailers kept, failures answered as gRPC statuses.
    Grpc,
}

impl ProtocolVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::Http1 => "HTTP1",
            ProtocolVersion::Http2 => "HTTP2",
            ProtocolVersion::Grpc => "GRPC",
        }
    }

    pub fn is_h2(self) -> bool {
        self != ProtocolVersion::Http1
    }
}

/// ALB's default health check for gRPC groups is its own path; certgate asks the standard
/// gRPC health service instead, which answers `SERVING` with status 0.
pub const GRPC_HEALTH_PATH: &str = "/grpc.health.v1.Health/Check";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    LeastOutstandingRequests,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::LeastOutstandingRequests => "least_outstanding_requests",
        }
    }
}

/// A target's origin: `http://host:port` or `https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// Normalised, as logged: scheme and authority.
    pub url: String,
    pub https: bool,
    pub authority: http::uri::Authority,
}

impl TargetUrl {
    pub fn parse(value: &str) -> Result<TargetUrl, String> {
        let uri: http::Uri = value
            .parse()
            .map_err(|e| format!("{value:?} is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("{value:?} must start with http:// or https://")),
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("{value:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("{value:?}: user information is not supported"));
        }
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
            return Err(format!(
                "{value:?}: give only scheme, host and port (no path)"
            ));
        }
        let scheme = if https { "https" } else { "http" };
        Ok(TargetUrl {
            url: format!("{scheme}://{authority}"),
            https,
            authority,
        })
    }
}

/// TLS towards https targets.
#[derive(Debug, Clone, Default)]
pub struct TargetTls {
    /// `None`: the system's root certificates.
    pub ca_bundle: Option<PathBuf>,
    /// Certificate chain and key certgate presents to targets that ask for one.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

/// Active health checks; ALB's defaults.
#[derive(Debug, Clone)]
pub struct HealthCheckConfig {
    pub enabled: bool,
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub matcher: Matcher,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            enabled: true,
            path: "/".to_string(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            matcher: Matcher(vec![200..=200]),
        }
    }
}

/// Status codes a health check accepts: `"200"`, `"200,202"`, `"200-399"` (ALB's syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher(Vec<RangeInclusive<u16>>);

impl Matcher {
    pub fn parse(s: &str) -> Result<Matcher, String> {
        Self::parse_codes(s, 200..=599, "an HTTP status code")
    }

    /// gRPC status codes (`"0"`, `"0-99"`), as ALB's GrpcCode matcher.
    pub fn parse_grpc(s: &str) -> Result<Matcher, String> {
        Self::parse_codes(s, 0..=99, "a gRPC status code")
    }

    fn parse_codes(s: &str, allowed: RangeInclusive<u16>, what: &str) -> Result<Matcher, String> {
        let code = |c: &str| -> Result<u16, String> {
            match c.trim().parse::<u16>() {
                Ok(n) if allowed.contains(&n) => Ok(n),
                _ => Err(format!(
                    "{s:?}: {:?} is not {what} from {} to {}",
                    c.trim(),
                    allowed.start(),
                    allowed.end()
                )),
            }
        };
        let mut out = Vec::new();
        for part in s.split(',') {
            let range = match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (code(a)?, code(b)?);
                    if a > b {
                        return Err(format!("{s:?}: range {a}-{b} is empty"));
                    }
                    a..=b
                }
                None => {
                    let c = code(part)?;
                    c..=c
                }
            };
            out.push(range);
        }
        Ok(Matcher(out))
    }

    pub fn accepts(&self, status: u16) -> bool {
        self.0.iter().any(|r| r.contains(&status))
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}
