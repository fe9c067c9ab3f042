//! Validation: the file model (`file.rs`) to the model the proxy runs on (`model/`), reporting
//! every problem with its key path.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;

use super::file::{self, FileConfig, LogFormatFile, ModeFile, OnOff};
use super::model::*;

/// Collects problems with their key paths so that one run of `check` lists all of them.
pub(super) struct Problems(Vec<String>);

impl Problems {
    pub(super) fn push(&mut self, key: &str, msg: impl std::fmt::Display) {
        self.0.push(format!("{key}: {msg}"));
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

pub(super) fn existing_file(
    base: &Path,
    key: &str,
    value: &str,
    problems: &mut Problems,
) -> PathBuf {
    let path = resolve(base, value);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => problems.push(key, format!("{} is not a regular file", path.display())),
        Err(e) => problems.push(key, format!("{}: {e}", path.display())),
    }
    path
}

fn source(base: &Path, key: &str, value: &str, problems: &mut Problems) -> Source {
    match value.strip_prefix("s3://") {
        Some(rest) => match parse_s3(rest) {
            Ok(src) => src,
            Err(why) => {
                problems.push(key, format!("{value:?}: {why}"));
                Source::File(PathBuf::from(value))
            }
        },
        None => Source::File(existing_file(base, key, value, problems)),
    }
}

/// `bucket/key[?versionId=V]` (after `s3://`).
fn parse_s3(rest: &str) -> Result<Source, &'static str> {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let (bucket, key) = path
        .split_once('/')
        .ok_or("an S3 source is s3://bucket/key")?;
    if bucket.is_empty() || key.is_empty() {
        return Err("an S3 source is s3://bucket/key (bucket and key must not be empty)");
    }
    let version_id = match query {
        None => None,
        Some(q) => match q.strip_prefix("versionId=") {
            Some(v) if !v.is_empty() && !v.contains('&') => Some(v.to_string()),
            _ => return Err("the only query an S3 source takes is ?versionId=V"),
        },
    };
    Ok(Source::S3 {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id,
    })
}

/// `v` if it lies in `range`, else the default and a problem saying the range.
pub(super) fn bounded<T: PartialOrd + Copy + std::fmt::Display>(
    key: &str,
    v: Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
    p: &mut Problems,
) -> T {
    match v {
        None => default,
        Some(v) if range.contains(&v) => v,
        Some(_) => {
            p.push(
                key,
                format!("must be between {} and {}", range.start(), range.end()),
            );
            default
        }
    }
}

fn secs(key: &str, v: Option<u64>, default: Duration, problems: &mut Problems) -> Duration {
    match v {
        None => default,
        Some(0) => {
            problems.push(key, "must be at least 1 second");
            default
        }
        Some(s) => Duration::from_secs(s),
    }
}

fn header_name(
    key: &str,
    value: Option<&String>,
    default: &HeaderName,
    problems: &mut Problems,
) -> HeaderName {
    match value {
        None => default.clone(),
        Some(v) => match HeaderName::from_bytes(v.as_bytes()) {
            Ok(h) => h,
            Err(_) => {
                problems.push(key, format!("{v:?} is not a valid HTTP header name"));
                default.clone()
            }
        },
    }
}

/// Turns the file model into the runtime model, or returns every problem found.
pub fn validate(cfg: FileConfig, base: &Path) -> Result<Config, Vec<String>> {
    let mut p = Problems(Vec::new());

    let mut trust_stores = BTreeMap::new();
    for (name, ts) in &cfg.trust_store {
        let key = format!("trust_store.{name}");
        let bundle = match &ts.ca_certificates_bundle {
            Some(b) => source(base, &format!("{key}.ca_certificates_bundle"), b, &mut p),
            None => {
                p.push(&format!("{key}.ca_certificates_bundle"), "is required");
                Source::File(PathBuf::new())
            }
        };
        let crls = ts
            .revocation_lists
            .iter()
            .enumerate()
            .map(|(i, c)| source(base, &format!("{key}.revocation_lists[{i}]"), c, &mut p))
            .collect();
        let mut limits = ChainLimits::default();
        if let Some(d) = ts.max_chain_depth {
            if !(2..=16).contains(&d) {
                p.push(
                    &format!("{key}.max_chain_depth"),
                    "must be between 2 and 16",
                );
            } else {
                limits.max_chain_depth = d;
            }
        }
        if let Some(s) = ts.max_client_certificate_size {
            if !(1024..=1 << 20).contains(&s) {
                p.push(
                    &format!("{key}.max_client_certificate_size"),
                    "must be between 1024 and 1048576 bytes",
                );
            } else {
                limits.max_client_certificate_size = s;
            }
        }
        trust_stores.insert(
            name.clone(),
            TrustStoreConfig {
                name: name.clone(),
                ca_certificates_bundle: bundle,
                revocation_lists: crls,
                refresh_interval: secs(
                    &format!("{key}.refresh_interval_secs"),
                    ts.refresh_interval_secs,
                    DEFAULT_REFRESH_INTERVAL,
                    &mut p,
                ),
                limits,
            },
        );
    }

    let mut s3 = S3Settings::default();
    if let Some(f) = &cfg.s3 {
        if let Some(url) = &f.endpoint_url {
            match url.parse::<http::Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {
                    s3.endpoint_url = Some(url.clone());
                }
                _ => p.push(
                    "s3.endpoint_url",
                    format!("{url:?} is not an http:// or https:// URL"),
                ),
            }
        }
        s3.region = f.region.clone();
        s3.force_path_style = f.force_path_style.unwrap_or(false);
    }

    let mut target_groups = super::targets::target_groups(&cfg.target_group, base, &mut p);
    if cfg.listener.is_empty() {
        p.push("listener", "at least one [[listener]] is required");
    }
    let mut names = HashSet::new();
    let mut binds = HashSet::new();
    let mut listeners = Vec::new();
    for (i, l) in cfg.listener.iter().enumerate() {
        let name = l.name.clone().unwrap_or_default();
        let key = if name.is_empty() {
            format!("listener[{i}]")
        } else {
            format!("listener[{i}] ({name})")
        };
        if name.is_empty() {
            p.push(&format!("{key}.name"), "is required");
        } else if !names.insert(name.clone()) {
            p.push(
                &format!("{key}.name"),
                format!("{name:?} is used by another listener"),
            );
        }
        let bind = match l.bind.as_deref() {
            None => {
                p.push(&format!("{key}.bind"), "is required");
                None
            }
            Some(b) => match b.parse::<SocketAddr>() {
                Ok(a) => {
                    if a.port() != 0 && !binds.insert(a) {
                        p.push(
                            &format!("{key}.bind"),
                            format!("{a} is used by another listener"),
                        );
                    }
                    Some(a)
                }
                Err(_) => {
                    p.push(
                        &format!("{key}.bind"),
                        format!("{b:?} is not an IP:port address"),
                    );
                    None
                }
            },
        };
        let chain = match &l.certificate_chain {
            Some(c) => Some(existing_file(
                base,
                &format!("{key}.certificate_chain"),
                c,
                &mut p,
            )),
            None => {
                p.push(&format!("{key}.certificate_chain"), "is required");
                None
            }
        };
        let pkey = match &l.private_key {
            Some(c) => Some(existing_file(
                base,
                &format!("{key}.private_key"),
                c,
                &mut p,
            )),
            None => {
                p.push(&format!("{key}.private_key"), "is required");
                None
            }
        };
        let routes = super::targets::routes(&key, &name, l, &mut target_groups, &mut p);
        let mutual = mutual_auth(
            &key,
            l.mutual_authentication.as_ref(),
            &trust_stores,
            &mut p,
        );
        let headers = headers(&key, l.headers.as_ref(), &mut p);
        let timeouts = Timeouts {
            handshake: secs(
                &format!("{key}.handshake_timeout_secs"),
                l.handshake_timeout_secs,
                DEFAULT_HANDSHAKE_TIMEOUT,
                &mut p,
            ),
            idle: secs(
                &format!("{key}.idle_timeout_secs"),
                l.idle_timeout_secs,
                DEFAULT_IDLE_TIMEOUT,
                &mut p,
            ),
            backend_connect: secs(
                &format!("{key}.backend_connect_timeout_secs"),
                l.backend_connect_timeout_secs,
                DEFAULT_BACKEND_CONNECT_TIMEOUT,
                &mut p,
            ),
            backend_response: secs(
                &format!("{key}.backend_timeout_secs"),
                l.backend_timeout_secs,
                DEFAULT_BACKEND_TIMEOUT,
                &mut p,
            ),
        };
        let limits = RequestLimits {
            max_header_field_bytes: bounded(
                &format!("{key}.max_request_header_field_bytes"),
                l.max_request_header_field_bytes,
                DEFAULT_MAX_HEADER_FIELD_BYTES,
                1024..=1 << 20,
                &mut p,
            ),
            max_header_bytes: bounded(
                &format!("{key}.max_request_header_bytes"),
                l.max_request_header_bytes,
                DEFAULT_MAX_HEADER_BYTES,
                4096..=4 << 20,
                &mut p,
            ),
        };
        let max_connections = bounded(
            &format!("{key}.max_connections"),
            l.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            1..=1_000_000,
            &mut p,
        );
        if let (Some(bind), Some(certificate_chain), Some(private_key), Some(routes)) =
            (bind, chain, pkey, routes)
        {
            listeners.push(ListenerConfig {
                name,
                bind,
                certificate_chain,
                private_key,
                routes,
                mutual_authentication: mutual,
                headers,
                timeouts,
                limits,
                max_connections,
            });
        }
    }

    let connection_log = {
        let c = cfg.connection_log.unwrap_or_default();
        ConnectionLogConfig {
            destination: destination(base, c.path.as_deref().unwrap_or("-")),
            format: match c.format.unwrap_or(LogFormatFile::Json) {
                LogFormatFile::Json => LogFormat::Json,
                LogFormatFile::Alb => LogFormat::Alb,
            },
        }
    };
    let access_log = cfg
        .access_log
        .and_then(|a| a.path)
        .map(|path| destination(base, &path));

    if p.0.is_empty() {
        Ok(Config {
            listeners,
            trust_stores,
            s3,
            target_groups,
            connection_log,
            access_log,
        })
    } else {
        Err(p.0)
    }
}

fn destination(base: &Path, path: &str) -> LogDestination {
    if path == "-" {
        LogDestination::Stdout
    } else {
        LogDestination::File(resolve(base, path))
    }
}

fn mutual_auth(
    key: &str,
    m: Option<&file::MutualAuthFile>,
    stores: &BTreeMap<String, TrustStoreConfig>,
    p: &mut Problems,
) -> MutualAuth {
    let default = file::MutualAuthFile::default();
    let m = m.unwrap_or(&default);
    let key = format!("{key}.mutual_authentication");
    let mode = match m.mode.unwrap_or(ModeFile::Off) {
        ModeFile::Off => Mode::Off,
        ModeFile::Passthrough => Mode::Passthrough,
        ModeFile::Verify => Mode::Verify,
    };
    let mut trust_store = None;
    match (mode, &m.trust_store) {
        (Mode::Verify, None) => p.push(
            &format!("{key}.trust_store"),
            "is required when mode = \"verify\"",
        ),
        (Mode::Verify, Some(ts)) => {
            if stores.contains_key(ts) {
                trust_store = Some(ts.clone());
            } else {
                let known: Vec<&str> = stores.keys().map(String::as_str).collect();
                p.push(
                    &format!("{key}.trust_store"),
                    format!(
                        "no [trust_store.{ts}] is defined (defined: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
        (_, Some(_)) => p.push(
            &format!("{key}.trust_store"),
            format!(
                "only allowed when mode = \"verify\" (mode is {:?})",
                mode.as_str()
            ),
        ),
        (_, None) => {}
    }
    if mode != Mode::Verify {
        if m.ignore_client_certificate_expiry.is_some() {
            p.push(
                &format!("{key}.ignore_client_certificate_expiry"),
                "only allowed when mode = \"verify\"",
            );
        }
        if m.advertise_trust_store_ca_names.is_some() {
            p.push(
                &format!("{key}.advertise_trust_store_ca_names"),
                "only allowed when mode = \"verify\"",
            );
        }
    }
    MutualAuth {
        mode,
        trust_store,
        ignore_client_certificate_expiry: m.ignore_client_certificate_expiry.unwrap_or(false),
        advertise_trust_store_ca_names: m.advertise_trust_store_ca_names == Some(OnOff::On),
    }
}

fn headers(key: &str, h: Option<&file::HeadersFile>, p: &mut Problems) -> HeaderNames {
    let d = HeaderNames::alb_defaults();
    let Some(h) = h else { return d };
    let key = format!("{key}.headers");
    let k = |attr: &str| format!("{key}.{attr}");
    let out = HeaderNames {
        clientcert: header_name(
            &k("x_amzn_mtls_clientcert"),
            h.x_amzn_mtls_clientcert.as_ref(),
            &d.clientcert,
            p,
        ),
        serial_number: header_name(
            &k("x_amzn_mtls_clientcert_serial_number"),
            h.x_amzn_mtls_clientcert_serial_number.as_ref(),
            &d.serial_number,
            p,
        ),
        issuer: header_name(
            &k("x_amzn_mtls_clientcert_issuer"),
            h.x_amzn_mtls_clientcert_issuer.as_ref(),
            &d.issuer,
            p,
        ),
        subject: header_name(
            &k("x_amzn_mtls_clientcert_subject"),
            h.x_amzn_mtls_clientcert_subject.as_ref(),
            &d.subject,
            p,
        ),
        validity: header_name(
            &k("x_amzn_mtls_clientcert_validity"),
            h.x_amzn_mtls_clientcert_validity.as_ref(),
            &d.validity,
            p,
        ),
        leaf: header_name(
            &k("x_amzn_mtls_clientcert_leaf"),
            h.x_amzn_mtls_clientcert_leaf.as_ref(),
            &d.leaf,
            p,
        ),
        tls_version: header_name(
            &k("x_amzn_tls_version"),
            h.x_amzn_tls_version.as_ref(),
            &d.tls_version,
            p,
        ),
        tls_cipher_suite: header_name(
            &k("x_amzn_tls_cipher_suite"),
            h.x_amzn_tls_cipher_suite.as_ref(),
            &d.tls_cipher_suite,
            p,
        ),
        send_tls_version_and_cipher_suite: h.tls_version_and_cipher_suite.unwrap_or(false),
    };
    let attributes = [
        ("x_amzn_mtls_clientcert", &out.clientcert),
        ("x_amzn_mtls_clientcert_serial_number", &out.serial_number),
        ("x_amzn_mtls_clientcert_issuer", &out.issuer),
        ("x_amzn_mtls_clientcert_subject", &out.subject),
        ("x_amzn_mtls_clientcert_validity", &out.validity),
        ("x_amzn_mtls_clientcert_leaf", &out.leaf),
        ("x_amzn_tls_version", &out.tls_version),
        ("x_amzn_tls_cipher_suite", &out.tls_cipher_suite),
    ];
    let mut seen = HashSet::new();
    for (attr, n) in attributes {
        if !seen.insert(n.clone()) {
            p.push(
                &k(attr),
                format!("header name {n:?} is used for two different headers"),
            );
        }
        if matches!(
            n.as_str(),
            "host"
                | "x-forwarded-for"
                | "x-forwarded-proto"
                | "x-forwarded-port"
                | "connection"
                | "content-length"
                | "transfer-encoding"
        ) {
            p.push(&k(attr), format!("header name {n:?} is reserved"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        match crate::config::from_str(toml, Path::new("t.toml"), dir.path()) {
            Ok(_) => Vec::new(),
            Err(crate::config::ConfigError::Invalid { problems, .. }) => problems,
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let p = problems(
            r#"
            [[listener]]
            name = "web"
            bind = "nope"
            certificate_chain = "missing.pem"
            backend = "ftp://x"
            [listener.mutual_authentication]
            mode = "passthrough"
            ignore_client_certificate_expiry = true
            trust_store = "corp"
            "#,
        );
        let joined = p.join("\n");
        for want in [
            "listener[0] (web).bind: \"nope\" is not an IP:port address",
            "listener[0] (web).certificate_chain: ",
            "missing.pem",
            "listener[0] (web).private_key: is required",
            "listener[0] (web).backend: \"ftp://x\" must start with http://",
            "listener[0] (web).mutual_authentication.trust_store: only allowed when mode = \"verify\"",
            "listener[0] (web).mutual_authentication.ignore_client_certificate_expiry: only allowed",
        ] {
            assert!(joined.contains(want), "missing {want:?} in:\n{joined}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let p = problems(
            "[[listener]]\nname = \"a\"\nbindd = \"1\"\n[listener.mutual_authentication]\nmod = \"verify\"\n[trust_store.x]\nca_bundle = \"b\"\n",
        );
        assert!(
            p.contains(&"listener[0].bindd: unknown key".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"listener[0].mutual_authentication.mod: unknown key".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"trust_store.x.ca_bundle: unknown key".to_string()),
            "{p:?}"
        );
        // ...and the other problems are still reported in the same run.
        assert!(
            p.iter()
                .any(|s| s.contains("listener[0] (a).bind: is required")),
            "{p:?}"
        );
    }

    #[test]
    fn s3_sources_parse_with_and_without_version() {
        assert_eq!(
            parse_s3("b/k/x.pem?versionId=V1"),
            Ok(Source::S3 {
                bucket: "b".into(),
                key: "k/x.pem".into(),
                version_id: Some("V1".into())
            })
        );
        assert_eq!(
            parse_s3("b/k").map(|s| s.to_string()),
            Ok("s3://b/k".to_string())
        );
        for bad in [
            "b",
            "/k",
            "b/",
            "b/k?version=1",
            "b/k?versionId=",
            "b/k?versionId=1&x=2",
        ] {
            assert!(parse_s3(bad).is_err(), "{bad}");
        }
        let p = problems(
            "[trust_store.t]\nca_certificates_bundle = \"s3://nokey\"\n[s3]\nendpoint_url = \"ftp://x\"\n",
        );
        assert!(
            p.iter()
                .any(|s| s.contains("trust_store.t.ca_certificates_bundle: \"s3://nokey\"")),
            "{p:?}"
        );
        assert!(p.iter().any(|s| s.contains("s3.endpoint_url")), "{p:?}");
    }

    #[test]
    fn verify_needs_a_defined_trust_store() {
        let p = problems(
            "[[listener]]\nname=\"a\"\nbind=\"127.0.0.1:1\"\n[listener.mutual_authentication]\nmode=\"verify\"\ntrust_store=\"x\"\n",
        );
        assert!(
            p.iter()
                .any(|s| s.contains("no [trust_store.x] is defined")),
            "{p:?}"
        );
    }
}
