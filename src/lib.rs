//! certgate: an HTTPS reverse proxy that terminates mutual TLS the way an AWS Application Load
//! Balancer listener does, forwarding ALB's client-certificate headers and connection logs.

pub mod balancer;
pub mod certinfo;
pub mod config;
pub mod demo;
pub mod listener;
pub mod logs;
pub mod pki;
pub mod proxy;
pub mod server;
pub mod tls;
pub mod truststore;

/// The one crypto provider certgate uses. Passing it explicitly (instead of relying on a
/// process-wide default) keeps a second provider pulled in by some dependency from ever being
/// picked, and keeps rustls from panicking when it cannot choose.
pub fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<std::sync::Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// An error and its causes on one line, each cause once: `a: b: c`.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}
