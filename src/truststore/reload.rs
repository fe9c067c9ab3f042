//! Swapping in new trust stores and server certificates while the proxy runs: on SIGHUP (all of
//! them, now) and every `refresh_interval_secs` (a store whose files changed). Whatever fails to
//! load keeps its last good version in service, and the error names the source and the reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::config::{Config, Source, TrustStoreConfig};
use crate::listener::ListenerRuntime;
use crate::tls::ListenerTls;
use crate::truststore::{self, Stores};

/// What cheaply tells that a source changed without reading it: size and modification time.
type Fingerprint = Vec<Option<(u64, SystemTime)>>;

fn fingerprint(cfg: &TrustStoreConfig) -> Fingerprint {
    std::iter::once(&cfg.ca_certificates_bundle)
        .chain(&cfg.revocation_lists)
        .map(|src| match src {
            Source::File(p) => std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?))),
        })
        .collect()
}

pub struct Reloader {
    config: Config,
    listeners: Vec<Arc<ListenerRuntime>>,
    stores: Mutex<Stores>,
    seen: Mutex<BTreeMap<String, Fingerprint>>,
}

impl Reloader {
    /// `stores` were loaded from `config` just before; their fingerprints are taken now.
    pub fn new(config: Config, listeners: Vec<Arc<ListenerRuntime>>, stores: Stores) -> Reloader {
        let seen = config
            .trust_stores
            .iter()
            .map(|(n, c)| (n.clone(), fingerprint(c)))
            .collect();
        Reloader {
            config,
            listeners,
            stores: Mutex::new(stores),
            seen: Mutex::new(seen),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn trust_store_version(&self, name: &str) -> Option<String> {
        let stores = self.stores.lock().ok()?;
        stores.get(name).map(|t| t.version.clone())
    }

    /// Loads one store into `stores`; `Err` leaves the previous one in place.
    fn load_store(&self, stores: &mut Stores, cfg: &TrustStoreConfig) -> Result<bool, String> {
        let before = fingerprint(cfg);
        let result = truststore::load(cfg);
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(cfg.name.clone(), before);
        }
        match result {
            Ok(new) => {
                let old = stores.get(&cfg.name).map(|s| s.version.clone());
                let changed = old.as_deref() != Some(new.version.as_str());
                if changed {
                    tracing::info!(
                        trust_store = %cfg.name,
                        version = %new.version,
                        previous = old.as_deref().unwrap_or("none"),
                        cas = new.cas.len(),
                        revoked_entries = new.revoked_entries(),
                        "trust store loaded"
                    );
                }
                stores.insert(cfg.name.clone(), Arc::new(new));
                Ok(changed)
            }
            Err(e) => {
                let kept = stores
                    .get(&cfg.name)
                    .map(|s| s.version.clone())
                    .unwrap_or_default();
                tracing::error!(
                    trust_store = %cfg.name,
                    kept_version = %kept,
                    "reload failed, keeping the last good store: {e}"
                );
                Err(e.to_string())
            }
        }
    }

    /// Rebuilds the TLS state of listeners; failures keep the current state. With `only_store`,
    /// just the listeners on that store, reusing their loaded server certificates; otherwise
    /// every listener, with certificates and keys read from disk again.
    fn rebuild(&self, stores: &Stores, only_store: Option<&str>) -> Vec<String> {
        let mut problems = Vec::new();
        for (rt, l) in self.listeners.iter().zip(&self.config.listeners) {
            let built = match only_store {
                Some(name) if l.mutual_authentication.trust_store.as_deref() != Some(name) => {
                    continue
                }
                Some(_) => rt.tls.load().with_stores(l, stores),
                None => ListenerTls::build(l, stores),
            };
            match built {
                Ok(tls) => rt.tls.store(Arc::new(tls)),
                Err(e) => {
                    tracing::error!(listener = %l.name, "reload failed, keeping the current TLS settings: {e}");
                    problems.push(e.to_string());
                }
            }
        }
        problems
    }

    /// SIGHUP: every store and every server certificate, now. Returns the problems.
    /// Blocking (file reads and parsing): call it off the async worker threads.
    pub fn reload_all(&self) -> Vec<String> {
        let Ok(mut stores) = self.stores.lock() else {
            return vec!["internal error: trust store lock poisoned".to_string()];
        };
        let mut problems = Vec::new();
        for cfg in self.config.trust_stores.values() {
            if let Err(e) = self.load_store(&mut stores, cfg) {
                problems.push(e);
            }
        }
        problems.extend(self.rebuild(&stores, None));
        problems
    }

    /// Timed refresh of one store: reloads it only when one of its files changed since the last
    /// load (size or modification time), and then only the listeners that use it.
    pub fn refresh_if_changed(&self, name: &str) -> Option<Result<bool, String>> {
        let cfg = self.config.trust_stores.get(name)?;
        let now = fingerprint(cfg);
        let unchanged = self
            .seen
            .lock()
            .ok()
            .is_some_and(|seen| seen.get(name) == Some(&now));
        if unchanged {
            return None;
        }
        let Ok(mut stores) = self.stores.lock() else {
            return Some(Err("internal error: trust store lock poisoned".to_string()));
        };
        let result = match self.load_store(&mut stores, cfg) {
            Ok(true) => match self.rebuild(&stores, Some(name)).into_iter().next() {
                None => Ok(true),
                Some(problem) => Err(problem),
            },
            other => other,
        };
        if result.is_err() {
            // Not applied: forget the fingerprint so the next interval tries again.
            if let Ok(mut seen) = self.seen.lock() {
                seen.remove(name);
            }
        }
        Some(result)
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
        let r = reloader.clone();
        let n = name.clone();
        // Parsing a large CRL takes a while: keep it off the async worker threads.
        let _ = tokio::task::spawn_blocking(move || r.refresh_if_changed(&n)).await;
    }
}
