//! Benchmarks for trust stores with large CRLs: what a handshake pays for revocation, and what a
//! (re)load pays to build the store, at 1,000 / 100,000 / 1,000,000 revoked entries.
//!
//! Measured, for each size N:
//! - `revocation/lookup_{good,revoked}/N`: `RevokedSerials::status` for a serial the CRL does not
//!   list and for one it does (the bisection over the sorted serial arena).
//! - `revocation/verify_chain/N`: `tls::verifier::verify_chain` for a good leaf + intermediate,
//!   i.e. the whole client-certificate check of a handshake (path building, two ECDSA P-256
//!   signatures, key-type and revocation checks); `verify_chain/no_crl` is the same store without
//!   a CRL, the baseline the large CRLs are compared with.
//! - `revocation/verify_chain/both_crls_1k`: the same check with a CRL from each CA of the
//!   bundle (the root's revoking 10 other CAs, the issuing CA's 1,000 entries): what a store
//!   whose root may revoke the intermediate pays per handshake.
//! - `truststore/build/N`: `truststore::build` from the PEM bundle and one DER CRL (parse, check
//!   the CRL signature, sort and index the serials); dropping the store is not counted.
//!
//! Run with: `cargo bench --bench truststore` (add a filter, e.g. `-- revocation/`, for a
//! subset). Generating the 1,000,000-entry CRL (~35 MB of DER) takes a few seconds before the
//! benchmarks start; the 1M build uses flat sampling with 10 samples to stay under a minute.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use rcgen::{
    CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use rustls::pki_types::{CertificateDer, UnixTime};
use time::macros::datetime;
use x509_parser::prelude::parse_x509_certificate;

use certgate::config::ChainLimits;
use certgate::mtls::{verify_chain, Policy};
use certgate::truststore::revocation::Status;
use certgate::truststore::{self, TrustStore};

#[allow(dead_code)] // each benchmark uses part of the shared PKI
mod common;
use common::key;

const SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];

/// Root CA → issuing CA → client leaf, all EC P-256; the CRLs are the issuing CA's.
struct Pki {
    bundle_pem: String,
    root: Issuer<'static, KeyPair>,
    issuing: Issuer<'static, KeyPair>,
    issuing_der: CertificateDer<'static>,
    leaf_der: CertificateDer<'static>,
}

fn pki() -> Pki {
    let common::Cas {
        root,
        root_issuer,
        intermediate: issuing,
        intermediate_issuer: issuing_issuer,
        ..
    } = common::cas("Example Corp Client Issuing CA");

    let leaf_key = key();
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name
        .push(DnType::OrganizationName, "Example Corp");
    leaf.distinguished_name
        .push(DnType::CommonName, "device-0042.clients.example.com");
    // Same shape as the revoked serials below, but never one of them.
    leaf.serial_number = Some(SerialNumber::from(vec![
        0x4A, 0x3C, 0x91, 0x27, 0x5E, 0x08, 0xB3, 0x6E, 0, 0, 0, 0, 0, 0, 0, 1,
    ]));
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = datetime!(2025-01-01 00:00:00 UTC);
    leaf.not_after = datetime!(2044-01-01 00:00:00 UTC);
    let leaf = leaf.signed_by(&leaf_key, &issuing_issuer).expect("leaf");

    Pki {
        bundle_pem: format!("{}{}", root.pem(), issuing.pem()),
        root: root_issuer,
        issuing: issuing_issuer,
        issuing_der: issuing.der().clone(),
        leaf_der: leaf.der().clone(),
    }
}

/// The `i`-th revoked serial: 16 bytes, high bit clear so DER adds no sign byte and the INTEGER
/// contents are exactly these bytes; spread out so the sorted order is not the issue order.
fn revoked_serial(i: u64) -> Vec<u8> {
    let mut serial = vec![0x4A, 0x3C, 0x91, 0x27, 0x5E, 0x08, 0xB3, 0x6D];
    serial.extend_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    serial
}

/// A DER CRL from the issuing CA revoking `entries` certificates.
fn crl_der(issuer: &Issuer<'_, KeyPair>, entries: u64) -> Vec<u8> {
    let params = CertificateRevocationListParams {
        this_update: datetime!(2025-06-01 00:00:00 UTC),
        next_update: datetime!(2044-01-01 00:00:00 UTC),
        crl_number: SerialNumber::from(42u64),
        issuing_distribution_point: None,
        revoked_certs: (0..entries)
            .map(|i| RevokedCertParams {
                serial_number: SerialNumber::from(revoked_serial(i)),
                revocation_time: datetime!(2025-03-01 00:00:00 UTC),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(issuer).expect("CRL").der().to_vec()
}

/// The contents of a DER element (its tag and length dropped).
fn der_contents(element: &[u8]) -> &[u8] {
    match element.get(1) {
        Some(&len) if len < 0x80 => &element[2..],
        Some(&len) => &element[2 + (len & 0x7F) as usize..],
        None => element,
    }
}

fn build(bundle: &[u8], crls: &[(String, Vec<u8>)]) -> TrustStore {
    truststore::build(
        "bench",
        "ca-bundle.pem",
        bundle,
        crls,
        ChainLimits::default(),
    )
    .expect("trust store builds")
}

fn size_name(n: u64) -> String {
    match n {
        1_000_000 => "1M".to_string(),
        n if n >= 1000 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

fn bench_truststore(c: &mut Criterion) {
    let pki = pki();
    let bundle = pki.bundle_pem.as_bytes();
    let algorithms = certgate::crypto_provider().signature_verification_algorithms;
    let now = UnixTime::now();
    let intermediates = [pki.issuing_der.clone()];

    // What a handshake hands the CRL index for the leaf: its issuer's Name contents, its serial
    // and the issuer's whole SubjectPublicKeyInfo.
    let (_, leaf) = parse_x509_certificate(&pki.leaf_der).expect("leaf parses");
    let (_, issuing) = parse_x509_certificate(&pki.issuing_der).expect("issuing CA parses");
    let issuer_name = der_contents(leaf.tbs_certificate.issuer.as_raw());
    let leaf_serial = leaf.tbs_certificate.raw_serial();
    let issuer_spki = issuing.tbs_certificate.subject_pki.raw;

    let (leaf_der, intermediates, algs) = (&pki.leaf_der, &intermediates[..], &algorithms);
    let verify = |store: &Arc<TrustStore>| {
        let policy = Policy::Verify {
            store: store.clone(),
            ignore_expiry: false,
            advertise_ca_names: false,
            require_certificate: true,
        };
        move || verify_chain(&policy, algs, leaf_der, intermediates, now)
    };

    let no_crl = Arc::new(build(bundle, &[]));
    let check = verify(&no_crl);
    check().expect("the leaf verifies without a CRL");
    {
        let mut group = c.benchmark_group("revocation");
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        group.bench_function("verify_chain/no_crl", |b| b.iter(|| black_box(check())));
        group.finish();
    }

    {
        let crls = vec![
            ("root.crl.der".to_string(), crl_der(&pki.root, 10)),
            ("issuing.crl.der".to_string(), crl_der(&pki.issuing, 1_000)),
        ];
        let store = Arc::new(build(bundle, &crls));
        let check = verify(&store);
        check().expect("the leaf verifies with both CRLs");
        let mut group = c.benchmark_group("revocation");
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        group.bench_function("verify_chain/both_crls_1k", |b| {
            b.iter(|| black_box(check()))
        });
        group.finish();
    }

    for n in SIZES {
        let name = size_name(n);
        let crl = vec![(format!("crl-{name}.der"), crl_der(&pki.issuing, n))];
        let store = Arc::new(build(bundle, &crl));
        assert_eq!(store.revoked_entries(), n as usize);
        let index = store.crls[0].clone();
        let listed = revoked_serial(n / 2);
        // Wrong inputs would make every lookup a cheap NotApplicable; refuse to measure that.
        assert_eq!(
            index.status(issuer_name, leaf_serial, issuer_spki, algorithms.all),
            Status::Good
        );
        assert_eq!(
            index.status(issuer_name, &listed, issuer_spki, algorithms.all),
            Status::Revoked
        );
        let check = verify(&store);
        check().expect("the leaf is not revoked");

        let mut group = c.benchmark_group("revocation");
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        group.bench_function(BenchmarkId::new("lookup_good", &name), |b| {
            b.iter(|| {
                index.status(
                    black_box(issuer_name),
                    black_box(leaf_serial),
                    issuer_spki,
                    algorithms.all,
                )
            })
        });
        group.bench_function(BenchmarkId::new("lookup_revoked", &name), |b| {
            b.iter(|| {
                index.status(
                    black_box(issuer_name),
                    black_box(&listed),
                    issuer_spki,
                    algorithms.all,
                )
            })
        });
        group.bench_function(BenchmarkId::new("verify_chain", &name), |b| {
            b.iter(|| black_box(check()))
        });
        group.finish();
        drop(store);

        let mut group = c.benchmark_group("truststore");
        if n >= 100_000 {
            // Each build takes tens to hundreds of milliseconds: a few flat samples suffice.
            group.sample_size(10);
            group.sampling_mode(SamplingMode::Flat);
            group.warm_up_time(Duration::from_secs(1));
            group.measurement_time(Duration::from_secs(if n >= 1_000_000 { 6 } else { 4 }));
        } else {
            group.warm_up_time(Duration::from_millis(500));
            group.measurement_time(Duration::from_secs(2));
        }
        group.bench_function(BenchmarkId::new("build", &name), |b| {
            b.iter_with_large_drop(|| build(bundle, black_box(&crl)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_truststore);
criterion_main!(benches);
