//! ALB's `X-Amzn-Mtls-Clientcert*` encoding of certificates: PEM, URL-encoded with ALB's
//! literal set, written straight from DER without an intermediate PEM text.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};

    fn self_signed(params: CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
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
}
