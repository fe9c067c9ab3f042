//! The per-target checks, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and the
//! corpus replay in the main crate's test suite (`tests/fuzz_corpus.rs`), both of which include
//! this file with `#[path]`. Each check feeds one input to a certgate parser or encoder and
//! panics if the result breaks a property certgate promises.
//!
//! Only crates that both the fuzz crate and the main crate depend on may be used here:
//! certgate, x509-parser, http, base64 and percent-encoding.

// Each fuzz target uses one check; the replay test uses them all.
#![allow(dead_code)]

use std::path::Path;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use certgate::alb;
use certgate::tls::hello_tap::{self, Parse};
use certgate::truststore::{self, revocation, ParsedBundle};
use certgate::x509;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::X509Name;

/// One check: panics if the input exposes a bug.
pub type Check = fn(&[u8]);

/// Every check, by target name (the directory names under `fuzz/corpus/`).
pub const TARGETS: &[(&str, Check)] = &[
    ("dn_format", dn_format),
    ("leaf_facts", leaf_facts),
    ("url_pem", url_pem),
    ("config", config),
    ("bundle", bundle),
    ("crl", crl),
    ("server_hello", server_hello),
];

/// The fixed bundle CRLs are parsed against: the demo root and intermediate CAs.
const DEMO_BUNDLE: &[u8] = include_bytes!("../truststores/demo/ca-bundle.pem");

fn is_printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7E).contains(&b))
}

fn assert_header_value(field: &str, s: &str) {
    assert!(
        http::HeaderValue::from_str(s).is_ok(),
        "{field} is not a valid HTTP header value: {s:?}"
    );
}

/// RFC 2253 rendering of any DER Name: never panics, always printable ASCII.
pub fn dn_format(data: &[u8]) {
    let Ok((_, name)) = X509Name::from_der(data) else {
        return;
    };
    let dn = x509::rfc2253(&name);
    assert!(
        is_printable_ascii(&dn),
        "rfc2253 output is not printable ASCII: {dn:?}"
    );
}

/// Leaf facts of any bytes: when they parse, every header-bound field is a legal header value.
pub fn leaf_facts(data: &[u8]) {
    let Ok(facts) = x509::leaf_facts(data) else {
        return;
    };
    for (field, value) in [
        ("subject", &facts.subject),
        ("issuer", &facts.issuer),
        ("serial_hex", &facts.serial_hex),
        ("validity", &facts.validity),
    ] {
        assert_header_value(field, value);
        assert!(
            is_printable_ascii(value),
            "{field} is not printable ASCII: {value:?}"
        );
    }
    assert!(
        facts
            .serial_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
        "serial_hex is not uppercase hex: {:?}",
        facts.serial_hex
    );
    assert_eq!(
        facts.validity,
        x509::validity_string(facts.not_before_unix, facts.not_after_unix)
    );
    assert!(facts.version >= 1, "version {}", facts.version);
}

/// URL-encoded PEM of any bytes: only ALB's literal characters and `%XX`, and it decodes back.
/// Checked for the input as one certificate and split into a chain of up to 256-byte pieces.
pub fn url_pem(data: &[u8]) {
    check_url_pem(&[data]);
    let piece = 1 + usize::from(data.first().copied().unwrap_or(0));
    let chain: Vec<&[u8]> = data.chunks(piece).collect();
    check_url_pem(&chain);
}

fn check_url_pem(ders: &[&[u8]]) {
    let encoded = alb::url_encoded_pem(ders.iter().copied());
    let bytes = encoded.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let literal = b.is_ascii_alphanumeric() || b"-._~+=/%".contains(&b);
        assert!(
            literal,
            "byte {b:#04x} at {i} is not URL-safe in {encoded:?}"
        );
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            assert!(
                hex.is_some_and(|h| h.iter().all(|c| c.is_ascii_hexdigit())),
                "bad percent escape at {i} in {encoded:?}"
            );
        }
    }
    let pem = percent_encoding::percent_decode_str(&encoded)
        .decode_utf8()
        .expect("percent-decoded PEM is UTF-8");
    let mut rest: &str = &pem;
    let mut decoded = Vec::new();
    while !rest.is_empty() {
        rest = rest
            .strip_prefix("-----BEGIN CERTIFICATE-----\n")
            .unwrap_or_else(|| panic!("no BEGIN line at {rest:?}"));
        let (body, after) = rest
            .split_once("-----END CERTIFICATE-----\n")
            .unwrap_or_else(|| panic!("no END line in {rest:?}"));
        let mut b64 = String::new();
        for line in body.lines() {
            assert!(line.len() <= 64, "PEM line longer than 64: {line:?}");
            b64.push_str(line);
        }
        assert!(body.is_empty() || body.ends_with('\n'), "body {body:?}");
        decoded.push(BASE64.decode(&b64).expect("PEM body is base64"));
        rest = after;
    }
    assert_eq!(
        decoded, ders,
        "URL-encoded PEM does not decode back to the input"
    );
}

/// Any config text: parsing and validation never panic, and errors format.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) =
        certgate::config::from_str(&text, Path::new("fuzz.toml"), Path::new("/nonexistent"))
    {
        let _ = e.to_string();
    }
}

fn check_bundle(bundle: &ParsedBundle) {
    assert!(!bundle.anchors.is_empty());
    assert_eq!(bundle.anchors.len(), bundle.cas.len());
    assert_eq!(bundle.anchors.len(), bundle.ca_names.len());
    for ca in &bundle.cas {
        assert!(
            is_printable_ascii(&ca.subject),
            "CA subject {:?}",
            ca.subject
        );
    }
}

/// Any CA bundle: never panics; when accepted, it holds at least one CA, each with an ASCII name.
pub fn bundle(data: &[u8]) {
    match truststore::parse_bundle("fuzz", "bundle", data) {
        Ok(bundle) => check_bundle(&bundle),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn demo_bundle() -> &'static ParsedBundle {
    static BUNDLE: OnceLock<ParsedBundle> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let bundle = truststore::parse_bundle("fuzz", "bundle", DEMO_BUNDLE)
            .expect("the demo CA bundle parses");
        check_bundle(&bundle);
        bundle
    })
}

/// Any CRL source against the demo bundle, and any bytes as a revocation index: never panics,
/// and the index finds every serial that x509-parser reads from the same CRL.
pub fn crl(data: &[u8]) {
    match truststore::parse_crls("fuzz", "crl", data, demo_bundle()) {
        Ok(parsed) => {
            for (index, info) in &parsed.crls {
                assert_eq!(info.revoked_entries, index.len());
                assert_eq!(index.is_empty(), info.revoked_entries == 0);
                assert!(
                    is_printable_ascii(&info.issuer),
                    "CRL issuer {:?}",
                    info.issuer
                );
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    let Ok(index) = revocation::RevokedSerials::new(data, None) else {
        return;
    };
    let _ = index.heap_bytes();
    // Cross-check lookups against x509-parser where both parsers accept the whole input.
    let Ok(([], parsed)) = CertificateRevocationList::from_der(data) else {
        return;
    };
    let Some(issuer) = der_contents(parsed.tbs_cert_list.issuer.as_raw()) else {
        return;
    };
    const KEY: &[u8] = b"fuzz issuer key";
    let index =
        revocation::RevokedSerials::new(data, Some(KEY.to_vec())).expect("same bytes index again");
    let mut serials: Vec<&[u8]> = Vec::new();
    for revoked in parsed.iter_revoked_certificates() {
        let serial = revoked.raw_serial();
        serials.push(serial);
        assert_eq!(
            index.status(issuer, serial, KEY, &[]),
            revocation::Status::Revoked,
            "serial {serial:02X?} listed in the CRL is not found by the index"
        );
        assert_eq!(
            index.status(issuer, serial, b"another key", &[]),
            revocation::Status::NotApplicable
        );
    }
    serials.sort_unstable();
    serials.dedup();
    assert_eq!(
        index.len(),
        serials.len(),
        "index size differs from x509-parser's"
    );
    let absent = [0xFFu8; 40];
    if !serials.contains(&&absent[..]) {
        assert_eq!(
            index.status(issuer, &absent, KEY, &[]),
            revocation::Status::Good
        );
    }
}

/// The contents of a DER element with a one-byte tag, or None if `element` is not exactly one
/// whole element. x509-parser stops reading a Name at the first item that is not an RDN and then
/// ignores the rest of the SEQUENCE, so its `as_raw()` can be a truncated prefix of the element.
fn der_contents(element: &[u8]) -> Option<&[u8]> {
    let (&first, rest) = element.get(1..)?.split_first()?;
    let (len, contents) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        let len = rest.get(..n)?.iter().try_fold(0usize, |acc, &b| {
            acc.checked_mul(256)?.checked_add(usize::from(b))
        })?;
        (len, rest.get(n..)?)
    };
    (contents.len() == len).then_some(contents)
}

/// Any bytes as the server's first record: never panics, and the outcome depends only on the
/// record (bytes after it are ignored; any shorter prefix of it is `Incomplete`).
pub fn server_hello(data: &[u8]) {
    let outcome = hello_tap::parse_server_hello(data);
    if outcome == Parse::Incomplete {
        return;
    }
    if data[0] != 0x16 {
        assert_eq!(outcome, Parse::Invalid, "for a non-handshake record");
        return;
    }
    let record_end = 5 + usize::from(u16::from_be_bytes([data[3], data[4]]));
    assert!(record_end <= data.len());
    assert_eq!(hello_tap::parse_server_hello(&data[..record_end]), outcome);
    assert_eq!(
        hello_tap::parse_server_hello(&data[..record_end - 1]),
        Parse::Incomplete
    );
}
