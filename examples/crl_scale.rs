//! How much a big CRL costs: builds a trust store whose CRL has N revoked entries (default
//! 1,000,000) and prints the build time, the resident memory it adds, and the time of one
//! client verification against it.
//!
//!     cargo run --release --example crl_scale -- [ENTRIES] [DIR]
//!
//! With DIR, a first run writes the CA and the CRL there and stops; a second run with the same
//! DIR only loads them, so its peak memory is that of loading alone.

use std::time::Instant;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Builds the store from a CA bundle and one DER CRL and prints time and memory.
fn load_and_report(
    ca_pem: &[u8],
    der: Vec<u8>,
) -> Result<certgate::truststore::TrustStore, Box<dyn std::error::Error>> {
    let der_len = der.len();
    let before = rss_kib();
    let t = Instant::now();
    let store = certgate::truststore::build(
        "scale",
        "ca.pem",
        ca_pem,
        &[("crl.der".to_string(), der)],
        certgate::config::ChainLimits::default(),
    )?;
    let index: usize = store.crls.iter().map(|c| c.heap_bytes()).sum();
    println!(
        "loaded {} entries ({:.1} MiB of DER) in {:.2?}: index {:.1} MiB; RSS {} MiB with the CRL in hand -> {} MiB after, peak {} MiB",
        store.revoked_entries(),
        der_len as f64 / 1048576.0,
        t.elapsed(),
        index as f64 / 1048576.0,
        before / 1024,
        rss_kib() / 1024,
        status_kib("VmHWM:") / 1024
    );
    Ok(store)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let entries: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = std::env::args().nth(2).map(std::path::PathBuf::from);
    if let Some(d) = dir.as_ref().filter(|d| d.join("crl.der").exists()) {
        let ca_pem = std::fs::read(d.join("ca.pem"))?;
        let der = std::fs::read(d.join("crl.der"))?;
        load_and_report(&ca_pem, der)?;
        return Ok(());
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "crl scale CA");
    let ca = params.self_signed(&key)?;
    let issuer = Issuer::new(params, key);
    let now = time::OffsetDateTime::now_utc();

    let t = Instant::now();
    let revoked = (0..entries as u64)
        .map(|i| {
            let mut serial = [0u8; 16];
            serial[0] = 0x40;
            serial[8..].copy_from_slice(&i.to_be_bytes());
            RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            }
        })
        .collect();
    let crl = CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::days(7),
        crl_number: SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)?;
    let der = crl.der().to_vec();
    if let Some(d) = &dir {
        std::fs::create_dir_all(d)?;
        std::fs::write(d.join("ca.pem"), ca.pem())?;
        std::fs::write(d.join("crl.der"), &der)?;
        println!(
            "wrote {} and {}; run again with the same DIR to load them",
            d.join("ca.pem").display(),
            d.join("crl.der").display()
        );
        return Ok(());
    }
    println!(
        "generated a CRL with {entries} entries: {} bytes of DER in {:.2?}",
        der.len(),
        t.elapsed()
    );

    let store = load_and_report(ca.pem().as_bytes(), der)?;

    // One client verification against the store, as a handshake does it.
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "client");
    let leaf = leaf.signed_by(&leaf_key, &issuer)?;
    let policy = certgate::mtls::Policy::Verify {
        store: std::sync::Arc::new(store),
        ignore_expiry: false,
        advertise_ca_names: false,
        require_certificate: true,
    };
    let algorithms = certgate::crypto_provider().signature_verification_algorithms;
    let now = rustls::pki_types::UnixTime::now();
    let rounds = 20;
    let t = Instant::now();
    for _ in 0..rounds {
        certgate::mtls::verify_chain(&policy, &algorithms, leaf.der(), &[], now)
            .map_err(|f| f.to_string())?;
    }
    println!(
        "one client verification against it: {:.2?} (mean of {rounds})",
        t.elapsed() / rounds
    );
    Ok(())
}
