//! Validation of a rule's action (SPEC §9, §14): exactly one of `target_group` (forward) and
//! `fixed_response`, each checked as ALB's API checks it.

use std::collections::BTreeMap;

use super::problems::Problems;
use super::routes::unknown_group;
use crate::config::file::{FixedResponseFile, RuleFile};
use crate::config::model::{
    FixedResponse, RuleAction, TargetGroupConfig, FIXED_RESPONSE_CONTENT_TYPES,
    MAX_FIXED_RESPONSE_BODY,
};

/// The rule's one action; `None` when there is none, more than one, or it is wrong (reported).
pub(super) fn action(
    rkey: &str,
    r: &RuleFile,
    groups: &BTreeMap<String, TargetGroupConfig>,
    p: &mut Problems,
) -> Option<RuleAction> {
    match (&r.target_group, &r.fixed_response) {
        (Some(_), Some(_)) => {
            p.push(
                rkey,
                "give exactly one action (target_group or fixed_response), not both",
            );
            None
        }
        (None, None) => {
            p.push(
                rkey,
                "needs an action: target_group = \"NAME\" or fixed_response = { status_code = ... }",
            );
            None
        }
        (Some(group), None) => {
            if !groups.contains_key(group) {
                p.push(
                    &format!("{rkey}.target_group"),
                    unknown_group(group, groups),
                );
            }
            Some(RuleAction::Forward {
                target_group: group.clone(),
            })
        }
        (None, Some(f)) => {
            fixed_response(&format!("{rkey}.fixed_response"), f, p).map(RuleAction::FixedResponse)
        }
    }
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
