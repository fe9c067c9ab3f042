//! The rustls client-certificate verifier of a passthrough or verify listener: one per listener
//! and reload, shared by every connection, reporting what it saw through [`super::handoff`].

use std::sync::Arc;

use arc_swap::ArcSwap;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::chain::judge;
use super::handoff;
use super::status::{Failure, VerifyCode};
use super::Policy;

/// The listener's policy in service now, shared by the verifiers of all its generations.
pub type CurrentPolicy = Arc<ArcSwap<Policy>>;

/// A listener's policy as rustls sees it.
///
/// rustls keeps a connection's `ServerConfig`, and so its verifier, for the connection's whole
/// life. The verifier therefore holds no trust store of its own: it reads the listener's
/// current policy at each handshake, and keeps only what the CertificateRequest needs (the CA
/// names, a few hundred bytes each). A connection opened before twenty reloads pins none of the
/// twenty stores it outlived.
#[derive(Debug)]
pub struct ListenerVerifier {
    current: CurrentPolicy,
    mandatory: bool,
    ca_names: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ListenerVerifier {
    /// The verifier of the generation whose policy is `policy`; `current` is the listener's
    /// shared cell, which holds `policy` while this generation is in service.
    pub fn new(
        current: CurrentPolicy,
        policy: &Policy,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        let ca_names = match policy {
            Policy::Verify {
                store,
                advertise_ca_names: true,
                ..
            } => store.ca_names.clone(),
            _ => Vec::new(),
        };
        ListenerVerifier {
            current,
            mandatory: matches!(
                policy,
                Policy::Verify {
                    require_certificate: true,
                    ..
                }
            ),
            ca_names,
            algorithms,
        }
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
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.ca_names
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let policy = self.current.load();
        let judged = judge(&policy, &self.algorithms, end_entity, intermediates, now);
        let read = judged.leaf.is_some();
        handoff::report_leaf(judged.leaf);
        if let (true, Policy::Verify { store, .. }) = (read, &**policy) {
            handoff::report_trust_store_version(&store.version);
        }
        match judged.outcome {
            Ok(kept) => {
                handoff::report_kept(kept);
                Ok(ClientCertVerified::assertion())
            }
            Err((failure, alert)) => Err(reject(failure, alert)),
        }
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
