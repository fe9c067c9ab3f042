//! certgate: an HTTPS reverse proxy that terminates mutual TLS the way an AWS Application Load
//! Balancer listener does, forwarding ALB's client-certificate headers and connection logs.

pub mod alb;
pub mod balancer;
pub mod config;
pub mod demo;
pub mod listener;
pub mod logs;
pub mod pki;
pub mod proxy;
pub mod server;
pub mod tls;
pub mod truststore;
pub mod x509;

/// The one crypto provider certgate uses. Passing it explicitly (instead of relying on a
/// process-wide default) keeps a second provider pulled in by some dependency from ever being
/// picked, and keeps rustls from panicking when it cannot choose.
pub fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<std::sync::Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut p = rustls::crypto::aws_lc_rs::default_provider();
            // ALB's TLS 1.3 policies list AES-128-GCM first; certgate's listeners choose by
            // this order (`ignore_client_order`), as ALB does. It is also the cheapest suite
            // here: SHA-256 runs on the CPU's SHA extensions, SHA-384 does not.
            p.cipher_suites.sort_by_key(|s| suite_rank(s.suite()));
            std::sync::Arc::new(p)
        })
        .clone()
}

/// Position in certgate's preference: TLS 1.3 before 1.2, AES-128-GCM, AES-256-GCM,
/// ChaCha20-Poly1305, ECDSA before RSA (stable sort keeps the rest in rustls's order).
fn suite_rank(s: rustls::CipherSuite) -> u8 {
    use rustls::CipherSuite as C;
    match s {
        C::TLS13_AES_128_GCM_SHA256 => 0,
        C::TLS13_AES_256_GCM_SHA384 => 1,
        C::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => 3,
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 4,
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => 5,
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 6,
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => 7,
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => 8,
        _ => 9,
    }
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
