//! The load generator's rustls client: a client certificate, no session resumption (every new
//! connection is a full handshake, as an mTLS proxy with revocation checks requires), one key
//! exchange group, and ALPN for the HTTP version under test.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Key exchange groups the client offers.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kx {
    /// X25519 only: what OpenSSL-based servers and rustls agree on without a retry.
    X25519,
    /// NIST P-256 only.
    P256,
    /// rustls' default list (with aws-lc-rs: X25519MLKEM768 first, a much larger exchange).
    Default,
}

pub struct ClientOptions<'a> {
    pub ca: Option<&'a Path>,
    pub cert: &'a Path,
    pub key: &'a Path,
    pub kx: Kx,
    pub http2: bool,
    pub skip_server_verify: bool,
}

pub fn client_config(o: &ClientOptions<'_>) -> Result<Arc<ClientConfig>, BoxError> {
    let mut provider: CryptoProvider = (*certgate::crypto_provider()).clone();
    match o.kx {
        Kx::X25519 => provider.kx_groups = vec![aws_lc_rs::kx_group::X25519],
        Kx::P256 => provider.kx_groups = vec![aws_lc_rs::kx_group::SECP256R1],
        Kx::Default => {}
    }
    let provider = Arc::new(provider);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if o.skip_server_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
    } else {
        let ca =
            o.ca.ok_or("--ca is required (or --insecure-skip-server-verify)")?;
        let mut roots = RootCertStore::empty();
        for cert in
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?
        {
            roots.add(cert.map_err(|e| format!("{}: {e}", ca.display()))?)?;
        }
        builder.with_root_certificates(roots)
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(o.cert)
        .map_err(|e| format!("{}: {e}", o.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", o.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", o.cert.display()).into());
    }
    let key =
        PrivateKeyDer::from_pem_file(o.key).map_err(|e| format!("{}: {e}", o.key.display()))?;
    let mut cfg = builder.with_client_auth_cert(chain, key)?;
    cfg.resumption = Resumption::disabled();
    cfg.alpn_protocols = if o.http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(cfg))
}

/// Benchmark-only: accepts any server certificate and signature. It keeps the client's share of
/// a handshake small (no ECDSA verifications), so that on a small machine the client is not what
/// limits the server's measured handshake rate. The server still does the full mTLS work.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
