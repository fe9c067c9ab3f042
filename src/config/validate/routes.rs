//! Validation of a listener's routes (SPEC §8, §9): `backend` or `default_target_group`, and its
//! `[[listener.rule]]`s: their conditions (certificate conditions only where certificates are
//! verified), their action (`actions.rs`), and rules an earlier one shadows.

use std::collections::BTreeMap;

use super::actions::action;
use super::problems::Problems;
use crate::config::file::{ListenerFile, RuleFile};
use crate::config::model::{
    Algorithm, HealthCheckConfig, Mode, Routes, Rule, TargetGroupConfig, TargetTls, TargetUrl,
};
use crate::wildcard::Pattern;

/// What a listener's certificate conditions may refer to.
#[derive(Debug, Clone, Copy)]
pub(super) struct CertRules {
    pub mode: Mode,
    /// The listener has a `[listener.client_identity]`.
    pub identity: bool,
}

/// A listener's routes. `backend = "URL"` becomes a one-target group named `LISTENER/backend`
/// (added to `groups`).
pub(super) fn routes(
    key: &str,
    listener: &str,
    l: &ListenerFile,
    cert: CertRules,
    groups: &mut BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Option<Routes> {
    let default = default_group(key, listener, l, groups, p);
    let rules = rules(key, &l.rule, cert, groups, p);
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
    cert: CertRules,
    groups: &BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Vec<Rule> {
    let mut rules: Vec<(usize, Rule)> = Vec::new();
    for (i, r) in files.iter().enumerate() {
        let rkey = format!("{key}.rule[{i}]");
        let Some(rule) = rule(&rkey, r, cert, groups, p) else {
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

/// One rule; `None` when it has no valid action or a pattern that does not compile (reported).
fn rule(
    rkey: &str,
    r: &RuleFile,
    cert: CertRules,
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
    let client_identity = patterns(rkey, "client_identity", r.client_identity.as_deref(), p);
    let client_issuer = patterns(rkey, "client_issuer", r.client_issuer.as_deref(), p);
    if r.host.is_none()
        && r.path.is_none()
        && r.client_identity.is_none()
        && r.client_issuer.is_none()
    {
        p.push(
            rkey,
            "a rule needs a host or a path condition, or one on the client certificate (client_identity, client_issuer); the default group takes the rest",
        );
    }
    cert_conditions_allowed(rkey, r, cert, p);
    let action = action(rkey, r, groups, p);
    let broken = |given: bool, compiled: bool| given && !compiled;
    if broken(r.host.is_some(), host.is_some())
        || broken(r.path.is_some(), path.is_some())
        || broken(r.client_identity.is_some(), client_identity.is_some())
        || broken(r.client_issuer.is_some(), client_issuer.is_some())
    {
        return None;
    }
    Some(Rule {
        host,
        path,
        client_identity,
        client_issuer,
        action: action?,
    })
}

/// A certificate condition's patterns; `None` when absent or any is wrong (reported).
fn patterns(
    rkey: &str,
    attr: &str,
    given: Option<&[String]>,
    p: &mut Problems,
) -> Option<Vec<Pattern>> {
    let given = given?;
    let key = format!("{rkey}.{attr}");
    if given.is_empty() {
        p.push(
            &key,
            "is empty: give at least one pattern (or leave the condition out)",
        );
        return None;
    }
    let mut out = Vec::with_capacity(given.len());
    for (j, g) in given.iter().enumerate() {
        match Pattern::text(g) {
            Ok(pattern) => out.push(pattern),
            Err(why) => p.push(&format!("{key}[{j}]"), why),
        }
    }
    (out.len() == given.len()).then_some(out)
}

/// Certificate conditions need verified certificates (verify mode), and `client_identity` an
/// identity to match (`[listener.client_identity]`).
fn cert_conditions_allowed(rkey: &str, r: &RuleFile, cert: CertRules, p: &mut Problems) {
    for (attr, given) in [
        ("client_identity", r.client_identity.is_some()),
        ("client_issuer", r.client_issuer.is_some()),
    ] {
        if given && cert.mode != Mode::Verify {
            p.push(
                &format!("{rkey}.{attr}"),
                format!(
                    "a certificate condition needs mutual_authentication.mode = \"verify\" (mode is {:?}: certificates are not verified, so the condition could never be trusted)",
                    cert.mode.as_str()
                ),
            );
        }
    }
    if r.client_identity.is_some() && cert.mode == Mode::Verify && !cert.identity {
        p.push(
            &format!("{rkey}.client_identity"),
            "needs a [listener.client_identity] section saying where the identity comes from",
        );
    }
}

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
