//! ALB's `tls_verify_status` codes and the mapping from every way a handshake can end to one of
//! them, with a sentence for `tls_verify_detail`.

use std::sync::Mutex;

use crate::x509::LeafFacts;

/// The failure codes ALB writes after `Failed:` in its connection log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyCode {
    MaxChainDepthExceeded,
    MaxSizeExceeded,
    CrlHit,
    CrlProcessingError,
    Untrusted,
    NotYetValid,
    Expired,
    TypeUnsupported,
    Invalid,
    PurposeInvalid,
    Rejected,
    Unmapped,
}

impl VerifyCode {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyCode::MaxChainDepthExceeded => "ClientCertMaxChainDepthExceeded",
            VerifyCode::MaxSizeExceeded => "ClientCertMaxSizeExceeded",
            VerifyCode::CrlHit => "ClientCertCrlHit",
            VerifyCode::CrlProcessingError => "ClientCertCrlProcessingError",
            VerifyCode::Untrusted => "ClientCertUntrusted",
            VerifyCode::NotYetValid => "ClientCertNotYetValid",
            VerifyCode::Expired => "ClientCertExpired",
            VerifyCode::TypeUnsupported => "ClientCertTypeUnsupported",
            VerifyCode::Invalid => "ClientCertInvalid",
            VerifyCode::PurposeInvalid => "ClientCertPurposeInvalid",
            VerifyCode::Rejected => "ClientCertRejected",
            VerifyCode::Unmapped => "UnmappedConnectionError",
        }
    }

    /// The `tls_verify_status` value for this failure.
    pub fn status(self) -> String {
        format!("Failed:{}", self.as_str())
    }
}

/// A verification failure: the ALB code and what happened, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: VerifyCode,
    pub detail: String,
}

impl Failure {
    pub fn new(code: VerifyCode, detail: impl Into<String>) -> Self {
        Failure {
            code,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl std::error::Error for Failure {}

/// What the client-certificate verifier saw during one handshake. rustls' verifiers are shared
/// objects that never learn which connection they serve, so each connection gets its own record
/// to read after the handshake, whether it succeeded or not.
#[derive(Debug, Default)]
pub struct HandshakeRecord {
    inner: Mutex<RecordInner>,
}

#[derive(Debug, Default, Clone)]
pub struct RecordInner {
    /// Facts of the presented leaf, when one was presented and parsed.
    pub leaf: Option<LeafFacts>,
    /// Why verification failed, when it did.
    pub failure: Option<Failure>,
}

impl HandshakeRecord {
    pub fn set_leaf(&self, leaf: Option<LeafFacts>) {
        if let Ok(mut g) = self.inner.lock() {
            g.leaf = leaf;
        }
    }

    pub fn set_failure(&self, failure: Failure) {
        if let Ok(mut g) = self.inner.lock() {
            g.failure = Some(failure);
        }
    }

    pub fn take(&self) -> RecordInner {
        self.inner
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default()
    }
}

/// Maps a handshake that failed outside the certificate verifier to a failure.
pub fn from_handshake_error(err: &std::io::Error) -> Failure {
    use rustls::Error as E;
    if let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        let detail = match tls {
            E::NoCertificatesPresented => {
                "client presented no certificate, but verify mode requires one".to_string()
            }
            E::PeerIncompatible(p) => {
                format!("client and listener share no TLS version, cipher suite or group ({p:?})")
            }
            E::AlertReceived(a) => {
                format!("client aborted the handshake with alert {a:?} (a client that does not trust the server certificate sends this)")
            }
            E::InvalidMessage(m) => format!("client sent a malformed TLS message ({m:?})"),
            E::PeerMisbehaved(m) => format!("client violated the TLS protocol ({m:?})"),
            E::InvalidCertificate(c) => {
                return Failure::new(
                    VerifyCode::Invalid,
                    format!("client certificate refused: {c:?}"),
                )
            }
            other => format!("TLS handshake failed: {other}"),
        };
        return Failure::new(VerifyCode::Unmapped, detail);
    }
    let detail = match err.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            "client closed the connection during the TLS handshake".to_string()
        }
        std::io::ErrorKind::ConnectionReset => {
            "client reset the connection during the TLS handshake".to_string()
        }
        std::io::ErrorKind::InvalidData => format!("client sent data that is not TLS: {err}"),
        _ => format!("TLS handshake failed: {err}"),
    };
    Failure::new(VerifyCode::Unmapped, detail)
}

fn date(unix: u64) -> String {
    crate::x509::utc_string(i64::try_from(unix).unwrap_or(i64::MAX))
}

/// Maps a webpki path-building error to ALB's code and the alert rustls should send.
pub fn from_webpki(err: &webpki::Error) -> (Failure, rustls::CertificateError) {
    use rustls::CertificateError as C;
    use webpki::Error as W;
    let (code, detail, alert) = match err {
        W::CertExpired { time, not_after } => (
            VerifyCode::Expired,
            format!(
                "a certificate in the client chain expired at {} (handshake at {})",
                date(not_after.as_secs()),
                date(time.as_secs())
            ),
            C::Expired,
        ),
        W::CertNotValidYet { time, not_before } => (
            VerifyCode::NotYetValid,
            format!(
                "a certificate in the client chain is valid only from {} (handshake at {})",
                date(not_before.as_secs()),
                date(time.as_secs())
            ),
            C::NotValidYet,
        ),
        W::CertRevoked => (
            VerifyCode::CrlHit,
            "a certificate in the client chain is revoked by a CRL of the trust store".to_string(),
            C::Revoked,
        ),
        W::UnknownIssuer => (
            VerifyCode::Untrusted,
            "client chain does not lead to a CA of the trust store".to_string(),
            C::UnknownIssuer,
        ),
        W::RequiredEkuNotFoundContext(_) | W::EmptyEkuExtension => (
            VerifyCode::PurposeInvalid,
            "client certificate has an extended key usage without clientAuth".to_string(),
            C::InvalidPurpose,
        ),
        W::MaximumPathDepthExceeded => (
            VerifyCode::MaxChainDepthExceeded,
            "path from the client certificate to the trust anchor is longer than max_chain_depth"
                .to_string(),
            C::UnknownIssuer,
        ),
        W::InvalidCrlSignatureForPublicKey
        | W::UnsupportedCrlSignatureAlgorithmContext(_)
        | W::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_)
        | W::IssuerNotCrlSigner
        | W::CrlExpired { .. }
        | W::UnknownRevocationStatus
        | W::UnsupportedRevocationReason
        | W::UnsupportedCrlVersion
        | W::UnsupportedDeltaCrl
        | W::UnsupportedIndirectCrl
        | W::InvalidCrlNumber => (
            VerifyCode::CrlProcessingError,
            format!("a CRL of the trust store could not be used: {err:?}"),
            C::UnknownRevocationStatus,
        ),
        W::UnsupportedSignatureAlgorithmContext(_)
        | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
        | W::UnsupportedCertVersion => (
            VerifyCode::TypeUnsupported,
            format!(
                "client chain uses an unsupported certificate type or signature algorithm: {err:?}"
            ),
            C::BadEncoding,
        ),
        W::InvalidSignatureForPublicKey
        | W::PathLenConstraintViolated
        | W::NameConstraintViolation
        | W::MaximumSignatureChecksExceeded
        | W::MaximumPathBuildCallsExceeded
        | W::CaUsedAsEndEntity
        | W::EndEntityUsedAsCa => (
            VerifyCode::Untrusted,
            format!("client chain does not verify against the trust store: {err:?}"),
            C::UnknownIssuer,
        ),
        other => (
            VerifyCode::Invalid,
            format!("client certificate is malformed: {other:?}"),
            C::BadEncoding,
        ),
    };
    (Failure::new(code, detail), alert)
}
