//! Validation of target groups and listener rules (SPEC §8): the checks `certgate check` runs
//! on them (unknown groups, rules that can never match, duplicate targets, bad matchers).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::file::{AlgorithmFile, HealthCheckFile, ListenerFile, TargetGroupFile};
use super::model::*;
use super::runtime::{bounded, existing_file, Problems};
use crate::wildcard::Pattern;

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
