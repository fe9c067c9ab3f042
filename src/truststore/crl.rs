//! CRL signature check at load time, and the CRL header fields read without parsing the list.
//! webpki checks CRL signatures only while verifying a client, so a CRL signed by the wrong key
//! would be swapped in and then refuse every client of its CA with
//! `ClientCertCrlProcessingError`. Checking here keeps such a file from ever replacing a good
//! store.

use rustls::pki_types::SignatureVerificationAlgorithm;

/// One DER element: (tag, contents, the whole element, what follows).
pub type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

pub fn element(input: &[u8]) -> Option<Element<'_>> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some((tag, &rest[..len], &input[..header + len], &rest[len..]))
}

/// The parts of a signed structure: signed bytes, signature algorithm (contents), signature.
fn signed_parts(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (0x30, outer, _, _) = element(der)? else {
        return None;
    };
    let (0x30, _, tbs, rest) = element(outer)? else {
        return None;
    };
    let (0x30, alg, _, rest) = element(rest)? else {
        return None;
    };
    let (0x03, bits, _, _) = element(rest)? else {
        return None;
    };
    let (&0, signature) = bits.split_first()? else {
        return None;
    };
    Some((tbs, alg, signature))
}

/// The fields of a CRL's header that certgate shows, as whole DER elements; read without
/// parsing the (possibly million-entry) list of revoked certificates.
pub struct CrlHeader<'a> {
    /// Version 2 CRLs carry a version field; version 1 CRLs have none.
    pub has_version: bool,
    pub issuer: &'a [u8],
    pub this_update: &'a [u8],
    pub next_update: Option<&'a [u8]>,
    /// keyIdentifier of the authorityKeyIdentifier extension: which key of the issuer signed.
    pub authority_key_id: Option<&'a [u8]>,
    /// The cRLNumber extension's INTEGER contents.
    pub crl_number: Option<&'a [u8]>,
}

pub fn header(crl_der: &[u8]) -> Option<CrlHeader<'_>> {
    let (0x30, outer, _, _) = element(crl_der)? else {
        return None;
    };
    let (0x30, tbs, _, _) = element(outer)? else {
        return None;
    };
    let (tag, _, _, mut rest) = element(tbs)?;
    if tag == 0x02 {
        // version, then the signature algorithm
        let (0x30, _, _, r) = element(rest)? else {
            return None;
        };
        rest = r;
    } else if tag != 0x30 {
        return None;
    }
    let (0x30, _, issuer, rest) = element(rest)? else {
        return None;
    };
    let (0x17 | 0x18, _, this_update, rest) = element(rest)? else {
        return None;
    };
    let (next_update, rest) = match element(rest) {
        Some((0x17 | 0x18, _, next, rest)) => (Some(next), rest),
        _ => (None, rest),
    };
    // The revoked list is skipped by its length, never walked.
    let rest = match element(rest) {
        Some((0x30, _, _, after)) => after,
        _ => rest,
    };
    Some(CrlHeader {
        has_version: tag == 0x02,
        issuer,
        this_update,
        next_update,
        authority_key_id: extension(rest, OID_AUTHORITY_KEY_ID).and_then(key_id_of),
        crl_number: extension(rest, OID_CRL_NUMBER).and_then(|v| match element(v) {
            Some((0x02, number, _, _)) => Some(number),
            _ => None,
        }),
    })
}

/// DER of the authorityKeyIdentifier OID, 2.5.29.35.
const OID_AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1D, 0x23];

/// DER of the cRLNumber OID, 2.5.29.20.
const OID_CRL_NUMBER: &[u8] = &[0x55, 0x1D, 0x14];

/// The extnValue contents of extension `oid` in the `[0]` crlExtensions that follow the revoked
/// list, if any.
fn extension<'a>(input: &'a [u8], oid: &[u8]) -> Option<&'a [u8]> {
    let (0xA0, tagged, _, _) = element(input)? else {
        return None;
    };
    let (0x30, mut list, _, _) = element(tagged)? else {
        return None;
    };
    while let Some((0x30, ext, _, rest)) = element(list) {
        list = rest;
        let (0x06, id, _, mut value) = element(ext)? else {
            return None;
        };
        if id != oid {
            continue;
        }
        if let Some((0x01, _, _, after)) = element(value) {
            value = after; // the critical flag
        }
        let (0x04, octets, _, _) = element(value)? else {
            return None;
        };
        return Some(octets);
    }
    None
}

/// The keyIdentifier of an AuthorityKeyIdentifier value.
fn key_id_of(octets: &[u8]) -> Option<&[u8]> {
    let (0x30, aki, _, _) = element(octets)? else {
        return None;
    };
    // keyIdentifier is [0] IMPLICIT OCTET STRING, the first field when present.
    match element(aki) {
        Some((0x80, key_id, _, _)) => Some(key_id),
        _ => None,
    }
}

/// The issuer Name of a CRL, without its SEQUENCE header (the form webpki's `Cert::issuer`
/// returns).
pub fn issuer_of(crl_der: &[u8]) -> Option<&[u8]> {
    let (_, contents, _, _) = element(header(crl_der)?.issuer)?;
    Some(contents)
}

/// The algorithm (contents) and key bits of a SubjectPublicKeyInfo element.
pub fn spki_parts(spki: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, inner, _, _) = element(spki)? else {
        return None;
    };
    let (0x30, alg, _, rest) = element(inner)? else {
        return None;
    };
    let (0x03, bits, _, _) = element(rest)? else {
        return None;
    };
    let (&0, key) = bits.split_first()? else {
        return None;
    };
    Some((alg, key))
}

/// Checks the signature of `crl_der` — or of any X.509 SIGNED structure, such as a certificate —
/// against the SubjectPublicKeyInfo (`issuer_spki`, a whole DER element) of its issuing CA, with
/// the provider's algorithms.
pub fn verify_signature(
    crl_der: &[u8],
    issuer_spki: &[u8],
    algorithms: &[&dyn SignatureVerificationAlgorithm],
) -> Result<(), String> {
    let (tbs, sig_alg, signature) =
        signed_parts(crl_der).ok_or("CRL structure cannot be read for its signature")?;
    let (key_alg, key) = spki_parts(issuer_spki).ok_or("issuer public key cannot be read")?;
    let alg = algorithms
        .iter()
        .find(|a| {
            a.public_key_alg_id().as_ref() == key_alg && a.signature_alg_id().as_ref() == sig_alg
        })
        .ok_or("CRL signature algorithm is not supported for the issuer's key type")?;
    alg.verify_signature(key, tbs, signature)
        .map_err(|_| "CRL signature does not verify with the issuer's public key".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_reads_short_and_long_lengths_and_refuses_truncation() {
        assert_eq!(
            element(&[0x04, 0x01, 0xAA, 0xBB]),
            Some((0x04, &[0xAA][..], &[0x04, 0x01, 0xAA][..], &[0xBB][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([0u8; 0x80]);
        assert_eq!(element(&long).map(|e| e.1.len()), Some(0x80));
        assert_eq!(element(&[0x04, 0x05, 0x00]), None);
        assert_eq!(element(&[0x04, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(element(&[]), None);
        assert_eq!(signed_parts(b"garbage"), None);
    }
}
