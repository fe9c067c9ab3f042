//! TLS for listeners: server certificates, the rustls `ServerConfig` for each mode, the client
//! verifiers, and the names ALB and OpenSSL use for protocols, suites and groups.

pub mod hello_tap;
pub mod status;
pub mod verifier;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{CipherSuite, NamedGroup, ProtocolVersion, ServerConfig};

use crate::config::{ChainLimits, ListenerConfig, Mode};
use crate::truststore::Stores;
use status::HandshakeRecord;
use verifier::{ConnVerifier, Policy};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("listener {listener}: certificate_chain {path}: {reason}")]
    Chain {
        listener: String,
        path: PathBuf,
        reason: String,
    },
    #[error("listener {listener}: private_key {path}: {reason}")]
    Key {
        listener: String,
        path: PathBuf,
        reason: String,
    },
    #[error("listener {listener}: trust store {store:?} is not loaded")]
    MissingStore { listener: String, store: String },
    #[error("listener {listener}: {reason}")]
    Config { listener: String, reason: String },
}

/// Reads a PEM chain (leaf first) and its key, and checks that they belong together.
pub fn load_certified_key(
    listener: &str,
    chain_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain_err = |reason: String| TlsError::Chain {
        listener: listener.to_string(),
        path: chain_path.to_path_buf(),
        reason,
    };
    let key_err = |reason: String| TlsError::Key {
        listener: listener.to_string(),
        path: key_path.to_path_buf(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain_path)
        .map_err(|e| chain_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| chain_err(format!("not valid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(chain_err("contains no PEM certificate".to_string()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        key_err(format!(
            "no usable PEM private key (PKCS#8, SEC1 or PKCS#1): {e}"
        ))
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_err(format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        key_err(format!(
            "does not match the first certificate of {}: {e}",
            chain_path.display()
        ))
    })?;
    Ok(Arc::new(certified))
}

/// Everything a listener needs to run handshakes; rebuilt on reload and swapped in whole.
#[derive(Debug)]
pub struct ListenerTls {
    listener: String,
    pub mode: Mode,
    provider: Arc<CryptoProvider>,
    cert: Arc<CertifiedKey>,
    policy: Option<Arc<Policy>>,
    /// Off mode needs no per-connection state, so all its connections share one config.
    shared: Option<Arc<ServerConfig>>,
    pub trust_store_version: Option<String>,
}

const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl ListenerTls {
    /// Loads the server certificate and key from disk and builds the listener's TLS state.
    pub fn build(l: &ListenerConfig, stores: &Stores) -> Result<Self, TlsError> {
        let provider = crate::crypto_provider();
        let cert = load_certified_key(&l.name, &l.certificate_chain, &l.private_key, &provider)?;
        Self::build_with(l, stores, provider, cert)
    }

    /// The same listener on the trust stores in `stores`, keeping the server certificate that is
    /// already loaded: a trust-store refresh must not depend on the key file being readable.
    pub fn with_stores(&self, l: &ListenerConfig, stores: &Stores) -> Result<Self, TlsError> {
        Self::build_with(l, stores, self.provider.clone(), self.cert.clone())
    }

    fn build_with(
        l: &ListenerConfig,
        stores: &Stores,
        provider: Arc<CryptoProvider>,
        cert: Arc<CertifiedKey>,
    ) -> Result<Self, TlsError> {
        let mode = l.mutual_authentication.mode;
        let mut trust_store_version = None;
        let policy = match mode {
            Mode::Off => None,
            Mode::Passthrough => Some(Arc::new(Policy::Passthrough {
                limits: ChainLimits::default(),
            })),
            Mode::Verify => {
                let name = l
                    .mutual_authentication
                    .trust_store
                    .clone()
                    .unwrap_or_default();
                let store = stores
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| TlsError::MissingStore {
                        listener: l.name.clone(),
                        store: name.clone(),
                    })?;
                trust_store_version = Some(store.version.clone());
                Some(Arc::new(Policy::Verify {
                    store,
                    ignore_expiry: l.mutual_authentication.ignore_client_certificate_expiry,
                    advertise_ca_names: l.mutual_authentication.advertise_trust_store_ca_names,
                }))
            }
        };
        let mut tls = ListenerTls {
            listener: l.name.clone(),
            mode,
            provider,
            cert,
            policy,
            shared: None,
            trust_store_version,
        };
        if mode == Mode::Off {
            let mut cfg = tls.builder(Arc::new(rustls::server::NoClientAuth), &l.name)?;
            cfg.session_storage = ServerSessionMemoryCache::new(4096);
            tls.shared = Some(Arc::new(cfg));
        } else {
            // Fail at load time, not on the first client, if the config cannot be built.
            tls.config_for_connection(&Arc::new(HandshakeRecord::default()))
                .map_err(|e| TlsError::Config {
                    listener: l.name.clone(),
                    reason: e.to_string(),
                })?;
        }
        Ok(tls)
    }

    fn builder(
        &self,
        verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
        listener: &str,
    ) -> Result<ServerConfig, TlsError> {
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config {
                listener: listener.to_string(),
                reason: e.to_string(),
            })?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(self.cert.clone())));
        cfg.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        // The server's order of cipher suites decides (see `crypto_provider`), as on ALB.
        cfg.ignore_client_order = true;
        Ok(cfg)
    }

    /// The config for one new connection. In passthrough and verify mode each connection gets
    /// its own verifier (to report what it saw) and session resumption is off, as on ALB: a
    /// resumed session would skip the revocation check.
    pub fn config_for_connection(
        &self,
        record: &Arc<HandshakeRecord>,
    ) -> Result<Arc<ServerConfig>, rustls::Error> {
        if let Some(shared) = &self.shared {
            return Ok(shared.clone());
        }
        let Some(policy) = &self.policy else {
            return Err(rustls::Error::General(
                "listener has no client policy".into(),
            ));
        };
        let verifier = Arc::new(ConnVerifier {
            policy: policy.clone(),
            record: record.clone(),
            algorithms: self.provider.signature_verification_algorithms,
        });
        let mut cfg = self
            .builder(verifier, &self.listener)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        cfg.session_storage = Arc::new(NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
        Ok(Arc::new(cfg))
    }

    /// Re-checks a chain a client presented earlier (leaf first, as `peer_certificates`
    /// returns it) against this listener's current policy at `now`. Off mode checks nothing.
    pub fn verify_chain(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), status::Failure> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(status::Failure::new(
                status::VerifyCode::Unmapped,
                "no client certificate to check",
            ));
        };
        verifier::verify_chain(
            policy,
            &self.provider.signature_verification_algorithms,
            end_entity,
            intermediates,
            now,
        )
    }
}

/// ALB writes protocol versions as OpenSSL does.
pub fn protocol_name(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3",
        ProtocolVersion::TLSv1_2 => "TLSv1.2",
        ProtocolVersion::TLSv1_1 => "TLSv1.1",
        ProtocolVersion::TLSv1_0 => "TLSv1",
        _ => "unknown",
    }
}

/// OpenSSL's names for the suites rustls offers (TLS 1.3 names are the IANA ones).
pub fn cipher_name(s: CipherSuite) -> &'static str {
    match s {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "unknown",
    }
}

/// Key-exchange group names as they appear in `tls_keyexchange`.
pub fn group_name(g: NamedGroup) -> String {
    match g {
        NamedGroup::X25519 => "X25519".to_string(),
        NamedGroup::secp256r1 => "secp256r1".to_string(),
        NamedGroup::secp384r1 => "secp384r1".to_string(),
        NamedGroup::secp521r1 => "secp521r1".to_string(),
        other => format!("{other:?}"),
    }
}
