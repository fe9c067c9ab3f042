//! What a token must not be, checked before its signature: a JWS with `crit` extensions
//! (certgate understands none, so RFC 7515 §4.1.11 says refuse), a nested JWT (`cty: JWT`,
//! RFC 7519 §5.2), or JSON with a member named twice in its header or claims (parsers disagree
//! on which one counts, so either could be what a backend reads).

use std::collections::HashSet;
use std::fmt;

use base64::Engine;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use super::JwtError;

/// Refuses a token whose header or claims have one of the shapes above.
pub fn check(token: &str) -> Result<(), JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims)) = (parts.next(), parts.next()) else {
        return Err(JwtError::Malformed(
            "the token is not a JWT: it has no dots".into(),
        ));
    };
    let header = decode("header", header)?;
    if members("header", &header)?.contains("crit") {
        return Err(JwtError::Invalid(
            "the token's header lists crit extensions, and certgate understands none".into(),
        ));
    }
    if cty(&header).is_some_and(|c| c.eq_ignore_ascii_case("JWT")) {
        return Err(JwtError::Invalid(
            "the token is a nested JWT (cty JWT), which is not accepted".into(),
        ));
    }
    members("claims", &decode("claims", claims)?).map(|_| ())
}

fn decode(what: &str, part: &str) -> Result<Vec<u8>, JwtError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| {
            JwtError::Malformed(format!(
                "the token is not a JWT: its {what} is not base64url"
            ))
        })
}

fn cty(header: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(header).ok()?;
    v.get("cty")?.as_str().map(str::to_string)
}

/// The member names of a JSON object, refusing one named twice.
fn members(what: &str, bytes: &[u8]) -> Result<HashSet<String>, JwtError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.deserialize_map(Members).map_err(|e| {
        JwtError::Malformed(format!(
            "the token is not a JWT: its {what} is not a JSON object: {e}"
        ))
    })
}

/// Collects an object's member names; a repeated one is an error.
struct Members;

impl<'de> Visitor<'de> for Members {
    type Value = HashSet<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with each member named once")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            if !seen.insert(name.clone()) {
                return Err(serde::de::Error::custom(format!("{name:?} appears twice")));
            }
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, claims: &str) -> String {
        format!("{}.{}.sig", b64(header), b64(claims))
    }

    #[test]
    fn plain_tokens_pass() {
        assert!(check(&token(
            r#"{"alg":"ES256","kid":"a"}"#,
            r#"{"sub":"x","exp":1}"#
        ))
        .is_ok());
    }

    #[test]
    fn refused_shapes_say_why() {
        let cases = [
            (token(r#"{"alg":"ES256","crit":["exp"]}"#, "{}"), "crit"),
            (token(r#"{"alg":"ES256","cty":"jwt"}"#, "{}"), "nested"),
            (
                token(r#"{"alg":"ES256"}"#, r#"{"sub":"a","sub":"b"}"#),
                "\"sub\" appears twice",
            ),
            (
                token(r#"{"alg":"ES256","alg":"none"}"#, "{}"),
                "\"alg\" appears twice",
            ),
            (token(r#"{"alg":"ES256"}"#, "[1]"), "not a JSON object"),
            ("a!b.c$d.e".to_string(), "not base64url"),
            ("nodots".to_string(), "no dots"),
        ];
        for (t, says) in cases {
            let e = check(&t).unwrap_err().to_string();
            assert!(e.contains(says), "{t}: {e}");
        }
    }
}
