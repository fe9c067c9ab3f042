//! Validation of the `[jwt_validation.NAME]` sections: issuer, JWKS location, algorithms (never
//! `none` or HMAC), token sources, clock skew, refresh interval and ALB's additional claims.

use std::collections::BTreeMap;
use std::path::Path;

use super::problems::{existing_file, secs, source, Problems};
use crate::config::file::{AdditionalClaimFile, JwtValidationFile};
use crate::config::model::{
    ClaimCondition, ClaimFormat, JwksSource, JwtAlgorithm, JwtValidatorConfig, TokenSource,
    DEFAULT_ALGORITHMS, DEFAULT_CLOCK_SKEW, DEFAULT_JWKS_REFRESH, MAX_ADDITIONAL_CLAIMS,
};

/// Every declared validator, by name; listeners and rules refer to them.
pub(super) fn validators(
    sections: &BTreeMap<String, JwtValidationFile>,
    base: &Path,
    p: &mut Problems,
) -> BTreeMap<String, JwtValidatorConfig> {
    sections
        .iter()
        .map(|(name, f)| (name.clone(), validator(name, f, base, p)))
        .collect()
}

fn validator(
    name: &str,
    f: &JwtValidationFile,
    base: &Path,
    p: &mut Problems,
) -> JwtValidatorConfig {
    let key = format!("jwt_validation.{name}");
    let issuer = p
        .required(&format!("{key}.issuer"), f.issuer.as_deref())
        .unwrap_or_default()
        .to_string();
    let jwks_key = format!("{key}.jwks_url");
    let jwks = match p.required(&jwks_key, f.jwks_url.as_deref()) {
        Some(url) => jwks_source(base, &jwks_key, url, p),
        None => JwksSource::Url(http::Uri::from_static("https://invalid")),
    };
    let jwks_ca_bundle = f
        .jwks_ca_bundle
        .as_deref()
        .map(|b| existing_file(base, &format!("{key}.jwks_ca_bundle"), b, p));
    if jwks_ca_bundle.is_some()
        && !matches!(&jwks, JwksSource::Url(u) if u.scheme_str() == Some("https"))
    {
        p.push(
            &format!("{key}.jwks_ca_bundle"),
            "only applies to an https:// jwks_url",
        );
    }
    JwtValidatorConfig {
        name: name.to_string(),
        issuer,
        jwks,
        jwks_ca_bundle,
        audience: f.audience.clone(),
        algorithms: algorithms(&key, f.algorithms.as_deref(), p),
        token_sources: token_sources(&key, f.token_sources.as_deref(), p),
        clock_skew: clock_skew(&key, f.clock_skew_secs, p),
        refresh_interval: secs(
            &format!("{key}.refresh_interval_secs"),
            f.refresh_interval_secs,
            DEFAULT_JWKS_REFRESH,
            p,
        ),
        require_certificate_binding: f.require_certificate_binding.unwrap_or(false),
        additional_claims: additional_claims(&key, &f.additional_claims, p),
    }
}

/// `https://` or `http://` URL, `s3://bucket/key`, else a file path.
fn jwks_source(base: &Path, key: &str, value: &str, p: &mut Problems) -> JwksSource {
    if value.starts_with("https://") || value.starts_with("http://") {
        match value.parse::<http::Uri>() {
            Ok(u) if u.host().is_some() => return JwksSource::Url(u),
            _ => {
                p.push(key, format!("{value:?} is not a valid URL"));
                return JwksSource::Url(http::Uri::from_static("https://invalid"));
            }
        }
    }
    JwksSource::Stored(source(base, key, value, p))
}

fn algorithms(key: &str, names: Option<&[String]>, p: &mut Problems) -> Vec<JwtAlgorithm> {
    let Some(names) = names else {
        return DEFAULT_ALGORITHMS.to_vec();
    };
    let key = format!("{key}.algorithms");
    if names.is_empty() {
        p.push(&key, "must name at least one algorithm");
    }
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        match algorithm(n) {
            Ok(a) if !out.contains(&a) => out.push(a),
            Ok(_) => {}
            Err(why) => p.push(&format!("{key}[{i}]"), why),
        }
    }
    out
}

fn algorithm(name: &str) -> Result<JwtAlgorithm, String> {
    use JwtAlgorithm as A;
    Ok(match name {
        "RS256" => A::RS256,
        "RS384" => A::RS384,
        "RS512" => A::RS512,
        "PS256" => A::PS256,
        "PS384" => A::PS384,
        "PS512" => A::PS512,
        "ES256" => A::ES256,
        "ES384" => A::ES384,
        "none" | "HS256" | "HS384" | "HS512" => {
            return Err(format!(
                "{name:?} is never accepted: tokens must be signed with the issuer's private key"
            ))
        }
        other => {
            return Err(format!(
                "{other:?} is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384"
            ))
        }
    })
}

fn token_sources(key: &str, names: Option<&[String]>, p: &mut Problems) -> Vec<TokenSource> {
    let Some(names) = names else {
        return vec![TokenSource::Bearer];
    };
    let key = format!("{key}.token_sources");
    if names.is_empty() {
        p.push(
            &key,
            "must name at least one of \"bearer\", \"basic_password\"",
        );
    }
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let s = match n.as_str() {
            "bearer" => TokenSource::Bearer,
            "basic_password" => TokenSource::BasicPassword,
            other => {
                p.push(
                    &format!("{key}[{i}]"),
                    format!("{other:?} is not one of \"bearer\", \"basic_password\""),
                );
                continue;
            }
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn clock_skew(key: &str, v: Option<u64>, p: &mut Problems) -> std::time::Duration {
    match v {
        None => DEFAULT_CLOCK_SKEW,
        Some(s) if s <= 600 => std::time::Duration::from_secs(s),
        Some(_) => {
            p.push(
                &format!("{key}.clock_skew_secs"),
                "must be between 0 and 600",
            );
            DEFAULT_CLOCK_SKEW
        }
    }
}

fn additional_claims(
    key: &str,
    claims: &[AdditionalClaimFile],
    p: &mut Problems,
) -> Vec<ClaimCondition> {
    let key = format!("{key}.additional_claims");
    if claims.len() > MAX_ADDITIONAL_CLAIMS {
        p.push(
            &key,
            format!("at most {MAX_ADDITIONAL_CLAIMS} claims (ALB's limit)"),
        );
    }
    claims
        .iter()
        .enumerate()
        .filter_map(|(i, c)| claim(&format!("{key}[{i}]"), c, p))
        .collect()
}

fn claim(key: &str, c: &AdditionalClaimFile, p: &mut Problems) -> Option<ClaimCondition> {
    let name = p
        .required(&format!("{key}.name"), c.name.as_deref())?
        .to_string();
    if name.is_empty() {
        p.push(&format!("{key}.name"), "must not be empty");
    }
    let format = match c.format.as_deref() {
        Some("single-string") => ClaimFormat::SingleString,
        Some("space-separated-values") => ClaimFormat::SpaceSeparatedValues,
        Some("string-array") => ClaimFormat::StringArray,
        Some(other) => {
            p.push(
                &format!("{key}.format"),
                format!(
                    "{other:?} is not one of \"single-string\", \"space-separated-values\", \"string-array\""
                ),
            );
            return None;
        }
        None => {
            p.push(&format!("{key}.format"), "is required");
            return None;
        }
    };
    if c.values.is_empty() {
        p.push(&format!("{key}.values"), "must list at least one value");
    }
    Some(ClaimCondition {
        name,
        format,
        values: c.values.clone(),
    })
}
