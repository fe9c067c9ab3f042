//! Validation of an action (SPEC §9, §14), a rule's or a listener's default: exactly one of
//! `target_group`, weighted `forward`, `fixed_response` and `redirect` (`redirect.rs`), each
//! checked as ALB's API checks it; and a rule's `authenticate_jwt`.

use std::collections::BTreeMap;

use super::problems::Problems;
use super::target_group::unknown_group;
use crate::config::file::{ActionFields, FixedResponseFile, WeightedGroupFile};
use crate::config::model::{
    FixedResponse, JwtValidatorConfig, Mode, RuleAction, TargetGroupConfig, WeightedGroup,
    FIXED_RESPONSE_CONTENT_TYPES, MAX_FIXED_RESPONSE_BODY, MAX_FORWARD_GROUPS, MAX_FORWARD_WEIGHT,
};

/// What a listener's rules may refer to.
#[derive(Debug, Clone, Copy)]
pub(super) struct RuleScope<'a> {
    pub mode: Mode,
    /// The listener has a `[listener.client_identity]`.
    pub identity: bool,
    /// The listener serves TLS (`protocol = "HTTPS"`): a redirect may not go to HTTP.
    pub https: bool,
    /// `[jwt_validation.NAME]`s, for `authenticate_jwt`.
    pub jwt: &'a BTreeMap<String, JwtValidatorConfig>,
}

const ACTIONS: &str = "target_group, forward, fixed_response or redirect";

/// The one action; `None` when there is none, more than one, or it is wrong (reported).
pub(super) fn action(
    key: &str,
    a: ActionFields<'_>,
    scope: RuleScope<'_>,
    groups: &BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Option<RuleAction> {
    let given = [
        a.target_group.is_some(),
        a.forward.is_some(),
        a.fixed_response.is_some(),
        a.redirect.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => {
            p.push(key, format!("needs an action: one of {ACTIONS}"));
            return None;
        }
        1 => {}
        _ => {
            p.push(
                key,
                format!("give exactly one action ({ACTIONS}), not several"),
            );
            return None;
        }
    }
    if let Some(group) = a.target_group {
        known_group(&format!("{key}.target_group"), group, groups, p);
        return Some(RuleAction::Forward {
            target_group: group.clone(),
        });
    }
    if let Some(w) = a.forward {
        return weighted(&format!("{key}.forward"), w, groups, p).map(RuleAction::Weighted);
    }
    if let Some(r) = a.redirect {
        return super::redirect::redirect(&format!("{key}.redirect"), r, scope.https, p)
            .map(RuleAction::Redirect);
    }
    let f = a.fixed_response?;
    fixed_response(&format!("{key}.fixed_response"), f, p).map(RuleAction::FixedResponse)
}

fn known_group(
    key: &str,
    group: &str,
    groups: &BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) {
    if !groups.contains_key(group) {
        p.push(key, unknown_group(group, groups));
    }
}

/// ALB's weighted forward: 1 to 5 distinct groups, weights 0–999, at least one above 0.
fn weighted(
    key: &str,
    given: &[WeightedGroupFile],
    groups: &BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Option<Vec<WeightedGroup>> {
    if given.is_empty() || given.len() > MAX_FORWARD_GROUPS {
        p.push(
            key,
            format!(
                "lists {} target groups: give 1 to {MAX_FORWARD_GROUPS}",
                given.len()
            ),
        );
        return None;
    }
    let mut out: Vec<WeightedGroup> = Vec::with_capacity(given.len());
    for (i, g) in given.iter().enumerate() {
        let gkey = format!("{key}[{i}]");
        let name = p.required(&format!("{gkey}.target_group"), g.target_group.as_ref());
        if let Some(name) = name {
            known_group(&format!("{gkey}.target_group"), name, groups, p);
            if out.iter().any(|o| &o.target_group == name) {
                p.push(
                    &format!("{gkey}.target_group"),
                    format!("{name:?} is listed twice"),
                );
            }
        }
        let weight = match g.weight {
            None => Some(1),
            Some(w) => u16::try_from(w)
                .ok()
                .filter(|w| *w <= MAX_FORWARD_WEIGHT)
                .or_else(|| {
                    p.push(
                        &format!("{gkey}.weight"),
                        format!("{w} is not a weight from 0 to {MAX_FORWARD_WEIGHT}"),
                    );
                    None
                }),
        };
        if let (Some(name), Some(weight)) = (name, weight) {
            out.push(WeightedGroup {
                target_group: name.clone(),
                weight,
            });
        }
    }
    if out.len() == given.len() && out.iter().all(|g| g.weight == 0) {
        p.push(
            key,
            "every weight is 0: no target group would get a request",
        );
        return None;
    }
    (out.len() == given.len()).then_some(out)
}

/// A rule's `authenticate_jwt` must name a validator, and one that needs certificate-bound
/// tokens only makes sense where certificates are verified.
pub(super) fn authenticate_jwt(
    key: &str,
    name: Option<&String>,
    scope: RuleScope<'_>,
    p: &mut Problems,
) -> Option<String> {
    let name = name?;
    let key = format!("{key}.authenticate_jwt");
    match scope.jwt.get(name) {
        None => p.push(&key, format!("no [jwt_validation.{name}] is declared")),
        Some(v) if v.require_certificate_binding && scope.mode != Mode::Verify => p.push(
            &key,
            format!(
                "[jwt_validation.{name}] requires certificate-bound tokens, which needs mode = \"verify\""
            ),
        ),
        Some(_) => {}
    }
    Some(name.clone())
}

/// ALB's fixed response: a 2XX, 4XX or 5XX status, one of ALB's content types (default
/// `text/plain`), a body of at most 1024 bytes (default empty).
fn fixed_response(key: &str, f: &FixedResponseFile, p: &mut Problems) -> Option<FixedResponse> {
    let status = p.required(&format!("{key}.status_code"), f.status_code.as_ref());
    let status = status.and_then(|&s| {
        let allowed = (200..=299).contains(&s) || (400..=599).contains(&s);
        if !allowed {
            p.push(
                &format!("{key}.status_code"),
                format!("{s} is not a 2XX, 4XX or 5XX status"),
            );
        }
        u16::try_from(s).ok().filter(|_| allowed)
    });
    let content_type = match f.content_type.as_deref() {
        None => Some(FIXED_RESPONSE_CONTENT_TYPES[0]),
        Some(t) => {
            let known = FIXED_RESPONSE_CONTENT_TYPES
                .iter()
                .find(|c| **c == t)
                .copied();
            if known.is_none() {
                p.push(
                    &format!("{key}.content_type"),
                    format!(
                        "{t:?} is not one of {}",
                        FIXED_RESPONSE_CONTENT_TYPES.join(", ")
                    ),
                );
            }
            known
        }
    };
    let body = f.message_body.clone().unwrap_or_default();
    if body.len() > MAX_FIXED_RESPONSE_BODY {
        p.push(
            &format!("{key}.message_body"),
            format!(
                "is {} bytes, more than {MAX_FIXED_RESPONSE_BODY}",
                body.len()
            ),
        );
        return None;
    }
    Some(FixedResponse {
        status_code: status?,
        content_type: content_type?,
        message_body: body,
    })
}
