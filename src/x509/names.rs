//! RFC 2253 rendering of X.509 names as OpenSSL (and so ALB) prints them: attribute short
//! names, string decoding, escaping, dotted OIDs and `#`-hex dumps of undecodable values.

use std::borrow::Cow;
use std::fmt::Write as _;

use x509_parser::der_parser::asn1_rs::{Any, Class, Oid, Tag};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

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
pub(super) fn decode_string<'a>(value: &Any<'a>) -> Option<Cow<'a, str>> {
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

/// Two uppercase hex digits, as OpenSSL (and ALB) print bytes; also used for serials.
pub(super) fn push_hex_byte(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0F)]));
}

#[cfg(test)]
mod tests;
