//! The one crypto provider certgate uses, its cipher-suite order, the ALB security policies
//! it serves (`policy`), and the names ALB and OpenSSL write for protocol versions, cipher
//! suites and key-exchange groups.

pub mod policy;

use rustls::{CipherSuite, NamedGroup, ProtocolVersion};

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

/// ALB writes protocol versions as OpenSSL does.
pub fn protocol_name(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3",
        ProtocolVersion::TLSv1_2 => "TLSv1.2",
        ProtocolVersion::TLSv1_1 => "TLSv1.1",
        ProtocolVersion::TLSv1_0 => "TLSv1",
        _ => "unknown",
    }
}

/// OpenSSL's names for the suites rustls offers (TLS 1.3 names are the IANA ones).
pub fn cipher_name(s: CipherSuite) -> &'static str {
    match s {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "unknown",
    }
}

/// Key-exchange group names as they appear in `tls_keyexchange` (OpenSSL's, also for the
/// post-quantum hybrids).
pub fn group_name(g: NamedGroup) -> String {
    match g {
        NamedGroup::X25519MLKEM768 => "X25519MLKEM768".to_string(),
        NamedGroup::secp256r1MLKEM768 => "SecP256r1MLKEM768".to_string(),
        NamedGroup::X25519 => "X25519".to_string(),
        NamedGroup::secp256r1 => "secp256r1".to_string(),
        NamedGroup::secp384r1 => "secp384r1".to_string(),
        NamedGroup::secp521r1 => "secp521r1".to_string(),
        other => format!("{other:?}"),
    }
}
