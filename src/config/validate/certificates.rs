//! Validation of a listener's TLS keys: its server certificates (`certificate_chain`/
//! `private_key`, or `certificates = [...]`), key passwords, `ssl_policy` and the certificate
//! `refresh_interval_secs`, and OCSP stapling (`ocsp_stapling`, `ocsp_responder_url`). Whether
//! a key matches its certificate, and whether its chain holds the issuer that stapling needs,
//! is checked when they load.

use std::path::Path;
use std::time::Duration;

use super::problems::{existing_file, secs, source, Problems};
use crate::config::file::{CertificateFile, ListenerFile};
use crate::config::model::{
    KeyPassword, OcspStapling, ServerCertificate, SslPolicy, DEFAULT_CERTIFICATE_REFRESH_INTERVAL,
};

/// The keys of one certificate entry, wherever it is written.
struct Entry<'a> {
    certificate_chain: Option<&'a str>,
    private_key: Option<&'a str>,
    password_file: Option<&'a str>,
    password_env: Option<&'a str>,
}

impl<'a> From<&'a CertificateFile> for Entry<'a> {
    fn from(c: &'a CertificateFile) -> Self {
        Entry {
            certificate_chain: c.certificate_chain.as_deref(),
            private_key: c.private_key.as_deref(),
            password_file: c.private_key_password_file.as_deref(),
            password_env: c.private_key_password_env.as_deref(),
        }
    }
}

/// The listener's certificates, the first being the default; `None` when one is unusable.
pub(super) fn server_certificates(
    base: &Path,
    key: &str,
    l: &ListenerFile,
    p: &mut Problems,
) -> Option<Vec<ServerCertificate>> {
    let single = Entry {
        certificate_chain: l.certificate_chain.as_deref(),
        private_key: l.private_key.as_deref(),
        password_file: l.private_key_password_file.as_deref(),
        password_env: l.private_key_password_env.as_deref(),
    };
    let Some(list) = &l.certificates else {
        return entry(base, key, "", &single, p).map(|c| vec![c]);
    };
    let given_single = [
        ("certificate_chain", single.certificate_chain),
        ("private_key", single.private_key),
        ("private_key_password_file", single.password_file),
        ("private_key_password_env", single.password_env),
    ];
    for (attr, _) in given_single.iter().filter(|(_, v)| v.is_some()) {
        p.push(
            &format!("{key}.{attr}"),
            "not allowed with certificates = [...] (give it in the certificates entry)",
        );
    }
    if list.is_empty() {
        p.push(
            &format!("{key}.certificates"),
            "must list at least one certificate",
        );
        return None;
    }
    let certs: Vec<Option<ServerCertificate>> = list
        .iter()
        .enumerate()
        .map(|(i, c)| entry(base, key, &format!("certificates[{i}]"), &c.into(), p))
        .collect();
    certs.into_iter().collect()
}

/// One certificate and key; `label` is its place under the listener (empty: the listener's
/// own keys).
fn entry(
    base: &Path,
    listener_key: &str,
    label: &str,
    e: &Entry<'_>,
    p: &mut Problems,
) -> Option<ServerCertificate> {
    let key = if label.is_empty() {
        listener_key.to_string()
    } else {
        format!("{listener_key}.{label}")
    };
    let src = |attr: &str, value: Option<&str>, p: &mut Problems| {
        let k = format!("{key}.{attr}");
        p.required(&k, value).map(|v| source(base, &k, v, p))
    };
    let chain = src("certificate_chain", e.certificate_chain, p);
    let private_key = src("private_key", e.private_key, p);
    let password = password(base, &key, e, p);
    Some(ServerCertificate {
        label: label.to_string(),
        certificate_chain: chain?,
        private_key: private_key?,
        password,
    })
}

fn password(base: &Path, key: &str, e: &Entry<'_>, p: &mut Problems) -> Option<KeyPassword> {
    match (e.password_file, e.password_env) {
        (Some(_), Some(_)) => {
            p.push(
                &format!("{key}.private_key_password_env"),
                "give private_key_password_file or private_key_password_env, not both",
            );
            None
        }
        (Some(f), None) => {
            let k = format!("{key}.private_key_password_file");
            Some(KeyPassword::File(existing_file(base, &k, f, p)))
        }
        (None, Some(v)) => {
            if v.is_empty() || v.contains('=') || v.contains('\0') {
                p.push(
                    &format!("{key}.private_key_password_env"),
                    format!("{v:?} is not an environment variable name"),
                );
            }
            Some(KeyPassword::Env(v.to_string()))
        }
        (None, None) => None,
    }
}

/// `ssl_policy`: an ALB policy name certgate serves; the default when absent.
pub(super) fn ssl_policy(key: &str, l: &ListenerFile, p: &mut Problems) -> &'static SslPolicy {
    match l.ssl_policy.as_deref() {
        None => SslPolicy::default_policy(),
        Some(name) => SslPolicy::by_name(name).unwrap_or_else(|why| {
            p.push(&format!("{key}.ssl_policy"), why);
            SslPolicy::default_policy()
        }),
    }
}

pub(super) fn refresh_interval(key: &str, l: &ListenerFile, p: &mut Problems) -> Duration {
    secs(
        &format!("{key}.refresh_interval_secs"),
        l.refresh_interval_secs,
        DEFAULT_CERTIFICATE_REFRESH_INTERVAL,
        p,
    )
}

/// `ocsp_stapling` and `ocsp_responder_url`: the URL is an absolute http(s) URL, and only
/// given with stapling on.
pub(super) fn ocsp_stapling(key: &str, l: &ListenerFile, p: &mut Problems) -> Option<OcspStapling> {
    let url_key = format!("{key}.ocsp_responder_url");
    if let Some(url) = &l.ocsp_responder_url {
        if let Err(why) = responder_url(url) {
            p.push(&url_key, format!("{url:?}: {why}"));
        }
    }
    match (l.ocsp_stapling, &l.ocsp_responder_url) {
        (false, None) => None,
        (false, Some(_)) => {
            p.push(&url_key, "is only used with ocsp_stapling = true");
            None
        }
        (true, url) => Some(OcspStapling {
            responder_url: url.clone(),
        }),
    }
}

fn responder_url(url: &str) -> Result<(), &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "not a URL")?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("must be an http:// or https:// URL"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    Ok(())
}
