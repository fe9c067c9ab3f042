//! Swapping in new trust stores and server certificates while the proxy runs: on SIGHUP (all of
//! them, now) and every `refresh_interval_secs` (a store whose sources changed). Whatever fails
//! to load keeps its last good version in service, and the error names the source and the reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::loader::{self, StoreState};
use super::source::Sources;
use super::{Stores, TrustStore};
use crate::config::Config;
use crate::listener::ListenerRuntime;
use crate::tls::ListenerTls;

pub struct Reloader {
    config: Config,
    listeners: Vec<Arc<ListenerRuntime>>,
    sources: Sources,
    /// The stores in service; locked only for short reads and swaps.
    stores: Mutex<Stores>,
    /// Per-store refresh state; one load at a time per store.
    states: BTreeMap<String, tokio::sync::Mutex<StoreState>>,
}

impl Reloader {
    pub fn new(
        config: Config,
        listeners: Vec<Arc<ListenerRuntime>>,
        sources: Sources,
        stores: Stores,
        states: BTreeMap<String, StoreState>,
    ) -> Reloader {
        Reloader {
            config,
            listeners,
            sources,
            stores: Mutex::new(stores),
            states: states
                .into_iter()
                .map(|(k, v)| (k, tokio::sync::Mutex::new(v)))
                .collect(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn trust_store_version(&self, name: &str) -> Option<String> {
        let stores = self.stores.lock().ok()?;
        stores.get(name).map(|t| t.version.clone())
    }

    fn snapshot(&self) -> Stores {
        self.stores.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Loads one store (all sources with `force`, else only changed ones) and puts it in
    /// service. `Ok(true)` when a new version went in, `Ok(false)` when nothing changed.
    async fn load_store(&self, name: &str, force: bool) -> Result<bool, String> {
        let (Some(cfg), Some(state)) = (self.config.trust_stores.get(name), self.states.get(name))
        else {
            return Ok(false);
        };
        let mut state = state.lock().await;
        match loader::load(cfg, &self.sources, &mut state, force).await {
            Ok(None) => Ok(false),
            Ok(Some(new)) => Ok(self.put(new)),
            Err(e) => {
                let kept = self.trust_store_version(name).unwrap_or_default();
                tracing::error!(trust_store = %name, kept_version = %kept, "reload failed, keeping the last good store: {e}");
                Err(e.to_string())
            }
        }
    }

    /// Swaps a store in; returns whether its version changed.
    fn put(&self, new: TrustStore) -> bool {
        let Ok(mut stores) = self.stores.lock() else {
            return false;
        };
        let old = stores.get(&new.name).map(|s| s.version.clone());
        let changed = old.as_deref() != Some(new.version.as_str());
        if changed {
            tracing::info!(
                trust_store = %new.name,
                version = %new.version,
                previous = old.as_deref().unwrap_or("none"),
                cas = new.cas.len(),
                revoked_entries = new.revoked_entries(),
                "trust store loaded"
            );
        }
        stores.insert(new.name.clone(), Arc::new(new));
        changed
    }

    /// Rebuilds the TLS state of listeners; failures keep the current state. With `only_store`,
    /// just the listeners on that store, reusing their loaded server certificates; otherwise
    /// every listener, with certificates and keys read from disk again.
    fn rebuild(&self, only_store: Option<&str>) -> Vec<String> {
        let stores = self.snapshot();
        let mut problems = Vec::new();
        for (rt, l) in self.listeners.iter().zip(&self.config.listeners) {
            let built = match only_store {
                Some(name) if l.mutual_authentication.trust_store.as_deref() != Some(name) => {
                    continue
                }
                Some(_) => rt.tls.load().with_stores(l, &stores),
                None => ListenerTls::build(l, &stores),
            };
            match built {
                Ok(tls) => {
                    rt.tls.store(Arc::new(tls));
                    rt.revalidate();
                }
                Err(e) => {
                    tracing::error!(listener = %l.name, "reload failed, keeping the current TLS settings: {e}");
                    problems.push(e.to_string());
                }
            }
        }
        problems
    }

    /// SIGHUP: every store (every source fetched again) and every server certificate, now.
    /// Returns the problems; an empty list means everything reloaded.
    pub async fn reload_all(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for name in self.config.trust_stores.keys() {
            if let Err(e) = self.load_store(name, true).await {
                problems.push(e);
            }
        }
        // Reads the (small) certificate and key files of every listener.
        problems.extend(self.rebuild(None));
        problems
    }

    /// Timed refresh of one store: sources are probed cheaply and only changed ones fetched
    /// and parsed; listeners on the store are rebuilt when its version changed. A failure is
    /// logged and the next interval tries again.
    pub async fn refresh(&self, name: &str) -> Result<bool, String> {
        let changed = self.load_store(name, false).await?;
        if changed {
            if let Some(problem) = self.rebuild(Some(name)).into_iter().next() {
                // The store is in the map but not in the listeners' configs: load everything
                // again next time so the swap is retried.
                if let Some(state) = self.states.get(name) {
                    *state.lock().await = StoreState::default();
                }
                return Err(problem);
            }
        }
        Ok(changed)
    }
}

/// Runs the timed refresh of one store until `stop` turns true.
pub async fn refresh_loop(
    reloader: Arc<Reloader>,
    name: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(interval) = reloader
        .config()
        .trust_stores
        .get(&name)
        .map(|c| c.refresh_interval)
    else {
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let _ = reloader.refresh(&name).await;
    }
}
