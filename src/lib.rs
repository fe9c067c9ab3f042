//! certgate: an HTTPS reverse proxy that terminates mutual TLS the way an AWS Application Load
//! Balancer listener does, forwarding ALB's client-certificate headers and connection logs.

pub mod admin;
pub mod alb;
pub mod app;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod http;
pub mod jwt;
pub mod listener;
pub mod metrics;
pub mod mtls;
pub mod observe;
pub mod ocsp;
pub mod pki;
pub mod proxy;
pub mod routing;
pub mod tls;
pub mod truststore;
pub mod upstream;
pub mod verify;
pub mod wildcard;
pub mod x509;

pub use crypto::crypto_provider;

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
