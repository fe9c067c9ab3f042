//! Keeping a listener's server certificates current: every `refresh_interval_secs` the
//! certificate and key sources are probed cheaply (file size and mtime, S3 HEAD) and read
//! again when one changed; on SIGHUP they are read again whatever the probes say. New
//! handshakes get the new certificates, open connections keep theirs, and a source that fails
//! to load leaves the last good certificates in service, logged once per distinct error. New
//! certificates get their OCSP staples (`ocsp_stapling`) before they go in service.

use std::sync::Arc;

use tokio::sync::watch;

use super::Listener;
use crate::tls::{load_certificates, log_loaded, ServerCerts};
use crate::truststore::source::Sources;

/// What the last check saw.
#[derive(Debug, Default)]
pub struct CertWatch {
    /// The probe of every source, in config order (chain, key, ... per certificate); empty
    /// before the first check.
    probes: Vec<String>,
    /// The last load error, logged when it first appears.
    last_error: Option<String>,
}

impl Listener {
    /// Re-reads the certificates if a source changed (every source with `force`) and serves
    /// them if their content differs from what is in service. `Ok(true)` when new
    /// certificates went in; the error (also logged, once) says why the current ones stay.
    pub async fn refresh_certificates(
        &self,
        sources: &Sources,
        force: bool,
    ) -> Result<bool, String> {
        let mut watch = self.certificate_watch.lock().await;
        let probes = probe_all(self, sources).await;
        if !force && !watch.probes.is_empty() && probes.as_ref().ok() == Some(&watch.probes) {
            return Ok(false);
        }
        let result = match probes {
            Ok(p) => {
                let outcome = self.reload_certificates(sources).await;
                if outcome.is_ok() {
                    watch.probes = p;
                }
                outcome
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(_) => watch.last_error = None,
            Err(e) if watch.last_error.as_ref() != Some(e) => {
                tracing::error!(listener = %self.name(), "server certificate reload failed, keeping the last good certificates: {e}");
                watch.last_error = Some(e.clone());
            }
            Err(_) => {}
        }
        result
    }

    async fn reload_certificates(&self, sources: &Sources) -> Result<bool, String> {
        let certs = load_certificates(&self.config, sources)
            .await
            .map_err(|e| e.to_string())?;
        if same_content(self.tls.load().certificates(), &certs) {
            return Ok(false);
        }
        // New certificates are stapled before they serve (waiting a few seconds at most).
        super::staple::first_staples(&certs).await;
        let certs = Arc::new(certs);
        self.replace_certificates(certs.clone())
            .map_err(|e| e.to_string())?;
        log_loaded(self.name(), &certs);
        Ok(true)
    }
}

fn same_content(a: &ServerCerts, b: &ServerCerts) -> bool {
    a.iter().map(|c| &c.tags).eq(b.iter().map(|c| &c.tags))
}

async fn probe_all(listener: &Listener, sources: &Sources) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for c in &listener.config.certificates {
        for src in [&c.certificate_chain, &c.private_key] {
            out.push(sources.probe(src).await?);
        }
    }
    Ok(out)
}

/// Checks the listener's certificates every `refresh_interval_secs` until `stop` turns true.
pub async fn refresh_loop(
    listener: Arc<Listener>,
    sources: Arc<Sources>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(listener.config.certificate_refresh_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let _ = listener.refresh_certificates(&sources, false).await;
    }
}
