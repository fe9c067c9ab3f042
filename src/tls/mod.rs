//! TLS for listeners: the server certificates and keys (`certs`, `keys`, `load`), and one
//! rustls `ServerConfig` per listener and reload for its mode (off, passthrough, verify) and
//! its ALB security policy.

pub mod certs;
pub mod hello_tap;
mod keys;
pub mod load;

pub use certs::{ServerCert, ServerCerts};
pub use load::{load_certificates, load_certified_key, log_loaded};

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache};
use rustls::ServerConfig;

use crate::config::{ChainLimits, ListenerConfig, Mode, SslPolicy};
use crate::mtls::verifier::{CurrentPolicy, ListenerVerifier};
use crate::mtls::{Failure, Policy, VerifyCode};
use crate::truststore::Stores;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `at` is the attribute and its source: `certificates[1].certificate_chain b.pem`.
    #[error("listener {listener}: {at}: {reason}")]
    Chain {
        listener: String,
        at: String,
        reason: String,
    },
    #[error("listener {listener}: {at}: {reason}")]
    Key {
        listener: String,
        at: String,
        reason: String,
    },
    #[error("listener {listener}: trust store {store:?} is not loaded")]
    MissingStore { listener: String, store: String },
    #[error("listener {listener}: {reason}")]
    Config { listener: String, reason: String },
}

/// Everything a listener needs to run handshakes; rebuilt on reload and swapped in whole.
#[derive(Debug)]
pub struct ListenerTls {
    pub mode: Mode,
    provider: Arc<CryptoProvider>,
    certs: Arc<ServerCerts>,
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
    /// The listener's TLS state with `certs` (see [`load_certificates`]).
    pub fn build(
        l: &ListenerConfig,
        stores: &Stores,
        certs: Arc<ServerCerts>,
    ) -> Result<Self, TlsError> {
        let (policy, version) = policy(l, stores)?;
        Self::build_with(l, (policy, version), certs, None)
    }

    /// The next generation of this listener with new server certificates and the client policy
    /// already in service.
    pub fn with_certificates(
        &self,
        l: &ListenerConfig,
        certs: Arc<ServerCerts>,
    ) -> Result<Self, TlsError> {
        let policy = (self.policy.clone(), self.trust_store_version.clone());
        Self::build_with(l, policy, certs, self.current.clone())
    }

    /// The same listener on the trust stores in `stores`, keeping the server certificate that is
    /// already loaded: a trust-store refresh must not depend on the key file being readable.
    pub fn with_stores(&self, l: &ListenerConfig, stores: &Stores) -> Result<Self, TlsError> {
        let policy = policy(l, stores)?;
        Self::build_with(l, policy, self.certs.clone(), self.current.clone())
    }

    /// The server certificates in service.
    pub fn certificates(&self) -> &Arc<ServerCerts> {
        &self.certs
    }

    /// Builds a generation; with the listener's `current` policy cell, the new policy goes in
    /// service in it once everything else has been built.
    fn build_with(
        l: &ListenerConfig,
        (policy, trust_store_version): (Option<Arc<Policy>>, Option<String>),
        certs: Arc<ServerCerts>,
        current: Option<CurrentPolicy>,
    ) -> Result<Self, TlsError> {
        let mode = l.mutual_authentication.mode;
        let provider = l.ssl_policy.provider();
        let current = policy.as_ref().map(|p| match current {
            Some(cell) => cell,
            None => Arc::new(arc_swap::ArcSwap::new(p.clone())),
        });
        let verifier = policy.as_ref().zip(current.as_ref());
        let config = server_config(l, &provider, &certs, verifier)?;
        if let Some((p, cell)) = verifier {
            cell.store(p.clone());
        }
        Ok(ListenerTls {
            mode,
            provider,
            certs,
            policy,
            current,
            config,
            trust_store_version,
        })
    }

    /// The leaf of every server certificate in service (their expiry is a metric).
    pub fn server_leaves(&self) -> Vec<&CertificateDer<'static>> {
        self.certs
            .iter()
            .filter_map(|c| c.key.cert.first())
            .collect()
    }

    /// The listener's trust store in service now, in verify mode.
    pub fn verify_store(&self) -> Option<Arc<crate::truststore::TrustStore>> {
        let current = self.current.as_ref()?.load();
        match &**current {
            Policy::Verify { store, .. } => Some(store.clone()),
            Policy::Passthrough { .. } => None,
        }
    }

    /// The config every new connection of this listener handshakes with.
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

/// The listener's `ServerConfig`: its policy's protocols, suites and groups, its certificates
/// by SNI. With a client policy, session resumption is off, as on ALB: a resumed session
/// would skip the client-certificate and revocation checks.
fn server_config(
    l: &ListenerConfig,
    provider: &Arc<CryptoProvider>,
    certs: &Arc<ServerCerts>,
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
    let ssl_policy: &SslPolicy = l.ssl_policy;
    let mut cfg = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(ssl_policy.versions())
        .map_err(|e| TlsError::Config {
            listener: l.name.clone(),
            reason: format!("ssl_policy {}: {e}", ssl_policy.name),
        })?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certs.clone());
    cfg.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // The server's order of cipher suites decides (the policy's, ALB's), as on ALB.
    cfg.ignore_client_order = true;
    if policy.is_some() {
        cfg.session_storage = Arc::new(NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
    } else {
        cfg.session_storage = ServerSessionMemoryCache::new(4096);
    }
    Ok(Arc::new(cfg))
}

/// What `certgate check` prints of a listener's TLS: its policy's protocols, suites and
/// groups, each certificate with its names and notAfter, and warnings.
pub fn summary(l: &ListenerConfig, certs: &ServerCerts) -> Vec<String> {
    if l.protocol == crate::config::ListenerProtocol::Http {
        return vec!["protocol HTTP: plain HTTP/1.1, no TLS".to_string()];
    }
    let p = l.ssl_policy;
    let mut out = vec![
        format!("ssl_policy {}: {}", p.name, p.protocol_names().join(", ")),
        format!("  cipher suites: {}", p.suite_names().join(", ")),
        format!("  key exchange: {}", p.group_names().join(", ")),
    ];
    if !p.omitted.is_empty() {
        out.push(format!(
            "  not offered (CBC, not in rustls): {}",
            p.omitted.join(", ")
        ));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (i, c) in certs.iter().enumerate() {
        out.push(format!(
            "certificate{} {}: names [{}], notAfter {}{}",
            if c.label.is_empty() {
                String::new()
            } else {
                format!(" {}", c.label)
            },
            c.subject,
            c.dns_names.join(", "),
            crate::x509::utc_string(c.not_after),
            if i == 0 && certs.iter().count() > 1 {
                " (default)"
            } else {
                ""
            },
        ));
        if let Some(stapler) = &c.stapler {
            out.push(format!("  ocsp stapling: {}", stapler.describe(now)));
        }
    }
    for c in certs
        .iter()
        .filter(|c| c.not_after - now < load::EXPIRY_WARNING_SECS)
    {
        let state = if c.not_after < now {
            "has expired (it is still served)"
        } else {
            "expires within 14 days"
        };
        out.push(format!("warning: server certificate {} {state}", c.subject));
    }
    out.extend(
        certs
            .warnings()
            .into_iter()
            .map(|w| format!("warning: {w}")),
    );
    out
}
