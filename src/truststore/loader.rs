//! Loading one trust store from its sources and keeping what is needed to refresh it cheaply:
//! the last probe of each source (only changed sources are fetched again) and the parsed pieces
//! (only changed sources are parsed again). Nothing is committed unless the whole new store
//! loaded, so a failing source leaves the last good store and state in place.

use std::sync::Arc;

use super::source::{Fetched, Sources};
use super::{
    assemble, parse_bundle, parse_crls, ParsedBundle, ParsedCrls, SourceVersion, TrustStore,
    TrustStoreError, MAX_BUNDLE_FILE_SIZE, MAX_CRL_FILE_SIZE,
};
use crate::config::{Source, TrustStoreConfig};

/// What a store's last successful load left behind, per source (bundle first, then CRLs).
#[derive(Debug, Default)]
pub struct StoreState {
    probes: Vec<Option<String>>,
    fetched: Vec<Option<Fetched>>,
    bundle: Option<(String, Arc<ParsedBundle>)>,
    /// Per CRL source: (its tag, the bundle tag it was checked against, the parsed CRLs).
    crls: Vec<Option<(String, String, Arc<ParsedCrls>)>>,
}

fn sources_of(cfg: &TrustStoreConfig) -> Vec<&Source> {
    std::iter::once(&cfg.ca_certificates_bundle)
        .chain(&cfg.revocation_lists)
        .collect()
}

fn fetch_error(cfg: &TrustStoreConfig, reason: String) -> TrustStoreError {
    TrustStoreError::Fetch {
        store: cfg.name.clone(),
        reason,
    }
}

/// Loads `cfg`. With `force` every source is fetched; otherwise only sources whose probe
/// changed since `state` was last committed. Returns `Ok(None)` when nothing changed.
pub async fn load(
    cfg: &TrustStoreConfig,
    sources: &Sources,
    state: &mut StoreState,
    force: bool,
) -> Result<Option<TrustStore>, TrustStoreError> {
    let srcs = sources_of(cfg);
    let n = srcs.len();
    let mut probes = Vec::with_capacity(n);
    let mut fetched = Vec::with_capacity(n);
    let mut changed = force || state.fetched.len() != n;
    for (i, src) in srcs.iter().enumerate() {
        let probe = sources.probe(src).await.map_err(|e| fetch_error(cfg, e))?;
        let previous = state.fetched.get(i).cloned().flatten();
        let same =
            !force && state.probes.get(i).cloned().flatten().as_deref() == Some(probe.as_str());
        let f = match previous {
            Some(prev) if same => prev,
            _ => {
                changed = true;
                let max = if i == 0 {
                    MAX_BUNDLE_FILE_SIZE
                } else {
                    MAX_CRL_FILE_SIZE
                };
                sources
                    .fetch(src, max)
                    .await
                    .map_err(|e| fetch_error(cfg, e))?
            }
        };
        probes.push(Some(probe));
        fetched.push(f);
    }
    if !changed {
        return Ok(None);
    }

    // Parsing a large CRL takes a while: keep it off the async worker threads.
    let name = cfg.name.clone();
    let names: Vec<String> = srcs.iter().map(|s| s.to_string()).collect();
    let limits = cfg.limits;
    let old_bundle = state.bundle.clone();
    let old_crls = state.crls.clone();
    let inputs = fetched.clone();
    let built = tokio::task::spawn_blocking(move || {
        let bundle_tag = inputs[0].tag.clone();
        let bundle = match old_bundle {
            Some((tag, parsed)) if tag == bundle_tag => parsed,
            _ => Arc::new(parse_bundle(&name, &names[0], &inputs[0].bytes)?),
        };
        let mut crls = Vec::with_capacity(inputs.len().saturating_sub(1));
        let mut sets = Vec::with_capacity(inputs.len().saturating_sub(1));
        for (i, f) in inputs.iter().enumerate().skip(1) {
            let reuse = old_crls
                .get(i - 1)
                .cloned()
                .flatten()
                .filter(|(tag, btag, _)| *tag == f.tag && *btag == bundle_tag);
            let parsed = match reuse {
                Some((_, _, p)) => p,
                None => Arc::new(parse_crls(&name, &names[i], &f.bytes, &bundle)?),
            };
            crls.push(Some((f.tag.clone(), bundle_tag.clone(), parsed.clone())));
            sets.push(parsed);
        }
        let versions = names
            .iter()
            .zip(&inputs)
            .map(|(source, f)| SourceVersion {
                source: source.clone(),
                tag: f.tag.clone(),
            })
            .collect();
        let store = assemble(&name, &bundle, &sets, limits, versions);
        Ok::<_, TrustStoreError>((store, (bundle_tag, bundle), crls))
    })
    .await
    .map_err(|e| fetch_error(cfg, format!("loading task failed: {e}")))??;

    let (store, bundle, crls) = built;
    state.probes = probes;
    state.fetched = fetched.into_iter().map(Some).collect();
    state.bundle = Some(bundle);
    state.crls = crls;
    Ok(Some(store))
}

/// Loads every configured store for start-up, `check` and `describe`; the first failure names
/// the store and the source.
pub async fn load_all(
    cfg: &crate::config::Config,
    sources: &Sources,
) -> Result<
    (
        super::Stores,
        std::collections::BTreeMap<String, StoreState>,
    ),
    TrustStoreError,
> {
    let mut stores = super::Stores::new();
    let mut states = std::collections::BTreeMap::new();
    for (name, ts) in &cfg.trust_stores {
        let mut state = StoreState::default();
        let store = load(ts, sources, &mut state, true).await?;
        if let Some(store) = store {
            stores.insert(name.clone(), Arc::new(store));
        }
        states.insert(name.clone(), state);
    }
    Ok((stores, states))
}

/// Loads one store from scratch (for `describe`).
pub async fn load_one(
    cfg: &TrustStoreConfig,
    sources: &Sources,
) -> Result<TrustStore, TrustStoreError> {
    load(cfg, sources, &mut StoreState::default(), true)
        .await?
        .ok_or_else(|| fetch_error(cfg, "nothing loaded".to_string()))
}
