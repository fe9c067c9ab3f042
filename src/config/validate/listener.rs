//! Validation of the `[[listener]]` sections: names and bind addresses (unique), the server
//! certificate files, timeouts and limits, mutual authentication and header renames. A
//! listener's routes are checked in `routes.rs`.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;

use http::HeaderName;

use super::actions::RuleScope;
use super::certificates;
use super::problems::{bounded, secs, Problems};
use super::routes::routes;
use crate::config::file::{HeadersFile, ListenerFile, ModeFile, MutualAuthFile, OnOff};
use crate::config::model::{
    HeaderNames, JwtValidatorConfig, ListenerConfig, ListenerProtocol, Mode, MutualAuth,
    RequestLimits, TargetGroupConfig, Timeouts, TrustStoreConfig, DEFAULT_BACKEND_CONNECT_TIMEOUT,
    DEFAULT_BACKEND_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADER_FIELD_BYTES,
    RESERVED_HEADER_NAMES,
};

/// What listeners are checked against: the file's directory, the trust stores, and the target
/// groups (which `backend = "URL"` listeners add to); and what earlier listeners took.
pub(super) struct Context<'a> {
    base: &'a Path,
    trust_stores: &'a BTreeMap<String, TrustStoreConfig>,
    target_groups: &'a mut BTreeMap<String, TargetGroupConfig>,
    jwt: &'a BTreeMap<String, JwtValidatorConfig>,
    names: HashSet<String>,
    binds: HashSet<SocketAddr>,
}

impl<'a> Context<'a> {
    pub(super) fn new(
        base: &'a Path,
        trust_stores: &'a BTreeMap<String, TrustStoreConfig>,
        target_groups: &'a mut BTreeMap<String, TargetGroupConfig>,
        jwt: &'a BTreeMap<String, JwtValidatorConfig>,
    ) -> Self {
        Context {
            base,
            trust_stores,
            target_groups,
            jwt,
            names: HashSet::new(),
            binds: HashSet::new(),
        }
    }
}

/// The listeners that are complete enough to run; every problem of the others is reported.
pub(super) fn listeners(
    files: &[ListenerFile],
    cx: &mut Context<'_>,
    p: &mut Problems,
) -> Vec<ListenerConfig> {
    if files.is_empty() {
        p.push("listener", "at least one [[listener]] is required");
    }
    files
        .iter()
        .enumerate()
        .filter_map(|(i, l)| listener(i, l, cx, p))
        .collect()
}

fn listener(
    i: usize,
    l: &ListenerFile,
    cx: &mut Context<'_>,
    p: &mut Problems,
) -> Option<ListenerConfig> {
    let name = l.name.clone().unwrap_or_default();
    let key = if name.is_empty() {
        format!("listener[{i}]")
    } else {
        format!("listener[{i}] ({name})")
    };
    unique_name(&key, &name, cx, p);
    let bind = bind(&key, l.bind.as_deref(), cx, p);
    let protocol = super::plain::protocol(&key, l, p);
    let https = protocol == ListenerProtocol::Https;
    let certificates = if https {
        certificates::server_certificates(cx.base, &key, l, p)
    } else {
        super::plain::refuse_tls_keys(&key, l, p);
        Some(Vec::new())
    };
    let mutual_authentication =
        mutual_auth(&key, l.mutual_authentication.as_ref(), cx.trust_stores, p);
    let scope = RuleScope {
        mode: mutual_authentication.mode,
        identity: l.client_identity.is_some(),
        https,
        jwt: cx.jwt,
    };
    let routes = routes(&key, &name, l, scope, cx.target_groups, p);
    let headers = headers(&key, l.headers.as_ref(), p);
    let client_identity = super::identity::client_identity(
        &key,
        l.client_identity.as_ref(),
        mutual_authentication.mode,
        &headers,
        p,
    );
    let timeouts = timeouts(&key, l, p);
    let limits = request_limits(&key, l, p);
    let max_connections = bounded(
        &format!("{key}.max_connections"),
        l.max_connections,
        DEFAULT_MAX_CONNECTIONS,
        1..=1_000_000,
        p,
    );
    Some(ListenerConfig {
        name,
        bind: bind?,
        protocol,
        certificates: certificates?,
        routes: routes?,
        mutual_authentication,
        headers,
        client_identity,
        timeouts,
        limits,
        max_connections,
        drop_invalid_header_fields: l.drop_invalid_header_fields,
        authenticate_jwt: super::actions::authenticate_jwt(
            &key,
            l.authenticate_jwt.as_ref(),
            scope,
            p,
        ),
        response_headers: super::response_headers::response_headers(
            &key,
            l.response_headers.as_ref(),
            p,
        ),
        ssl_policy: certificates::ssl_policy(&key, l, p),
        certificate_refresh_interval: certificates::refresh_interval(&key, l, p),
        ocsp_stapling: certificates::ocsp_stapling(&key, l, p),
    })
}

fn unique_name(key: &str, name: &str, cx: &mut Context<'_>, p: &mut Problems) {
    if name.is_empty() {
        p.push(&format!("{key}.name"), "is required");
    } else if !cx.names.insert(name.to_string()) {
        p.push(
            &format!("{key}.name"),
            format!("{name:?} is used by another listener"),
        );
    }
}

/// An `IP:port`; port 0 (the system picks one) may be given by several listeners.
fn bind(
    key: &str,
    value: Option<&str>,
    cx: &mut Context<'_>,
    p: &mut Problems,
) -> Option<SocketAddr> {
    let key = format!("{key}.bind");
    let b = p.required(&key, value)?;
    match b.parse::<SocketAddr>() {
        Ok(a) => {
            if a.port() != 0 && !cx.binds.insert(a) {
                p.push(&key, format!("{a} is used by another listener"));
            }
            Some(a)
        }
        Err(_) => {
            p.push(&key, format!("{b:?} is not an IP:port address"));
            None
        }
    }
}

fn timeouts(key: &str, l: &ListenerFile, p: &mut Problems) -> Timeouts {
    let mut timeout = |attr: &str, v, default| secs(&format!("{key}.{attr}"), v, default, p);
    Timeouts {
        handshake: timeout(
            "handshake_timeout_secs",
            l.handshake_timeout_secs,
            DEFAULT_HANDSHAKE_TIMEOUT,
        ),
        idle: timeout(
            "idle_timeout_secs",
            l.idle_timeout_secs,
            DEFAULT_IDLE_TIMEOUT,
        ),
        backend_connect: timeout(
            "backend_connect_timeout_secs",
            l.backend_connect_timeout_secs,
            DEFAULT_BACKEND_CONNECT_TIMEOUT,
        ),
        backend_response: timeout(
            "backend_timeout_secs",
            l.backend_timeout_secs,
            DEFAULT_BACKEND_TIMEOUT,
        ),
    }
}

fn request_limits(key: &str, l: &ListenerFile, p: &mut Problems) -> RequestLimits {
    RequestLimits {
        max_header_field_bytes: bounded(
            &format!("{key}.max_request_header_field_bytes"),
            l.max_request_header_field_bytes,
            DEFAULT_MAX_HEADER_FIELD_BYTES,
            1024..=1 << 20,
            p,
        ),
        max_header_bytes: bounded(
            &format!("{key}.max_request_header_bytes"),
            l.max_request_header_bytes,
            DEFAULT_MAX_HEADER_BYTES,
            4096..=4 << 20,
            p,
        ),
    }
}

fn mutual_auth(
    key: &str,
    m: Option<&MutualAuthFile>,
    stores: &BTreeMap<String, TrustStoreConfig>,
    p: &mut Problems,
) -> MutualAuth {
    let default = MutualAuthFile::default();
    let m = m.unwrap_or(&default);
    let key = format!("{key}.mutual_authentication");
    let mode = match m.mode.unwrap_or(ModeFile::Off) {
        ModeFile::Off => Mode::Off,
        ModeFile::Passthrough => Mode::Passthrough,
        ModeFile::Verify => Mode::Verify,
    };
    let trust_store = trust_store(&key, mode, m.trust_store.as_ref(), stores, p);
    if mode != Mode::Verify {
        for (attr, given) in [
            (
                "ignore_client_certificate_expiry",
                m.ignore_client_certificate_expiry.is_some(),
            ),
            (
                "advertise_trust_store_ca_names",
                m.advertise_trust_store_ca_names.is_some(),
            ),
            ("fail_if_no_peer_cert", m.fail_if_no_peer_cert.is_some()),
        ] {
            if given {
                p.push(
                    &format!("{key}.{attr}"),
                    "only allowed when mode = \"verify\"",
                );
            }
        }
    }
    MutualAuth {
        mode,
        trust_store,
        ignore_client_certificate_expiry: m.ignore_client_certificate_expiry.unwrap_or(false),
        advertise_trust_store_ca_names: m.advertise_trust_store_ca_names == Some(OnOff::On),
        fail_if_no_peer_cert: m.fail_if_no_peer_cert.unwrap_or(true),
    }
}

/// The trust store a verify listener names: required then, refused otherwise, and defined.
fn trust_store(
    key: &str,
    mode: Mode,
    named: Option<&String>,
    stores: &BTreeMap<String, TrustStoreConfig>,
    p: &mut Problems,
) -> Option<String> {
    let key = format!("{key}.trust_store");
    match (mode, named) {
        (Mode::Verify, None) => p.push(&key, "is required when mode = \"verify\""),
        (Mode::Verify, Some(ts)) if stores.contains_key(ts) => return Some(ts.clone()),
        (Mode::Verify, Some(ts)) => {
            let known: Vec<&str> = stores.keys().map(String::as_str).collect();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            p.push(
                &key,
                format!("no [trust_store.{ts}] is defined (defined: {known})"),
            );
        }
        (_, Some(_)) => p.push(
            &key,
            format!(
                "only allowed when mode = \"verify\" (mode is {:?})",
                mode.as_str()
            ),
        ),
        (_, None) => {}
    }
    None
}

/// `[listener.headers]` keys (ALB's attribute names), in the order of `HeaderNames::all`.
const ATTRIBUTES: [&str; 8] = [
    "x_amzn_mtls_clientcert",
    "x_amzn_mtls_clientcert_serial_number",
    "x_amzn_mtls_clientcert_issuer",
    "x_amzn_mtls_clientcert_subject",
    "x_amzn_mtls_clientcert_validity",
    "x_amzn_mtls_clientcert_leaf",
    "x_amzn_tls_version",
    "x_amzn_tls_cipher_suite",
];

fn headers(key: &str, h: Option<&HeadersFile>, p: &mut Problems) -> HeaderNames {
    let d = HeaderNames::alb_defaults();
    let Some(h) = h else { return d };
    let key = format!("{key}.headers");
    let given = [
        &h.x_amzn_mtls_clientcert,
        &h.x_amzn_mtls_clientcert_serial_number,
        &h.x_amzn_mtls_clientcert_issuer,
        &h.x_amzn_mtls_clientcert_subject,
        &h.x_amzn_mtls_clientcert_validity,
        &h.x_amzn_mtls_clientcert_leaf,
        &h.x_amzn_tls_version,
        &h.x_amzn_tls_cipher_suite,
    ];
    let defaults = d.all();
    let names: [HeaderName; 8] = std::array::from_fn(|i| {
        header_name(
            &format!("{key}.{}", ATTRIBUTES[i]),
            given[i].as_ref(),
            defaults[i],
            p,
        )
    });
    let mut seen = HashSet::new();
    for (attr, n) in ATTRIBUTES.iter().zip(&names) {
        let key = format!("{key}.{attr}");
        if !seen.insert(n.clone()) {
            p.push(
                &key,
                format!("header name {n:?} is used for two different headers"),
            );
        }
        if RESERVED_HEADER_NAMES.contains(&n.as_str()) {
            p.push(&key, format!("header name {n:?} is reserved"));
        }
    }
    let [clientcert, serial_number, issuer, subject, validity, leaf, tls_version, tls_cipher_suite] =
        names;
    HeaderNames {
        clientcert,
        serial_number,
        issuer,
        subject,
        validity,
        leaf,
        tls_version,
        tls_cipher_suite,
        send_tls_version_and_cipher_suite: h.tls_version_and_cipher_suite.unwrap_or(false),
        send_client_cert_rfc9440: h.client_cert_rfc9440.unwrap_or(false),
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
