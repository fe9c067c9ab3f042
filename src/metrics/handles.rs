//! The handles the data path keeps: each resolves its label children once, when its listener,
//! target group, trust store or JWT validator is built, and from then on only adds to atomics. No family (and
//! so no lock or hash) is touched per handshake or per request.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::histogram::{AtomicHistogram, HANDSHAKE_BUCKETS, REQUEST_BUCKETS};
use super::TLS_VERIFY_STATUSES;
use super::{HandshakeLabels, JwtLabels, ListenerLabel, Metrics, ReloadLabels, RequestLabels};

/// One listener's handshake metrics.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    /// One counter per entry of [`TLS_VERIFY_STATUSES`], in that order.
    handshakes: Arc<[Counter]>,
    handshake_duration: AtomicHistogram,
    closed_by_revocation: Counter,
}

impl ListenerMetrics {
    pub fn new(m: &Metrics, listener: &str, mode: &str) -> ListenerMetrics {
        let handshakes = TLS_VERIFY_STATUSES
            .iter()
            .map(|status| {
                m.handshakes.get_or_create_owned(&HandshakeLabels {
                    listener: listener.to_string(),
                    mode: mode.to_string(),
                    tls_verify_status: (*status).to_string(),
                })
            })
            .collect();
        let label = ListenerLabel {
            listener: listener.to_string(),
        };
        ListenerMetrics {
            handshakes,
            handshake_duration: m.handshake_duration.get_or_create_owned(&label),
            closed_by_revocation: m.closed_by_revocation.get_or_create_owned(&label),
        }
    }

    /// Handles registered nowhere: for a listener built without a metrics registry.
    pub fn detached() -> ListenerMetrics {
        ListenerMetrics {
            handshakes: TLS_VERIFY_STATUSES
                .iter()
                .map(|_| Counter::default())
                .collect(),
            handshake_duration: AtomicHistogram::new(HANDSHAKE_BUCKETS),
            closed_by_revocation: Counter::default(),
        }
    }

    /// A handshake that ended with `tls_verify_status` after `took`. A status outside ALB's
    /// set (none is written today) counts as `Failed:UnmappedConnectionError`.
    pub fn handshake(&self, tls_verify_status: &str, took: Duration) {
        let last = TLS_VERIFY_STATUSES.len() - 1;
        let i = TLS_VERIFY_STATUSES
            .iter()
            .position(|s| *s == tls_verify_status)
            .unwrap_or(last);
        if let Some(c) = self.handshakes.get(i) {
            c.inc();
        }
        self.handshake_duration.observe(took);
    }

    pub fn closed_by_revocation(&self) {
        self.closed_by_revocation.inc();
    }
}

/// Status codes with a counter slot of their own; any other (never sent) is looked up.
const CODES: std::ops::RangeInclusive<u16> = 100..=599;

/// One listener's request metrics: a slot per target group it routes to, in its router's
/// order, after `-` for requests answered before (or without) a group.
#[derive(Debug)]
pub struct RequestMetrics {
    listener: String,
    family: Family<RequestLabels, Counter>,
    groups: Vec<GroupCounters>,
    duration: AtomicHistogram,
}

/// The counters of one (listener, target group), one per status code, each resolved from the
/// family the first time that code is answered and kept from then on.
#[derive(Debug)]
struct GroupCounters {
    name: String,
    codes: Box<[OnceLock<Counter>]>,
}

/// The slot of requests answered before a target group was chosen.
pub const NO_GROUP: usize = 0;

impl RequestMetrics {
    pub fn new<'a>(
        m: &Metrics,
        listener: &str,
        groups: impl IntoIterator<Item = &'a str>,
    ) -> RequestMetrics {
        let slots = std::iter::once("-")
            .chain(groups)
            .map(|name| GroupCounters {
                name: name.to_string(),
                codes: CODES.map(|_| OnceLock::new()).collect(),
            })
            .collect();
        RequestMetrics {
            listener: listener.to_string(),
            family: m.requests.clone(),
            groups: slots,
            duration: m.request_duration.get_or_create_owned(&ListenerLabel {
                listener: listener.to_string(),
            }),
        }
    }

    /// Handles registered nowhere: for a listener built without a metrics registry.
    pub fn detached(listener: &str) -> RequestMetrics {
        RequestMetrics {
            listener: listener.to_string(),
            family: Family::default(),
            groups: vec![GroupCounters {
                name: "-".to_string(),
                codes: CODES.map(|_| OnceLock::new()).collect(),
            }],
            duration: AtomicHistogram::new(REQUEST_BUCKETS),
        }
    }

    /// The slot of the `i`-th group given to [`RequestMetrics::new`] (its route index): the
    /// data path finds its counters without comparing names.
    pub fn route_slot(i: usize) -> usize {
        i + 1
    }

    /// One request of group `slot` answered with `code` after `took`.
    pub fn record(&self, slot: usize, code: u16, took: Duration) {
        self.duration.observe(took);
        let Some(group) = self.groups.get(slot) else {
            return;
        };
        let labels = || RequestLabels {
            listener: self.listener.clone(),
            target_group: group.name.clone(),
            code: code.to_string(),
        };
        let index = usize::from(code.wrapping_sub(*CODES.start()));
        match group.codes.get(index) {
            Some(cell) => cell
                .get_or_init(|| self.family.get_or_create_owned(&labels()))
                .inc(),
            None => self.family.get_or_create(&labels()).inc(),
        };
    }
}

/// One trust store's reload counters.
#[derive(Debug, Clone, Default)]
pub struct StoreReloads {
    success: Counter,
    failure: Counter,
}

impl StoreReloads {
    pub fn new(m: &Metrics, trust_store: &str) -> StoreReloads {
        let of = |result: &str| {
            m.reloads.get_or_create_owned(&ReloadLabels {
                trust_store: trust_store.to_string(),
                result: result.to_string(),
            })
        };
        StoreReloads {
            success: of("success"),
            failure: of("failure"),
        }
    }

    pub fn record(&self, loaded: bool) {
        if loaded {
            self.success.inc();
        } else {
            self.failure.inc();
        }
    }
}

/// One JWT validator's verdict counters (`certgate_jwt_validations_total`): `success`,
/// `missing` (no token), `invalid` (401) and `forbidden` (403, claims refused).
#[derive(Debug, Clone, Default)]
pub struct JwtMetrics {
    counters: [Counter; 4],
}

/// What a token check can end with, as the `result` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtResult {
    Success,
    Missing,
    Invalid,
    Forbidden,
}

impl JwtResult {
    const ALL: [JwtResult; 4] = [
        JwtResult::Success,
        JwtResult::Missing,
        JwtResult::Invalid,
        JwtResult::Forbidden,
    ];

    fn label(self) -> &'static str {
        match self {
            JwtResult::Success => "success",
            JwtResult::Missing => "missing",
            JwtResult::Invalid => "invalid",
            JwtResult::Forbidden => "forbidden",
        }
    }
}

impl JwtMetrics {
    pub fn new(m: &Metrics, validator: &str) -> JwtMetrics {
        let of = |r: JwtResult| {
            m.jwt_validations.get_or_create_owned(&JwtLabels {
                validator: validator.to_string(),
                result: r.label().to_string(),
            })
        };
        JwtMetrics {
            counters: JwtResult::ALL.map(of),
        }
    }

    pub fn record(&self, result: JwtResult) {
        self.counters[result as usize].inc();
    }
}
