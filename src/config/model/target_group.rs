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
}

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
        let code = |c: &str| -> Result<u16, String> {
            match c.trim().parse::<u16>() {
                Ok(n) if (200..=599).contains(&n) => Ok(n),
                _ => Err(format!(
                    "{s:?}: {:?} is not an HTTP status code from 200 to 599",
                    c.trim()
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
