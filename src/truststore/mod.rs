//! Trust stores: a CA bundle (every certificate in it is a trust anchor) plus CRLs, loaded and
//! checked as a whole so that a bad file never replaces a good store.

mod crl;
pub mod describe;
pub mod reload;

use std::fmt::Write as _;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, TrustAnchor};
use rustls::DistinguishedName;
use webpki::{CertRevocationList, OwnedCertRevocationList};
use x509_parser::prelude::*;

use crate::certinfo;
use crate::config::{ChainLimits, Source, TrustStoreConfig};

/// ALB's quota on one CRL file; larger files are refused before parsing.
pub const MAX_CRL_FILE_SIZE: u64 = 50 * 1024 * 1024;
/// Generous ceiling on a bundle file (ALB: 25 CAs of at most 16 KB each).
pub const MAX_BUNDLE_FILE_SIZE: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TrustStoreError {
    #[error("trust store {store}: cannot read {source_name}: {error}")]
    Read {
        store: String,
        source_name: String,
        error: std::io::Error,
    },
    #[error("trust store {store}: {source_name}: {reason}")]
    Invalid {
        store: String,
        source_name: String,
        reason: String,
    },
}

/// One CA of the bundle, as `describe` shows it.
#[derive(Debug, Clone)]
pub struct CaInfo {
    pub subject: String,
    pub not_after_unix: i64,
}

/// One CRL of the store, as `describe` shows it.
#[derive(Debug, Clone)]
pub struct CrlInfo {
    pub source: String,
    pub issuer: String,
    pub revoked_entries: usize,
    pub this_update_unix: i64,
    pub next_update_unix: Option<i64>,
}

/// A loaded, checked trust store. Immutable: a reload builds a new one and swaps it in.
#[derive(Debug)]
pub struct TrustStore {
    pub name: String,
    pub anchors: Vec<TrustAnchor<'static>>,
    /// Subjects of the CAs, sent in the CertificateRequest when advertising is on.
    pub ca_names: Vec<DistinguishedName>,
    pub crls: Vec<CertRevocationList<'static>>,
    pub cas: Vec<CaInfo>,
    pub crl_infos: Vec<CrlInfo>,
    pub limits: ChainLimits,
    /// Changes whenever any source's content changes; logged with every connection.
    pub version: String,
}

impl TrustStore {
    pub fn revoked_entries(&self) -> usize {
        self.crl_infos.iter().map(|c| c.revoked_entries).sum()
    }
}

fn read_source(store: &str, src: &Source, max: u64) -> Result<Vec<u8>, TrustStoreError> {
    match src {
        Source::File(path) => {
            let read_err = |error| TrustStoreError::Read {
                store: store.to_string(),
                source_name: path.display().to_string(),
                error,
            };
            let meta = std::fs::metadata(path).map_err(read_err)?;
            if meta.len() > max {
                return Err(TrustStoreError::Invalid {
                    store: store.to_string(),
                    source_name: path.display().to_string(),
                    reason: format!("file is {} bytes, more than the limit of {max}", meta.len()),
                });
            }
            std::fs::read(path).map_err(read_err)
        }
    }
}

fn looks_like_pem(data: &[u8]) -> bool {
    data.windows(11)
        .take(64 * 1024)
        .any(|w| w == b"-----BEGIN ")
}

/// Loads every source of a trust store and checks it; returns the first problem found.
pub fn load(cfg: &TrustStoreConfig) -> Result<TrustStore, TrustStoreError> {
    let bundle = read_source(&cfg.name, &cfg.ca_certificates_bundle, MAX_BUNDLE_FILE_SIZE)?;
    let mut crl_data = Vec::with_capacity(cfg.revocation_lists.len());
    for src in &cfg.revocation_lists {
        crl_data.push((
            src.to_string(),
            read_source(&cfg.name, src, MAX_CRL_FILE_SIZE)?,
        ));
    }
    build(
        &cfg.name,
        &cfg.ca_certificates_bundle.to_string(),
        &bundle,
        &crl_data,
        cfg.limits,
    )
}

/// Builds a store from bytes already read: a PEM bundle and `(source name, PEM or DER)` CRLs.
pub fn build(
    name: &str,
    bundle_name: &str,
    bundle: &[u8],
    crls: &[(String, Vec<u8>)],
    limits: ChainLimits,
) -> Result<TrustStore, TrustStoreError> {
    let invalid = |source_name: &str, reason: String| TrustStoreError::Invalid {
        store: name.to_string(),
        source_name: source_name.to_string(),
        reason,
    };

    let mut anchors = Vec::new();
    let mut ca_names = Vec::new();
    let mut cas = Vec::new();
    // (subject, SubjectPublicKeyInfo) of each CA, to check the signatures of their CRLs.
    let mut ca_keys: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (i, item) in CertificateDer::pem_slice_iter(bundle).enumerate() {
        let n = i + 1;
        let der = item.map_err(|e| {
            invalid(
                bundle_name,
                format!("certificate #{n} is not valid PEM: {e}"),
            )
        })?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|e| {
            invalid(
                bundle_name,
                format!("certificate #{n} is not a valid X.509 certificate: {e}"),
            )
        })?;
        let subject = certinfo::rfc2253(cert.subject());
        let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        if !is_ca {
            return Err(invalid(
                bundle_name,
                format!("certificate #{n} ({subject}) is not a CA certificate (basicConstraints cA is not set); a bundle holds CA certificates only"),
            ));
        }
        let anchor = webpki::anchor_from_trusted_cert(&der)
            .map_err(|e| {
                invalid(
                    bundle_name,
                    format!("certificate #{n} ({subject}) cannot be a trust anchor: {e:?}"),
                )
            })?
            .to_owned();
        ca_names.push(DistinguishedName::from(cert.subject().as_raw().to_vec()));
        ca_keys.push((
            cert.subject().as_raw().to_vec(),
            cert.public_key().raw.to_vec(),
        ));
        cas.push(CaInfo {
            subject,
            not_after_unix: cert.validity().not_after.timestamp(),
        });
        anchors.push(anchor);
    }
    if anchors.is_empty() {
        return Err(invalid(
            bundle_name,
            "contains no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string(),
        ));
    }

    let mut out_crls = Vec::new();
    let mut crl_infos = Vec::new();
    for (src, data) in crls {
        let ders: Vec<Vec<u8>> = if looks_like_pem(data) {
            let mut v = Vec::new();
            for (i, item) in CertificateRevocationListDer::pem_slice_iter(data).enumerate() {
                let der = item
                    .map_err(|e| invalid(src, format!("CRL #{} is not valid PEM: {e}", i + 1)))?;
                v.push(der.as_ref().to_vec());
            }
            if v.is_empty() {
                return Err(invalid(
                    src,
                    "contains no PEM CRL (-----BEGIN X509 CRL-----)".to_string(),
                ));
            }
            v
        } else {
            vec![data.clone()]
        };
        for der in ders {
            let (_, parsed) = CertificateRevocationList::from_der(&der)
                .map_err(|e| invalid(src, format!("not a valid CRL: {e}")))?;
            let issuer = certinfo::rfc2253(parsed.issuer());
            let keys: Vec<&[u8]> = ca_keys
                .iter()
                .filter(|(subject, _)| subject.as_slice() == parsed.issuer().as_raw())
                .map(|(_, spki)| spki.as_slice())
                .collect();
            if keys.is_empty() {
                tracing::warn!(
                    trust_store = name,
                    source = %src,
                    "CRL issuer {issuer} is not a CA of the bundle; its signature is checked when a client chain through that CA is verified"
                );
            } else {
                let algorithms = crate::crypto_provider()
                    .signature_verification_algorithms
                    .all;
                let mut last = String::new();
                let ok =
                    keys.iter()
                        .any(|spki| match crl::verify_signature(&der, spki, algorithms) {
                            Ok(()) => true,
                            Err(e) => {
                                last = e;
                                false
                            }
                        });
                if !ok {
                    return Err(invalid(src, format!("CRL issued by {issuer}: {last}")));
                }
            }
            let info = CrlInfo {
                source: src.clone(),
                issuer,
                revoked_entries: parsed.iter_revoked_certificates().count(),
                this_update_unix: parsed.last_update().timestamp(),
                next_update_unix: parsed.next_update().map(|t| t.timestamp()),
            };
            drop(parsed);
            let owned = OwnedCertRevocationList::from_der(&der).map_err(|e| {
                invalid(
                    src,
                    format!("CRL from {} cannot be used: {e:?}", info.issuer),
                )
            })?;
            out_crls.push(CertRevocationList::Owned(owned));
            crl_infos.push(info);
        }
    }

    let version = content_version(bundle, crls);
    Ok(TrustStore {
        name: name.to_string(),
        anchors,
        ca_names,
        crls: out_crls,
        cas,
        crl_infos,
        limits,
        version,
    })
}

/// A short digest over every source's bytes: equal stores get equal versions on every host.
fn content_version(bundle: &[u8], crls: &[(String, Vec<u8>)]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&(bundle.len() as u64).to_be_bytes());
    ctx.update(bundle);
    for (_, data) in crls {
        ctx.update(&(data.len() as u64).to_be_bytes());
        ctx.update(data);
    }
    let digest = ctx.finish();
    let mut s = String::with_capacity(24);
    s.push_str("sha256:");
    for b in &digest.as_ref()[..8] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Trust stores by name, shared read-only with the verifiers.
pub type Stores = std::collections::BTreeMap<String, Arc<TrustStore>>;

/// Loads every configured store; the first failure names the store and the source.
pub fn load_all(cfg: &crate::config::Config) -> Result<Stores, TrustStoreError> {
    let mut out = Stores::new();
    for (name, ts) in &cfg.trust_stores {
        out.insert(name.clone(), Arc::new(load(ts)?));
    }
    Ok(out)
}
