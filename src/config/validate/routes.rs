//! Validation of a listener's routes (SPEC §8): `backend` or `default_target_group`, and its
//! `[[listener.rule]]`s: their conditions, known groups, and rules an earlier one shadows.

use std::collections::BTreeMap;

use super::problems::Problems;
use crate::config::file::{ListenerFile, RuleFile};
use crate::config::model::{
    Algorithm, HealthCheckConfig, Routes, Rule, TargetGroupConfig, TargetTls, TargetUrl,
};
use crate::wildcard::Pattern;

/// A listener's routes. `backend = "URL"` becomes a one-target group named `LISTENER/backend`
/// (added to `groups`).
pub(super) fn routes(
    key: &str,
    listener: &str,
    l: &ListenerFile,
    groups: &mut BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Option<Routes> {
    let default = default_group(key, listener, l, groups, p);
    let rules = rules(key, &l.rule, groups, p);
    Some(Routes {
        rules,
        default_target_group: default?,
    })
}

/// The group that takes the requests no rule matches.
fn default_group(
    key: &str,
    listener: &str,
    l: &ListenerFile,
    groups: &mut BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Option<String> {
    match (&l.backend, &l.default_target_group) {
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
            Ok(u) => Some(backend_group(listener, u, groups)),
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
    }
}

/// Adds the one-target group of `backend = "URL"` to `groups`, and returns its name.
fn backend_group(
    listener: &str,
    target: TargetUrl,
    groups: &mut BTreeMap<String, TargetGroupConfig>,
) -> String {
    let name = format!("{listener}/backend");
    groups.insert(
        name.clone(),
        TargetGroupConfig {
            name: name.clone(),
            targets: vec![target],
            algorithm: Algorithm::RoundRobin,
            health_check: HealthCheckConfig {
                enabled: false,
                ..HealthCheckConfig::default()
            },
            tls: TargetTls::default(),
            from_backend_shorthand: true,
            protocol_version: Default::default(),
        },
    );
    name
}

/// The valid rules in order; each one an earlier rule shadows is reported with that rule's index.
fn rules(
    key: &str,
    files: &[RuleFile],
    groups: &BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Vec<Rule> {
    let mut rules: Vec<(usize, Rule)> = Vec::new();
    for (i, r) in files.iter().enumerate() {
        let rkey = format!("{key}.rule[{i}]");
        let Some(rule) = rule(&rkey, r, groups, p) else {
            continue;
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
    rules.into_iter().map(|(_, r)| r).collect()
}

/// One rule; `None` when it has no group or a pattern that does not compile (reported).
fn rule(
    rkey: &str,
    r: &RuleFile,
    groups: &BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Option<Rule> {
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
            rkey,
            "a rule needs a host or a path condition (the default group takes the rest)",
        );
    }
    let group = p.required(&format!("{rkey}.target_group"), r.target_group.as_ref())?;
    if !groups.contains_key(group) {
        p.push(
            &format!("{rkey}.target_group"),
            unknown_group(group, groups),
        );
    }
    if (r.host.is_some() && host.is_none()) || (r.path.is_some() && path.is_none()) {
        return None;
    }
    Some(Rule {
        host,
        path,
        target_group: group.clone(),
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
