//! Keeping trust stores current while the proxy runs: on demand (SIGHUP: every store, every
//! source fetched again) and every `refresh_interval_secs` (a store whose sources changed).
//! Each new set of stores is published on a `watch` channel; listeners follow it. Whatever fails
//! to load keeps its last good version in service, and the error names the source and reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use super::loader::{self, StoreState};
use super::source::Sources;
use super::{Stores, TrustStore};
use crate::config::TrustStoreConfig;
use crate::metrics::{Metrics, StoreReloads};

pub struct Reloader {
    configs: BTreeMap<String, TrustStoreConfig>,
    sources: Sources,
    /// The stores in service. Swaps go through `send_modify`, so each publishes one new set.
    published: watch::Sender<Stores>,
    /// Per-store refresh state; one load at a time per store.
    states: BTreeMap<String, tokio::sync::Mutex<StoreState>>,
    /// `certgate_truststore_reloads_total`, per store.
    reloads: BTreeMap<String, StoreReloads>,
}

impl Reloader {
    pub fn new(
        configs: BTreeMap<String, TrustStoreConfig>,
        sources: Sources,
        stores: Stores,
        states: BTreeMap<String, StoreState>,
    ) -> Reloader {
        Reloader {
            configs,
            sources,
            published: watch::Sender::new(stores),
            states: states
                .into_iter()
                .map(|(k, v)| (k, tokio::sync::Mutex::new(v)))
                .collect(),
            reloads: BTreeMap::new(),
        }
    }

    /// The reloader, counting each store's reloads into `metrics`.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Reloader {
        self.reloads = self
            .configs
            .keys()
            .map(|name| (name.clone(), StoreReloads::new(metrics, name)))
            .collect();
        self
    }

    /// A reload counts as a success when it was asked for (`force`) and went through, or
    /// when a timed refresh put a new version in; a failure whenever a load failed.
    fn count(&self, name: &str, force: bool, result: &Result<bool, String>) {
        let Some(counters) = self.reloads.get(name) else {
            return;
        };
        match result {
            Ok(new) if force || *new => counters.record(true),
            Ok(_) => {}
            Err(_) => counters.record(false),
        }
    }

    /// The stores in service now, and every later set as it is published.
    pub fn subscribe(&self) -> watch::Receiver<Stores> {
        self.published.subscribe()
    }

    /// The stores in service now.
    pub fn stores(&self) -> Stores {
        self.published.borrow().clone()
    }

    pub fn trust_store_version(&self, name: &str) -> Option<String> {
        self.published.borrow().get(name).map(|t| t.version.clone())
    }

    /// Loads one store (all sources with `force`, else only changed ones) and publishes it.
    /// `Ok(true)` when a new version went in, `Ok(false)` when nothing changed.
    async fn load_store(&self, name: &str, force: bool) -> Result<bool, String> {
        let (Some(cfg), Some(state)) = (self.configs.get(name), self.states.get(name)) else {
            return Ok(false);
        };
        let mut state = state.lock().await;
        let in_service = self.published.borrow().get(name).cloned();
        let loaded = loader::load(cfg, &self.sources, &mut state, force, in_service.as_deref());
        let result = self.judge(name, loaded.await);
        self.count(name, force, &result);
        result
    }

    /// Publishes what a load brought, or logs why it failed.
    fn judge(
        &self,
        name: &str,
        loaded: Result<Option<TrustStore>, super::TrustStoreError>,
    ) -> Result<bool, String> {
        match loaded {
            Ok(None) => Ok(false),
            Ok(Some(new)) => Ok(self.publish(new)),
            Err(e) => {
                let kept = self.trust_store_version(name).unwrap_or_default();
                tracing::error!(trust_store = %name, kept_version = %kept, "reload failed, keeping the last good store: {e}");
                Err(e.to_string())
            }
        }
    }

    /// Publishes a store if its version is new; returns whether it was.
    fn publish(&self, new: TrustStore) -> bool {
        self.published.send_if_modified(|stores| {
            let old = stores.get(&new.name).map(|s| s.version.clone());
            if old.as_deref() == Some(new.version.as_str()) {
                return false;
            }
            tracing::info!(
                trust_store = %new.name,
                version = %new.version,
                previous = old.as_deref().unwrap_or("none"),
                cas = new.cas.len(),
                revoked_entries = new.revoked_entries(),
                "trust store loaded"
            );
            stores.insert(new.name.clone(), Arc::new(new));
            true
        })
    }

    /// Every store, every source fetched again, now. Returns the problems; an empty list
    /// means every store loaded.
    pub async fn reload_all(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for name in self.configs.keys() {
            if let Err(e) = self.load_store(name, true).await {
                problems.push(e);
            }
        }
        problems
    }

    /// Timed refresh of one store: sources are probed cheaply and only changed ones fetched
    /// and parsed. A failure is logged and the next interval tries again.
    pub async fn refresh(&self, name: &str) -> Result<bool, String> {
        self.load_store(name, false).await
    }

    /// Runs the timed refresh of every store until `stop` turns true, one task per store.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        stop: &watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.configs
            .iter()
            .map(|(name, cfg)| {
                let task = refresh_loop(self.clone(), name.clone(), cfg.refresh_interval);
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stop.changed() => {}
                        () = task => {}
                    }
                })
            })
            .collect()
    }
}

/// Refreshes one store every `interval`, for ever.
async fn refresh_loop(reloader: Arc<Reloader>, name: String, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let _ = reloader.refresh(&name).await;
    }
}
