//! A JWKS document turned into the keys a validator may use: RFC 7517 parsing with limits
//! (1 MiB, 100 keys), and the keys that must not verify signatures left out, each with the
//! reason (`use = "enc"`, key operations without `verify`, unknown `kty` or curve, an `alg`
//! certgate does not accept, parameters that do not make a key).

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::JwtError;

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: u64 = 1 << 20;
/// Most keys a JWKS document may hold.
pub const MAX_JWKS_KEYS: usize = 100;

/// One usable verification key.
pub struct Key {
    pub kid: Option<String>,
    /// The algorithms this key may verify: its `alg` if it names one, else every accepted
    /// algorithm of its type (and curve).
    algorithms: Vec<Algorithm>,
    decoding: DecodingKey,
}

/// The keys of one JWKS fetch, and what was left out.
pub struct KeySet {
    pub keys: Vec<Key>,
    /// `key N (kid K): reason` for every key not used.
    pub skipped: Vec<String>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.kids())
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl KeySet {
    /// Parses `bytes` as a JWKS, keeping the keys usable with `accepted` algorithms. A document
    /// that is not a JWKS, is too large, or has no usable key is an error.
    pub fn parse(bytes: &[u8], accepted: &[Algorithm]) -> Result<KeySet, JwtError> {
        if bytes.len() as u64 > MAX_JWKS_BYTES {
            return Err(JwtError::Jwks(format!(
                "the JWKS is {} bytes, more than the limit of {MAX_JWKS_BYTES}",
                bytes.len()
            )));
        }
        let doc: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| JwtError::Jwks(format!("the JWKS is not JSON: {e}")))?;
        let entries = doc
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| JwtError::Jwks("the JWKS has no \"keys\" array".into()))?;
        if entries.len() > MAX_JWKS_KEYS {
            return Err(JwtError::Jwks(format!(
                "the JWKS holds {} keys, more than the limit of {MAX_JWKS_KEYS}",
                entries.len()
            )));
        }
        let mut set = KeySet {
            keys: Vec::new(),
            skipped: Vec::new(),
        };
        for (i, entry) in entries.iter().enumerate() {
            let kid = entry
                .get("kid")
                .and_then(|k| k.as_str())
                .map(str::to_string);
            match usable_key(entry, accepted) {
                Ok(key) => set.keys.push(key),
                Err(why) => set.skipped.push(match &kid {
                    Some(k) => format!("key {i} (kid {k:?}): {why}"),
                    None => format!("key {i}: {why}"),
                }),
            }
        }
        if set.keys.is_empty() {
            return Err(JwtError::Jwks(format!(
                "the JWKS has no usable signature key ({})",
                if set.skipped.is_empty() {
                    "it is empty".to_string()
                } else {
                    set.skipped.join("; ")
                }
            )));
        }
        Ok(set)
    }

    /// The key ids, in document order (`-` for a key without one).
    pub fn kids(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.kid.clone().unwrap_or_else(|| "-".into()))
            .collect()
    }

    /// Whether a key with this id is in the set.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys that may verify a token signed with `alg` and naming `kid`: the key with that
    /// id, or, for a token without `kid`, every key usable with `alg`.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a DecodingKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| kid.is_none() || k.kid.as_deref() == kid)
            .filter(move |k| k.algorithms.contains(&alg))
            .map(|k| &k.decoding)
    }
}

fn usable_key(entry: &serde_json::Value, accepted: &[Algorithm]) -> Result<Key, String> {
    let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|e| format!("not a JWK: {e}"))?;
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err("use = \"enc\" (an encryption key)".into());
    }
    if let Some(ops) = &jwk.common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return Err("key_ops does not include \"verify\"".into());
        }
    }
    let by_type = algorithms_of_type(&jwk.algorithm)?;
    let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
        None => by_type
            .iter()
            .copied()
            .filter(|a| accepted.contains(a))
            .collect(),
        Some(ka) => {
            let named: Algorithm = ka
                .to_string()
                .parse()
                .map_err(|_| format!("alg {ka:?} is not a signature algorithm"))?;
            if !by_type.contains(&named) {
                return Err(format!("alg {named:?} does not fit the key's type"));
            }
            vec![named]
                .into_iter()
                .filter(|a| accepted.contains(a))
                .collect()
        }
    };
    if algorithms.is_empty() {
        return Err(format!(
            "no algorithm this validator accepts ({accepted:?}) fits the key"
        ));
    }
    let decoding =
        DecodingKey::from_jwk(&jwk).map_err(|e| format!("its parameters are not a key: {e}"))?;
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        algorithms,
        decoding,
    })
}

/// What a key of this type and curve can verify, among the algorithms certgate knows.
fn algorithms_of_type(params: &AlgorithmParameters) -> Result<Vec<Algorithm>, String> {
    use Algorithm as A;
    match params {
        AlgorithmParameters::RSA(_) => Ok(vec![
            A::RS256,
            A::RS384,
            A::RS512,
            A::PS256,
            A::PS384,
            A::PS512,
        ]),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Ok(vec![A::ES256]),
            EllipticCurve::P384 => Ok(vec![A::ES384]),
            ref other => Err(format!("EC curve {other:?} is not accepted")),
        },
        AlgorithmParameters::OctetKey(_) => {
            Err("kty \"oct\" (a shared secret) is never accepted".into())
        }
        AlgorithmParameters::OctetKeyPair(_) => Err("kty \"OKP\" is not accepted".into()),
        _ => Err("unknown kty".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A P-256 public key in JWK form (the RFC 7517 Appendix A.1 example key).
    fn ec_key(kid: &str) -> serde_json::Value {
        json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"
        })
    }

    fn parse(keys: Vec<serde_json::Value>) -> Result<KeySet, JwtError> {
        let doc = serde_json::to_vec(&json!({ "keys": keys })).unwrap();
        KeySet::parse(&doc, &[Algorithm::ES256, Algorithm::RS256])
    }

    #[test]
    fn keys_that_must_not_verify_are_left_out_with_a_reason() {
        let mut enc = ec_key("enc");
        enc["use"] = json!("enc");
        let mut wrap = ec_key("wrap");
        wrap["key_ops"] = json!(["wrapKey"]);
        let mut wrong_alg = ec_key("wrong-alg");
        wrong_alg["alg"] = json!("RS256");
        let secret = json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
        let odd = json!({"kty": "XYZ", "kid": "odd"});
        let set = parse(vec![ec_key("good"), enc, wrap, wrong_alg, secret, odd]).unwrap();
        assert_eq!(set.kids(), ["good"]);
        let reasons = set.skipped.join("\n");
        for says in ["enc", "verify", "does not fit", "oct", "kty"] {
            assert!(reasons.contains(says), "no {says:?} in\n{reasons}");
        }
        assert_eq!(set.candidates(Some("good"), Algorithm::ES256).count(), 1);
        assert_eq!(set.candidates(None, Algorithm::ES256).count(), 1);
        assert_eq!(set.candidates(Some("good"), Algorithm::RS256).count(), 0);
        assert!(!set.has_kid("enc"));
    }

    #[test]
    fn documents_over_the_limits_or_without_usable_keys_are_refused() {
        let many = (0..=MAX_JWKS_KEYS)
            .map(|i| ec_key(&format!("k{i}")))
            .collect();
        assert!(parse(many)
            .unwrap_err()
            .to_string()
            .contains("more than the limit"));
        let big = vec![b' '; MAX_JWKS_BYTES as usize + 1];
        assert!(KeySet::parse(&big, &[Algorithm::ES256])
            .unwrap_err()
            .to_string()
            .contains("bytes"));
        assert!(parse(vec![]).unwrap_err().to_string().contains("no usable"));
        for bad in [&b"[]"[..], b"{\"keys\": 5}", b"\xff"] {
            assert!(KeySet::parse(bad, &[Algorithm::ES256]).is_err());
        }
    }
}
