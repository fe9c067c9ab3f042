//! Benchmarks for certgate's hot paths.
//!
//! Measured:
//! - `certinfo/*`: `leaf_facts` and `rfc2253` on a realistic EC P-256 client certificate
//!   (subject C/ST/L/O/OU/CN), `url_encoded_pem` of the leaf and of leaf + intermediate.
//! - `headers/per_connection_*`: `connection_headers` in verify and passthrough mode with ALB's
//!   default names, i.e. what is computed once per TLS connection.
//! - `headers/per_request`: what every proxied request pays: cloning a 12-header request map
//!   (10 ordinary headers plus 2 forged `x-amzn-mtls-*`), `strip_hop_by_hop`, `strip_owned`,
//!   `set_forwarded` and inserting the precomputed connection headers.
//!   `headers/request_map_clone` is the clone alone, to tell the two costs apart.
//! - `logs/conn_json`, `logs/conn_alb`: `ConnectionRecord::to_json` / `to_alb` for a Success record.
//! - `truststore/build_crl_*`: `truststore::build` with one CA and one PEM CRL of 1,000 and
//!   100,000 revoked entries (dropping the built store is excluded from the figure).
//!
//! Run with: `cargo bench --bench headers` (add a name filter, e.g. `-- headers/`, to run a subset).
//! Certificates and CRLs are generated once with rcgen before their group runs.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose,
    SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use time::macros::datetime;
use x509_parser::prelude::parse_x509_certificate;

use certgate::alb;
use certgate::config::{HeaderNames, Mode};
use certgate::observe::connection::ConnectionRecord;
use certgate::x509::{self, LeafFacts};

#[allow(dead_code)] // each benchmark uses part of the shared PKI
mod common;
use certgate::proxy::headers;
use common::key;

/// Root CA → intermediate CA → client leaf, all EC P-256, as a typical private PKI issues them.
struct Pki {
    leaf_der: CertificateDer<'static>,
    intermediate_der: CertificateDer<'static>,
}

fn pki() -> Pki {
    let common::Cas {
        intermediate,
        intermediate_issuer,
        ..
    } = common::cas("Example Corp Client Issuing CA 1");

    let leaf_key = key();
    let mut leaf = CertificateParams::new(vec!["device-0042.clients.example.com".to_string()])
        .expect("leaf SAN");
    leaf.subject_alt_names.push(SanType::Rfc822Name(
        "device-0042@example.com".try_into().expect("email SAN"),
    ));
    // CertificateParams::new pre-fills a CN; start from an empty name to control RDN order.
    leaf.distinguished_name = DistinguishedName::new();
    let dn = &mut leaf.distinguished_name;
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "Washington");
    dn.push(DnType::LocalityName, "Seattle");
    dn.push(DnType::OrganizationName, "Example Corp");
    dn.push(DnType::OrganizationalUnitName, "Fleet Devices");
    dn.push(DnType::CommonName, "device-0042.clients.example.com");
    // 16 random-looking bytes with the high bit set, so DER adds the sign byte serial_hex drops.
    leaf.serial_number = Some(SerialNumber::from(vec![
        0xFE, 0xF2, 0x57, 0x37, 0x2D, 0x5C, 0x14, 0xD4, 0x8A, 0x11, 0x93, 0x4B, 0x06, 0xC7, 0x5E,
        0x21,
    ]));
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = datetime!(2025-01-01 00:00:00 UTC);
    leaf.not_after = datetime!(2026-01-01 00:00:00 UTC);
    let leaf = leaf
        .signed_by(&leaf_key, &intermediate_issuer)
        .expect("leaf");

    Pki {
        leaf_der: leaf.der().clone(),
        intermediate_der: intermediate.der().clone(),
    }
}

fn fast<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group
}

fn bench_certinfo(c: &mut Criterion) {
    let pki = pki();
    let leaf: &[u8] = pki.leaf_der.as_ref();
    let intermediate: &[u8] = pki.intermediate_der.as_ref();
    let (_, parsed) = parse_x509_certificate(leaf).expect("leaf parses");
    let subject = &parsed.tbs_certificate.subject;
    assert_eq!(
        x509::rfc2253(subject),
        "CN=device-0042.clients.example.com,OU=Fleet Devices,O=Example Corp,L=Seattle,ST=Washington,C=US"
    );

    let mut group = fast(c, "certinfo");
    group.bench_function("leaf_facts", |b| {
        b.iter(|| x509::leaf_facts(black_box(leaf)).expect("leaf facts"))
    });
    group.bench_function("rfc2253_subject", |b| {
        b.iter(|| x509::rfc2253(black_box(subject)))
    });
    group.bench_function("url_encoded_pem_leaf", |b| {
        b.iter(|| alb::url_encoded_pem([black_box(leaf)]))
    });
    group.bench_function("url_encoded_pem_chain", |b| {
        b.iter(|| alb::url_encoded_pem([black_box(leaf), black_box(intermediate)]))
    });
    group.finish();
}

/// A browser-ish request as hyper would hand it over, including two forged certgate headers
/// and a keep-alive `Connection` header that must be stripped.
fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        ("accept", "application/json, text/plain, */*"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("accept-language", "en-US,en;q=0.5"),
        (
            "authorization",
            "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkZXZpY2UtMDA0MiJ9.c2lnbmF0dXJl",
        ),
        (
            "cookie",
            "session=4f1c2a9e7b; theme=dark; _ga=GA1.2.123456789.1700000000",
        ),
        ("x-request-id", "8d3e4c6a-2f1b-4e9a-9c7d-5b6a4e3f2d1c"),
        ("x-forwarded-for", "198.51.100.7"),
        ("connection", "keep-alive"),
        ("x-amzn-mtls-clientcert-subject", "CN=admin,O=Example Corp"),
        (
            "x-amzn-mtls-clientcert-leaf",
            "-----BEGIN%20CERTIFICATE-----%0Aforged%0A",
        ),
    ] {
        h.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h
}

fn bench_headers(c: &mut Criterion) {
    let pki = pki();
    let chain = [pki.leaf_der.clone(), pki.intermediate_der.clone()];
    let facts = x509::leaf_facts(&pki.leaf_der).expect("leaf facts");
    let names = HeaderNames::alb_defaults();
    let (tls_version, tls_cipher) = ("TLSv1.3", "TLS_AES_128_GCM_SHA256");

    let mut group = fast(c, "headers");
    group.bench_function("per_connection_verify", |b| {
        b.iter(|| {
            certgate::alb::connection_headers(
                Mode::Verify,
                &names,
                black_box(&chain),
                Some(black_box(&facts)),
                tls_version,
                tls_cipher,
            )
        })
    });
    group.bench_function("per_connection_passthrough", |b| {
        b.iter(|| {
            certgate::alb::connection_headers(
                Mode::Passthrough,
                &names,
                black_box(&chain),
                Some(black_box(&facts)),
                tls_version,
                tls_cipher,
            )
        })
    });

    // Everything the proxy precomputes per listener / per connection.
    let conn_headers = certgate::alb::connection_headers(
        Mode::Verify,
        &names,
        &chain,
        Some(&facts),
        tls_version,
        tls_cipher,
    );
    assert_eq!(conn_headers.len(), 5);
    let strip = names.strip_set();
    let client_ip = HeaderValue::from_static("203.0.113.9");
    let port = HeaderValue::from_static("443");
    let request = request_headers();

    let per_request = |h: &mut HeaderMap| {
        headers::strip_hop_by_hop(h);
        headers::strip_owned(h, &strip);
        headers::set_forwarded(h, &client_ip, "https", &port);
        for (name, value) in &conn_headers {
            h.insert(name.clone(), value.clone());
        }
    };
    {
        let mut check = request.clone();
        per_request(&mut check);
        assert!(!check.contains_key("connection"));
        assert_eq!(check["x-forwarded-for"], "198.51.100.7, 203.0.113.9");
        assert_ne!(
            check["x-amzn-mtls-clientcert-subject"],
            "CN=admin,O=Example Corp"
        );
        assert!(!check.contains_key("x-amzn-mtls-clientcert"));
    }

    group.bench_function("per_request", |b| {
        b.iter(|| {
            let mut h = black_box(&request).clone();
            per_request(&mut h);
            h
        })
    });
    group.bench_function("request_map_clone", |b| {
        b.iter(|| black_box(&request).clone())
    });
    group.finish();
}

fn success_record(facts: LeafFacts) -> ConnectionRecord {
    ConnectionRecord {
        timestamp: datetime!(2025-06-01 12:34:56.789012 UTC),
        client: "203.0.113.9:51234".parse().expect("client addr"),
        local: "10.0.0.1:443".parse().expect("local addr"),
        tls_protocol: Some("TLSv1.3"),
        tls_cipher: Some("TLS_AES_128_GCM_SHA256"),
        tls_handshake_latency_ms: Some(3),
        leaf: Some(facts),
        tls_verify_status: "Success".to_string(),
        conn_trace_id: "TID_1c71a68d70587445ad5127ff8b2687d7".to_string(),
        tls_keyexchange: Some("X25519".to_string()),
        listener: "web".to_string(),
        mode: "verify",
        sni: Some("api.example.com".to_string()),
        alpn: Some("h2".to_string()),
        trust_store_version: Some("sha256:0123456789abcdef".to_string()),
        tls_verify_detail: None,
        client_identity: None,
    }
}

fn bench_logs(c: &mut Criterion) {
    let pki = pki();
    let record = success_record(x509::leaf_facts(&pki.leaf_der).expect("leaf facts"));

    let mut group = fast(c, "logs");
    group.bench_function("conn_json", |b| b.iter(|| black_box(&record).to_json()));
    group.bench_function("conn_alb", |b| b.iter(|| black_box(&record).to_alb()));
    group.finish();
}

criterion_group!(benches, bench_certinfo, bench_headers, bench_logs);
criterion_main!(benches);
