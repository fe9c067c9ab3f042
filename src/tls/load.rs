//! Loading a listener's server certificates and keys from their sources (files or S3 objects,
//! read as trust-store sources are), checking each key against its certificate, setting up
//! OCSP stapling for each (`ocsp::staple`), and saying when a certificate expires; also
//! certgate's own client certificate for https targets (`load_certified_key`).

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::certs::{leaf_info, ServerCert, ServerCerts};
use super::keys::{decode_private_key, read_password};
use super::TlsError;
use crate::config::{ListenerConfig, ListenerProtocol, ServerCertificate, Source};
use crate::ocsp::staple::Stapler;
use crate::truststore::source::Sources;

/// Certificate and key files larger than this are refused.
const MAX_PEM_BYTES: u64 = 1 << 20;
/// A server certificate this close to its notAfter is warned about at every load.
pub(super) const EXPIRY_WARNING_SECS: i64 = 14 * 24 * 3600;

/// Where an entry's attribute is, for messages: `private_key server.key`, or
/// `certificates[1].private_key b.key`.
fn at(c: &ServerCertificate, attr: &str, src: &Source) -> String {
    if c.label.is_empty() {
        format!("{attr} {src}")
    } else {
        format!("{}.{attr} {src}", c.label)
    }
}

/// Every certificate of the listener, or the first that fails with why; none for a plain
/// HTTP listener.
pub async fn load_certificates(
    l: &ListenerConfig,
    sources: &Sources,
) -> Result<ServerCerts, TlsError> {
    if l.protocol == ListenerProtocol::Http {
        return Ok(ServerCerts::none());
    }
    let provider = crate::crypto::crypto_provider();
    let mut certs = Vec::with_capacity(l.certificates.len());
    for c in &l.certificates {
        certs.push(load_one(l, c, sources, &provider).await?);
    }
    ServerCerts::new(certs).ok_or_else(|| TlsError::Config {
        listener: l.name.clone(),
        reason: "no server certificate".to_string(),
    })
}

async fn load_one(
    l: &ListenerConfig,
    c: &ServerCertificate,
    sources: &Sources,
    provider: &CryptoProvider,
) -> Result<ServerCert, TlsError> {
    let chain_err = |reason: String| TlsError::Chain {
        listener: l.name.clone(),
        at: at(c, "certificate_chain", &c.certificate_chain),
        reason,
    };
    let key_err = |reason: String| TlsError::Key {
        listener: l.name.clone(),
        at: at(c, "private_key", &c.private_key),
        reason,
    };
    let chain_pem = sources
        .fetch(&c.certificate_chain, MAX_PEM_BYTES)
        .await
        .map_err(chain_err)?;
    let key_pem = sources
        .fetch(&c.private_key, MAX_PEM_BYTES)
        .await
        .map_err(key_err)?;
    let chain = parse_chain(&chain_pem.bytes).map_err(chain_err)?;
    let info = leaf_info(chain[0].as_ref()).map_err(chain_err)?;
    let password = match &c.password {
        Some(from) => Some((from, read_password(from).map_err(key_err)?)),
        None => None,
    };
    let key = decode_private_key(
        &key_pem.bytes,
        password.as_ref().map(|(from, pw)| (*from, pw.as_slice())),
    )
    .map_err(key_err)?;
    let key = Arc::new(certify(chain, key, provider, &c.certificate_chain).map_err(key_err)?);
    let stapler = match &l.ocsp_stapling {
        None => None,
        Some(stapling) => {
            let what = format!(
                "listener {}, {} ({})",
                l.name,
                at(c, "certificate_chain", &c.certificate_chain),
                info.subject
            );
            let responder = stapling.responder_url.as_deref();
            Some(Stapler::new(what, &key.cert, key.clone(), responder).map_err(chain_err)?)
        }
    };
    Ok(ServerCert {
        label: c.label.clone(),
        key,
        stapler,
        dns_names: info.dns_names,
        subject: info.subject,
        not_after: info.not_after,
        tags: [chain_pem.tag, key_pem.tag],
    })
}

/// Reads a PEM chain (leaf first) and its unencrypted key from files, and checks that they
/// belong together (certgate's own certificate for targets).
pub fn load_certified_key(
    listener: &str,
    chain_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain_err = |reason: String| TlsError::Chain {
        listener: listener.to_string(),
        at: format!("certificate_chain {}", chain_path.display()),
        reason,
    };
    let key_err = |reason: String| TlsError::Key {
        listener: listener.to_string(),
        at: format!("private_key {}", key_path.display()),
        reason,
    };
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("cannot be read: {e}"));
    let chain = read(chain_path)
        .and_then(|pem| parse_chain(&pem))
        .map_err(chain_err)?;
    let key = read(key_path)
        .and_then(|pem| decode_private_key(&pem, None))
        .map_err(key_err)?;
    let certified = certify(chain, key, provider, &chain_path.display()).map_err(key_err)?;
    Ok(Arc::new(certified))
}

/// The chain and its key as one signing identity; refused when the key does not belong to the
/// chain's first certificate (`chain_source` names where the chain came from).
fn certify(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
    chain_source: &dyn std::fmt::Display,
) -> Result<CertifiedKey, String> {
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("does not match the first certificate of {chain_source}: {e}"))?;
    Ok(certified)
}

/// The PEM certificates of a chain file, leaf first.
pub(super) fn parse_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    if chain.is_empty() && pem.windows(16).any(|w| w == b"PRIVATE KEY-----") {
        return Err("contains a private key but no certificate (is it the key file?)".to_string());
    }
    if chain.is_empty() {
        return Err("contains no PEM certificate".to_string());
    }
    Ok(chain)
}

/// Logs each certificate's subject and notAfter, warning when it expires within 14 days
/// (an expired certificate is still served: clients decide, as with any server).
pub fn log_loaded(listener: &str, certs: &ServerCerts) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for c in certs.iter() {
        let not_after = crate::x509::utc_string(c.not_after);
        let certificate = if c.label.is_empty() {
            "certificate_chain"
        } else {
            &c.label
        };
        let left = c.not_after - now;
        if left < 0 {
            tracing::warn!(listener, certificate, subject = %c.subject, %not_after, "server certificate has expired; it is still served");
        } else if left < EXPIRY_WARNING_SECS {
            tracing::warn!(listener, certificate, subject = %c.subject, %not_after, days_left = left / 86400, "server certificate expires soon");
        } else {
            tracing::info!(listener, certificate, subject = %c.subject, %not_after, names = ?c.dns_names, "server certificate loaded");
        }
    }
}
