//! `certgate verify` (SPEC §15): would this client chain be admitted? The chain is judged by
//! the handshake's own code ([`crate::mtls::chain::judge`]) against a listener's policy or a
//! bundle and CRLs given on the command line, and the answer shows the `tls_verify_status`, its
//! detail, the identity and the headers a backend would get. A trust store with `ocsp` on has
//! the leaf checked with its OCSP responder too, by the live listener's code.

pub mod input;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};

use crate::config::OcspMode;
use crate::config::{self, ChainLimits, ClientIdentityConfig, HeaderNames, Mode};
use crate::mtls::chain::{judge, Kept};
use crate::mtls::online::{judge_leaf, Online};
use crate::mtls::{Failure, Policy};
use crate::truststore::{loader, source::Sources, TrustStoreError};
use crate::x509::{self, Identity};

/// Why `verify` could not judge (exit 2): the inputs, not the client.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{}: {reason}", path.display())]
    Input { path: PathBuf, reason: String },
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{}: no listener named {name:?} (listeners: {known})", file.display())]
    NoListener {
        file: PathBuf,
        name: String,
        known: String,
    },
    #[error(transparent)]
    TrustStore(#[from] TrustStoreError),
    #[error("--at {value:?}: not an RFC 3339 instant such as 2026-01-31T12:00:00Z ({reason})")]
    At { value: String, reason: String },
}

/// What a chain is judged against: a listener's mode, policy, identity and header names.
#[derive(Debug)]
pub struct Judge {
    mode: Mode,
    /// `None` in off mode.
    policy: Option<Policy>,
    identity: Option<ClientIdentityConfig>,
    headers: HeaderNames,
    /// "trust store corp (version …)", for the detail of a chain that passes.
    against: String,
}

/// The answer for one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: String,
    pub detail: String,
    pub identity: Identity,
    /// Name and value of each header the backend would get, in the order they are added.
    pub headers: Vec<(String, String)>,
}

impl Judge {
    /// The listener `name` of the config file `path`, with its trust store loaded.
    pub async fn for_listener(
        path: &Path,
        name: &str,
        ignore_expiry: bool,
    ) -> Result<Judge, VerifyError> {
        let cfg = config::load(path)?;
        let Some(l) = cfg.listeners.iter().find(|l| l.name == name) else {
            let known: Vec<&str> = cfg.listeners.iter().map(|l| l.name.as_str()).collect();
            return Err(VerifyError::NoListener {
                file: path.to_path_buf(),
                name: name.to_string(),
                known: known.join(", "),
            });
        };
        let auth = &l.mutual_authentication;
        let (policy, against) = match (auth.mode, &auth.trust_store) {
            (Mode::Verify, Some(store)) => {
                let ts = cfg.trust_stores.get(store).cloned();
                let ts = ts.ok_or_else(|| VerifyError::NoListener {
                    file: path.to_path_buf(),
                    name: format!("{name} (trust store {store})"),
                    known: String::new(),
                })?;
                let store = loader::load_one(&ts, &Sources::new(cfg.s3.clone())).await?;
                let against = format!("trust store {} (version {})", store.name, store.version);
                let ignore = ignore_expiry || auth.ignore_client_certificate_expiry;
                (Some(verify_policy(store, ignore)), against)
            }
            (Mode::Passthrough, _) => (
                Some(Policy::Passthrough {
                    limits: ChainLimits::default(),
                }),
                String::new(),
            ),
            _ => (None, String::new()),
        };
        Ok(Judge {
            mode: auth.mode,
            policy,
            identity: l.client_identity.clone(),
            headers: l.headers.clone(),
            against,
        })
    }

    /// A verify listener on a bundle and CRL files, with ALB's header names and no identity.
    pub async fn for_bundle(
        bundle: PathBuf,
        crls: Vec<PathBuf>,
        ignore_expiry: bool,
    ) -> Result<Judge, VerifyError> {
        let cfg = config::TrustStoreConfig::from_files(bundle, crls);
        let store = loader::load_one(&cfg, &Sources::new(Default::default())).await?;
        Ok(Judge {
            mode: Mode::Verify,
            against: format!("the trust store (version {})", store.version),
            policy: Some(verify_policy(store, ignore_expiry)),
            identity: None,
            headers: HeaderNames::alb_defaults(),
        })
    }

    /// Judges `chain` (leaf first, not empty) at `at`; then, when the trust store asks for it,
    /// asks the leaf's OCSP responder as a live listener would (its answer is about now).
    pub async fn verdict(&self, chain: &[CertificateDer<'_>], at: UnixTime) -> Verdict {
        let (Some(policy), Some((leaf, intermediates))) = (&self.policy, chain.split_first())
        else {
            return Verdict {
                status: "Success".to_string(),
                detail: "the listener's mode is off: it requests no client certificate, so none is checked".to_string(),
                identity: Identity::NotTaken,
                headers: Vec::new(),
            };
        };
        let algorithms = crate::crypto_provider().signature_verification_algorithms;
        let judged = judge(policy, &algorithms, leaf, intermediates, at);
        let kept = match judged.outcome {
            Err((failure, _)) => return refused(failure),
            Ok(kept) => kept,
        };
        let mut verdict = self.admitted(chain, &kept, judged.leaf.as_ref(), at);
        if let Policy::Verify { store, .. } = policy {
            if store.ocsp != OcspMode::Off {
                let path = kept_chain(chain, kept.as_deref());
                match judge_leaf(store, &path, &crate::ocsp::checker()).await {
                    (Online::Refused(failure), _) => return refused(failure),
                    (Online::Admitted(_), words) => {
                        verdict.detail = format!("{}; {words}", verdict.detail);
                    }
                }
            }
        }
        verdict
    }

    fn admitted(
        &self,
        chain: &[CertificateDer<'_>],
        kept: &Kept,
        leaf: Option<&x509::LeafFacts>,
        at: UnixTime,
    ) -> Verdict {
        let chain = kept_chain(chain, kept.as_deref());
        let identity = match (&self.identity, chain.first()) {
            (Some(c), Some(der)) if self.mode == Mode::Verify => x509::identity_of(der, c.field),
            _ => Identity::NotTaken,
        };
        // Offline there is no TLS version or cipher to report.
        let mut names = self.headers.clone();
        names.send_tls_version_and_cipher_suite = false;
        let mut headers: Vec<(String, String)> =
            crate::alb::connection_headers(self.mode, &names, &chain, leaf, "", "")
                .into_iter()
                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect();
        let header = self.identity.as_ref().and_then(|c| c.header.as_ref());
        if let (Some(name), Some(value)) = (header, identity.value()) {
            headers.push((name.to_string(), value.to_string()));
        }
        let when = x509::utc_string(i64::try_from(at.as_secs()).unwrap_or(i64::MAX));
        let detail = match self.mode {
            Mode::Verify => format!("the client chain verifies against {} at {when}", self.against),
            _ => "passthrough: the chain is not validated (only its size and, in a handshake, the key); the backend gets it as presented".to_string(),
        };
        Verdict {
            status: "Success".to_string(),
            detail,
            identity,
            headers,
        }
    }
}

fn verify_policy(store: crate::truststore::TrustStore, ignore_expiry: bool) -> Policy {
    Policy::Verify {
        store: Arc::new(store),
        ignore_expiry,
        advertise_ca_names: false,
        require_certificate: true,
    }
}

fn refused(failure: Failure) -> Verdict {
    Verdict {
        status: failure.code.status(),
        detail: failure.detail,
        identity: Identity::NotTaken,
        headers: Vec::new(),
    }
}

/// The leaf and the kept intermediates (all of them when `kept` is `None`), as a connection
/// keeps them.
fn kept_chain<'a>(chain: &[CertificateDer<'a>], kept: Option<&[usize]>) -> Vec<CertificateDer<'a>> {
    let Some((leaf, rest)) = chain.split_first() else {
        return Vec::new();
    };
    match kept {
        None => chain.to_vec(),
        Some(kept) => std::iter::once(leaf)
            .chain(kept.iter().filter_map(|&i| rest.get(i)))
            .cloned()
            .collect(),
    }
}

/// `--at`: an RFC 3339 instant; absent, now.
pub fn instant(at: Option<&str>) -> Result<UnixTime, VerifyError> {
    let Some(value) = at else {
        return Ok(UnixTime::now());
    };
    let err = |reason: String| VerifyError::At {
        value: value.to_string(),
        reason,
    };
    let t = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|e| err(e.to_string()))?;
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| err("before 1970".to_string()))?;
    Ok(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        secs,
    )))
}

impl Verdict {
    /// Exit 0 on `Success`.
    pub fn admitted(&self) -> bool {
        self.status == "Success"
    }

    /// One line per fact, then one per header.
    pub fn text(&self) -> String {
        let identity = match &self.identity {
            Identity::Found(v) => v.clone(),
            Identity::Missing(why) => format!("- ({why})"),
            Identity::NotTaken => "-".to_string(),
        };
        let mut out = format!(
            "tls_verify_status: {}\ndetail: {}\nidentity: {identity}\n",
            self.status, self.detail
        );
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\n"));
        }
        out
    }

    /// One JSON object: the connection log's key names, and the headers by name.
    pub fn json(&self) -> String {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), serde_json::Value::from(v.as_str())))
            .collect();
        serde_json::json!({
            "tls_verify_status": self.status,
            "tls_verify_detail": self.detail,
            "client_identity": self.identity.value(),
            "client_identity_detail": self.identity.missing(),
            "headers": headers,
        })
        .to_string()
    }
}
