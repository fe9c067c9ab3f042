//! Facts about one leaf certificate, read once per connection (subject, issuer, serial,
//! validity), and the check that refuses names x509-parser would read only in part.

use std::fmt::Write as _;

use time::{OffsetDateTime, PrimitiveDateTime};
use x509_parser::prelude::parse_x509_certificate;
use x509_parser::x509::X509Name;

use super::names::{push_hex_byte, rfc2253};
use super::X509Error;

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
pub fn leaf_facts(der: &[u8]) -> Result<LeafFacts, X509Error> {
    let (_rest, cert) = parse_x509_certificate(der).map_err(|e| X509Error::Parse(e.to_string()))?;
    check_names(&cert)?;
    Ok(facts_of(&cert))
}

/// x509-parser stops reading a Name at the first item that is not an RDN and keeps what it
/// read, so a malformed name would silently show as a shorter one. Such names are refused
/// (OpenSSL refuses them too): a backend must never see a subject other than the one signed.
pub fn check_names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Result<(), X509Error> {
    for (what, name) in [("subject", cert.subject()), ("issuer", cert.issuer())] {
        if !name_is_complete(name) {
            return Err(X509Error::Parse(format!(
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SerialNumber, PKCS_ECDSA_P256_SHA256};
    use time::macros::datetime;

    #[test]
    fn a_name_with_an_item_that_is_not_an_rdn_is_refused_not_shortened() {
        // Found by the leaf_facts fuzz target's seed: a certificate whose subject has one SET
        // tag changed; x509-parser would keep only the RDNs before it.
        let der = include_bytes!("../../fuzz/corpus/leaf_facts/seed-subject-non-rdn-item");
        let err = leaf_facts(der).unwrap_err().to_string();
        assert!(err.contains("not a relative distinguished name"), "{err}");
    }

    fn self_signed(params: CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn cert_with_serial(serial: &[u8]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.serial_number = Some(SerialNumber::from_slice(serial));
        self_signed(params)
    }

    fn raw_serial_of(der: &[u8]) -> Vec<u8> {
        let (_, cert) = parse_x509_certificate(der).unwrap();
        cert.tbs_certificate.raw_serial().to_vec()
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

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(leaf_facts(b""), Err(X509Error::Parse(_))));
        assert!(matches!(
            leaf_facts(b"not a certificate at all"),
            Err(X509Error::Parse(_))
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
