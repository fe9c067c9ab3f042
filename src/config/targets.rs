//! Target groups, health checks and listener rules (SPEC §8): the validated model and the
//! checks `certgate check` runs on it (unknown groups, rules that can never match, duplicate
//! targets, bad matchers).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use super::file::{AlgorithmFile, HealthCheckFile, ListenerFile, TargetGroupFile};
use super::runtime::{bounded, existing_file, Problems};
use crate::wildcard::{strip_port, Pattern};

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

/// TLS towards https targets.
#[derive(Debug, Clone, Default)]
pub struct TargetTls {
    /// `None`: the system's root certificates.
    pub ca_bundle: Option<PathBuf>,
    /// Certificate chain and key certgate presents to targets that ask for one.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

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

/// One `[[listener.rule]]`: its conditions and where matching requests go.
#[derive(Debug, Clone)]
pub struct Rule {
    pub host: Option<Pattern>,
    pub path: Option<Pattern>,
    pub target_group: String,
}

impl Rule {
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(h) = &self.host {
            match host {
                Some(host) if h.matches(strip_port(host)) => {}
                _ => return false,
            }
        }
        self.path.as_ref().is_none_or(|p| p.matches(path))
    }

    /// Whether this rule matches every request `later` matches, so that `later` never runs.
    pub fn shadows(&self, later: &Rule) -> bool {
        let part = |a: &Option<Pattern>, b: &Option<Pattern>| match (a, b) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a.covers(b),
        };
        part(&self.host, &later.host) && part(&self.path, &later.path)
    }
}

/// Where a listener sends requests: its rules in order, then its default group.
#[derive(Debug, Clone)]
pub struct Routes {
    pub rules: Vec<Rule>,
    pub default_target_group: String,
}

pub(super) fn target_groups(
    groups: &BTreeMap<String, TargetGroupFile>,
    base: &std::path::Path,
    p: &mut Problems,
) -> BTreeMap<String, TargetGroupConfig> {
    let mut out = BTreeMap::new();
    for (name, g) in groups {
        let key = format!("target_group.{name}");
        if name.is_empty() || name.contains('/') {
            p.push(
                &key,
                "a target group name must be non-empty and without \"/\"",
            );
        }
        let mut targets: Vec<TargetUrl> = Vec::new();
        for (i, t) in g.targets.iter().enumerate() {
            match TargetUrl::parse(t) {
                Ok(u) if targets.contains(&u) => p.push(
                    &format!("{key}.targets[{i}]"),
                    format!("{} is listed twice", u.url),
                ),
                Ok(u) => targets.push(u),
                Err(why) => p.push(&format!("{key}.targets[{i}]"), why),
            }
        }
        let health_check = health_check(&key, g.health_check.as_ref(), p);
        let ca_bundle = g
            .ca_bundle
            .as_deref()
            .map(|c| existing_file(base, &format!("{key}.ca_bundle"), c, p));
        let client_identity = match (&g.client_certificate, &g.client_private_key) {
            (Some(c), Some(k)) => Some((
                existing_file(base, &format!("{key}.client_certificate"), c, p),
                existing_file(base, &format!("{key}.client_private_key"), k, p),
            )),
            (None, None) => None,
            (Some(_), None) => {
                p.push(
                    &format!("{key}.client_private_key"),
                    "is required with client_certificate",
                );
                None
            }
            (None, Some(_)) => {
                p.push(
                    &format!("{key}.client_certificate"),
                    "is required with client_private_key",
                );
                None
            }
        };
        if (ca_bundle.is_some() || client_identity.is_some()) && !targets.iter().any(|t| t.https) {
            p.push(
                &key,
                "ca_bundle / client_certificate apply to https:// targets, and this group has none",
            );
        }
        out.insert(
            name.clone(),
            TargetGroupConfig {
                name: name.clone(),
                targets,
                algorithm: match g.algorithm.unwrap_or(AlgorithmFile::RoundRobin) {
                    AlgorithmFile::RoundRobin => Algorithm::RoundRobin,
                    AlgorithmFile::LeastOutstandingRequests => Algorithm::LeastOutstandingRequests,
                },
                health_check,
                tls: TargetTls {
                    ca_bundle,
                    client_identity,
                },
                from_backend_shorthand: false,
            },
        );
    }
    out
}

fn health_check(key: &str, h: Option<&HealthCheckFile>, p: &mut Problems) -> HealthCheckConfig {
    let d = HealthCheckConfig::default();
    let Some(h) = h else {
        return d;
    };
    let key = format!("{key}.health_check");
    let mut int = |k: &str, v: Option<u64>, default: u64, range: RangeInclusive<u64>| {
        bounded(&format!("{key}.{k}"), v, default, range, p)
    };
    let interval = int(
        "interval_secs",
        h.interval_secs,
        d.interval.as_secs(),
        1..=300,
    );
    let timeout = int("timeout_secs", h.timeout_secs, d.timeout.as_secs(), 1..=120);
    let healthy = int(
        "healthy_threshold",
        h.healthy_threshold.map(u64::from),
        u64::from(d.healthy_threshold),
        1..=10,
    );
    let unhealthy = int(
        "unhealthy_threshold",
        h.unhealthy_threshold.map(u64::from),
        u64::from(d.unhealthy_threshold),
        1..=10,
    );
    let timeout = match h.timeout_secs {
        Some(t) if t > interval => {
            p.push(
                &format!("{key}.timeout_secs"),
                format!("must not exceed interval_secs ({interval})"),
            );
            t
        }
        Some(t) => t,
        // The default, shortened to fit a short interval.
        None => timeout.min(interval),
    };
    let path = match h.path.as_deref() {
        None => d.path.clone(),
        Some(path) if path.starts_with('/') && path.parse::<http::uri::PathAndQuery>().is_ok() => {
            path.to_string()
        }
        Some(path) => {
            p.push(
                &format!("{key}.path"),
                format!("{path:?} is not a request path starting with \"/\""),
            );
            d.path.clone()
        }
    };
    let matcher = match h.matcher.as_deref() {
        None => d.matcher.clone(),
        Some(m) => Matcher::parse(m).unwrap_or_else(|why| {
            p.push(&format!("{key}.matcher"), why);
            d.matcher.clone()
        }),
    };
    HealthCheckConfig {
        enabled: h.enabled.unwrap_or(true),
        path,
        interval: Duration::from_secs(interval),
        timeout: Duration::from_secs(timeout),
        healthy_threshold: healthy as u32,
        unhealthy_threshold: unhealthy as u32,
        matcher,
    }
}

/// A listener's routes. `backend = "URL"` becomes a one-target group named `LISTENER/backend`
/// (added to `groups`).
pub(super) fn routes(
    key: &str,
    listener: &str,
    l: &ListenerFile,
    groups: &mut BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Option<Routes> {
    let default = match (&l.backend, &l.default_target_group) {
        (Some(_), Some(_)) => {
            p.push(
                &format!("{key}.backend"),
                "give either backend or default_target_group, not both",
            );
            None
        }
        (None, None) => {
            p.push(
                &format!("{key}.default_target_group"),
                "is required (or the one-target shorthand backend = \"http://host:port\")",
            );
            None
        }
        (Some(url), None) => match TargetUrl::parse(url) {
            Ok(u) => {
                let name = format!("{listener}/backend");
                groups.insert(
                    name.clone(),
                    TargetGroupConfig {
                        name: name.clone(),
                        targets: vec![u],
                        algorithm: Algorithm::RoundRobin,
                        health_check: HealthCheckConfig {
                            enabled: false,
                            ..HealthCheckConfig::default()
                        },
                        tls: TargetTls::default(),
                        from_backend_shorthand: true,
                    },
                );
                Some(name)
            }
            Err(why) => {
                p.push(&format!("{key}.backend"), why);
                None
            }
        },
        (None, Some(g)) => {
            if !groups.contains_key(g) {
                p.push(
                    &format!("{key}.default_target_group"),
                    unknown_group(g, groups),
                );
            }
            Some(g.clone())
        }
    };
    let mut rules: Vec<(usize, Rule)> = Vec::new();
    for (i, r) in l.rule.iter().enumerate() {
        let rkey = format!("{key}.rule[{i}]");
        let host = r.host.as_deref().and_then(|h| {
            Pattern::host(h)
                .map_err(|why| p.push(&format!("{rkey}.host"), why))
                .ok()
        });
        let path = r.path.as_deref().and_then(|x| {
            Pattern::path(x)
                .map_err(|why| p.push(&format!("{rkey}.path"), why))
                .ok()
        });
        if r.host.is_none() && r.path.is_none() {
            p.push(
                &rkey,
                "a rule needs a host or a path condition (the default group takes the rest)",
            );
        }
        let Some(group) = &r.target_group else {
            p.push(&format!("{rkey}.target_group"), "is required");
            continue;
        };
        if !groups.contains_key(group) {
            p.push(
                &format!("{rkey}.target_group"),
                unknown_group(group, groups),
            );
        }
        if (r.host.is_some() && host.is_none()) || (r.path.is_some() && path.is_none()) {
            continue;
        }
        let rule = Rule {
            host,
            path,
            target_group: group.clone(),
        };
        if let Some((j, _)) = rules.iter().find(|(_, earlier)| earlier.shadows(&rule)) {
            p.push(
                &rkey,
                format!(
                    "can never match: every request it matches is taken by rule[{j}] before it"
                ),
            );
        }
        rules.push((i, rule));
    }
    Some(Routes {
        rules: rules.into_iter().map(|(_, r)| r).collect(),
        default_target_group: default?,
    })
}

fn unknown_group(name: &str, groups: &BTreeMap<String, TargetGroupConfig>) -> String {
    let known: Vec<&str> = groups
        .values()
        .filter(|g| !g.from_backend_shorthand)
        .map(|g| g.name.as_str())
        .collect();
    if known.is_empty() {
        format!("{name:?}: no [target_group.{name}] is defined")
    } else {
        format!(
            "{name:?}: no such target group (defined: {})",
            known.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_ignore_case_and_port() {
        let h = Pattern::host("*.Example.com").unwrap();
        let rule = Rule {
            host: Some(h),
            path: None,
            target_group: "g".into(),
        };
        assert!(rule.matches(Some("API.example.COM:8443"), "/"));
        assert!(!rule.matches(Some("example.com"), "/"));
        assert!(!rule.matches(None, "/"));
        assert_eq!(strip_port("[::1]:443"), "::1");
        assert_eq!(strip_port("a.example"), "a.example");
    }

    #[test]
    fn shadowing_is_detected_soundly() {
        let rule = |host: Option<&str>, path: Option<&str>| Rule {
            host: host.map(|h| Pattern::host(h).unwrap()),
            path: path.map(|p| Pattern::path(p).unwrap()),
            target_group: "g".into(),
        };
        assert!(rule(None, Some("/v1/*")).shadows(&rule(Some("a.example"), Some("/v1/x*"))));
        assert!(rule(Some("*.example"), None).shadows(&rule(Some("a.example"), Some("/"))));
        assert!(rule(None, Some("*")).shadows(&rule(None, Some("/anything"))));
        assert!(rule(None, Some("/a")).shadows(&rule(None, Some("/a"))));
        // Not covered: `?` is one character, `*` may be many.
        assert!(!rule(None, Some("/a?")).shadows(&rule(None, Some("/a*"))));
        assert!(!rule(Some("a.example"), None).shadows(&rule(None, Some("/"))));
        assert!(!rule(None, Some("/v1/*")).shadows(&rule(None, Some("/v2/*"))));
    }
}
