//! Unit tests of RFC 2253 rendering: escaping, string types, unknown and named attribute
//! types, DER hex dumps and RDN order, on hand-made DER and on rcgen certificates.

use super::super::leaf_facts;
use super::*;
use rcgen::string::{BmpString, TeletexString, UniversalString};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, KeyPair, PKCS_ECDSA_P256_SHA256,
};
use x509_parser::prelude::{parse_x509_certificate, FromDer};

fn self_signed(params: CertificateParams) -> Vec<u8> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

fn cert_with_dn(dn: DistinguishedName) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    self_signed(params)
}

fn subject_of(dn: DistinguishedName) -> String {
    leaf_facts(&cert_with_dn(dn)).unwrap().subject
}

fn cn(value: impl Into<DnValue>) -> String {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, value);
    subject_of(dn)
}

/// Wraps `content` in a DER TLV with a short-form length (all hand-made test DER is small).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    assert!(content.len() < 0x80);
    let mut v = vec![tag, content.len() as u8];
    v.extend_from_slice(content);
    v
}

/// AttributeTypeAndValue with a 2.5.4.x type.
fn atv(x520_arc: u8, value_tlv: &[u8]) -> Vec<u8> {
    let mut content = tlv(0x06, &[0x55, 0x04, x520_arc]);
    content.extend_from_slice(value_tlv);
    tlv(0x30, &content)
}

fn rdn(atvs: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x31, &atvs.concat())
}

fn name_der(rdns: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &rdns.concat())
}

fn rfc2253_of_der(der: &[u8]) -> String {
    let (rest, name) = X509Name::from_der(der).unwrap();
    assert!(rest.is_empty());
    rfc2253(&name)
}

#[test]
fn rdns_are_reversed() {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "Washington");
    dn.push(DnType::LocalityName, "Seattle");
    dn.push(DnType::OrganizationName, "mTLS");
    dn.push(DnType::OrganizationalUnitName, "rootCA");
    dn.push(DnType::CommonName, "rootcamtls.com");
    let facts = leaf_facts(&cert_with_dn(dn)).unwrap();
    assert_eq!(
        facts.subject,
        "CN=rootcamtls.com,OU=rootCA,O=mTLS,L=Seattle,ST=Washington,C=US"
    );
    assert_eq!(
        facts.issuer,
        "CN=rootcamtls.com,OU=rootCA,O=mTLS,L=Seattle,ST=Washington,C=US"
    );
    assert_eq!(facts.version, 3);
}

#[test]
fn rcgen_plain_common_name_is_utf8string() {
    let der = cert_with_dn({
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "plain");
        dn
    });
    let (_, cert) = parse_x509_certificate(&der).unwrap();
    let attr = cert
        .tbs_certificate
        .subject
        .iter_attributes()
        .next()
        .unwrap();
    assert_eq!(attr.attr_value().tag(), Tag::Utf8String);
}

#[test]
fn escapes_specials_in_certificates() {
    assert_eq!(cn("Smith, John+\"Q\""), r#"CN=Smith\, John\+\"Q\""#);
    assert_eq!(cn("a\\b<c>d;e"), r"CN=a\\b\<c\>d\;e");
    assert_eq!(cn("é"), r"CN=\C3\A9");
    assert_eq!(cn(" x "), r"CN=\ x\ ");
    assert_eq!(cn("#1"), r"CN=\#1");
    assert_eq!(cn("a#b c=d"), "CN=a#b c=d");
}

#[test]
fn escaping_rules() {
    let esc = |s: &str| {
        let mut out = String::new();
        push_escaped(&mut out, s);
        out
    };
    assert_eq!(esc(""), "");
    assert_eq!(esc(","), r"\,");
    assert_eq!(esc("+"), r"\+");
    assert_eq!(esc("\""), r#"\""#);
    assert_eq!(esc("\\"), r"\\");
    assert_eq!(esc("<"), r"\<");
    assert_eq!(esc(">"), r"\>");
    assert_eq!(esc(";"), r"\;");
    assert_eq!(esc("#"), r"\#");
    assert_eq!(esc("##"), r"\##");
    assert_eq!(esc(" "), r"\ ");
    assert_eq!(esc("  "), r"\ \ ");
    assert_eq!(esc("a  b"), "a  b");
    assert_eq!(esc("a\u{1}b\nc\u{7f}"), r"a\01b\0Ac\7F");
    assert_eq!(esc("\u{0}"), r"\00");
    assert_eq!(esc("日本"), r"\E6\97\A5\E6\9C\AC");
    assert_eq!(esc("=/:'()"), "=/:'()");
}

#[test]
fn bmp_string_value() {
    let value = DnValue::BmpString(BmpString::try_from("Zoë 日").unwrap());
    assert_eq!(cn(value), r"CN=Zo\C3\AB \E6\97\A5");
}

#[test]
fn universal_string_value() {
    let value = DnValue::UniversalString(UniversalString::try_from("Ω😀").unwrap());
    assert_eq!(cn(value), r"CN=\CE\A9\F0\9F\98\80");
}

#[test]
fn teletex_string_value() {
    // rcgen only accepts ASCII for TeletexString.
    let value = DnValue::TeletexString(TeletexString::try_from("tele tex").unwrap());
    assert_eq!(cn(value), "CN=tele tex");
    // Hand-made T61String with Latin-1 0xE9 (é).
    let der = name_der(&[rdn(&[atv(0x03, &tlv(0x14, b"caf\xE9"))])]);
    assert_eq!(rfc2253_of_der(&der), r"CN=caf\C3\A9");
}

#[test]
fn other_string_types_as_text() {
    let der = name_der(&[
        rdn(&[atv(0x03, &tlv(0x13, b"printable"))]),
        rdn(&[atv(0x03, &tlv(0x16, b"ia5@x"))]),
        rdn(&[atv(0x05, &tlv(0x12, b"123 45"))]),
        rdn(&[atv(0x03, &tlv(0x1A, b"visible"))]),
    ]);
    assert_eq!(
        rfc2253_of_der(&der),
        "CN=visible,serialNumber=123 45,CN=ia5@x,CN=printable"
    );
}

#[test]
fn unknown_oid_is_dumped_as_der_hex() {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CustomDnType(vec![1, 2, 3, 4]), "hi");
    dn.push(DnType::CommonName, "x");
    assert_eq!(subject_of(dn), "CN=x,1.2.3.4=#0C026869");

    let mut dn = DistinguishedName::new();
    let value = DnValue::PrintableString("AB".try_into().unwrap());
    dn.push(DnType::CustomDnType(vec![2, 999, 1]), value);
    assert_eq!(subject_of(dn), "2.999.1=#13024142");
}

#[test]
fn dotted_oid_decoding() {
    let dotted = |content: &[u8]| {
        let mut out = String::new();
        push_dotted_oid(&mut out, &Oid::new(Cow::Borrowed(content)));
        out
    };
    assert_eq!(dotted(&[0x2A, 0x03]), "1.2.3");
    assert_eq!(dotted(&[0x00]), "0.0");
    assert_eq!(dotted(&[0x27]), "0.39");
    assert_eq!(dotted(&[0x88, 0x37, 0x01]), "2.999.1");
    // 2.25.<UUID 0xf81d4fae-7dec-11d0-a765-00a0c91e6bf6>, the RFC 4122 example.
    let uuid_oid = [
        0x69, 0x83, 0xF0, 0x9D, 0xA7, 0xEB, 0xCF, 0xDE, 0xE0, 0xC7, 0xA1, 0xA7, 0xB2, 0xC0, 0x94,
        0x8C, 0xC8, 0xF9, 0xD7, 0x76,
    ];
    assert_eq!(
        dotted(&uuid_oid),
        "2.25.329800735698586629295641978511506172918"
    );
    // Unterminated, empty and wider-than-128-bit encodings fall back to hex.
    assert_eq!(dotted(&[0x2A, 0x83]), "#2A83");
    assert_eq!(dotted(&[]), "#");
    let mut too_wide = vec![0x2A];
    too_wide.extend([0xFF; 19]);
    too_wide.push(0x7F);
    assert_eq!(dotted(&too_wide).len(), 1 + 2 * 21);
    assert!(dotted(&too_wide).starts_with("#2AFF"));
}

#[test]
fn named_custom_types() {
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
        "com",
    );
    dn.push(
        DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
        DnValue::Ia5String("a@b.c".try_into().unwrap()),
    );
    dn.push(
        DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 3]),
        "US",
    );
    dn.push(DnType::CustomDnType(vec![2, 5, 4, 97]), "VATDE-1");
    assert_eq!(
        subject_of(dn),
        "organizationIdentifier=VATDE-1,jurisdictionC=US,emailAddress=a@b.c,DC=com"
    );
}

#[test]
fn attribute_table_matches_dotted_oids() {
    let expected = [
        ("2.5.4.3", "CN"),
        ("2.5.4.4", "SN"),
        ("2.5.4.5", "serialNumber"),
        ("2.5.4.6", "C"),
        ("2.5.4.7", "L"),
        ("2.5.4.8", "ST"),
        ("2.5.4.9", "street"),
        ("2.5.4.10", "O"),
        ("2.5.4.11", "OU"),
        ("2.5.4.12", "title"),
        ("2.5.4.13", "description"),
        ("2.5.4.15", "businessCategory"),
        ("2.5.4.17", "postalCode"),
        ("2.5.4.42", "GN"),
        ("2.5.4.43", "initials"),
        ("2.5.4.44", "generationQualifier"),
        ("2.5.4.46", "dnQualifier"),
        ("2.5.4.65", "pseudonym"),
        ("2.5.4.97", "organizationIdentifier"),
        ("0.9.2342.19200300.100.1.25", "DC"),
        ("0.9.2342.19200300.100.1.1", "UID"),
        ("1.2.840.113549.1.9.1", "emailAddress"),
        ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
        ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
        ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ];
    assert_eq!(ATTRIBUTE_NAMES.len(), expected.len());
    for ((der, name), (dotted, expected_name)) in ATTRIBUTE_NAMES.iter().zip(expected) {
        let oid = Oid::new(Cow::Borrowed(der));
        assert_eq!(oid.to_id_string(), dotted);
        assert_eq!(*name, expected_name);
    }
}

#[test]
fn undecodable_values_are_dumped_as_der_hex() {
    let der = name_der(&[
        // CN as INTEGER 5
        rdn(&[atv(0x03, &tlv(0x02, &[0x05]))]),
        // UTF8String with invalid UTF-8
        rdn(&[atv(0x03, &tlv(0x0C, &[0xFF]))]),
        // BMPString of odd length
        rdn(&[atv(0x03, &tlv(0x1E, &[0x00, 0x41, 0x00]))]),
        // BMPString with an unpaired surrogate
        rdn(&[atv(0x03, &tlv(0x1E, &[0xD8, 0x00]))]),
        // UniversalString that is not a multiple of four bytes
        rdn(&[atv(0x03, &tlv(0x1C, &[0x00, 0x00, 0x41]))]),
        // Context-specific primitive [0]
        rdn(&[atv(0x03, &tlv(0x80, b"x"))]),
    ]);
    assert_eq!(
        rfc2253_of_der(&der),
        "CN=#800178,CN=#1C03000041,CN=#1E02D800,CN=#1E03004100,CN=#0C01FF,CN=#020105"
    );
}

#[test]
fn der_hex_uses_long_lengths_and_high_tags() {
    let mut out = String::new();
    let data = [0xAB; 200];
    let long = Any::from_tag_and_data(Tag::OctetString, &data);
    push_der_hex(&mut out, &long);
    assert_eq!(&out[..7], "#0481C8");
    assert_eq!(out.len(), 7 + 400);

    let mut out = String::new();
    let high = Any::from_tag_and_data(Tag(200), b"z");
    push_der_hex(&mut out, &high);
    assert_eq!(out, "#1F8148017A");
}

#[test]
fn multi_valued_rdn_is_reversed_inside_as_openssl_does() {
    let der = name_der(&[
        rdn(&[atv(0x03, &tlv(0x0C, b"a")), atv(0x0B, &tlv(0x0C, b"b"))]),
        rdn(&[atv(0x0A, &tlv(0x0C, b"c"))]),
    ]);
    assert_eq!(rfc2253_of_der(&der), "O=c,OU=b+CN=a");
}

#[test]
fn empty_name() {
    assert_eq!(rfc2253_of_der(&[0x30, 0x00]), "");
    assert_eq!(subject_of(DistinguishedName::new()), "");
}
