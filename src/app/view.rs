//! What the admin endpoint reads from the running proxy at scrape time: listeners (open
//! connections, server certificates), target health, the trust stores in service, the logs'
//! dropped lines. One snapshot per scrape, taken from the state the data path uses.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use x509_parser::prelude::*;

use crate::admin::TrustStoresView;
use crate::listener::Listener;
use crate::metrics::state::StoreSnapshot;
use crate::metrics::{Snapshot, StateView};
use crate::observe::delivery::Uploads;
use crate::observe::LogSink;
use crate::truststore::reload::Reloader;
use crate::upstream::TargetGroup;

pub(super) struct ServerView {
    pub listeners: Vec<Arc<Listener>>,
    pub reloader: Arc<Reloader>,
    pub groups: BTreeMap<String, Arc<TargetGroup>>,
    /// (log name as the `log` label shows it, its sink).
    pub logs: Vec<(&'static str, LogSink)>,
    /// (log name, its S3 upload counts) for the logs delivered to S3.
    pub uploads: Vec<(&'static str, Arc<Uploads>)>,
}

impl StateView for ServerView {
    fn snapshot(&self) -> Snapshot {
        let stores = self.reloader.stores();
        let trust_stores = stores
            .values()
            .map(|s| StoreSnapshot {
                name: s.name.clone(),
                revocation_entries: s.revoked_entries() as u64,
                crls: s
                    .crl_infos
                    .iter()
                    .map(|c| (c.issuer.clone(), c.next_update_unix))
                    .collect(),
            })
            .collect();
        Snapshot {
            connections_open: self
                .listeners
                .iter()
                .map(|l| (l.name().to_string(), l.connections_open() as u64))
                .collect(),
            connections_parked: self
                .listeners
                .iter()
                .map(|l| (l.name().to_string(), l.connections_parked() as u64))
                .collect(),
            targets: self.targets(),
            trust_stores,
            server_certificates: self
                .listeners
                .iter()
                .flat_map(|l| certificates(l))
                .collect(),
            log_lines_dropped: self
                .logs
                .iter()
                .map(|(name, sink)| (name.to_string(), sink.dropped()))
                .collect(),
            log_uploads: self
                .uploads
                .iter()
                .map(|(name, u)| {
                    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
                    (name.to_string(), n(&u.ok), n(&u.failed))
                })
                .collect(),
            now_unix: ::time::OffsetDateTime::now_utc().unix_timestamp(),
        }
    }
}

impl ServerView {
    fn targets(&self) -> Vec<(String, String, bool)> {
        self.groups
            .values()
            .flat_map(|g| {
                g.targets
                    .iter()
                    .map(|t| (g.name().to_string(), t.url.url.clone(), t.is_healthy()))
            })
            .collect()
    }
}

impl TrustStoresView for ServerView {
    fn trust_stores(&self) -> serde_json::Value {
        let stores = self.reloader.stores();
        let by_name: serde_json::Map<String, serde_json::Value> = stores
            .iter()
            .map(|(name, s)| (name.clone(), crate::truststore::describe::describe_json(s)))
            .collect();
        serde_json::Value::Object(by_name)
    }
}

/// (listener, certificate name, notAfter) of each server certificate the listener serves. The
/// name is the subject's CN, else the first DNS name, else the whole subject.
fn certificates(l: &Listener) -> Vec<(String, String, i64)> {
    let tls = l.tls.load();
    tls.server_leaves()
        .into_iter()
        .filter_map(|der| {
            let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
            let not_after = cert.validity().not_after.timestamp();
            Some((l.name().to_string(), certificate_name(&cert), not_after))
        })
        .collect()
}

fn certificate_name(cert: &X509Certificate<'_>) -> String {
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let dns = || {
        cert.subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
            })
    };
    cn.or_else(dns)
        .unwrap_or_else(|| cert.subject().to_string())
}
