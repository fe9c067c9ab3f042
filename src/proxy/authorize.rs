//! The authorize phase of the request path: the tokens a listener or its matched rule demands
//! (`authenticate_jwt`, SPEC §10), checked before the rule's action runs; the verdict goes to
//! the access log and a refusal to the client as 401 or 403.

use super::exchange::Exchange;
use super::ConnContext;
use crate::http::ProxyError;
use crate::jwt::{JwtError, Validator};
use crate::observe;
use crate::routing::Matched;

/// The authorize phase: whether this client may have the matched rule's action. A rule's
/// certificate conditions (`client_identity`, `client_issuer`) take part in matching, as ALB's
/// conditions do: a client that fails them falls through to a later rule, typically a fixed
/// 403 for the same path. What is demanded beyond the conditions — the listener's
/// `authenticate_jwt`, then the matched rule's — is checked here, before the action runs.
pub(super) async fn authorize(
    ctx: &ConnContext,
    ex: &mut Exchange,
    matched: &Matched<'_>,
    parts: &http::request::Parts,
) -> Result<(), ProxyError> {
    ex.set_rule(matched.rule);
    let settings = &ctx.settings;
    // Each check boxed: a token check (a JWKS fetch may be part of it) is far larger than the
    // rest of the request path, and listeners without tokens should not carry its state.
    if let Some(validator) = &settings.jwt {
        Box::pin(check_token(ctx, ex, validator, parts)).await?;
    }
    let rule_jwt = matched
        .rule
        .and_then(|i| settings.rule_jwt.get(i)?.as_ref());
    if let Some(validator) = rule_jwt {
        Box::pin(check_token(ctx, ex, validator, parts)).await?;
    }
    Ok(())
}

/// Runs one validator on the request; the verdict goes to the access log either way.
async fn check_token(
    ctx: &ConnContext,
    ex: &mut Exchange,
    validator: &Validator,
    parts: &http::request::Parts,
) -> Result<(), ProxyError> {
    match validator
        .check(&parts.headers, ctx.cert_thumbprint.as_ref())
        .await
    {
        Ok(verified) => {
            ex.log.jwt_sub = verified.sub.as_deref().map(observe::access::clip);
            ex.log.jwt_iss = verified.iss.as_deref().map(observe::access::clip);
            Ok(())
        }
        Err(e) => Err(token_refused(&validator.cfg.name, &e)),
    }
}

fn token_refused(validator: &str, e: &JwtError) -> ProxyError {
    let challenge = http::HeaderValue::from_str(&e.challenge(validator))
        .unwrap_or_else(|_| http::HeaderValue::from_static("Bearer"));
    ProxyError::TokenRefused {
        status: e.status(),
        challenge,
        reason: format!("jwt_validation.{validator}: {e}"),
    }
}
