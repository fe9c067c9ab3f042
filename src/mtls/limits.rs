//! ALB's limits on client chains: certificate size and chain length, key types (RSA 2048–8192,
//! ECDSA P-256/P-384/P-521, no X.509 v1), and the keyCertSign usage a CA key needs.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

use super::status::{Failure, VerifyCode};
use crate::config::ChainLimits;

const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

/// ALB accepts RSA 2048–8192 bits and ECDSA on P-256, P-384 and P-521; nothing else.
pub(super) fn check_key_type(cert: &X509Certificate<'_>, what: &str) -> Result<(), Failure> {
    if cert.version() == X509Version::V1 {
        return Err(Failure::new(
            VerifyCode::TypeUnsupported,
            format!("{what} is an X.509 version 1 certificate"),
        ));
    }
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if (2048..=8192).contains(&bits) {
                Ok(())
            } else {
                Err(Failure::new(
                    VerifyCode::TypeUnsupported,
                    format!("{what} has a {bits}-bit RSA key; RSA keys must be 2048 to 8192 bits"),
                ))
            }
        }
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match curve.as_deref() {
                Some(OID_P256 | OID_P384 | OID_P521) => Ok(()),
                other => Err(Failure::new(
                    VerifyCode::TypeUnsupported,
                    format!(
                        "{what} has an EC key on curve {}; only P-256, P-384 and P-521 are accepted",
                        other.unwrap_or("(unnamed)")
                    ),
                )),
            }
        }
        _ => Err(Failure::new(
            VerifyCode::TypeUnsupported,
            format!(
                "{what} has a {} key; only RSA and ECDSA keys are accepted",
                key_alg_name(&spki.algorithm.algorithm.to_id_string())
            ),
        )),
    }
}

/// RFC 5280 §4.2.1.3: a CA key whose key usage lacks keyCertSign must not verify certificates
/// (webpki does not check this; OpenSSL does).
pub(super) fn check_can_sign(cert: &X509Certificate<'_>, what: &str) -> Result<(), Failure> {
    match cert.key_usage() {
        Ok(Some(ku)) if !ku.value.key_cert_sign() => Err(Failure::new(
            VerifyCode::Untrusted,
            format!("{what} has a key usage without keyCertSign, so it may not issue certificates"),
        )),
        _ => Ok(()),
    }
}

fn key_alg_name(oid: &str) -> &str {
    match oid {
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.2.840.10040.4.1" => "DSA",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        other => other,
    }
}

pub(super) fn check_sizes(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    limits: ChainLimits,
) -> Result<(), Failure> {
    for (i, c) in std::iter::once(end_entity).chain(intermediates).enumerate() {
        if c.len() > limits.max_client_certificate_size {
            let what = if i == 0 {
                "client certificate".to_string()
            } else {
                format!("intermediate #{i} sent by the client")
            };
            return Err(Failure::new(
                VerifyCode::MaxSizeExceeded,
                format!(
                    "{what} is {} bytes, more than {}",
                    c.len(),
                    limits.max_client_certificate_size
                ),
            ));
        }
    }
    if 1 + intermediates.len() > limits.max_chain_depth {
        return Err(Failure::new(
            VerifyCode::MaxChainDepthExceeded,
            format!(
                "client sent {} certificates, more than max_chain_depth {}",
                1 + intermediates.len(),
                limits.max_chain_depth
            ),
        ));
    }
    Ok(())
}
