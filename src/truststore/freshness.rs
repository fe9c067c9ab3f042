//! How current a store's CRLs are: a CRL past its nextUpdate is reported (and, with
//! `revocation_lists_expired = "reject"`, refused per handshake in `mtls::chain`), and a reload
//! never replaces a CRL in service by an older one of the same issuer (no rollback).

use super::revocation::RevokedSerials;
use super::{date, CrlInfo, TrustStore, TrustStoreError};
use crate::config::ExpiredCrls;

/// One warning per CRL of `store` past its nextUpdate at `now_unix`, naming the issuer, the
/// source and the nextUpdate.
pub fn expired_crl_warnings(store: &TrustStore, now_unix: i64) -> Vec<String> {
    let effect = match store.expired_crls {
        ExpiredCrls::Use => "still in use (revocation_lists_expired = \"use\")",
        ExpiredCrls::Reject => {
            "clients it covers are refused (ClientCertCrlProcessingError, revocation_lists_expired = \"reject\")"
        }
    };
    store
        .crls
        .iter()
        .zip(&store.crl_infos)
        .filter(|(crl, _)| crl.expired_at(now_unix))
        .map(|(_, info)| {
            format!(
                "the CRL from {} ({}) is past its nextUpdate {}; {effect}",
                info.issuer,
                info.source,
                info.next_update_unix.map(date).unwrap_or_default()
            )
        })
        .collect()
}

/// With `revocation_lists_expired = "reject"` on `store`, why `crl` (past its nextUpdate at
/// `now_unix`) leaves the certificates it covers with an unknown status. Per handshake: a
/// comparison of the timestamp stored at load, nothing parsed.
pub fn expired_refusal(
    store: &TrustStore,
    crl: &RevokedSerials,
    info: &CrlInfo,
    now_unix: i64,
) -> Option<String> {
    if store.expired_crls != ExpiredCrls::Reject || !crl.expired_at(now_unix) {
        return None;
    }
    Some(format!(
        "the CRL from {} is past its nextUpdate {} (revocation_lists_expired = \"reject\")",
        info.issuer,
        date(crl.next_update_unix().unwrap_or_default())
    ))
}

/// Refuses `new` when it would roll a CRL back: for a CRL in service in `old`, every CRL of
/// `new` from the same issuer name and key is older (an earlier thisUpdate, or a lower CRL
/// number when both carry one). A replayed or rolled-back CRL could otherwise un-revoke
/// certificates. An older CRL beside the current one of its issuer takes nothing away (every
/// CRL of a store applies), so it is no rollback.
pub fn check_no_rollback(old: &TrustStore, new: &TrustStore) -> Result<(), TrustStoreError> {
    for (o, o_info) in old.crls.iter().zip(&old.crl_infos) {
        let mut same = new
            .crls
            .iter()
            .zip(&new.crl_infos)
            .filter(|(n, _)| n.same_authority(o))
            .peekable();
        let Some((_, first_info)) = same.peek().copied() else {
            continue;
        };
        let reasons: Option<Vec<String>> =
            same.map(|(n, info)| older(n, info, o, o_info)).collect();
        if let Some(reason) = reasons.and_then(|r| r.into_iter().next()) {
            return Err(TrustStoreError::Invalid {
                store: new.name.clone(),
                source_name: first_info.source.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// Why `new` is older than `old`, if it is.
fn older(
    new: &RevokedSerials,
    info: &CrlInfo,
    old: &RevokedSerials,
    old_info: &CrlInfo,
) -> Option<String> {
    if new.this_update_unix() < old.this_update_unix() {
        return Some(format!(
            "CRL from {}: thisUpdate {} is older than the CRL in service (thisUpdate {}, from {}); kept the one in service",
            info.issuer,
            date(new.this_update_unix()),
            date(old.this_update_unix()),
            old_info.source
        ));
    }
    let (Some(n), Some(o)) = (new.crl_number(), old.crl_number()) else {
        return None;
    };
    // Canonical non-negative INTEGERs: a shorter one is smaller.
    if (n.len(), n) < (o.len(), o) {
        return Some(format!(
            "CRL from {}: CRL number {} is lower than the CRL in service (CRL number {}, from {}); kept the one in service",
            info.issuer,
            crate::x509::serial_hex(n),
            crate::x509::serial_hex(o),
            old_info.source
        ));
    }
    None
}
