//! Validation of the `[trust_store.NAME]` sections: the CA bundle and revocation lists (files or
//! S3 objects), the refresh interval and the chain limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::problems::{bounded, secs, source, Problems};
use crate::config::file::TrustStoreFile;
use crate::config::model::{
    ChainLimits, ExpiredCrls, OcspMode, Source, TrustStoreConfig, DEFAULT_REFRESH_INTERVAL,
};

/// Every declared trust store, by name; listeners look theirs up here.
pub(super) fn trust_stores(
    stores: &BTreeMap<String, TrustStoreFile>,
    base: &Path,
    p: &mut Problems,
) -> BTreeMap<String, TrustStoreConfig> {
    stores
        .iter()
        .map(|(name, ts)| (name.clone(), trust_store(name, ts, base, p)))
        .collect()
}

fn trust_store(name: &str, ts: &TrustStoreFile, base: &Path, p: &mut Problems) -> TrustStoreConfig {
    let key = format!("trust_store.{name}");
    let bundle_key = format!("{key}.ca_certificates_bundle");
    let bundle = match p.required(&bundle_key, ts.ca_certificates_bundle.as_deref()) {
        Some(b) => source(base, &bundle_key, b, p),
        None => Source::File(PathBuf::new()),
    };
    let revocation_lists = ts
        .revocation_lists
        .iter()
        .enumerate()
        .map(|(i, c)| source(base, &format!("{key}.revocation_lists[{i}]"), c, p))
        .collect();
    let limits = chain_limits(&key, ts, p);
    TrustStoreConfig {
        name: name.to_string(),
        ca_certificates_bundle: bundle,
        revocation_lists,
        refresh_interval: secs(
            &format!("{key}.refresh_interval_secs"),
            ts.refresh_interval_secs,
            DEFAULT_REFRESH_INTERVAL,
            p,
        ),
        limits,
        revocation_lists_expired: expired_crls(&key, ts, p),
        ocsp: ocsp_mode(&key, ts, p),
    }
}

fn ocsp_mode(key: &str, ts: &TrustStoreFile, p: &mut Problems) -> OcspMode {
    match ts.ocsp.as_deref() {
        None | Some("off") => OcspMode::Off,
        Some("soft_fail") => OcspMode::SoftFail,
        Some("hard_fail") => OcspMode::HardFail,
        Some(other) => {
            p.push(
                &format!("{key}.ocsp"),
                format!("{other:?} is not one of \"off\", \"soft_fail\", \"hard_fail\""),
            );
            OcspMode::Off
        }
    }
}

fn expired_crls(key: &str, ts: &TrustStoreFile, p: &mut Problems) -> ExpiredCrls {
    match ts.revocation_lists_expired.as_deref() {
        None | Some("use") => ExpiredCrls::Use,
        Some("reject") => ExpiredCrls::Reject,
        Some(other) => {
            p.push(
                &format!("{key}.revocation_lists_expired"),
                format!("{other:?} is not one of \"use\", \"reject\""),
            );
            ExpiredCrls::Use
        }
    }
}

/// ALB's quotas unless the store sets its own.
fn chain_limits(key: &str, ts: &TrustStoreFile, p: &mut Problems) -> ChainLimits {
    let d = ChainLimits::default();
    let max_chain_depth = bounded(
        &format!("{key}.max_chain_depth"),
        ts.max_chain_depth,
        d.max_chain_depth,
        2..=16,
        p,
    );
    let max_client_certificate_size = match ts.max_client_certificate_size {
        Some(s) if !(1024..=1 << 20).contains(&s) => {
            p.push(
                &format!("{key}.max_client_certificate_size"),
                "must be between 1024 and 1048576 bytes",
            );
            d.max_client_certificate_size
        }
        Some(s) => s,
        None => d.max_client_certificate_size,
    };
    ChainLimits {
        max_chain_depth,
        max_client_certificate_size,
    }
}
