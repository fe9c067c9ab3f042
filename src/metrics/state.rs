//! Metrics read at scrape time from the state the proxy serves with: open connections, target
//! health, trust-store contents and CRL freshness, server-certificate expiry, dropped log lines.
//! Nothing on the data path keeps these; a reload is visible in the very next scrape.

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Everything a scrape reports from the serving state, read at one moment.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// (listener, open client connections).
    pub connections_open: Vec<(String, u64)>,
    /// (listener, HTTP/1.1 keep-alive connections parked between requests).
    pub connections_parked: Vec<(String, u64)>,
    /// (target group, target, healthy).
    pub targets: Vec<(String, String, bool)>,
    pub trust_stores: Vec<StoreSnapshot>,
    /// (listener, certificate name, notAfter as Unix seconds).
    pub server_certificates: Vec<(String, String, i64)>,
    /// (log, lines dropped since start).
    pub log_lines_dropped: Vec<(String, u64)>,
    /// (log, successful and failed uploads of its files to S3 since start).
    pub log_uploads: Vec<(String, u64, u64)>,
    /// The clock the CRL freshness is judged by, Unix seconds.
    pub now_unix: i64,
}

#[derive(Debug, Default, Clone)]
pub struct StoreSnapshot {
    pub name: String,
    pub revocation_entries: u64,
    /// (CRL issuer, nextUpdate as Unix seconds).
    pub crls: Vec<(String, Option<i64>)>,
}

/// The proxy side of a scrape.
pub trait StateView: Send + Sync + 'static {
    fn snapshot(&self) -> Snapshot;
}

pub(super) struct Collector {
    view: Arc<dyn StateView>,
}

impl Collector {
    pub(super) fn new(view: Arc<dyn StateView>) -> Collector {
        Collector { view }
    }
}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("state::Collector")
    }
}

type Labels = Vec<(&'static str, String)>;

/// One family of constant samples.
struct Series {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, i64)>,
}

impl Series {
    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        if self.samples.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, value) in &self.samples {
            let sample = family.encode_family(labels)?;
            match self.kind {
                MetricType::Counter => {
                    ConstCounter::new(u64::try_from(*value).unwrap_or(0)).encode(sample)?
                }
                _ => ConstGauge::new(*value).encode(sample)?,
            }
        }
        Ok(())
    }
}

fn gauge(name: &'static str, help: &'static str, samples: Vec<(Labels, i64)>) -> Series {
    Series {
        name,
        help,
        kind: MetricType::Gauge,
        samples,
    }
}

/// Per (store, issuer) the latest nextUpdate: a store may hold an older CRL of an issuer beside
/// its current one, and one series per issuer is what an alert needs.
fn crl_next_updates(store: &StoreSnapshot) -> Vec<(String, i64)> {
    let mut latest: std::collections::BTreeMap<&str, i64> = Default::default();
    for (issuer, next) in &store.crls {
        let Some(next) = next else { continue };
        let e = latest.entry(issuer).or_insert(*next);
        *e = (*e).max(*next);
    }
    latest
        .into_iter()
        .map(|(i, n)| (i.to_string(), n))
        .collect()
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn series(s: &Snapshot) -> Vec<Series> {
    let mut next_update = Vec::new();
    let mut expired = Vec::new();
    for store in &s.trust_stores {
        for (issuer, next) in crl_next_updates(store) {
            let labels = vec![("trust_store", store.name.clone()), ("issuer", issuer)];
            expired.push((labels.clone(), i64::from(next < s.now_unix)));
            next_update.push((labels, next));
        }
    }
    let listener = |l: &str| vec![("listener", l.to_string())];
    vec![
        gauge(
            "certgate_connections_open",
            "Open client connections (handshaking or served)",
            s.connections_open.iter().map(|(l, n)| (listener(l), count(*n))).collect(),
        ),
        gauge(
            "certgate_connections_parked",
            "Of the open connections, HTTP/1.1 keep-alive connections parked between requests (holding their TLS session only)",
            s.connections_parked.iter().map(|(l, n)| (listener(l), count(*n))).collect(),
        ),
        gauge(
            "certgate_target_healthy",
            "1 while a target is in rotation, 0 while health checks keep it out",
            s.targets
                .iter()
                .map(|(g, t, h)| {
                    let labels = vec![("target_group", g.clone()), ("target", t.clone())];
                    (labels, i64::from(*h))
                })
                .collect(),
        ),
        gauge(
            "certgate_truststore_revocation_entries",
            "Revoked serials across the CRLs of the trust store in service",
            s.trust_stores
                .iter()
                .map(|t| (vec![("trust_store", t.name.clone())], count(t.revocation_entries)))
                .collect(),
        ),
        gauge(
            "certgate_truststore_crl_next_update_timestamp_seconds",
            "nextUpdate of the latest CRL of each issuer in the trust store, Unix seconds",
            next_update,
        ),
        gauge(
            "certgate_truststore_crl_expired",
            "1 when the latest CRL of an issuer is past its nextUpdate (still in use unless revocation_lists_expired = \"reject\")",
            expired,
        ),
        gauge(
            "certgate_server_certificate_not_after_timestamp_seconds",
            "notAfter of each server certificate in service, Unix seconds",
            s.server_certificates
                .iter()
                .map(|(l, n, t)| (vec![("listener", l.clone()), ("name", n.clone())], *t))
                .collect(),
        ),
        Series {
            name: "certgate_log_lines_dropped",
            help: "Log lines lost to a full queue or a failing destination",
            kind: MetricType::Counter,
            samples: s
                .log_lines_dropped
                .iter()
                .map(|(log, n)| (vec![("log", log.clone())], count(*n)))
                .collect(),
        },
        Series {
            name: "certgate_log_uploads",
            help: "Log files put to S3 (result = success|failure), for logs delivered to S3",
            kind: MetricType::Counter,
            samples: s
                .log_uploads
                .iter()
                .flat_map(|(log, ok, failed)| {
                    [("success", *ok), ("failure", *failed)].map(|(result, n)| {
                        (vec![("log", log.clone()), ("result", result.to_string())], count(n))
                    })
                })
                .collect(),
        },
    ]
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        for s in series(&self.view.snapshot()) {
            s.encode(&mut encoder)?;
        }
        Ok(())
    }
}
