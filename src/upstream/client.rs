//! HTTP clients towards targets: plain HTTP, or HTTPS verified against the system roots or a
//! configured CA bundle, optionally with certgate's own client certificate (mTLS to the
//! target). hyper-util pools connections per target origin.

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::config::{TargetGroupConfig, TargetTls};
use crate::http::Body;

pub type TargetClient = Client<HttpsConnector<HttpConnector>, Body>;

/// How a request to a target can fail.
pub type ClientError = hyper_util::client::legacy::Error;

/// Why a target group's TLS settings cannot be used; names the group and the file.
#[derive(Debug, thiserror::Error)]
#[error("target_group.{group}: {reason}")]
pub struct UpstreamError {
    pub group: String,
    pub reason: String,
}

/// The rustls client configuration for a group's https targets.
pub fn tls_config(group: &str, tls: &TargetTls) -> Result<rustls::ClientConfig, UpstreamError> {
    config(group, roots(group, tls)?, tls.client_identity.as_ref())
}

fn error(group: &str, reason: String) -> UpstreamError {
    UpstreamError {
        group: group.to_string(),
        reason,
    }
}

/// The CAs that https targets are verified against: `ca_bundle`, else the system's roots.
fn roots(group: &str, tls: &TargetTls) -> Result<RootCertStore, UpstreamError> {
    let err = |reason: String| error(group, reason);
    let mut roots = RootCertStore::empty();
    match &tls.ca_bundle {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| err(format!("ca_bundle {}: {e}", path.display())))?
                .collect::<Result<_, _>>()
                .map_err(|e| err(format!("ca_bundle {}: not valid PEM: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(err(format!(
                    "ca_bundle {}: contains no PEM certificate",
                    path.display()
                )));
            }
            for (i, c) in certs.into_iter().enumerate() {
                roots.add(c).map_err(|e| {
                    err(format!(
                        "ca_bundle {}: certificate {}: {e}",
                        path.display(),
                        i + 1
                    ))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A system store may hold certificates rustls cannot use; skip those.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(err(format!(
                    "no system root certificates found ({} error(s)); set ca_bundle",
                    found.errors.len()
                )));
            }
        }
    }
    Ok(roots)
}

fn config(
    group: &str,
    roots: RootCertStore,
    identity: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<rustls::ClientConfig, UpstreamError> {
    let err = |reason: String| error(group, reason);
    let provider = crate::crypto::crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let certified = crate::tls::load_certified_key(
                &format!("target_group.{group}"),
                chain,
                key,
                &provider,
            )
            .map_err(|e| err(e.to_string()))?;
            builder.with_client_cert_resolver(Arc::new(Identity(certified)))
        }
    };
    Ok(config)
}

/// certgate's certificate for targets that ask for one, whatever CA names they advertise.
#[derive(Debug)]
struct Identity(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Identity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0
            .key
            .choose_scheme(sigschemes)
            .is_some()
            .then(|| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A pooled client for one group's targets.
pub fn client(
    group: &TargetGroupConfig,
    connect_timeout: Duration,
) -> Result<TargetClient, UpstreamError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let tls = if group.targets.iter().any(|t| t.https) {
        tls_config(&group.name, &group.tls)?
    } else {
        // Plain targets only: no TLS settings apply and no system roots are read.
        config(&group.name, RootCertStore::empty(), None)?
    };
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let mut client = Client::builder(TokioExecutor::new());
    client
        .pool_idle_timeout(Duration::from_secs(50))
        .pool_max_idle_per_host(256);
    if group.protocol_version.is_h2() {
        // HTTP/2 only: h2c with prior knowledge to http:// targets, ALPN h2 to https:// ones.
        // One connection per target carries every request, as streams.
        client
            .http2_only(true)
            .timer(hyper_util::rt::TokioTimer::new());
        Ok(client.build(builder.enable_http2().wrap_connector(http)))
    } else {
        Ok(client.build(builder.enable_http1().wrap_connector(http)))
    }
}
