//! Validation of a listener's `protocol` (SPEC §14): `HTTPS` (the default) or `HTTP`, a plain
//! listener whose typical job is a redirect to HTTPS. Every TLS and mutual-TLS key is refused
//! on a plain listener: nothing there could honour it.

use super::problems::Problems;
use crate::config::file::ListenerFile;
use crate::config::model::ListenerProtocol;

/// The listener's protocol; a wrong value is reported and taken as HTTPS.
pub(super) fn protocol(key: &str, l: &ListenerFile, p: &mut Problems) -> ListenerProtocol {
    match l.protocol.as_deref() {
        None => ListenerProtocol::Https,
        Some(v) if v.eq_ignore_ascii_case("HTTPS") => ListenerProtocol::Https,
        Some(v) if v.eq_ignore_ascii_case("HTTP") => ListenerProtocol::Http,
        Some(v) => {
            p.push(
                &format!("{key}.protocol"),
                format!("{v:?} is not HTTPS or HTTP"),
            );
            ListenerProtocol::Https
        }
    }
}

/// Reports each TLS key a plain listener was given.
pub(super) fn refuse_tls_keys(key: &str, l: &ListenerFile, p: &mut Problems) {
    let given = [
        ("certificate_chain", l.certificate_chain.is_some()),
        ("private_key", l.private_key.is_some()),
        ("certificates", l.certificates.is_some()),
        (
            "private_key_password_file",
            l.private_key_password_file.is_some(),
        ),
        (
            "private_key_password_env",
            l.private_key_password_env.is_some(),
        ),
        ("ssl_policy", l.ssl_policy.is_some()),
        ("refresh_interval_secs", l.refresh_interval_secs.is_some()),
        ("handshake_timeout_secs", l.handshake_timeout_secs.is_some()),
        ("mutual_authentication", l.mutual_authentication.is_some()),
        ("client_identity", l.client_identity.is_some()),
        ("headers", l.headers.is_some()),
        ("ocsp_stapling", l.ocsp_stapling),
        ("ocsp_responder_url", l.ocsp_responder_url.is_some()),
    ];
    for (attr, _) in given.iter().filter(|(_, g)| *g) {
        p.push(
            &format!("{key}.{attr}"),
            "is a TLS setting; a protocol = \"HTTP\" listener has no TLS (use an HTTPS listener, or redirect to one)",
        );
    }
}
