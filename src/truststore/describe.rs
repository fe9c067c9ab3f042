//! `certgate truststore describe`: what ALB's describe-trust-stores and
//! describe-trust-store-revocations show, for a loaded store.

use std::fmt::Write as _;

use super::{date, CaInfo, TrustStore};

/// What is wrong with one bundle CA at `now_unix`, in words: revoked, expired, not valid yet.
/// Clients whose chain ends at such a CA are refused.
pub fn ca_warnings(ca: &CaInfo, now_unix: i64) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(reason) = &ca.revoked {
        out.push(format!(
            "{reason}; clients whose chain ends at it are refused (ClientCertCrlHit)"
        ));
    }
    if now_unix > ca.not_after_unix {
        out.push(format!(
            "the bundle CA {} (serial {}) expired at {}; clients whose chain ends at it are refused (ClientCertExpired)",
            ca.subject,
            ca.serial_hex,
            date(ca.not_after_unix)
        ));
    } else if now_unix < ca.not_before_unix {
        out.push(format!(
            "the bundle CA {} (serial {}) is not valid before {}; clients whose chain ends at it are refused until then (ClientCertNotYetValid)",
            ca.subject,
            ca.serial_hex,
            date(ca.not_before_unix)
        ));
    }
    out
}

/// [`ca_warnings`] for every CA of `store`, then every CRL past its nextUpdate, now.
pub fn store_warnings(store: &TrustStore) -> Vec<String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut out: Vec<String> = store
        .cas
        .iter()
        .flat_map(|ca| ca_warnings(ca, now))
        .collect();
    out.extend(super::freshness::expired_crl_warnings(store, now));
    out
}

/// Human-readable description of one store.
pub fn describe(store: &TrustStore) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "trust store: {}", store.name);
    let _ = writeln!(s, "  version: {}", store.version);
    let _ = writeln!(s, "  sources:");
    for src in &store.sources {
        let _ = writeln!(s, "    - {} ({})", src.source, src.tag);
    }
    let _ = writeln!(s, "  CA certificates: {}", store.cas.len());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for ca in &store.cas {
        let _ = writeln!(
            s,
            "    - {} (not after {})",
            ca.subject,
            date(ca.not_after_unix)
        );
        for warning in ca_warnings(ca, now) {
            let _ = writeln!(s, "      warning: {warning}");
        }
    }
    let _ = writeln!(
        s,
        "  revocation lists: {} ({} revoked entries in total)",
        store.crl_infos.len(),
        store.revoked_entries()
    );
    for crl in &store.crl_infos {
        let expired = crl.next_update_unix.is_some_and(|next| now > next);
        let next = crl
            .next_update_unix
            .map(date)
            .unwrap_or_else(|| "none".to_string());
        let next = if expired {
            format!("{next} (EXPIRED: past nextUpdate)")
        } else {
            next
        };
        let _ = writeln!(s, "    - issuer: {}", crl.issuer);
        let _ = writeln!(s, "      source: {}", crl.source);
        let _ = writeln!(s, "      revoked entries: {}", crl.revoked_entries);
        let _ = writeln!(s, "      this update: {}", date(crl.this_update_unix));
        let _ = writeln!(s, "      next update: {next}");
    }
    for warning in super::freshness::expired_crl_warnings(store, now) {
        let _ = writeln!(s, "  warning: {warning}");
    }
    let _ = writeln!(
        s,
        "  limits: max_chain_depth {}, max_client_certificate_size {} bytes",
        store.limits.max_chain_depth, store.limits.max_client_certificate_size
    );
    s
}

/// What [`describe`] prints, as one JSON object (the admin endpoint's `/truststores`).
pub fn describe_json(store: &TrustStore) -> serde_json::Value {
    use serde_json::json;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cas: Vec<_> = store
        .cas
        .iter()
        .map(|ca| {
            json!({
                "subject": ca.subject,
                "serial_number": ca.serial_hex,
                "not_before": date(ca.not_before_unix),
                "not_after": date(ca.not_after_unix),
                "warnings": ca_warnings(ca, now),
            })
        })
        .collect();
    let crls: Vec<_> = store
        .crl_infos
        .iter()
        .map(|crl| {
            json!({
                "issuer": crl.issuer,
                "source": crl.source,
                "revoked_entries": crl.revoked_entries,
                "this_update": date(crl.this_update_unix),
                "next_update": crl.next_update_unix.map(date),
                "expired": crl.next_update_unix.is_some_and(|next| now > next),
            })
        })
        .collect();
    let sources: Vec<_> = store
        .sources
        .iter()
        .map(|s| json!({ "source": s.source, "version": s.tag }))
        .collect();
    json!({
        "name": store.name,
        "version": store.version,
        "sources": sources,
        "ca_certificates": cas,
        "revocation_lists": crls,
        "revoked_entries": store.revoked_entries(),
        "warnings": super::freshness::expired_crl_warnings(store, now),
        "limits": {
            "max_chain_depth": store.limits.max_chain_depth,
            "max_client_certificate_size": store.limits.max_client_certificate_size,
        },
    })
}
