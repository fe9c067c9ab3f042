//! The checks on a token's claims after its signature verified, beyond what `jsonwebtoken`
//! does (`exp`, `nbf`, `iss`, `aud`): `iat` not in the future, ALB's additional claims, and
//! RFC 8705 certificate binding (`cnf."x5t#S256"`).

use base64::Engine;
use serde_json::Value;

use super::JwtError;
use crate::config::{ClaimCondition, ClaimFormat};

/// A token issued later than now (beyond the allowed skew) was not issued by a sane clock.
pub fn check_issued_at(claims: &Value, now: u64, skew: u64) -> Result<(), JwtError> {
    match claims.get("iat") {
        None => Ok(()),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(iat) if iat <= (now + skew) as f64 => Ok(()),
            Some(_) => Err(JwtError::Invalid("the token's iat is in the future".into())),
            None => Err(JwtError::Invalid("the token's iat is not a number".into())),
        },
        Some(_) => Err(JwtError::Invalid("the token's iat is not a number".into())),
    }
}

/// ALB's AdditionalClaims: each claim must hold at least one of its values.
pub fn check_additional(claims: &Value, conditions: &[ClaimCondition]) -> Result<(), JwtError> {
    for c in conditions {
        let Some(value) = claims.get(&c.name) else {
            return Err(JwtError::ClaimRefused(format!(
                "the token has no {:?} claim",
                c.name
            )));
        };
        let held: Vec<&str> = match (c.format, value) {
            (ClaimFormat::SingleString, Value::String(s)) => vec![s.as_str()],
            (ClaimFormat::SpaceSeparatedValues, Value::String(s)) => {
                s.split(' ').filter(|v| !v.is_empty()).collect()
            }
            (ClaimFormat::StringArray, Value::Array(items)) => {
                items.iter().filter_map(Value::as_str).collect()
            }
            _ => {
                return Err(JwtError::ClaimRefused(format!(
                    "the token's {:?} claim is not in {} format",
                    c.name,
                    c.format.as_str()
                )))
            }
        };
        if !held.iter().any(|h| c.values.iter().any(|v| v == h)) {
            return Err(JwtError::ClaimRefused(format!(
                "the token's {:?} claim holds none of the required values",
                c.name
            )));
        }
    }
    Ok(())
}

/// RFC 8705 §3: a token bound to a certificate (`cnf."x5t#S256"`) is only good with that
/// certificate. `required` refuses unbound tokens too. `thumbprint` is the SHA-256 of the
/// verified client certificate's DER, if the connection has one.
pub fn check_binding(
    claims: &Value,
    thumbprint: Option<&[u8; 32]>,
    required: bool,
) -> Result<(), JwtError> {
    let bound = claims.get("cnf").and_then(|c| c.get("x5t#S256"));
    let bound = match bound {
        None if required => {
            return Err(JwtError::Invalid(
                "the token is not bound to a client certificate (no cnf.x5t#S256)".into(),
            ))
        }
        None => return Ok(()),
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(JwtError::Invalid(
                "the token's cnf.x5t#S256 is not a string".into(),
            ))
        }
    };
    let Some(thumbprint) = thumbprint else {
        return Err(JwtError::Invalid(
            "the token is bound to a client certificate, and the connection has none".into(),
        ));
    };
    let ours = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(thumbprint);
    if bound.trim_end_matches('=') == ours {
        Ok(())
    } else {
        Err(JwtError::Invalid(
            "the token is bound to another client certificate".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(format: ClaimFormat, values: &[&str]) -> Vec<ClaimCondition> {
        vec![ClaimCondition {
            name: "scope".into(),
            format,
            values: values.iter().map(|v| v.to_string()).collect(),
        }]
    }

    #[test]
    fn additional_claims_in_albs_three_formats() {
        let space = json!({"scope": "read write"});
        assert!(
            check_additional(&space, &cond(ClaimFormat::SpaceSeparatedValues, &["write"])).is_ok()
        );
        assert!(
            check_additional(&space, &cond(ClaimFormat::SpaceSeparatedValues, &["admin"])).is_err()
        );
        assert!(check_additional(&space, &cond(ClaimFormat::SingleString, &["read"])).is_err());
        assert!(
            check_additional(&space, &cond(ClaimFormat::SingleString, &["read write"])).is_ok()
        );
        let array = json!({"scope": ["a", "b"]});
        assert!(check_additional(&array, &cond(ClaimFormat::StringArray, &["b"])).is_ok());
        assert!(check_additional(&array, &cond(ClaimFormat::SingleString, &["b"])).is_err());
        assert!(check_additional(&json!({}), &cond(ClaimFormat::StringArray, &["b"])).is_err());
    }

    #[test]
    fn binding_compares_the_thumbprint() {
        let print = [7u8; 32];
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(print);
        let bound = json!({"cnf": {"x5t#S256": b64}});
        assert!(check_binding(&bound, Some(&print), true).is_ok());
        assert!(check_binding(&bound, Some(&[8u8; 32]), false).is_err());
        assert!(check_binding(&bound, None, false).is_err());
        assert!(check_binding(&json!({}), Some(&print), true).is_err());
        assert!(check_binding(&json!({}), None, false).is_ok());
    }

    #[test]
    fn iat_in_the_future_is_refused() {
        assert!(check_issued_at(&json!({"iat": 1000}), 1000, 0).is_ok());
        assert!(check_issued_at(&json!({"iat": 1100}), 1000, 60).is_err());
        assert!(check_issued_at(&json!({"iat": "x"}), 1000, 60).is_err());
    }
}
