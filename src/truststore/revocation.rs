//! Revoked serial numbers of one CRL, in a form built for large lists: one sorted byte arena
//! searched by bisection. webpki's own CRL type keeps every entry in a map of separate
//! allocations and re-checks the CRL signature over the whole list on every handshake — with
//! 1,000,000 entries that is ~19 ms per handshake and ~110 MiB. Here the signature is checked
//! once (at load when the issuer is a CA of the bundle, else on first use per issuer key) and a
//! lookup is a binary search over ~20 MiB.

use std::sync::{Arc, RwLock};

use rustls::pki_types::SignatureVerificationAlgorithm;
use webpki::BorrowedCertRevocationList;
use x509_parser::prelude::FromDer;

/// The serials revoked by one CRL, and what is known about its signature.
pub struct RevokedSerials {
    /// The CRL issuer's Name, without the outer SEQUENCE (as webpki's `Cert::issuer`).
    issuer: Vec<u8>,
    /// The keyIdentifier of the CRL's authorityKeyIdentifier: which issuer key signed it.
    key_id: Option<Vec<u8>>,
    /// Serial INTEGER contents in canonical form (see [`canonical_serial`]), sorted and
    /// deduplicated, back to back.
    arena: Vec<u8>,
    /// Start of each serial in `arena`, plus the end as a last element.
    offsets: Vec<u32>,
    /// The issuer key (SubjectPublicKeyInfo element) the signature verified with at load.
    verified_spki: Option<Vec<u8>>,
    /// The CRL itself, kept only when its signature could not be checked at load.
    unverified_der: Option<Arc<Vec<u8>>>,
    /// Issuer keys already tried on `unverified_der`, with the outcome.
    checked: RwLock<Vec<(Vec<u8>, bool)>>,
    /// thisUpdate and nextUpdate, in Unix seconds: a handshake compares a number, parses nothing.
    this_update_unix: i64,
    next_update_unix: Option<i64>,
    /// The cRLNumber INTEGER contents in canonical form, when the CRL has one.
    crl_number: Option<Vec<u8>>,
}

impl std::fmt::Debug for RevokedSerials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokedSerials")
            .field("entries", &self.len())
            .field("verified_at_load", &self.verified_spki.is_some())
            .finish()
    }
}

/// What a CRL says about one certificate.
#[derive(Debug, PartialEq, Eq)]
pub enum Status {
    /// The CRL is not from this certificate's issuer (name or key differ).
    NotApplicable,
    Good,
    Revoked,
    /// The CRL names the issuer and the issuer's key (authority key identifier), but its
    /// signature does not verify with that key.
    BadSignature,
}

/// The certificate a CRL is asked about, and the issuer key its chain uses.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The certificate's issuer Name contents (without the outer SEQUENCE).
    pub issuer: &'a [u8],
    /// The certificate's serial INTEGER contents, as encoded.
    pub serial: &'a [u8],
    /// The issuer's whole SubjectPublicKeyInfo element.
    pub issuer_spki: &'a [u8],
    /// The certificate's authority key identifier (keyIdentifier), when known.
    pub key_id: Option<&'a [u8]>,
}

/// The INTEGER contents with redundant leading bytes dropped (`00 05` → `05`, `FF 85` → `85`),
/// so that serials encoded with and without them compare equal, as their values do.
pub fn canonical_serial(mut serial: &[u8]) -> &[u8] {
    while let [first, second, ..] = serial {
        let redundant =
            (*first == 0x00 && second & 0x80 == 0) || (*first == 0xFF && second & 0x80 != 0);
        if !redundant {
            break;
        }
        serial = &serial[1..];
    }
    serial
}

impl RevokedSerials {
    /// Indexes a DER CRL already checked by webpki's parser (version 2, not a delta CRL...).
    /// `verified_spki`: the bundle CA key its signature verified with, or `None` to keep the
    /// CRL for a check on first use.
    pub fn new(
        der: &[u8],
        verified_spki: Option<Vec<u8>>,
    ) -> Result<RevokedSerials, webpki::Error> {
        let crl = BorrowedCertRevocationList::from_der(der)?;
        let mut serials: Vec<&[u8]> = Vec::new();
        for entry in &crl {
            serials.push(canonical_serial(entry?.serial_number));
        }
        let header = super::crl::header(der).ok_or(webpki::Error::BadDer)?;
        let issuer = super::crl::issuer_of(der)
            .ok_or(webpki::Error::BadDer)?
            .to_vec();
        let time = |t: &[u8]| {
            x509_parser::time::ASN1Time::from_der(t)
                .map(|(_, t)| t.timestamp())
                .map_err(|_| webpki::Error::BadDer)
        };
        let this_update_unix = time(header.this_update)?;
        let next_update_unix = header.next_update.map(time).transpose()?;
        serials.sort_unstable();
        serials.dedup();
        let total: usize = serials.iter().map(|s| s.len()).sum();
        let mut arena = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(serials.len() + 1);
        for s in &serials {
            offsets.push(u32::try_from(arena.len()).map_err(|_| webpki::Error::BadDer)?);
            arena.extend_from_slice(s);
        }
        offsets.push(u32::try_from(arena.len()).map_err(|_| webpki::Error::BadDer)?);
        Ok(RevokedSerials {
            issuer,
            key_id: header.authority_key_id.map(<[u8]>::to_vec),
            arena,
            offsets,
            unverified_der: if verified_spki.is_none() {
                Some(Arc::new(der.to_vec()))
            } else {
                None
            },
            verified_spki,
            checked: RwLock::new(Vec::new()),
            this_update_unix,
            next_update_unix,
            crl_number: header.crl_number.map(|n| canonical_serial(n).to_vec()),
        })
    }

    pub fn this_update_unix(&self) -> i64 {
        self.this_update_unix
    }

    pub fn next_update_unix(&self) -> Option<i64> {
        self.next_update_unix
    }

    /// Whether the CRL is past its nextUpdate at `now_unix`.
    pub fn expired_at(&self, now_unix: i64) -> bool {
        self.next_update_unix.is_some_and(|next| now_unix > next)
    }

    /// The cRLNumber (INTEGER contents without redundant leading bytes), if present.
    pub fn crl_number(&self) -> Option<&[u8]> {
        self.crl_number.as_deref()
    }

    /// Whether `other` speaks for the same issuer: same name, and the same key (the one the
    /// signature verified with, else the authority key identifier).
    pub fn same_authority(&self, other: &RevokedSerials) -> bool {
        self.issuer == other.issuer
            && match (&self.verified_spki, &other.verified_spki) {
                (Some(a), Some(b)) => a == b,
                _ => self.key_id == other.key_id,
            }
    }

    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Heap memory held by the index (serials and their offsets).
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.offsets.capacity() * std::mem::size_of::<u32>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The issuer Name contents this CRL speaks for.
    pub fn issuer(&self) -> &[u8] {
        &self.issuer
    }

    /// The bundle CA key the signature verified with at load, if it was checked then.
    pub fn verified_spki(&self) -> Option<&[u8]> {
        self.verified_spki.as_deref()
    }

    /// The CRL's authority key identifier, if it carries one.
    pub fn key_id(&self) -> Option<&[u8]> {
        self.key_id.as_deref()
    }

    /// Whether judging a certificate of `issuer` needs that certificate's authority key
    /// identifier: only CRLs whose signature is checked on use do.
    pub fn needs_key_id(&self, issuer: &[u8]) -> bool {
        self.verified_spki.is_none() && issuer == self.issuer.as_slice()
    }

    fn entry(&self, i: usize) -> &[u8] {
        &self.arena[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Whether the serial (INTEGER contents, in any valid encoding) is listed; no signature or
    /// issuer check.
    pub fn lists(&self, serial: &[u8]) -> bool {
        let serial = canonical_serial(serial);
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid).cmp(serial) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    /// The status of the certificate with `issuer` (Name contents) and `serial` (INTEGER
    /// contents), issued under the key `issuer_spki` (a whole SubjectPublicKeyInfo element),
    /// when the certificate's authority key identifier is not known.
    pub fn status(
        &self,
        issuer: &[u8],
        serial: &[u8],
        issuer_spki: &[u8],
        algorithms: &[&dyn SignatureVerificationAlgorithm],
    ) -> Status {
        let query = Query {
            issuer,
            serial,
            issuer_spki,
            key_id: None,
        };
        self.judge(&query, algorithms)
    }

    /// What this CRL says about `q`. A CRL applies when it names the certificate's issuer and
    /// is signed by the key the chain uses for that issuer. One with the name but another key
    /// (the old or new key of a CA that rolled its key over) does not apply. Only a CRL that
    /// also claims that very key, by authority key identifier, and does not verify with it is
    /// `BadSignature`: a damaged or forged CRL, not a rollover.
    pub fn judge(
        &self,
        q: &Query<'_>,
        algorithms: &[&dyn SignatureVerificationAlgorithm],
    ) -> Status {
        if q.issuer != self.issuer.as_slice() {
            return Status::NotApplicable;
        }
        if let Some(spki) = &self.verified_spki {
            if spki.as_slice() != q.issuer_spki {
                return Status::NotApplicable;
            }
        } else {
            let same_key_id = match (self.key_id.as_deref(), q.key_id) {
                (Some(crl), Some(cert)) if crl != cert => return Status::NotApplicable,
                (Some(_), Some(_)) => true,
                _ => false,
            };
            if !self.signed_with(q.issuer_spki, algorithms) {
                return if same_key_id {
                    Status::BadSignature
                } else {
                    Status::NotApplicable
                };
            }
        }
        if self.lists(q.serial) {
            Status::Revoked
        } else {
            Status::Good
        }
    }

    fn signed_with(
        &self,
        issuer_spki: &[u8],
        algorithms: &[&dyn SignatureVerificationAlgorithm],
    ) -> bool {
        let Some(der) = &self.unverified_der else {
            return false;
        };
        if let Ok(checked) = self.checked.read() {
            if let Some((_, ok)) = checked.iter().find(|(k, _)| k.as_slice() == issuer_spki) {
                return *ok;
            }
        }
        let ok = super::crl::verify_signature(der, issuer_spki, algorithms).is_ok();
        if let Ok(mut checked) = self.checked.write() {
            if checked.len() < 16 {
                checked.push((issuer_spki.to_vec(), ok));
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, IsCa, Issuer,
        KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
    };

    fn ca(cn: &str) -> (Vec<u8>, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        let spki = parsed.public_key().raw.to_vec();
        (spki, Issuer::new(p, key))
    }

    fn crl(issuer: &Issuer<'_, KeyPair>, serials: &[&[u8]]) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(s),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(issuer)
        .unwrap()
        .der()
        .to_vec()
    }

    #[test]
    fn finds_revoked_serials_and_respects_issuer_name_and_key() {
        let algs = crate::crypto::crypto_provider()
            .signature_verification_algorithms
            .all;
        let (spki, issuer) = ca("index CA");
        let (other_spki, _) = ca("index CA");
        let der = crl(&issuer, &[&[0x01], &[0x7F, 0x02], &[0x05], &[0x01]]);
        let name = super::super::crl::issuer_of(&der).unwrap().to_vec();
        let loaded = RevokedSerials::new(&der, Some(spki.clone())).unwrap();
        assert_eq!(loaded.len(), 3, "duplicates collapse");
        assert_eq!(
            loaded.status(&name, &[0x7F, 0x02], &spki, algs),
            Status::Revoked
        );
        assert_eq!(loaded.status(&name, &[0x05], &spki, algs), Status::Revoked);
        assert_eq!(loaded.status(&name, &[0x06], &spki, algs), Status::Good);
        assert_eq!(loaded.status(&name, &[0x7F], &spki, algs), Status::Good);
        assert_eq!(
            loaded.status(b"other", &[0x05], &spki, algs),
            Status::NotApplicable
        );
        assert_eq!(
            loaded.status(&name, &[0x05], &other_spki, algs),
            Status::NotApplicable
        );

        // Not checked at load: verified on first use with the key the path offers. Another
        // key with the same name is a key rollover: the CRL does not apply to its chains.
        let lazy = RevokedSerials::new(&der, None).unwrap();
        assert_eq!(lazy.status(&name, &[0x05], &spki, algs), Status::Revoked);
        assert_eq!(
            lazy.status(&name, &[0x05], &other_spki, algs),
            Status::NotApplicable
        );
        assert_eq!(
            lazy.status(&name, &[0x05], &other_spki, algs),
            Status::NotApplicable,
            "cached"
        );
    }

    #[test]
    fn an_unchecked_crl_is_matched_by_authority_key_identifier() {
        let algs = crate::crypto::crypto_provider()
            .signature_verification_algorithms
            .all;
        let (spki, issuer) = ca("rolled CA");
        let (other_spki, _) = ca("rolled CA");
        let der = crl(&issuer, &[&[0x05]]);
        let name = super::super::crl::issuer_of(&der).unwrap().to_vec();
        let lazy = RevokedSerials::new(&der, None).unwrap();
        let key_id = lazy
            .key_id()
            .expect("rcgen writes an authority key identifier")
            .to_vec();
        let ask = |issuer_spki: &[u8], key_id: Option<&[u8]>| {
            lazy.judge(
                &Query {
                    issuer: &name,
                    serial: &[0x05],
                    issuer_spki,
                    key_id,
                },
                algs,
            )
        };
        assert_eq!(ask(&spki, Some(&key_id)), Status::Revoked);
        // The certificate names another key of that CA: not this CRL's business.
        assert_eq!(
            ask(&other_spki, Some(b"another key id")),
            Status::NotApplicable
        );
        assert_eq!(ask(&spki, Some(b"another key id")), Status::NotApplicable);
        // The CRL claims the very key the chain uses, and does not verify with it.
        assert_eq!(ask(&other_spki, Some(&key_id)), Status::BadSignature);
        assert!(lazy.needs_key_id(&name));
        let checked = RevokedSerials::new(&der, Some(spki.clone())).unwrap();
        assert!(!checked.needs_key_id(&name));
    }

    #[test]
    fn serials_match_whatever_redundant_leading_bytes_they_carry() {
        assert_eq!(canonical_serial(&[0x00, 0x05]), &[0x05]);
        assert_eq!(canonical_serial(&[0x00, 0x00, 0x05, 0x00]), &[0x05, 0x00]);
        assert_eq!(
            canonical_serial(&[0x00, 0x85]),
            &[0x00, 0x85],
            "a needed sign byte stays"
        );
        assert_eq!(canonical_serial(&[0x00, 0x00, 0x85]), &[0x00, 0x85]);
        assert_eq!(canonical_serial(&[0xFF, 0x85]), &[0x85]);
        assert_eq!(canonical_serial(&[0xFF, 0x05]), &[0xFF, 0x05]);
        assert_eq!(canonical_serial(&[0x00]), &[0x00]);
        assert_eq!(canonical_serial(&[]), &[] as &[u8]);
        let (spki, issuer) = ca("serial CA");
        let der = crl(&issuer, &[&[0x05, 0x11], &[0x00, 0x92]]);
        let index = RevokedSerials::new(&der, Some(spki)).unwrap();
        assert!(index.lists(&[0x05, 0x11]));
        assert!(index.lists(&[0x00, 0x05, 0x11]));
        assert!(index.lists(&[0x00, 0x92]));
        assert!(index.lists(&[0x00, 0x00, 0x92]));
        assert!(!index.lists(&[0x92]), "0x92 alone is a negative number");
    }

    #[test]
    fn an_empty_crl_and_garbage() {
        let (spki, issuer) = ca("empty CA");
        let der = crl(&issuer, &[]);
        let name = super::super::crl::issuer_of(&der).unwrap().to_vec();
        let empty = RevokedSerials::new(&der, Some(spki.clone())).unwrap();
        assert!(empty.is_empty());
        let algs = crate::crypto::crypto_provider()
            .signature_verification_algorithms
            .all;
        assert_eq!(empty.status(&name, &[0x01], &spki, algs), Status::Good);
        assert!(RevokedSerials::new(b"garbage", None).is_err());
    }
}
