//! TLS for listeners: the server certificate and key, and one rustls `ServerConfig` per
//! listener and reload for its mode (off, passthrough, verify).

pub mod hello_tap;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::ServerConfig;

use crate::config::{ChainLimits, ListenerConfig, Mode};
use crate::mtls::verifier::{CurrentPolicy, ListenerVerifier};
use crate::mtls::{Failure, Policy, VerifyCode};
use crate::truststore::Stores;

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
    pub mode: Mode,
    provider: Arc<CryptoProvider>,
    cert: Arc<CertifiedKey>,
    policy: Option<Arc<Policy>>,
    /// The listener's policy in service, shared with every generation before and after this
    /// one (see [`ListenerVerifier`]); none in off mode.
    current: Option<CurrentPolicy>,
    /// One config for every connection of this listener until the next reload.
    config: Arc<ServerConfig>,
    pub trust_store_version: Option<String>,
}

const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl ListenerTls {
    /// Loads the server certificate and key from disk and builds the listener's TLS state.
    pub fn build(l: &ListenerConfig, stores: &Stores) -> Result<Self, TlsError> {
        let provider = crate::crypto::crypto_provider();
        let cert = load_certified_key(&l.name, &l.certificate_chain, &l.private_key, &provider)?;
        Self::build_with(l, stores, provider, cert, None)
    }

    /// The next generation of this listener, its server certificate and key read from disk
    /// again; it takes over the listener's policy once built.
    pub fn reread(&self, l: &ListenerConfig, stores: &Stores) -> Result<Self, TlsError> {
        let provider = self.provider.clone();
        let cert = load_certified_key(&l.name, &l.certificate_chain, &l.private_key, &provider)?;
        Self::build_with(l, stores, provider, cert, self.current.clone())
    }

    /// The same listener on the trust stores in `stores`, keeping the server certificate that is
    /// already loaded: a trust-store refresh must not depend on the key file being readable.
    pub fn with_stores(&self, l: &ListenerConfig, stores: &Stores) -> Result<Self, TlsError> {
        let (provider, cert) = (self.provider.clone(), self.cert.clone());
        Self::build_with(l, stores, provider, cert, self.current.clone())
    }

    /// Builds a generation; with the listener's `current` policy cell, the new policy goes in
    /// service in it once everything else has been built.
    fn build_with(
        l: &ListenerConfig,
        stores: &Stores,
        provider: Arc<CryptoProvider>,
        cert: Arc<CertifiedKey>,
        current: Option<CurrentPolicy>,
    ) -> Result<Self, TlsError> {
        let mode = l.mutual_authentication.mode;
        let (policy, trust_store_version) = policy(l, stores)?;
        let current = policy.as_ref().map(|p| match current {
            Some(cell) => cell,
            None => Arc::new(arc_swap::ArcSwap::new(p.clone())),
        });
        let verifier = policy.as_ref().zip(current.as_ref());
        let config = server_config(&l.name, &provider, &cert, verifier)?;
        if let Some((p, cell)) = verifier {
            cell.store(p.clone());
        }
        Ok(ListenerTls {
            mode,
            provider,
            cert,
            policy,
            current,
            config,
            trust_store_version,
        })
    }

    /// The leaf of every server certificate in service (their expiry is a metric).
    pub fn server_leaves(&self) -> Vec<&CertificateDer<'static>> {
        self.cert.cert.first().into_iter().collect()
    }

    /// The config every new connection of this listener handshakes with.
    /// The listener's trust store in service now, in verify mode.
    pub fn verify_store(&self) -> Option<Arc<crate::truststore::TrustStore>> {
        let current = self.current.as_ref()?.load();
        match &**current {
            Policy::Verify { store, .. } => Some(store.clone()),
            Policy::Passthrough { .. } => None,
        }
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// Re-checks a chain a client presented earlier (leaf first, as `peer_certificates`
    /// returns it) against this listener's current policy at `now`. Off mode checks nothing.
    pub fn verify_chain(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Result<(), Failure> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(Failure::new(
                VerifyCode::Unmapped,
                "no client certificate to check",
            ));
        };
        crate::mtls::verify_chain(
            policy,
            &crate::mtls::schemes::client_algorithms(
                &self.provider.signature_verification_algorithms,
            ),
            end_entity,
            intermediates,
            now,
        )
    }
}

/// The listener's client policy (none in off mode) and the version of its trust store.
fn policy(
    l: &ListenerConfig,
    stores: &Stores,
) -> Result<(Option<Arc<Policy>>, Option<String>), TlsError> {
    let auth = &l.mutual_authentication;
    match auth.mode {
        Mode::Off => Ok((None, None)),
        Mode::Passthrough => Ok((
            Some(Arc::new(Policy::Passthrough {
                limits: ChainLimits::default(),
            })),
            None,
        )),
        Mode::Verify => {
            let name = auth.trust_store.clone().unwrap_or_default();
            let store = stores
                .get(&name)
                .cloned()
                .ok_or_else(|| TlsError::MissingStore {
                    listener: l.name.clone(),
                    store: name.clone(),
                })?;
            let version = Some(store.version.clone());
            let policy = Policy::Verify {
                store,
                ignore_expiry: auth.ignore_client_certificate_expiry,
                advertise_ca_names: auth.advertise_trust_store_ca_names,
                require_certificate: auth.fail_if_no_peer_cert,
            };
            Ok((Some(Arc::new(policy)), version))
        }
    }
}

/// The listener's `ServerConfig`. With a client policy, session resumption is off, as on ALB:
/// a resumed session would skip the client-certificate and revocation checks.
fn server_config(
    listener: &str,
    provider: &Arc<CryptoProvider>,
    cert: &Arc<CertifiedKey>,
    policy: Option<(&Arc<Policy>, &CurrentPolicy)>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier: Arc<dyn ClientCertVerifier> = match policy {
        None => Arc::new(rustls::server::NoClientAuth),
        Some((p, current)) => Arc::new(ListenerVerifier::new(
            current.clone(),
            p,
            crate::mtls::schemes::client_algorithms(&provider.signature_verification_algorithms),
        )),
    };
    let mut cfg = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config {
            listener: listener.to_string(),
            reason: e.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(cert.clone())));
    cfg.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // The server's order of cipher suites decides (see `crypto_provider`), as on ALB.
    cfg.ignore_client_order = true;
    if policy.is_some() {
        cfg.session_storage = Arc::new(NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
    } else {
        cfg.session_storage = ServerSessionMemoryCache::new(4096);
    }
    Ok(Arc::new(cfg))
}
