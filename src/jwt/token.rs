//! Where a request's token is read from: `Authorization: Bearer T` (RFC 6750 §2.1), and
//! `Authorization: Basic` with an empty user name and the token as password (`curl -u ":T"`).

use base64::Engine;
use http::HeaderMap;

use super::JwtError;
use crate::config::TokenSource;

/// The request's token, if it carries one in a way `sources` allows. An `Authorization`
/// header of another scheme is no token (the answer is a challenge, not an error); a header
/// that claims to carry one but is malformed, or several `Authorization` fields, is an error.
pub fn extract(headers: &HeaderMap, sources: &[TokenSource]) -> Result<Option<String>, JwtError> {
    let mut fields = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = fields.next() else {
        return Ok(None);
    };
    if fields.next().is_some() {
        return Err(JwtError::Malformed(
            "the request has more than one Authorization header".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| JwtError::Malformed("the Authorization header is not text".into()))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim_matches(' ');
    if scheme.eq_ignore_ascii_case("bearer") && sources.contains(&TokenSource::Bearer) {
        if rest.is_empty() || rest.contains(' ') {
            return Err(JwtError::Malformed(
                "the Bearer credentials are not one token".into(),
            ));
        }
        return Ok(Some(rest.to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") && sources.contains(&TokenSource::BasicPassword) {
        return basic_password(rest).map(Some);
    }
    Ok(None)
}

/// The password of `Basic base64(":TOKEN")`; a non-empty user name is not a token.
fn basic_password(credentials: &str) -> Result<String, JwtError> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .map_err(|_| JwtError::Malformed("the Basic credentials are not base64".into()))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| JwtError::Malformed("the Basic credentials are not UTF-8".into()))?;
    match text.split_once(':') {
        Some(("", token)) if !token.is_empty() => Ok(token.to_string()),
        Some(("", _)) => Err(JwtError::Malformed(
            "the Basic password, which should carry the token, is empty".into(),
        )),
        _ => Err(JwtError::Malformed(
            "Basic credentials carry a token only with an empty user name (curl -u \":TOKEN\")"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    const BOTH: [TokenSource; 2] = [TokenSource::Bearer, TokenSource::BasicPassword];

    #[test]
    fn bearer_and_basic_password_carry_the_token() {
        assert_eq!(
            extract(&with("Bearer a.b.c"), &BOTH).unwrap().as_deref(),
            Some("a.b.c")
        );
        assert_eq!(
            extract(&with("bearer  a.b.c "), &BOTH).unwrap().as_deref(),
            Some("a.b.c")
        );
        // base64(":a.b.c")
        assert_eq!(
            extract(&with("Basic OmEuYi5j"), &BOTH).unwrap().as_deref(),
            Some("a.b.c")
        );
    }

    #[test]
    fn other_schemes_and_disabled_sources_carry_none() {
        assert_eq!(extract(&HeaderMap::new(), &BOTH).unwrap(), None);
        assert_eq!(extract(&with("Digest x"), &BOTH).unwrap(), None);
        assert_eq!(
            extract(&with("Basic OmEuYi5j"), &[TokenSource::Bearer]).unwrap(),
            None
        );
    }

    #[test]
    fn malformed_credentials_are_errors() {
        assert!(extract(&with("Bearer"), &BOTH).is_err());
        assert!(extract(&with("Bearer a b"), &BOTH).is_err());
        assert!(extract(&with("Basic !!!"), &BOTH).is_err());
        // base64("user:a.b.c")
        assert!(extract(&with("Basic dXNlcjphLmIuYw=="), &BOTH).is_err());
        let mut two = with("Bearer a.b.c");
        two.append(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer d.e.f"),
        );
        assert!(extract(&two, &BOTH).is_err());
    }
}
