//! Server private keys from PEM: plain PKCS#8, SEC1 or PKCS#1, and PKCS#8 `ENCRYPTED PRIVATE
//! KEY` (PBES2: PBKDF2 with HMAC-SHA-1/256/384/512, AES-128/192/256-CBC) decrypted with a
//! password from a file or an environment variable. The ASN.1 is read by the `pkcs8`/`pkcs5`
//! crates; the key derivation and decryption run on aws-lc-rs, the one crypto library here.

use std::num::NonZeroU32;

use aws_lc_rs::cipher::{
    DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey, AES_128, AES_192, AES_256,
};
use aws_lc_rs::pbkdf2;
use pkcs8::der::Decode;
use pkcs8::pkcs5::pbes2::{self, Pbkdf2Prf};
use pkcs8::pkcs5::EncryptionScheme;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::KeyPassword;

const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";
/// Beyond this, deriving the key takes seconds per load: refused as unreasonable.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// Reads the private key in `pem`, decrypting it with `password` when it is encrypted. The
/// error says what is wrong in words fit for a message about the key file; it never contains
/// the password.
pub fn decode_private_key(
    pem: &[u8],
    password: Option<(&KeyPassword, &[u8])>,
) -> Result<PrivateKeyDer<'static>, String> {
    let text = std::str::from_utf8(pem).ok();
    let encrypted = text.and_then(encrypted_der);
    match (encrypted, password) {
        (Some(der), Some((from, pw))) => decrypt(&der, pw).map_err(|e| match e {
            Decrypt::WrongPassword => format!("cannot be decrypted with the password from {from} (wrong password?)"),
            Decrypt::Unsupported(what) => format!("is encrypted with {what}, which certgate does not support (supported: PBES2 with PBKDF2-HMAC-SHA1/SHA256/SHA384/SHA512 and AES-128/192/256-CBC)"),
        }),
        (Some(_), None) => Err("is an ENCRYPTED PRIVATE KEY, but no private_key_password_file or private_key_password_env is given".to_string()),
        (None, Some((from, _))) => Err(format!("is not an ENCRYPTED PRIVATE KEY, but {from} is given")),
        (None, None) => PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
            format!("no usable PEM private key (PKCS#8, SEC1 or PKCS#1): {e}")
        }),
    }
}

/// The password from its file (one trailing newline removed) or environment variable.
pub fn read_password(from: &KeyPassword) -> Result<Vec<u8>, String> {
    match from {
        KeyPassword::File(path) => {
            let mut bytes = std::fs::read(path).map_err(|e| format!("cannot read {from}: {e}"))?;
            if bytes.ends_with(b"\n") {
                bytes.pop();
                if bytes.ends_with(b"\r") {
                    bytes.pop();
                }
            }
            Ok(bytes)
        }
        KeyPassword::Env(name) => std::env::var_os(name)
            .map(|v| v.into_encoded_bytes())
            .ok_or_else(|| format!("{from}: the environment variable is not set")),
    }
}

/// The DER of the first `ENCRYPTED PRIVATE KEY` block, if the text has one.
fn encrypted_der(text: &str) -> Option<Vec<u8>> {
    let begin = text.find(&format!("-----BEGIN {ENCRYPTED_LABEL}-----"))?;
    let end_marker = format!("-----END {ENCRYPTED_LABEL}-----");
    let end = text[begin..].find(&end_marker)? + begin + end_marker.len();
    let (label, der) = pkcs8::der::pem::decode_vec(&text.as_bytes()[begin..end]).ok()?;
    (label == ENCRYPTED_LABEL).then_some(der)
}

/// Schemes OpenSSL can write that certgate does not read, by the DER of their OID (the
/// `pkcs5` crate refuses them before saying which they are).
const UNSUPPORTED: &[(&[u8], &str)] = &[
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07],
        "DES-EDE3-CBC",
    ),
    (&[0x2b, 0x0e, 0x03, 0x02, 0x07], "DES-CBC"),
    (
        &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x04, 0x0b],
        "scrypt",
    ),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03],
        "PKCS#12 pbeWithSHAAnd3-KeyTripleDES-CBC",
    ),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x06],
        "PKCS#12 pbeWithSHAAnd40BitRC2-CBC",
    ),
];

fn known_unsupported(der: &[u8]) -> Option<&'static str> {
    UNSUPPORTED.iter().find_map(|(oid, name)| {
        let mut tlv = vec![0x06, oid.len() as u8];
        tlv.extend_from_slice(oid);
        der.windows(tlv.len()).any(|w| w == tlv).then_some(*name)
    })
}

enum Decrypt {
    WrongPassword,
    Unsupported(String),
}

fn decrypt(der: &[u8], password: &[u8]) -> Result<PrivateKeyDer<'static>, Decrypt> {
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(der).map_err(|e| {
        Decrypt::Unsupported(match known_unsupported(der) {
            Some(name) => name.to_string(),
            None => format!("parameters certgate cannot read ({e})"),
        })
    })?;
    let params = match &info.encryption_algorithm {
        EncryptionScheme::Pbes2(p) => p,
        EncryptionScheme::Pbes1(alg) => {
            return Err(Decrypt::Unsupported(format!("PBES1 ({})", alg.oid())))
        }
        other => return Err(Decrypt::Unsupported(format!("the scheme {}", other.oid()))),
    };
    let key = derive_key(params, password)?;
    let mut buf = info.encrypted_data.to_vec();
    let plain = key
        .decrypt(&mut buf, iv_of(&params.encryption)?)
        .map_err(|_| Decrypt::WrongPassword)?;
    // A wrong password usually fails the padding check; when it passes by chance, what comes
    // out is not a PKCS#8 structure.
    pkcs8::PrivateKeyInfo::from_der(plain).map_err(|_| Decrypt::WrongPassword)?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        plain.to_vec(),
    )))
}

fn derive_key(
    params: &pbes2::Parameters<'_>,
    password: &[u8],
) -> Result<PaddedBlockDecryptingKey, Decrypt> {
    let unsupported = |what: String| Decrypt::Unsupported(what);
    let kdf = params
        .kdf
        .pbkdf2()
        .ok_or_else(|| unsupported(format!("the key derivation function {}", params.kdf.oid())))?;
    let prf = match kdf.prf {
        Pbkdf2Prf::HmacWithSha1 => pbkdf2::PBKDF2_HMAC_SHA1,
        Pbkdf2Prf::HmacWithSha256 => pbkdf2::PBKDF2_HMAC_SHA256,
        Pbkdf2Prf::HmacWithSha384 => pbkdf2::PBKDF2_HMAC_SHA384,
        Pbkdf2Prf::HmacWithSha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        other => return Err(unsupported(format!("PBKDF2 with {other:?}"))),
    };
    let iterations = NonZeroU32::new(kdf.iteration_count)
        .filter(|n| n.get() <= MAX_PBKDF2_ITERATIONS)
        .ok_or_else(|| unsupported(format!("{} PBKDF2 iterations", kdf.iteration_count)))?;
    let (algorithm, key_len) = match params.encryption {
        pbes2::EncryptionScheme::Aes128Cbc { .. } => (&AES_128, 16),
        pbes2::EncryptionScheme::Aes192Cbc { .. } => (&AES_192, 24),
        pbes2::EncryptionScheme::Aes256Cbc { .. } => (&AES_256, 32),
        other => return Err(unsupported(format!("the cipher {}", other.oid()))),
    };
    let mut key = vec![0u8; key_len];
    if kdf.key_length.is_some_and(|l| usize::from(l) != key.len()) {
        return Err(unsupported(
            "a key length that does not fit its cipher".to_string(),
        ));
    }
    pbkdf2::derive(prf, iterations, kdf.salt, password, &mut key);
    let unbound = UnboundCipherKey::new(algorithm, &key)
        .map_err(|_| unsupported("a key aws-lc-rs refuses".to_string()))?;
    PaddedBlockDecryptingKey::cbc_pkcs7(unbound)
        .map_err(|_| unsupported("a cipher aws-lc-rs refuses".to_string()))
}

fn iv_of(scheme: &pbes2::EncryptionScheme<'_>) -> Result<DecryptionContext, Decrypt> {
    match scheme {
        pbes2::EncryptionScheme::Aes128Cbc { iv }
        | pbes2::EncryptionScheme::Aes192Cbc { iv }
        | pbes2::EncryptionScheme::Aes256Cbc { iv } => Ok(DecryptionContext::Iv128((**iv).into())),
        other => Err(Decrypt::Unsupported(format!("the cipher {}", other.oid()))),
    }
}
