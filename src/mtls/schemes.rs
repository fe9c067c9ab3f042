//! The signature schemes a client certificate's key may use, which are also the ones the
//! CertificateRequest advertises: those of ALB's key policy (ECDSA on P-256, P-384 and P-521;
//! RSA keys with PKCS#1 v1.5 or PSS signatures). rustls's default list also offers Ed25519 and
//! ML-DSA, whose keys the policy refuses; a client holding several certificates picks one by
//! this list, so offering a scheme certgate then refuses would steer it to the wrong one.

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::SignatureScheme;
use webpki::aws_lc_rs as algs;

/// CertificateVerify schemes and the webpki algorithms each stands for, in the order the
/// CertificateRequest lists them: ECDSA, then RSA-PSS, then RSA PKCS#1 v1.5. In TLS 1.2 an
/// ECDSA scheme does not fix the curve, so each maps to all three curves (as in rustls).
static CLIENT_SCHEMES: &[(
    SignatureScheme,
    &[&dyn rustls::pki_types::SignatureVerificationAlgorithm],
)] = &[
    (
        SignatureScheme::ECDSA_NISTP256_SHA256,
        &[
            algs::ECDSA_P256_SHA256,
            algs::ECDSA_P384_SHA256,
            algs::ECDSA_P521_SHA256,
        ],
    ),
    (
        SignatureScheme::ECDSA_NISTP384_SHA384,
        &[
            algs::ECDSA_P384_SHA384,
            algs::ECDSA_P256_SHA384,
            algs::ECDSA_P521_SHA384,
        ],
    ),
    (
        SignatureScheme::ECDSA_NISTP521_SHA512,
        &[
            algs::ECDSA_P521_SHA512,
            algs::ECDSA_P384_SHA512,
            algs::ECDSA_P256_SHA512,
        ],
    ),
    (
        SignatureScheme::RSA_PSS_SHA256,
        &[algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
    ),
    (
        SignatureScheme::RSA_PSS_SHA384,
        &[algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
    ),
    (
        SignatureScheme::RSA_PSS_SHA512,
        &[algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
    ),
    (
        SignatureScheme::RSA_PKCS1_SHA256,
        &[algs::RSA_PKCS1_2048_8192_SHA256],
    ),
    (
        SignatureScheme::RSA_PKCS1_SHA384,
        &[algs::RSA_PKCS1_2048_8192_SHA384],
    ),
    (
        SignatureScheme::RSA_PKCS1_SHA512,
        &[algs::RSA_PKCS1_2048_8192_SHA512],
    ),
];

/// The algorithms a passthrough or verify listener uses with client certificates: the
/// provider's full list for signatures inside a chain (a CA's key type is judged by the chain
/// checks, which name it), and [`CLIENT_SCHEMES`] for the client's own CertificateVerify and
/// for what the CertificateRequest advertises.
pub fn client_algorithms(provider: &WebPkiSupportedAlgorithms) -> WebPkiSupportedAlgorithms {
    WebPkiSupportedAlgorithms {
        all: provider.all,
        mapping: CLIENT_SCHEMES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advertised() -> Vec<SignatureScheme> {
        let provider = crate::crypto::crypto_provider();
        client_algorithms(&provider.signature_verification_algorithms).supported_schemes()
    }

    #[test]
    fn advertises_only_schemes_of_accepted_key_types() {
        let schemes = advertised();
        for refused in [
            SignatureScheme::ED25519,
            SignatureScheme::ED448,
            SignatureScheme::ML_DSA_44,
            SignatureScheme::ML_DSA_65,
            SignatureScheme::ML_DSA_87,
            SignatureScheme::RSA_PKCS1_SHA1,
            SignatureScheme::ECDSA_SHA1_Legacy,
        ] {
            assert!(!schemes.contains(&refused), "{refused:?} is advertised");
        }
        assert_eq!(schemes.len(), 9, "{schemes:?}");
        assert_eq!(schemes[0], SignatureScheme::ECDSA_NISTP256_SHA256);
    }

    #[test]
    fn every_scheme_the_provider_verifies_for_these_keys_is_kept() {
        // Nothing rustls would verify for an ECDSA or rsaEncryption key is lost.
        let provider = crate::crypto::crypto_provider();
        let kept = advertised();
        for scheme in provider
            .signature_verification_algorithms
            .supported_schemes()
        {
            let name = format!("{scheme:?}");
            if name.starts_with("ECDSA_NISTP") || name.starts_with("RSA_") {
                assert!(kept.contains(&scheme), "{name} was dropped");
            }
        }
    }
}
