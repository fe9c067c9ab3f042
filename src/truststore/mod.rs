//! Trust stores: a CA bundle (every certificate in it is a trust anchor) plus CRLs, each from a
//! file or an S3 object, loaded and checked as a whole so that a bad source never replaces a
//! good store. Parsing is split into pieces (bundle, each CRL source) so a refresh re-parses
//! only what changed.

mod anchors;
pub mod crl;
pub mod describe;
pub mod freshness;
pub mod loader;
pub mod reload;
pub mod revocation;
pub mod source;

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, TrustAnchor};
use rustls::DistinguishedName;
use x509_parser::prelude::*;
use x509_parser::time::ASN1Time;

use crate::config::ChainLimits;
use crate::x509;

/// ALB's quota on one CRL file; larger files are refused before parsing.
pub const MAX_CRL_FILE_SIZE: u64 = 50 * 1024 * 1024;
/// Generous ceiling on a bundle file (ALB: 25 CAs of at most 16 KB each).
pub const MAX_BUNDLE_FILE_SIZE: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TrustStoreError {
    #[error("trust store {store}: {reason}")]
    Fetch { store: String, reason: String },
    #[error("trust store {store}: {source_name}: {reason}")]
    Invalid {
        store: String,
        source_name: String,
        reason: String,
    },
}

/// One CA of the bundle, as `describe` shows it and a handshake judges the trust anchor it is.
#[derive(Debug, Clone)]
pub struct CaInfo {
    pub subject: String,
    /// Uppercase hex, as the serial-number header writes serials.
    pub serial_hex: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    /// Why a CRL of the store refuses this CA (it, its issuer in the bundle, or the same CA
    /// elsewhere in the bundle is revoked); decided when the store is assembled.
    pub revoked: Option<String>,
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

/// One source of a store and the tag of the content in service (see `source::Fetched`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceVersion {
    pub source: String,
    pub tag: String,
}

/// A loaded, checked trust store. Immutable: a reload builds a new one and swaps it in.
#[derive(Debug)]
pub struct TrustStore {
    pub name: String,
    pub anchors: Vec<TrustAnchor<'static>>,
    /// Subjects of the CAs, sent in the CertificateRequest when advertising is on.
    pub ca_names: Vec<DistinguishedName>,
    /// Shared with the next store when their source did not change.
    pub crls: Vec<Arc<revocation::RevokedSerials>>,
    /// One per trust anchor, in the order of `anchors`.
    pub cas: Vec<CaInfo>,
    pub crl_infos: Vec<CrlInfo>,
    pub limits: ChainLimits,
    /// What a CRL past its nextUpdate means at handshake time.
    pub expired_crls: crate::config::ExpiredCrls,
    /// Whether client leaves are also checked with their OCSP responder.
    pub ocsp: crate::config::OcspMode,
    pub sources: Vec<SourceVersion>,
    /// Derived from the sources' tags: equal on every host serving the same objects, and
    /// changed whenever any source changes; logged with every connection.
    pub version: String,
}

impl TrustStore {
    pub fn revoked_entries(&self) -> usize {
        self.crl_infos.iter().map(|c| c.revoked_entries).sum()
    }
}

/// The parsed CA bundle.
#[derive(Debug, Clone)]
pub struct ParsedBundle {
    pub anchors: Vec<TrustAnchor<'static>>,
    pub ca_names: Vec<DistinguishedName>,
    pub cas: Vec<CaInfo>,
    /// Names, keys and issuers of each CA, to check the signatures of their CRLs and to judge
    /// the CAs themselves against the CRLs.
    ca_keys: Vec<anchors::BundleCa>,
}

impl ParsedBundle {
    /// Adds one checked CA certificate of the bundle.
    fn push(&mut self, cert: &X509Certificate<'_>, subject: String, anchor: TrustAnchor<'static>) {
        self.ca_names
            .push(DistinguishedName::from(cert.subject().as_raw().to_vec()));
        self.ca_keys.push(anchors::BundleCa::of(cert));
        self.cas.push(CaInfo {
            subject,
            serial_hex: x509::serial_hex(cert.raw_serial()),
            not_before_unix: cert.validity().not_before.timestamp(),
            not_after_unix: cert.validity().not_after.timestamp(),
            revoked: None,
        });
        self.anchors.push(anchor);
    }
}

/// The CRLs of one source (a PEM file may hold several).
#[derive(Debug, Clone)]
pub struct ParsedCrls {
    pub crls: Vec<(Arc<revocation::RevokedSerials>, CrlInfo)>,
}

fn looks_like_pem(data: &[u8]) -> bool {
    data.windows(11)
        .take(64 * 1024)
        .any(|w| w == b"-----BEGIN ")
}

fn invalid(store: &str, source_name: &str, reason: String) -> TrustStoreError {
    TrustStoreError::Invalid {
        store: store.to_string(),
        source_name: source_name.to_string(),
        reason,
    }
}

/// Parses a PEM CA bundle (`#` comment lines and blank lines allowed). Only CA certificates
/// are accepted: a leaf here would become a trust anchor.
pub fn parse_bundle(
    store: &str,
    bundle_name: &str,
    bundle: &[u8],
) -> Result<ParsedBundle, TrustStoreError> {
    let mut out = ParsedBundle {
        anchors: Vec::new(),
        ca_names: Vec::new(),
        cas: Vec::new(),
        ca_keys: Vec::new(),
    };
    let mut ders = Vec::new();
    for (i, item) in CertificateDer::pem_slice_iter(bundle).enumerate() {
        let n = i + 1;
        let der = item.map_err(|e| {
            invalid(
                store,
                bundle_name,
                format!("certificate #{n} is not valid PEM: {e}"),
            )
        })?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|e| {
            invalid(
                store,
                bundle_name,
                format!("certificate #{n} is not a valid X.509 certificate: {e}"),
            )
        })?;
        x509::check_names(&cert).map_err(|e| {
            invalid(
                store,
                bundle_name,
                format!("certificate #{n} is malformed: {e}"),
            )
        })?;
        let subject = x509::rfc2253(cert.subject());
        let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        if !is_ca {
            return Err(invalid(
                store,
                bundle_name,
                format!("certificate #{n} ({subject}) is not a CA certificate (basicConstraints cA is not set); a bundle holds CA certificates only"),
            ));
        }
        let anchor = webpki::anchor_from_trusted_cert(&der)
            .map_err(|e| {
                invalid(
                    store,
                    bundle_name,
                    format!("certificate #{n} ({subject}) cannot be a trust anchor: {e:?}"),
                )
            })?
            .to_owned();
        out.push(&cert, subject, anchor);
        ders.push(der);
    }
    anchors::link_issuers(&mut out.ca_keys, &ders);
    if out.anchors.is_empty() {
        return Err(invalid(
            store,
            bundle_name,
            "contains no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string(),
        ));
    }
    Ok(out)
}

/// Parses the CRLs of one source (PEM with one or more CRLs, or one DER CRL) and checks each
/// signature against its issuer when that issuer is a CA of `bundle`.
pub fn parse_crls(
    store: &str,
    src: &str,
    data: &[u8],
    bundle: &ParsedBundle,
) -> Result<ParsedCrls, TrustStoreError> {
    let ders: Vec<Vec<u8>> = if looks_like_pem(data) {
        let mut v = Vec::new();
        for (i, item) in CertificateRevocationListDer::pem_slice_iter(data).enumerate() {
            let der = item.map_err(|e| {
                invalid(store, src, format!("CRL #{} is not valid PEM: {e}", i + 1))
            })?;
            v.push(der.as_ref().to_vec());
        }
        if v.is_empty() {
            return Err(invalid(
                store,
                src,
                "contains no PEM CRL (-----BEGIN X509 CRL-----)".to_string(),
            ));
        }
        v
    } else {
        vec![data.to_vec()]
    };
    let mut out = ParsedCrls { crls: Vec::new() };
    for der in ders {
        // Only the header is parsed here; the revoked entries are read once, into the index.
        let not_crl = |what: &str| invalid(store, src, format!("not a valid CRL: {what}"));
        let head = crl::header(&der).ok_or_else(|| not_crl("its structure cannot be read"))?;
        let (_, issuer_name) =
            X509Name::from_der(head.issuer).map_err(|e| not_crl(&format!("issuer: {e}")))?;
        let time = |t: &[u8]| ASN1Time::from_der(t).map(|(_, t)| t.timestamp());
        let this_update_unix =
            time(head.this_update).map_err(|e| not_crl(&format!("thisUpdate: {e}")))?;
        let next_update_unix = head
            .next_update
            .map(time)
            .transpose()
            .map_err(|e| not_crl(&format!("nextUpdate: {e}")))?;
        if !x509::name_is_complete(&issuer_name) {
            return Err(not_crl(
                "its issuer name holds an item that is not a relative distinguished name",
            ));
        }
        let issuer = x509::rfc2253(&issuer_name);
        let keys: Vec<&[u8]> = bundle
            .ca_keys
            .iter()
            .filter(|ca| ca.subject.as_slice() == issuer_name.as_raw())
            .map(|ca| ca.spki.as_slice())
            .collect();
        let mut verified_spki = None;
        if keys.is_empty() {
            tracing::debug!(
                trust_store = store,
                source = src,
                "CRL issuer {issuer} is not a CA of the bundle; its signature is checked when a client chain through that CA is verified"
            );
        } else {
            let algorithms = crate::crypto::crypto_provider()
                .signature_verification_algorithms
                .all;
            let mut last = String::new();
            for spki in &keys {
                match crl::verify_signature(&der, spki, algorithms) {
                    Ok(()) => {
                        verified_spki = Some(spki.to_vec());
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            if verified_spki.is_none() {
                return Err(invalid(
                    store,
                    src,
                    format!("CRL issued by {issuer}: {last}"),
                ));
            }
        }
        if !head.has_version {
            return Err(invalid(
                store,
                src,
                format!("CRL from {issuer} is version 1; certgate needs version 2 CRLs (with a CRL number: `openssl ca -gencrl` with a crlnumber file makes them)"),
            ));
        }
        let index = revocation::RevokedSerials::new(&der, verified_spki).map_err(|e| {
            invalid(
                store,
                src,
                format!("CRL from {issuer} cannot be used: {e:?}"),
            )
        })?;
        let info = CrlInfo {
            source: src.to_string(),
            issuer,
            revoked_entries: index.len(),
            this_update_unix,
            next_update_unix,
        };
        out.crls.push((Arc::new(index), info));
    }
    Ok(out)
}

/// Puts parsed pieces together; `sources` lists every source with its content tag, bundle first.
pub fn assemble(
    name: &str,
    bundle: &ParsedBundle,
    crls: &[Arc<ParsedCrls>],
    limits: ChainLimits,
    sources: Vec<SourceVersion>,
) -> TrustStore {
    let mut all = Vec::new();
    let mut infos = Vec::new();
    for set in crls {
        for (crl, info) in &set.crls {
            all.push(crl.clone());
            infos.push(info.clone());
        }
    }
    TrustStore {
        name: name.to_string(),
        anchors: bundle.anchors.clone(),
        ca_names: bundle.ca_names.clone(),
        cas: anchors::judge(&bundle.ca_keys, &bundle.cas, &all, &infos),
        crls: all,
        crl_infos: infos,
        limits,
        expired_crls: crate::config::ExpiredCrls::Use,
        ocsp: crate::config::OcspMode::Off,
        version: store_version(&sources),
        sources,
    }
}

/// Builds a store from bytes already in hand: a PEM bundle and `(source name, PEM or DER)` CRLs.
pub fn build(
    name: &str,
    bundle_name: &str,
    bundle: &[u8],
    crls: &[(String, Vec<u8>)],
    limits: ChainLimits,
) -> Result<TrustStore, TrustStoreError> {
    let parsed = parse_bundle(name, bundle_name, bundle)?;
    let mut sources = vec![SourceVersion {
        source: bundle_name.to_string(),
        tag: source::content_tag(bundle),
    }];
    let mut sets = Vec::new();
    for (src, data) in crls {
        sets.push(Arc::new(parse_crls(name, src, data, &parsed)?));
        sources.push(SourceVersion {
            source: src.clone(),
            tag: source::content_tag(data),
        });
    }
    Ok(assemble(name, &parsed, &sets, limits, sources))
}

/// A short digest over the sources' tags, in order.
fn store_version(sources: &[SourceVersion]) -> String {
    let mut joined = String::new();
    for s in sources {
        joined.push_str(&s.tag);
        joined.push('\n');
    }
    source::content_tag(joined.as_bytes())
}

/// Trust stores by name, shared read-only with the verifiers.
pub type Stores = std::collections::BTreeMap<String, Arc<TrustStore>>;

/// An instant as RFC 3339 text (`2026-12-04T00:00:00Z`), or the bare number when out of range.
pub(crate) fn date(unix: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&::time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
