//! The rustls client-certificate verifier of a passthrough or verify listener: one per listener
//! and reload, shared by every connection, reporting what it saw through [`super::handoff`].

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::chain::{check_chain, parse_leaf};
use super::handoff;
use super::status::{Failure, VerifyCode};
use super::Policy;
use crate::x509;

/// A listener's policy as rustls sees it.
#[derive(Debug)]
pub struct ListenerVerifier {
    policy: Arc<Policy>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ListenerVerifier {
    pub fn new(policy: Arc<Policy>, algorithms: WebPkiSupportedAlgorithms) -> Self {
        ListenerVerifier { policy, algorithms }
    }
}

/// Reports the failure for the connection and gives rustls the error whose alert it sends.
fn reject(failure: Failure, alert: CertificateError) -> rustls::Error {
    handoff::report_failure(failure);
    rustls::Error::InvalidCertificate(alert)
}

/// A CertificateVerify signature that does not verify: the client does not hold the key.
fn signature_refused(e: rustls::Error) -> rustls::Error {
    handoff::report_failure(Failure::new(
        VerifyCode::Rejected,
        format!(
            "client's CertificateVerify signature does not verify with its certificate's key: {e}"
        ),
    ));
    e
}

impl ClientCertVerifier for ListenerVerifier {
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
                handoff::report_leaf(None);
                return Err(reject(f, CertificateError::BadEncoding));
            }
        };
        if let Err(e) = x509::check_names(&leaf) {
            handoff::report_leaf(None);
            let f = Failure::new(
                VerifyCode::Invalid,
                format!("client certificate is malformed: {e}"),
            );
            return Err(reject(f, CertificateError::BadEncoding));
        }
        handoff::report_leaf(Some(x509::facts_of(&leaf)));
        check_chain(
            &self.policy,
            &self.algorithms,
            &leaf,
            end_entity,
            intermediates,
            now,
        )
        .map(|()| ClientCertVerified::assertion())
        .map_err(|(failure, alert)| reject(failure, alert))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
            .map_err(signature_refused)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
            .map_err(signature_refused)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
