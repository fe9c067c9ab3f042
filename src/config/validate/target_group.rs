//! Validation of the `[target_group.NAME]` sections (SPEC §8): duplicate or malformed targets,
//! health-check ranges and matchers, and TLS settings that need https targets.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use super::problems::{bounded, existing_file, Problems};
use crate::config::file::{AlgorithmFile, HealthCheckFile, TargetGroupFile};
use crate::config::model::{
    Algorithm, HealthCheckConfig, Matcher, ProtocolVersion, TargetGroupConfig, TargetTls,
    TargetUrl, GRPC_HEALTH_PATH,
};

/// Every declared group, by name. Listeners add their `backend = "URL"` groups later.
pub(super) fn target_groups(
    groups: &BTreeMap<String, TargetGroupFile>,
    base: &Path,
    p: &mut Problems,
) -> BTreeMap<String, TargetGroupConfig> {
    groups
        .iter()
        .map(|(name, g)| (name.clone(), target_group(name, g, base, p)))
        .collect()
}

fn target_group(
    name: &str,
    g: &TargetGroupFile,
    base: &Path,
    p: &mut Problems,
) -> TargetGroupConfig {
    let key = format!("target_group.{name}");
    if name.is_empty() || name.contains('/') {
        p.push(
            &key,
            "a target group name must be non-empty and without \"/\"",
        );
    }
    let targets = targets(&key, &g.targets, p);
    let protocol_version = protocol_version(&key, g.protocol_version.as_deref(), p);
    let health_check = health_check(&key, g.health_check.as_ref(), protocol_version, p);
    let tls = target_tls(&key, g, base, p);
    if (tls.ca_bundle.is_some() || tls.client_identity.is_some())
        && !targets.iter().any(|t| t.https)
    {
        p.push(
            &key,
            "ca_bundle / client_certificate apply to https:// targets, and this group has none",
        );
    }
    TargetGroupConfig {
        name: name.to_string(),
        targets,
        algorithm: match g.algorithm.unwrap_or(AlgorithmFile::RoundRobin) {
            AlgorithmFile::RoundRobin => Algorithm::RoundRobin,
            AlgorithmFile::LeastOutstandingRequests => Algorithm::LeastOutstandingRequests,
        },
        health_check,
        tls,
        from_backend_shorthand: false,
        protocol_version,
    }
}

fn protocol_version(key: &str, v: Option<&str>, p: &mut Problems) -> ProtocolVersion {
    match v {
        None | Some("HTTP1") => ProtocolVersion::Http1,
        Some("HTTP2") => ProtocolVersion::Http2,
        Some("GRPC") => ProtocolVersion::Grpc,
        Some(other) => {
            p.push(
                &format!("{key}.protocol_version"),
                format!("{other:?} is not one of \"HTTP1\", \"HTTP2\", \"GRPC\""),
            );
            ProtocolVersion::Http1
        }
    }
}

fn targets(key: &str, listed: &[String], p: &mut Problems) -> Vec<TargetUrl> {
    let mut targets: Vec<TargetUrl> = Vec::new();
    for (i, t) in listed.iter().enumerate() {
        match TargetUrl::parse(t) {
            Ok(u) if targets.contains(&u) => p.push(
                &format!("{key}.targets[{i}]"),
                format!("{} is listed twice", u.url),
            ),
            Ok(u) => targets.push(u),
            Err(why) => p.push(&format!("{key}.targets[{i}]"), why),
        }
    }
    targets
}

/// The CA bundle for https targets and certgate's own identity towards them: a certificate and
/// a key, both or neither.
fn target_tls(key: &str, g: &TargetGroupFile, base: &Path, p: &mut Problems) -> TargetTls {
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
    TargetTls {
        ca_bundle,
        client_identity,
    }
}

fn health_check(
    key: &str,
    h: Option<&HealthCheckFile>,
    version: ProtocolVersion,
    p: &mut Problems,
) -> HealthCheckConfig {
    let grpc = version == ProtocolVersion::Grpc;
    let mut d = HealthCheckConfig::default();
    if grpc {
        d.path = GRPC_HEALTH_PATH.to_string();
        d.matcher = Matcher::parse_grpc("0").unwrap_or(d.matcher);
    }
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
    let timeout = check_timeout(&key, h.timeout_secs, timeout, interval, p);
    HealthCheckConfig {
        enabled: h.enabled.unwrap_or(true),
        path: check_path(&key, h.path.as_deref(), &d.path, p),
        interval: Duration::from_secs(interval),
        timeout: Duration::from_secs(timeout),
        healthy_threshold: healthy as u32,
        unhealthy_threshold: unhealthy as u32,
        matcher: match h.matcher.as_deref() {
            None => d.matcher,
            Some(m) => if grpc {
                Matcher::parse_grpc(m)
            } else {
                Matcher::parse(m)
            }
            .unwrap_or_else(|why| {
                p.push(&format!("{key}.matcher"), why);
                d.matcher
            }),
        },
    }
}

/// A check's timeout must fit in its interval; `in_range` is the range-checked value (the
/// default when none is given).
fn check_timeout(
    key: &str,
    given: Option<u64>,
    in_range: u64,
    interval: u64,
    p: &mut Problems,
) -> u64 {
    match given {
        Some(t) if t > interval => {
            p.push(
                &format!("{key}.timeout_secs"),
                format!("must not exceed interval_secs ({interval})"),
            );
            t
        }
        Some(t) => t,
        // The default, shortened to fit a short interval.
        None => in_range.min(interval),
    }
}

fn check_path(key: &str, given: Option<&str>, default: &str, p: &mut Problems) -> String {
    match given {
        None => default.to_string(),
        Some(path) if path.starts_with('/') && path.parse::<http::uri::PathAndQuery>().is_ok() => {
            path.to_string()
        }
        Some(path) => {
            p.push(
                &format!("{key}.path"),
                format!("{path:?} is not a request path starting with \"/\""),
            );
            default.to_string()
        }
    }
}

/// The message for a target group name that no `[target_group.NAME]` defines.
pub(super) fn unknown_group(name: &str, groups: &BTreeMap<String, TargetGroupConfig>) -> String {
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
