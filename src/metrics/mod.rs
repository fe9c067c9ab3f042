//! certgate's Prometheus metrics (SPEC §11): the metric families, the handles the data path
//! keeps (`handles`: counters and histograms resolved once per listener, target group or
//! store, so a request or handshake only adds to atomics), the state read at scrape time
//! (`state`: gauges of trust stores, certificates, targets), and the text exposition.

pub mod handles;
pub mod histogram;
pub mod state;

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

pub use handles::{JwtMetrics, JwtResult, ListenerMetrics, RequestMetrics, StoreReloads};
use histogram::{AtomicHistogram, HANDSHAKE_BUCKETS, REQUEST_BUCKETS};
pub use state::{Snapshot, StateView};

/// The `tls_verify_status` values a handshake can end with (ALB's fixed set): the label set of
/// `certgate_tls_handshakes_total` is bounded by this list times the listeners.
pub const TLS_VERIFY_STATUSES: [&str; 13] = [
    "Success",
    "Failed:ClientCertMaxChainDepthExceeded",
    "Failed:ClientCertMaxSizeExceeded",
    "Failed:ClientCertCrlHit",
    "Failed:ClientCertCrlProcessingError",
    "Failed:ClientCertUntrusted",
    "Failed:ClientCertNotYetValid",
    "Failed:ClientCertExpired",
    "Failed:ClientCertTypeUnsupported",
    "Failed:ClientCertInvalid",
    "Failed:ClientCertPurposeInvalid",
    "Failed:ClientCertRejected",
    "Failed:UnmappedConnectionError",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    listener: String,
    mode: String,
    tls_verify_status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    listener: String,
    target_group: String,
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    trust_store: String,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JwtLabels {
    validator: String,
    result: String,
}

type HistogramFamily<L> = Family<L, AtomicHistogram, fn() -> AtomicHistogram>;

fn handshake_histogram() -> AtomicHistogram {
    AtomicHistogram::new(HANDSHAKE_BUCKETS)
}

fn request_histogram() -> AtomicHistogram {
    AtomicHistogram::new(REQUEST_BUCKETS)
}

/// Every metric family of the process. Cloning shares them. Families are only touched when a
/// listener, group or store resolves its handles (start and reload) and when scraped.
#[derive(Debug, Clone)]
pub struct Metrics {
    handshakes: Family<HandshakeLabels, Counter>,
    handshake_duration: HistogramFamily<ListenerLabel>,
    closed_by_revocation: Family<ListenerLabel, Counter>,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<ListenerLabel>,
    reloads: Family<ReloadLabels, Counter>,
    jwt_validations: Family<JwtLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            handshakes: Family::default(),
            handshake_duration: Family::new_with_constructor(handshake_histogram),
            closed_by_revocation: Family::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(request_histogram),
            reloads: Family::default(),
            jwt_validations: Family::default(),
        }
    }
}

/// What a scrape answers in: the Prometheus text format or OpenMetrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the scraper's `Accept` header asks for it, else the Prometheus text
    /// format (what every scraper reads).
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The registry a scrape encodes: the families plus the scrape-time state of `view`.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    pub fn new(metrics: &Metrics, view: Arc<dyn StateView>) -> Exporter {
        let mut r = Registry::default();
        let m = metrics.clone();
        r.register(
            "certgate_tls_handshakes",
            "TLS handshakes by listener, mode and tls_verify_status",
            m.handshakes,
        );
        r.register(
            "certgate_tls_handshake_duration_seconds",
            "Time from accept to the end of the TLS handshake",
            m.handshake_duration,
        );
        r.register(
            "certgate_connections_closed_by_revocation",
            "Open connections closed because a reloaded trust store no longer admits the client",
            m.closed_by_revocation,
        );
        r.register(
            "certgate_requests",
            "Requests answered, by listener, target group (- when none was chosen) and status code",
            m.requests,
        );
        r.register(
            "certgate_request_duration_seconds",
            "Time from a request's arrival to its response head",
            m.request_duration,
        );
        r.register(
            "certgate_truststore_reloads",
            "Trust-store loads after start, by result (success|failure)",
            m.reloads,
        );
        r.register(
            "certgate_jwt_validations",
            "JWT validations by validator and result",
            m.jwt_validations,
        );
        r.register_collector(Box::new(state::Collector::new(view)));
        Exporter { registry: r }
    }

    /// One scrape. The scrape-time state is read once, so its values agree with each other
    /// even while a reload swaps stores in.
    pub fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)?
            }
        }
        Ok(out)
    }
}
