//! A listener's server certificates and the choice among them by SNI: an exact DNS SAN, then a
//! wildcard SAN, else the first certificate. Among the certificates that fit the name (RSA and
//! ECDSA for the same name, say), the first whose key can sign with one of the client's
//! signature schemes is served.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// One loaded certificate chain and key, with what SNI selection and `check` need.
#[derive(Debug)]
pub struct ServerCert {
    /// `certificates[1]`, or empty for the one-certificate form.
    pub label: String,
    pub key: Arc<CertifiedKey>,
    /// DNS names of the leaf's subjectAltName, lowercase; `*.example.com` for wildcards.
    pub dns_names: Vec<String>,
    pub subject: String,
    /// Seconds since the epoch.
    pub not_after: i64,
    /// Content tags of the chain and key sources as loaded (see `Sources::fetch`).
    pub tags: [String; 2],
    /// Its OCSP staple, with `ocsp_stapling = true`.
    pub stapler: Option<crate::ocsp::staple::Stapler>,
}

impl ServerCert {
    /// The certificate and key handed to a client now: with the current OCSP staple, if any.
    pub fn served(&self) -> Arc<CertifiedKey> {
        self.stapler
            .as_ref()
            .and_then(|s| s.current(crate::ocsp::now()))
            .unwrap_or_else(|| self.key.clone())
    }
}

/// Facts of the leaf certificate a listener serves.
pub(super) struct LeafInfo {
    pub dns_names: Vec<String>,
    pub subject: String,
    pub not_after: i64,
}

/// Reads the leaf's DNS names, subject and notAfter.
pub(super) fn leaf_info(der: &[u8]) -> Result<LeafInfo, String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| format!("the first certificate cannot be parsed: {e}"))?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(n) = name {
                dns_names.push(n.trim_end_matches('.').to_ascii_lowercase());
            }
        }
    }
    Ok(LeafInfo {
        dns_names,
        subject: crate::x509::rfc2253(cert.subject()),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// The certificates of one listener, in config order; the first is the default.
#[derive(Debug)]
pub struct ServerCerts {
    certs: Vec<ServerCert>,
}

impl ServerCerts {
    /// `None` when `certs` is empty.
    pub fn new(certs: Vec<ServerCert>) -> Option<ServerCerts> {
        (!certs.is_empty()).then_some(ServerCerts { certs })
    }

    /// The empty set of a plain HTTP listener, which never handshakes.
    pub fn none() -> ServerCerts {
        ServerCerts { certs: Vec::new() }
    }

    pub fn iter(&self) -> impl Iterator<Item = &ServerCert> {
        self.certs.iter()
    }

    /// The OCSP stapling state of every certificate that staples.
    pub fn staplers(&self) -> impl Iterator<Item = &crate::ocsp::staple::Stapler> {
        self.certs.iter().filter_map(|c| c.stapler.as_ref())
    }

    /// The certificates that `sni` selects, best match first: exact names, else wildcard
    /// names, else every certificate (the first being the default).
    fn candidates<'a>(&'a self, sni: Option<&str>) -> Vec<&'a ServerCert> {
        if let Some(sni) = sni.map(str::to_ascii_lowercase) {
            let exact: Vec<&ServerCert> = self
                .certs
                .iter()
                .filter(|c| c.dns_names.contains(&sni))
                .collect();
            if !exact.is_empty() {
                return exact;
            }
            let wildcard: Vec<&ServerCert> = self
                .certs
                .iter()
                .filter(|c| c.dns_names.iter().any(|n| wildcard_matches(n, &sni)))
                .collect();
            if !wildcard.is_empty() {
                return wildcard;
            }
        }
        self.certs.iter().collect()
    }

    /// The certificate served to a client asking for `sni` with these signature schemes.
    pub fn choose(
        &self,
        sni: Option<&str>,
        schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let candidates = self.candidates(sni);
        let usable = candidates
            .iter()
            .find(|c| c.key.key.choose_scheme(schemes).is_some());
        // With none usable, the first candidate lets the handshake fail with rustls's own
        // alert instead of an opaque "no certificate".
        usable.or(candidates.first()).map(|c| c.served())
    }

    /// Certificates no SNI can select: one without any DNS name (unless it is the default),
    /// and one whose every name an earlier certificate of the same key type already serves.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, c) in self.certs.iter().enumerate().skip(1) {
            let what = if c.label.is_empty() {
                "the certificate"
            } else {
                &c.label
            };
            if c.dns_names.is_empty() {
                out.push(format!(
                    "{what} ({}) has no DNS name in its subjectAltName: no SNI selects it",
                    c.subject
                ));
                continue;
            }
            let algorithm = c.key.key.algorithm();
            let shadowed = c.dns_names.iter().all(|n| {
                self.certs[..i]
                    .iter()
                    .any(|e| e.key.key.algorithm() == algorithm && e.dns_names.contains(n))
            });
            if shadowed {
                out.push(format!(
                    "{what} ({}): every one of its names is served by an earlier certificate \
                     with the same key type, so no SNI selects it",
                    c.subject
                ));
            }
        }
        out
    }
}

/// `*.example.com` matches `a.example.com`, not `example.com` nor `a.b.example.com`.
fn wildcard_matches(pattern: &str, name: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix("*.") else {
        return false;
    };
    match name.split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest == suffix,
        None => false,
    }
}

impl ResolvesServerCert for ServerCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name(), hello.signature_schemes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(wildcard_matches("*.example.com", "a.example.com"));
        assert!(!wildcard_matches("*.example.com", "example.com"));
        assert!(!wildcard_matches("*.example.com", "a.b.example.com"));
        assert!(!wildcard_matches("*.example.com", ".example.com"));
        assert!(!wildcard_matches("a.example.com", "a.example.com"));
    }
}
