//! Validation of a listener's routes (SPEC §8, §9): `backend` or `default_target_group`, and its
//! `[[listener.rule]]`s: their conditions (certificate conditions only where certificates are
//! verified), their action (`actions.rs`), and rules an earlier one shadows.

use std::collections::BTreeMap;

use super::actions::{action, authenticate_jwt, RuleScope};
use super::problems::Problems;
use super::target_group::unknown_group;
use crate::config::file::{ListenerFile, RuleFile};
use crate::config::model::{
    Algorithm, HealthCheckConfig, Mode, Routes, Rule, RuleAction, TargetGroupConfig, TargetTls,
    TargetUrl,
};
use crate::wildcard::Pattern;

/// A listener's routes. `backend = "URL"` becomes a one-target group named `LISTENER/backend`
/// (added to `groups`).
pub(super) fn routes(
    key: &str,
    listener: &str,
    l: &ListenerFile,
    scope: RuleScope<'_>,
    groups: &mut BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Option<Routes> {
    let default = default_action(key, listener, l, scope, groups, p);
    let rules = rules(key, &l.rule, scope, groups, p);
    Some(Routes {
        rules,
        default_action: default?,
    })
}

/// What runs when no rule matches: exactly one of `backend`, `default_target_group` and
/// `[listener.default_action]`.
fn default_action(
    key: &str,
    listener: &str,
    l: &ListenerFile,
    scope: RuleScope<'_>,
    groups: &mut BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Option<RuleAction> {
    let given = [
        l.backend.is_some(),
        l.default_target_group.is_some(),
        l.default_action.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        p.push(
            key,
            "give one of backend, default_target_group and [listener.default_action], not several",
        );
        return None;
    }
    if let Some(url) = &l.backend {
        return match TargetUrl::parse(url) {
            Ok(u) => Some(RuleAction::Forward {
                target_group: backend_group(listener, u, groups),
            }),
            Err(why) => {
                p.push(&format!("{key}.backend"), why);
                None
            }
        };
    }
    if let Some(g) = &l.default_target_group {
        if !groups.contains_key(g) {
            p.push(
                &format!("{key}.default_target_group"),
                unknown_group(g, groups),
            );
        }
        return Some(RuleAction::Forward {
            target_group: g.clone(),
        });
    }
    let Some(d) = &l.default_action else {
        p.push(
            &format!("{key}.default_target_group"),
            "is required (or the one-target shorthand backend = \"http://host:port\", or a [listener.default_action])",
        );
        return None;
    };
    action(
        &format!("{key}.default_action"),
        d.action(),
        scope,
        groups,
        p,
    )
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
    scope: RuleScope<'_>,
    groups: &BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Vec<Rule> {
    let mut rules: Vec<(usize, Rule)> = Vec::new();
    for (i, r) in files.iter().enumerate() {
        let rkey = format!("{key}.rule[{i}]");
        let Some(rule) = rule(&rkey, r, scope, groups, p) else {
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
    scope: RuleScope<'_>,
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
            "a rule needs a host or a path condition, or one on the client certificate (client_identity, client_issuer); the default action takes the rest",
        );
    }
    cert_conditions_allowed(rkey, r, scope, p);
    let action = action(rkey, r.action(), scope, groups, p);
    let authenticate_jwt = authenticate_jwt(rkey, r.authenticate_jwt.as_ref(), scope, p);
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
        authenticate_jwt,
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
fn cert_conditions_allowed(rkey: &str, r: &RuleFile, scope: RuleScope<'_>, p: &mut Problems) {
    for (attr, given) in [
        ("client_identity", r.client_identity.is_some()),
        ("client_issuer", r.client_issuer.is_some()),
    ] {
        if given && scope.mode != Mode::Verify {
            p.push(
                &format!("{rkey}.{attr}"),
                format!(
                    "a certificate condition needs mutual_authentication.mode = \"verify\" (mode is {:?}: certificates are not verified, so the condition could never be trusted)",
                    scope.mode.as_str()
                ),
            );
        }
    }
    if r.client_identity.is_some() && scope.mode == Mode::Verify && !scope.identity {
        p.push(
            &format!("{rkey}.client_identity"),
            "needs a [listener.client_identity] section saying where the identity comes from",
        );
    }
}
