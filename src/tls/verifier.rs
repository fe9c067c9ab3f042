//! Client-certificate verifiers for passthrough and verify mode, with ALB's limits and failure
//! codes. Each connection wraps the shared verifier with its own `HandshakeRecord`.

use std::cell::RefCell;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use webpki::EndEntityCert;
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

use super::status::{from_webpki, Failure, HandshakeRecord, VerifyCode};
use crate::config::ChainLimits;
use crate::truststore::revocation::Status;
use crate::truststore::TrustStore;
use crate::x509;

const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

/// What a listener checks; shared by all its connections.
#[derive(Debug)]
pub enum Policy {
    /// Any chain is accepted; only possession of the key is proven.
    Passthrough { limits: ChainLimits },
    /// The chain must verify against `store`.
    Verify {
        store: Arc<TrustStore>,
        ignore_expiry: bool,
        advertise_ca_names: bool,
    },
}

/// The verifier one connection uses: the listener's policy plus this connection's record.
#[derive(Debug)]
pub struct ConnVerifier {
    pub policy: Arc<Policy>,
    pub record: Arc<HandshakeRecord>,
    pub algorithms: WebPkiSupportedAlgorithms,
}

fn reject(record: &HandshakeRecord, failure: Failure, alert: CertificateError) -> rustls::Error {
    record.set_failure(failure);
    rustls::Error::InvalidCertificate(alert)
}

/// ALB accepts RSA 2048–8192 bits and ECDSA on P-256, P-384 and P-521; nothing else.
fn check_key_type(cert: &X509Certificate<'_>, what: &str) -> Result<(), Failure> {
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
fn check_can_sign(cert: &X509Certificate<'_>, what: &str) -> Result<(), Failure> {
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

fn check_sizes(
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

/// Parses the presented leaf; a leaf that is not X.509 is `ClientCertInvalid`.
fn parse_leaf<'a>(end_entity: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, Failure> {
    X509Certificate::from_der(end_entity)
        .map(|(_, c)| c)
        .map_err(|e| {
            Failure::new(
                VerifyCode::Invalid,
                format!("client certificate is not valid DER X.509: {e}"),
            )
        })
}

/// Checks a presented chain against `policy` at `now`: the same checks a handshake makes,
/// except the CertificateVerify signature, which only the handshake can check. Used to
/// re-check open connections after a trust-store reload.
pub fn verify_chain(
    policy: &Policy,
    algorithms: &WebPkiSupportedAlgorithms,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), Failure> {
    let leaf = parse_leaf(end_entity)?;
    check_chain(policy, algorithms, &leaf, end_entity, intermediates, now).map_err(|(f, _)| f)
}

/// The chain checks of both the handshake and `verify_chain`; the error carries the alert
/// rustls sends.
fn check_chain(
    policy: &Policy,
    algorithms: &WebPkiSupportedAlgorithms,
    leaf: &X509Certificate<'_>,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), (Failure, CertificateError)> {
    let (store, ignore_expiry) = match policy {
        Policy::Passthrough { limits } => {
            return check_sizes(end_entity, intermediates, *limits)
                .map_err(|f| (f, CertificateError::BadEncoding));
        }
        Policy::Verify {
            store,
            ignore_expiry,
            ..
        } => (store, *ignore_expiry),
    };
    check_sizes(end_entity, intermediates, store.limits)
        .map_err(|f| (f, CertificateError::BadEncoding))?;
    check_key_type(leaf, "client certificate").map_err(|f| (f, CertificateError::BadEncoding))?;

    // With ignore_client_certificate_expiry, the chain is judged at a moment when the leaf
    // was still valid: an expired chain passes, a leaf that is not valid yet does not.
    let mut time = now;
    if ignore_expiry {
        let not_after = leaf.validity().not_after.timestamp();
        if not_after >= 0 && (now.as_secs() as i64) > not_after {
            time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(not_after as u64));
        }
    }

    let ee = EndEntityCert::try_from(end_entity).map_err(|e| from_webpki(&e))?;
    let max_depth = store.limits.max_chain_depth;
    // Path checks webpki does not do (or, for revocation, does too slowly for large CRLs); a
    // refusal is carried out through `refused` because the callback can only return webpki's
    // own error type.
    let refused: RefCell<Option<(Failure, CertificateError)>> = RefCell::new(None);
    let path_check = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let refuse = |f: Failure, alert: CertificateError| {
            *refused.borrow_mut() = Some((f, alert));
            Err(webpki::Error::UnsupportedCertVersion)
        };
        // leaf + intermediates on the path + the trust anchor
        let len = 2 + path.intermediate_certificates().count();
        if len > max_depth {
            return Err(webpki::Error::MaximumPathDepthExceeded);
        }
        // Only the intermediates on the chosen path matter, not every extra one sent.
        for (i, cert) in path.intermediate_certificates().enumerate() {
            let der = cert.der();
            let what = format!("intermediate #{} of the client chain", i + 1);
            let checked = match X509Certificate::from_der(&der) {
                Ok((_, c)) => check_key_type(&c, &what).and_then(|()| check_can_sign(&c, &what)),
                Err(e) => Err(Failure::new(
                    VerifyCode::Invalid,
                    format!("{what} is malformed: {e}"),
                )),
            };
            if let Err(f) = checked {
                return refuse(f, CertificateError::BadEncoding);
            }
        }
        if let Err((f, alert)) = check_revocation(store, path, algorithms) {
            return refuse(f, alert);
        }
        Ok(())
    };
    let result = ee.verify_for_usage(
        algorithms.all,
        &store.anchors,
        intermediates,
        time,
        webpki::KeyUsage::client_auth(),
        None,
        Some(&path_check),
    );
    match (result, refused.into_inner()) {
        (Ok(_), _) => Ok(()),
        (Err(_), Some(refusal)) => Err(refusal),
        (Err(e), None) => Err(from_webpki(&e)),
    }
}

/// Checks the leaf and every intermediate of a built path against the store's CRLs. A
/// certificate with no CRL from its issuer is fine, as on ALB.
fn check_revocation(
    store: &TrustStore,
    path: &webpki::VerifiedPath<'_>,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<(), (Failure, CertificateError)> {
    if store.crls.is_empty() {
        return Ok(());
    }
    let intermediates: Vec<&webpki::Cert<'_>> = path.intermediate_certificates().collect();
    let anchor_spki = der_sequence(path.anchor().subject_public_key_info.as_ref());
    let certs = std::iter::once(&**path.end_entity()).chain(intermediates.iter().copied());
    for (k, cert) in certs.enumerate() {
        let issuer_spki = match intermediates.get(k) {
            Some(issuer) => issuer.subject_public_key_info().as_ref().to_vec(),
            None => anchor_spki.clone(),
        };
        let what = if k == 0 {
            "client certificate".to_string()
        } else {
            format!("intermediate #{k} of the client chain")
        };
        for crl in &store.crls {
            match crl.status(cert.issuer(), cert.serial(), &issuer_spki, algorithms.all) {
                Status::Revoked => {
                    return Err((
                        Failure::new(
                            VerifyCode::CrlHit,
                            format!("{what} (serial {}) is revoked by a CRL of the trust store", x509::serial_hex(cert.serial())),
                        ),
                        CertificateError::Revoked,
                    ))
                }
                Status::BadSignature => {
                    return Err((
                        Failure::new(
                            VerifyCode::CrlProcessingError,
                            format!("the CRL for the issuer of the {what} does not verify with that issuer's key"),
                        ),
                        CertificateError::UnknownRevocationStatus,
                    ))
                }
                Status::Good | Status::NotApplicable => {}
            }
        }
    }
    Ok(())
}

/// Wraps DER contents in a SEQUENCE header (webpki keeps trust-anchor keys without it).
fn der_sequence(contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = Vec::with_capacity(len + 6);
    out.push(0x30);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

impl ClientCertVerifier for ConnVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        matches!(*self.policy, Policy::Verify { .. })
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match &*self.policy {
            Policy::Verify {
                store,
                advertise_ca_names: true,
                ..
            } => &store.ca_names,
            _ => &[],
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let leaf = match parse_leaf(end_entity) {
            Ok(c) => c,
            Err(f) => {
                self.record.set_leaf(None);
                return Err(reject(&self.record, f, CertificateError::BadEncoding));
            }
        };
        if let Err(e) = x509::check_names(&leaf) {
            self.record.set_leaf(None);
            let f = Failure::new(
                VerifyCode::Invalid,
                format!("client certificate is malformed: {e}"),
            );
            return Err(reject(&self.record, f, CertificateError::BadEncoding));
        }
        self.record.set_leaf(Some(x509::facts_of(&leaf)));
        let checked = check_chain(
            &self.policy,
            &self.algorithms,
            &leaf,
            end_entity,
            intermediates,
            now,
        );
        match checked {
            Ok(()) => Ok(ClientCertVerified::assertion()),
            Err((failure, alert)) => Err(reject(&self.record, failure, alert)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms).map_err(|e| {
            self.record.set_failure(Failure::new(
                VerifyCode::Rejected,
                format!("client's CertificateVerify signature does not verify with its certificate's key: {e}"),
            ));
            e
        })
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms).map_err(|e| {
            self.record.set_failure(Failure::new(
                VerifyCode::Rejected,
                format!("client's CertificateVerify signature does not verify with its certificate's key: {e}"),
            ));
            e
        })
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
