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
/// CRL bytes are not kept — their parsed form is — so a 50 MB CRL is not held twice.
#[derive(Debug, Default)]
pub struct StoreState {
    probes: Vec<Option<String>>,
    bundle: Option<(Fetched, Arc<ParsedBundle>)>,
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

/// A CRL source for this load: new bytes to parse, or the parsed form of the last load.
enum CrlInput {
    Fresh(Fetched),
    Reused(String, Arc<ParsedCrls>),
}

/// Loads `cfg`. With `force` every source is fetched; otherwise only sources whose probe
/// changed since `state` was last committed (and every CRL when the bundle changed, since
/// CRL signatures are checked against the bundle). Returns `Ok(None)` when nothing changed.
/// A CRL older than its counterpart in `in_service` fails the load (see
/// [`super::freshness::check_no_rollback`]): the store in service stays, as for any load error.
pub async fn load(
    cfg: &TrustStoreConfig,
    sources: &Sources,
    state: &mut StoreState,
    force: bool,
    in_service: Option<&TrustStore>,
) -> Result<Option<TrustStore>, TrustStoreError> {
    let srcs = sources_of(cfg);
    let mut probes = Vec::with_capacity(srcs.len());
    let same_probe = |i: usize, probe: &str| {
        !force && state.probes.get(i).cloned().flatten().as_deref() == Some(probe)
    };

    let probe = sources
        .probe(srcs[0])
        .await
        .map_err(|e| fetch_error(cfg, e))?;
    let (bundle_in, old_bundle) = match &state.bundle {
        Some((f, parsed)) if same_probe(0, &probe) => (f.clone(), Some(parsed.clone())),
        _ => (
            sources
                .fetch(srcs[0], MAX_BUNDLE_FILE_SIZE)
                .await
                .map_err(|e| fetch_error(cfg, e))?,
            None,
        ),
    };
    let mut changed = old_bundle.is_none() || state.crls.len() + 1 != srcs.len();
    probes.push(Some(probe));

    let mut crl_inputs = Vec::with_capacity(srcs.len() - 1);
    for (i, src) in srcs.iter().enumerate().skip(1) {
        let probe = sources.probe(src).await.map_err(|e| fetch_error(cfg, e))?;
        let reusable = state
            .crls
            .get(i - 1)
            .cloned()
            .flatten()
            .filter(|(_, btag, _)| *btag == bundle_in.tag && same_probe(i, &probe));
        let input = match reusable {
            Some((tag, _, parsed)) => CrlInput::Reused(tag, parsed),
            None => {
                changed = true;
                CrlInput::Fresh(
                    sources
                        .fetch(src, MAX_CRL_FILE_SIZE)
                        .await
                        .map_err(|e| fetch_error(cfg, e))?,
                )
            }
        };
        probes.push(Some(probe));
        crl_inputs.push(input);
    }
    if !changed {
        return Ok(None);
    }

    // Parsing a large CRL takes a while: keep it off the async worker threads.
    let name = cfg.name.clone();
    let names: Vec<String> = srcs.iter().map(|s| s.to_string()).collect();
    let limits = cfg.limits;
    let built = tokio::task::spawn_blocking(move || {
        let bundle = match old_bundle {
            Some(parsed) => parsed,
            None => Arc::new(parse_bundle(&name, &names[0], &bundle_in.bytes)?),
        };
        let mut versions = vec![SourceVersion {
            source: names[0].clone(),
            tag: bundle_in.tag.clone(),
        }];
        let mut crls = Vec::with_capacity(crl_inputs.len());
        let mut sets = Vec::with_capacity(crl_inputs.len());
        for (i, input) in crl_inputs.into_iter().enumerate() {
            let (tag, parsed) = match input {
                CrlInput::Reused(tag, parsed) => (tag, parsed),
                CrlInput::Fresh(f) => {
                    let parsed = Arc::new(parse_crls(&name, &names[i + 1], &f.bytes, &bundle)?);
                    (f.tag, parsed)
                }
            };
            versions.push(SourceVersion {
                source: names[i + 1].clone(),
                tag: tag.clone(),
            });
            crls.push(Some((tag, bundle_in.tag.clone(), parsed.clone())));
            sets.push(parsed);
        }
        let store = assemble(&name, &bundle, &sets, limits, versions);
        Ok::<_, TrustStoreError>((store, (bundle_in, bundle), crls))
    })
    .await
    .map_err(|e| fetch_error(cfg, format!("loading task failed: {e}")))??;

    let (mut store, bundle, crls) = built;
    store.expired_crls = cfg.revocation_lists_expired;
    store.ocsp = cfg.ocsp;
    if let Some(old) = in_service {
        super::freshness::check_no_rollback(old, &store)?;
    }
    for warning in super::describe::store_warnings(&store) {
        tracing::warn!(trust_store = %cfg.name, "{warning}");
    }
    state.probes = probes;
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
        let store = load(ts, sources, &mut state, true, None).await?;
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
    load(cfg, sources, &mut StoreState::default(), true, None)
        .await?
        .ok_or_else(|| fetch_error(cfg, "nothing loaded".to_string()))
}
