//! Derives the ALB-compatible `X-Amzn-Mtls-Clientcert-*` header values from a client
//! certificate chain, byte for byte as an AWS ALB mutual-TLS listener would send them.

use std::borrow::Cow;
use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use time::{OffsetDateTime, PrimitiveDateTime};
use x509_parser::der_parser::asn1_rs::{Any, Class, Oid, Tag};
use x509_parser::prelude::parse_x509_certificate;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

#[derive(Debug, thiserror::Error)]
pub enum CertInfoError {
    /// The message carries x509-parser's reason so a rejected handshake can be diagnosed
    /// from the log without re-capturing the client's certificate.
    #[error("certificate is not valid DER X.509: {0}")]
    Parse(String),
}

/// Everything certgate derives from one client leaf certificate, computed once per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafFacts {
    /// RFC 2253 form, as ALB sends in `X-Amzn-Mtls-Clientcert-Subject`.
    pub subject: String,
    /// RFC 2253 form, as ALB sends in `X-Amzn-Mtls-Clientcert-Issuer`.
    pub issuer: String,
    /// Uppercase hex without the DER sign byte, as ALB sends in `X-Amzn-Mtls-Clientcert-Serial-Number`.
    pub serial_hex: String,
    /// `NotBefore=…;NotAfter=…`, as ALB sends in `X-Amzn-Mtls-Clientcert-Validity`.
    pub validity: String,
    /// Numeric validity, for callers that reason about time without parsing again.
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    /// X.509 version as written on the wire (1, 2 or 3), not the 0-based DER value.
    pub version: u32,
}

/// Parses once and derives every per-connection fact, so the hot path never touches DER again.
///
/// Bytes after the certificate are ignored: the TLS layer already delimits certificates, and
/// being strict here would only turn a harmless quirk into a dropped connection.
pub fn leaf_facts(der: &[u8]) -> Result<LeafFacts, CertInfoError> {
    let (_rest, cert) =
        parse_x509_certificate(der).map_err(|e| CertInfoError::Parse(e.to_string()))?;
    check_names(&cert)?;
    Ok(facts_of(&cert))
}

/// x509-parser stops reading a Name at the first item that is not an RDN and keeps what it
/// read, so a malformed name would silently show as a shorter one. Such names are refused
/// (OpenSSL refuses them too): a backend must never see a subject other than the one signed.
pub fn check_names(
    cert: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<(), CertInfoError> {
    for (what, name) in [("subject", cert.subject()), ("issuer", cert.issuer())] {
        if !name_is_complete(name) {
            return Err(CertInfoError::Parse(format!(
                "the {what} name holds an item that is not a relative distinguished name"
            )));
        }
    }
    Ok(())
}

/// Whether the parsed RDNs cover the whole Name element (see `check_names`).
pub fn name_is_complete(name: &X509Name<'_>) -> bool {
    let raw = name.as_raw();
    let (Some(&0x30), Some(&first)) = (raw.first(), raw.get(1)) else {
        return false;
    };
    let (header, declared) = if first < 0x80 {
        (2usize, first as usize)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || raw.len() < 2 + n {
            return false;
        }
        (
            2 + n,
            raw[2..2 + n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | b as usize),
        )
    };
    header + declared == raw.len()
}

/// The same facts from a certificate the caller already parsed.
pub fn facts_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> LeafFacts {
    let tbs = &cert.tbs_certificate;
    let not_before_unix = tbs.validity.not_before.timestamp();
    let not_after_unix = tbs.validity.not_after.timestamp();
    LeafFacts {
        subject: rfc2253(&tbs.subject),
        issuer: rfc2253(&tbs.issuer),
        serial_hex: serial_hex(tbs.raw_serial()),
        validity: validity_string(not_before_unix, not_after_unix),
        not_before_unix,
        not_after_unix,
        // Saturating because the version INTEGER is attacker-chosen and may be u32::MAX.
        version: tbs.version.0.saturating_add(1),
    }
}

/// ALB prints the serial's magnitude bytes, so the 0x00 that DER prepends to keep a
/// high-bit serial positive must not show up; every other byte (including a leading
/// zero of a single-byte zero serial) is kept so the header stays byte-exact.
pub fn serial_hex(raw_der_integer_content: &[u8]) -> String {
    let bytes = match raw_der_integer_content {
        [0x00, rest @ ..] if !rest.is_empty() => rest,
        all => all,
    };
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        push_hex_byte(&mut out, b);
    }
    out
}

/// OpenSSL-style RFC 2253 rendering (`XN_FLAG_RFC2253` with `ESC_MSB`), which is what ALB emits.
///
/// Non-ASCII bytes are escaped as `\XX` so the result is always a legal HTTP header value,
/// and any value we cannot faithfully decode is dumped as `#` + DER hex rather than guessed
/// at, so that backends never see a subject that differs from what the CA signed.
///
/// OpenSSL reverses the flat list of attributes, so the attributes inside a multi-valued RDN
/// come out in reverse DER order too (`UID=42+CN=alice` for the set {CN=alice, UID=42}); RFC 2253
/// leaves the order inside a set open, and matching OpenSSL keeps certgate byte-exact with ALB.
pub fn rfc2253(name: &X509Name<'_>) -> String {
    // x509-parser's iterators are not double-ended, so collect the (few) references first.
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::with_capacity(name.as_raw().len());
    for (i, rdn) in rdns.into_iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let attrs: Vec<_> = rdn.iter().collect();
        for (j, attr) in attrs.into_iter().rev().enumerate() {
            if j > 0 {
                out.push('+');
            }
            push_attribute(&mut out, attr);
        }
    }
    out
}

/// Takes plain Unix seconds so callers can format times they already hold without a
/// certificate at hand (e.g. cached `LeafFacts`).
pub fn validity_string(not_before_unix: i64, not_after_unix: i64) -> String {
    let mut out = String::with_capacity(60);
    out.push_str("NotBefore=");
    push_utc(&mut out, not_before_unix);
    out.push_str(";NotAfter=");
    push_utc(&mut out, not_after_unix);
    out
}

/// One instant as ALB writes it in validity strings: `2023-09-21T01:50:17Z`.
pub fn utc_string(unix: i64) -> String {
    let mut out = String::with_capacity(20);
    push_utc(&mut out, unix);
    out
}

/// URL-encoded PEM of the given DER certificates in order (leaf first), concatenated.
pub fn url_encoded_pem<'a>(ders: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut out = String::new();
    for der in ders {
        push_url_encoded_pem(&mut out, der);
    }
    out
}

/// Appends into an existing buffer (used on the hot path to avoid allocations).
///
/// The only PEM bytes that need percent-encoding are the space in the armour lines and the
/// newlines; base64's alphabet (`A-Za-z0-9+/=`) is all in ALB's literal set. So the armour
/// is written pre-encoded and base64 goes straight into `out`, with no intermediate PEM text.
pub fn push_url_encoded_pem(out: &mut String, der: &[u8]) {
    const BEGIN: &str = "-----BEGIN%20CERTIFICATE-----%0A";
    const END: &str = "-----END%20CERTIFICATE-----%0A";
    const NEWLINE: &str = "%0A";
    // 48 input bytes are exactly one 64-character PEM line, so chunks never straddle lines.
    const BYTES_PER_LINE: usize = 48;

    let base64_len = der.len().div_ceil(3) * 4;
    let lines = der.len().div_ceil(BYTES_PER_LINE);
    out.reserve(BEGIN.len() + base64_len + lines * NEWLINE.len() + END.len());
    out.push_str(BEGIN);
    for line in der.chunks(BYTES_PER_LINE) {
        BASE64.encode_string(line, out);
        out.push_str(NEWLINE);
    }
    out.push_str(END);
}

/// OpenSSL short names for the attribute types it knows, keyed by the OID's DER content
/// bytes so lookup needs neither allocation nor OID arc decoding.
const ATTRIBUTE_NAMES: &[(&[u8], &str)] = &[
    (&[0x55, 0x04, 0x03], "CN"),                     // 2.5.4.3
    (&[0x55, 0x04, 0x04], "SN"),                     // 2.5.4.4
    (&[0x55, 0x04, 0x05], "serialNumber"),           // 2.5.4.5
    (&[0x55, 0x04, 0x06], "C"),                      // 2.5.4.6
    (&[0x55, 0x04, 0x07], "L"),                      // 2.5.4.7
    (&[0x55, 0x04, 0x08], "ST"),                     // 2.5.4.8
    (&[0x55, 0x04, 0x09], "street"),                 // 2.5.4.9
    (&[0x55, 0x04, 0x0A], "O"),                      // 2.5.4.10
    (&[0x55, 0x04, 0x0B], "OU"),                     // 2.5.4.11
    (&[0x55, 0x04, 0x0C], "title"),                  // 2.5.4.12
    (&[0x55, 0x04, 0x0D], "description"),            // 2.5.4.13
    (&[0x55, 0x04, 0x0F], "businessCategory"),       // 2.5.4.15
    (&[0x55, 0x04, 0x11], "postalCode"),             // 2.5.4.17
    (&[0x55, 0x04, 0x2A], "GN"),                     // 2.5.4.42
    (&[0x55, 0x04, 0x2B], "initials"),               // 2.5.4.43
    (&[0x55, 0x04, 0x2C], "generationQualifier"),    // 2.5.4.44
    (&[0x55, 0x04, 0x2E], "dnQualifier"),            // 2.5.4.46
    (&[0x55, 0x04, 0x41], "pseudonym"),              // 2.5.4.65
    (&[0x55, 0x04, 0x61], "organizationIdentifier"), // 2.5.4.97
    // 0.9.2342.19200300.100.1.25
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19],
        "DC",
    ),
    // 0.9.2342.19200300.100.1.1
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x01],
        "UID",
    ),
    // 1.2.840.113549.1.9.1
    (
        &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01],
        "emailAddress",
    ),
    // 1.3.6.1.4.1.311.60.2.1.3
    (
        &[
            0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3C, 0x02, 0x01, 0x03,
        ],
        "jurisdictionC",
    ),
    // 1.3.6.1.4.1.311.60.2.1.2
    (
        &[
            0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3C, 0x02, 0x01, 0x02,
        ],
        "jurisdictionST",
    ),
    // 1.3.6.1.4.1.311.60.2.1.1
    (
        &[
            0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3C, 0x02, 0x01, 0x01,
        ],
        "jurisdictionL",
    ),
];

fn short_name(oid: &Oid<'_>) -> Option<&'static str> {
    let bytes = oid.as_bytes();
    ATTRIBUTE_NAMES
        .iter()
        .find(|(der, _)| *der == bytes)
        .map(|(_, name)| *name)
}

fn push_attribute(out: &mut String, attr: &AttributeTypeAndValue<'_>) {
    let value = attr.attr_value();
    match short_name(attr.attr_type()) {
        Some(name) => {
            out.push_str(name);
            out.push('=');
            match decode_string(value) {
                Some(text) => push_escaped(out, &text),
                None => push_der_hex(out, value),
            }
        }
        // RFC 2253 §2.4: for a type known only by OID the value must be the hex dump,
        // since the reader cannot know which string syntax applies.
        None => {
            push_dotted_oid(out, attr.attr_type());
            out.push('=');
            push_der_hex(out, value);
        }
    }
}

/// Returns `None` for anything that is not a string we can decode losslessly, so the caller
/// falls back to the hex dump instead of emitting replacement characters.
fn decode_string<'a>(value: &Any<'a>) -> Option<Cow<'a, str>> {
    if value.header.class() != Class::Universal || value.header.is_constructed() {
        return None;
    }
    let data = value.data;
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(Cow::Borrowed),
        // T.61 in practice is Latin-1 (as OpenSSL treats it); every byte maps to U+00XX.
        Tag::TeletexString => Some(Cow::Owned(data.iter().map(|&b| char::from(b)).collect())),
        // Odd lengths and unpaired surrogates are not text: dump them rather than guess.
        Tag::BmpString => {
            let units = data.chunks_exact(2);
            if !units.remainder().is_empty() {
                return None;
            }
            let units = units.map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
                .map(Cow::Owned)
        }
        Tag::UniversalString => {
            let quads = data.chunks_exact(4);
            if !quads.remainder().is_empty() {
                return None;
            }
            quads
                .map(|q| char::from_u32(u32::from_be_bytes([q[0], q[1], q[2], q[3]])))
                .collect::<Option<String>>()
                .map(Cow::Owned)
        }
        _ => None,
    }
}

/// RFC 2253 §2.4 escaping plus OpenSSL's `ESC_CTRL`/`ESC_MSB`, which keeps the header pure
/// ASCII: a proxy must never put raw UTF-8 or control bytes into an HTTP header.
fn push_escaped(out: &mut String, value: &str) {
    let bytes = value.as_bytes();
    let last = bytes.len().saturating_sub(1);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0x00..=0x1F | 0x7F..=0xFF => {
                out.push('\\');
                push_hex_byte(out, b);
            }
            _ => out.push(char::from(b)),
        }
    }
}

/// `#` + hex of the value's DER TLV. The header is re-encoded canonically (as OpenSSL does
/// via `i2d`), because x509-parser only keeps the content bytes of the value.
fn push_der_hex(out: &mut String, value: &Any<'_>) {
    let header = &value.header;
    let data = value.data;
    out.push('#');

    let class_bits = (header.class() as u8) << 6;
    let constructed_bit = if header.is_constructed() { 0x20 } else { 0x00 };
    let tag = header.tag().0;
    if tag < 0x1F {
        // Lossless: tag < 31 fits in the low five bits.
        push_hex_byte(out, class_bits | constructed_bit | tag as u8);
    } else {
        push_hex_byte(out, class_bits | constructed_bit | 0x1F);
        let significant_bits = 32 - tag.leading_zeros();
        let groups = significant_bits.div_ceil(7);
        for group in (0..groups).rev() {
            let seven = ((tag >> (7 * group)) & 0x7F) as u8;
            let more = if group > 0 { 0x80 } else { 0x00 };
            push_hex_byte(out, seven | more);
        }
    }

    let len = data.len();
    if len < 0x80 {
        push_hex_byte(out, len as u8);
    } else {
        let len_bytes = len.to_be_bytes();
        let skip = len_bytes.iter().take_while(|&&b| b == 0).count();
        let significant = len_bytes.get(skip..).unwrap_or_default();
        push_hex_byte(out, 0x80 | significant.len() as u8);
        for &b in significant {
            push_hex_byte(out, b);
        }
    }

    for &b in data {
        push_hex_byte(out, b);
    }
}

/// Dotted decimal form of an attribute type. Decoded here rather than with asn1-rs's
/// `Oid::iter`/`to_id_string`, which treat the first *byte* as the combined first two arcs and
/// so print e.g. 2.999.1 as "3.16.55.1".
fn push_dotted_oid(out: &mut String, oid: &Oid<'_>) {
    let start = out.len();
    if !try_push_dotted_oid(out, oid.as_bytes()) {
        // Malformed or absurdly wide arcs: there is no legal RFC 2253 spelling, so fall back
        // to something that is ASCII, lossless and cannot collide with a real type name.
        out.truncate(start);
        out.push('#');
        for &b in oid.as_bytes() {
            push_hex_byte(out, b);
        }
    }
}

/// Arcs are decoded as u128: wide enough for the largest arcs in real use (2.25.<UUID>).
/// Returns false, possibly after writing a partial result, if the encoding is unusable.
fn try_push_dotted_oid(out: &mut String, content: &[u8]) -> bool {
    let mut first = true;
    let mut arc: u128 = 0;
    let mut unfinished = false;
    for &b in content {
        let Some(shifted) = arc.checked_mul(0x80) else {
            return false;
        };
        arc = shifted | u128::from(b & 0x7F);
        unfinished = b & 0x80 != 0;
        if unfinished {
            continue;
        }
        // Writing into a String cannot fail.
        if first {
            // X.690 §8.19.4: the first subidentifier packs the first two arcs as 40*X + Y.
            let (x, y) = match arc {
                0..40 => (0, arc),
                40..80 => (1, arc - 40),
                _ => (2, arc - 80),
            };
            let _ = write!(out, "{x}.{y}");
            first = false;
        } else {
            let _ = write!(out, ".{arc}");
        }
        arc = 0;
    }
    !first && !unfinished
}

fn push_utc(out: &mut String, unix: i64) {
    let dt = match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(dt) => dt,
        // Certificates cannot carry such times (GeneralizedTime has four-digit years), so
        // pinning to the representable edge is only a no-panic guard for direct callers.
        Err(_) if unix < 0 => PrimitiveDateTime::MIN.assume_utc(),
        Err(_) => PrimitiveDateTime::MAX.assume_utc(),
    };
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
}

fn push_hex_byte(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0F)]));
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_name_with_an_item_that_is_not_an_rdn_is_refused_not_shortened() {
        // Found by the leaf_facts fuzz target's seed: a certificate whose subject has one SET
        // tag changed; x509-parser would keep only the RDNs before it.
        let der = include_bytes!("../fuzz/corpus/leaf_facts/seed-subject-non-rdn-item");
        let err = leaf_facts(der).unwrap_err().to_string();
        assert!(err.contains("not a relative distinguished name"), "{err}");
    }

    use super::*;
    use rcgen::string::{BmpString, TeletexString, UniversalString};
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, DnValue, KeyPair, SerialNumber,
        PKCS_ECDSA_P256_SHA256,
    };
    use time::macros::datetime;
    use x509_parser::prelude::FromDer;

    fn self_signed(params: CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn cert_with_dn(dn: DistinguishedName) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        self_signed(params)
    }

    fn cert_with_serial(serial: &[u8]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.serial_number = Some(SerialNumber::from_slice(serial));
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

    fn raw_serial_of(der: &[u8]) -> Vec<u8> {
        let (_, cert) = parse_x509_certificate(der).unwrap();
        cert.tbs_certificate.raw_serial().to_vec()
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
    fn serial_hex_examples() {
        assert_eq!(serial_hex(&[0x03, 0xA5, 0xB1]), "03A5B1");
        assert_eq!(serial_hex(&[0x02]), "02");
        assert_eq!(
            serial_hex(&[0x00, 0xFE, 0xF2, 0x57, 0x37, 0x2D, 0x5C, 0x14, 0xD4]),
            "FEF257372D5C14D4"
        );
        assert_eq!(serial_hex(&[0x00]), "00");
        // Negative serial: printed as its two's-complement bytes.
        assert_eq!(serial_hex(&[0x80, 0x01]), "8001");
        // Only one leading zero is a sign byte.
        assert_eq!(serial_hex(&[0x00, 0x00, 0x80]), "0080");
        assert_eq!(serial_hex(&[]), "");
    }

    #[test]
    fn serial_with_high_bit_drops_der_sign_byte() {
        let der = cert_with_serial(&[0xFE, 0xF2, 0x57, 0x37, 0x2D, 0x5C, 0x14, 0xD4]);
        assert_eq!(
            raw_serial_of(&der),
            [0x00, 0xFE, 0xF2, 0x57, 0x37, 0x2D, 0x5C, 0x14, 0xD4]
        );
        let facts = leaf_facts(&der).unwrap();
        assert_eq!(facts.serial_hex, "FEF257372D5C14D4");
        assert!(!facts.serial_hex.starts_with("00"));
    }

    #[test]
    fn serial_small_values_through_certificates() {
        let der = cert_with_serial(&[0x03, 0xA5, 0xB1]);
        assert_eq!(raw_serial_of(&der), [0x03, 0xA5, 0xB1]);
        assert_eq!(leaf_facts(&der).unwrap().serial_hex, "03A5B1");

        let der = cert_with_serial(&[0x02]);
        assert_eq!(raw_serial_of(&der), [0x02]);
        assert_eq!(leaf_facts(&der).unwrap().serial_hex, "02");

        // rcgen strips leading zeros, so zero is written as the single content byte 0x00.
        let der = cert_with_serial(&[0x00]);
        assert_eq!(raw_serial_of(&der), [0x00]);
        assert_eq!(leaf_facts(&der).unwrap().serial_hex, "00");
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
            0x69, 0x83, 0xF0, 0x9D, 0xA7, 0xEB, 0xCF, 0xDE, 0xE0, 0xC7, 0xA1, 0xA7, 0xB2, 0xC0,
            0x94, 0x8C, 0xC8, 0xF9, 0xD7, 0x76,
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

    #[test]
    fn validity_with_known_dates() {
        let mut params = CertificateParams::default();
        params.not_before = datetime!(2023-09-21 01:50:17 UTC);
        params.not_after = datetime!(2024-09-20 01:50:17 UTC);
        let facts = leaf_facts(&self_signed(params)).unwrap();
        assert_eq!(
            facts.validity,
            "NotBefore=2023-09-21T01:50:17Z;NotAfter=2024-09-20T01:50:17Z"
        );
        assert_eq!(facts.not_before_unix, 1_695_261_017);
        assert_eq!(facts.not_after_unix, 1_726_797_017);

        // Outside UTCTime's range rcgen switches to GeneralizedTime.
        let mut params = CertificateParams::default();
        params.not_before = datetime!(1949-12-31 23:59:59 UTC);
        params.not_after = datetime!(2050-01-01 00:00:00 UTC);
        let facts = leaf_facts(&self_signed(params)).unwrap();
        assert_eq!(
            facts.validity,
            "NotBefore=1949-12-31T23:59:59Z;NotAfter=2050-01-01T00:00:00Z"
        );
        assert_eq!(facts.not_before_unix, -631_152_001);
        assert_eq!(facts.not_after_unix, 2_524_608_000);
    }

    #[test]
    fn validity_string_direct() {
        assert_eq!(
            validity_string(0, 1_726_797_017),
            "NotBefore=1970-01-01T00:00:00Z;NotAfter=2024-09-20T01:50:17Z"
        );
        assert_eq!(
            validity_string(i64::MIN, i64::MAX),
            "NotBefore=-9999-01-01T00:00:00Z;NotAfter=9999-12-31T23:59:59Z"
        );
    }

    /// Independent PEM → URL-encoding computation for comparison.
    fn expected_url_pem(der: &[u8]) -> String {
        let b64 = BASE64.encode(der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem.replace(' ', "%20").replace('\n', "%0A")
    }

    #[test]
    fn url_encoded_pem_literal() {
        assert_eq!(
            url_encoded_pem([&[0x00, 0x01, 0x02, 0xFB, 0xFF][..]]),
            "-----BEGIN%20CERTIFICATE-----%0AAAEC+/8=%0A-----END%20CERTIFICATE-----%0A"
        );
    }

    #[test]
    fn url_encoded_pem_matches_independent_encoding() {
        let der = self_signed(CertificateParams::default());
        assert_eq!(url_encoded_pem([der.as_slice()]), expected_url_pem(&der));
        // Line-boundary lengths around one and two full lines.
        for len in [0, 1, 47, 48, 49, 95, 96, 97] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 250) as u8).collect();
            let mut out = String::new();
            push_url_encoded_pem(&mut out, &data);
            assert_eq!(out, expected_url_pem(&data), "len {len}");
        }
    }

    #[test]
    fn url_encoded_pem_agrees_with_percent_encoding_crate() {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        const ALB_SET: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~')
            .remove(b'+')
            .remove(b'=')
            .remove(b'/');
        let der = self_signed(CertificateParams::default());
        let pem_text = {
            let b64 = BASE64.encode(&der);
            let body: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|l| std::str::from_utf8(l).unwrap())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                body.join("\n")
            )
        };
        let expected = utf8_percent_encode(&pem_text, ALB_SET).to_string();
        assert_eq!(url_encoded_pem([der.as_slice()]), expected);
    }

    #[test]
    fn url_encoded_pem_chain_concatenates() {
        let leaf = self_signed(CertificateParams::default());
        let ca = self_signed(CertificateParams::default());
        let chain = url_encoded_pem([leaf.as_slice(), ca.as_slice()]);
        assert_eq!(chain, expected_url_pem(&leaf) + &expected_url_pem(&ca));
        assert_eq!(chain.matches("-----BEGIN%20CERTIFICATE-----%0A").count(), 2);

        let mut appended = String::from("prefix;");
        push_url_encoded_pem(&mut appended, &leaf);
        push_url_encoded_pem(&mut appended, &ca);
        assert_eq!(appended, format!("prefix;{chain}"));
        assert_eq!(url_encoded_pem(std::iter::empty::<&[u8]>()), "");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(leaf_facts(b""), Err(CertInfoError::Parse(_))));
        assert!(matches!(
            leaf_facts(b"not a certificate at all"),
            Err(CertInfoError::Parse(_))
        ));
        assert!(leaf_facts(&[0x30, 0x82, 0xFF, 0xFF, 0x00]).is_err());
        let der = self_signed(CertificateParams::default());
        assert!(leaf_facts(&der[..der.len() - 1]).is_err());
    }

    #[test]
    fn trailing_data_is_ignored() {
        let mut der = self_signed(CertificateParams::default());
        let facts = leaf_facts(&der).unwrap();
        der.extend_from_slice(b"trailing");
        assert_eq!(leaf_facts(&der).unwrap(), facts);
    }
}
