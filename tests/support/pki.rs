//! Test PKI generator for certgate's mTLS tests: roots, intermediates, client and server
//! leaves (good, revoked, expired, odd keys/DNs/serials, oversize) and CRLs, via rcgen 0.14.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod,
    KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, RsaKeySize, SanType,
    SerialNumber,
};
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use time::{Duration, OffsetDateTime};

/// Private OID (under IANA's documentation PEN 32473, RFC 5612) of the padding extension.
pub const PAD_EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 32473, 1];

/// Key algorithm of a generated certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcP256,
    EcP384,
    /// ECDSA P-521; its signatures use SHA-512.
    EcP521,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    /// Not accepted by ALB (only RSA 2048–8192 and ECDSA P-256/384/521 are).
    Ed25519,
}

impl KeyKind {
    /// Generates a fresh key pair of this kind (PKCS#8 inside).
    pub fn generate(self) -> KeyPair {
        let rsa = |size| KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size);
        match self {
            KeyKind::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyKind::EcP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeyKind::EcP521 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512),
            KeyKind::Rsa2048 => rsa(RsaKeySize::_2048),
            KeyKind::Rsa3072 => rsa(RsaKeySize::_3072),
            KeyKind::Rsa4096 => rsa(RsaKeySize::_4096),
            KeyKind::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        }
        .unwrap_or_else(|e| panic!("generating {self:?} key: {e}"))
    }
}

/// A certificate authority (root or intermediate) able to sign certificates and CRLs.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub der: Vec<u8>,
    pub pem: String,
    /// The CA's common name.
    pub name: String,
    /// Serial number content bytes exactly as in the DER (for revoking this CA).
    pub serial: Vec<u8>,
}

/// An end-entity certificate with its private key.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub der: Vec<u8>,
    pub cert_pem: String,
    /// PKCS#8 PEM ("PRIVATE KEY").
    pub key_pem: String,
    /// PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// Serial number content bytes exactly as in the DER (incl. any 0x00 sign byte).
    pub serial: Vec<u8>,
    pub key: KeyKind,
}

/// What to put in a leaf certificate.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// Subject RDNs in order, one attribute each (rcgen keeps one value per `DnType`).
    pub subject: Vec<(DnType, DnValue)>,
    pub key: KeyKind,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Empty = no EKU extension at all.
    pub eku: Vec<ExtendedKeyUsagePurpose>,
    /// Serial content bytes; `None` = rcgen's default (hash of the public key, 20 bytes).
    pub serial: Option<Vec<u8>>,
    /// Adds a non-critical private extension (`PAD_EXTENSION_OID`) of this many bytes.
    pub pad_bytes: usize,
    /// SANs: entries parsing as IP addresses become IP SANs, the rest DNS SANs.
    pub server_names: Vec<String>,
    /// Further SANs of any type, after `server_names`.
    pub sans: Vec<SanType>,
    /// Extensions added as given (e.g. a hand-made subjectAltName instead of `sans`).
    pub extensions: Vec<CustomExtension>,
}

impl Default for LeafSpec {
    /// CN=client, EC P-256, valid from 1 day ago to 1 year ahead, EKU clientAuth, no padding.
    fn default() -> Self {
        let now = OffsetDateTime::now_utc();
        LeafSpec {
            subject: vec![(DnType::CommonName, DnValue::from("client"))],
            key: KeyKind::EcP256,
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(365),
            eku: vec![ExtendedKeyUsagePurpose::ClientAuth],
            serial: None,
            pad_bytes: 0,
            server_names: Vec::new(),
            sans: Vec::new(),
            extensions: Vec::new(),
        }
    }
}

impl LeafSpec {
    /// Default client spec with the given common name.
    pub fn client(cn: &str) -> Self {
        LeafSpec {
            subject: vec![(DnType::CommonName, DnValue::from(cn))],
            ..Default::default()
        }
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - Duration::days(2);
    params.not_after = now + Duration::days(3650);
    params
}

/// Serial content bytes of a DER certificate, as x509-parser's `raw_serial()` sees them.
pub fn raw_serial_of(cert_der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).expect("parse generated cert");
    cert.raw_serial().to_vec()
}

fn ca_from(params: CertificateParams, key: KeyPair, cert: rcgen::Certificate, cn: &str) -> Ca {
    let der = cert.der().to_vec();
    Ca {
        serial: raw_serial_of(&der),
        pem: cert.pem(),
        der,
        name: cn.to_owned(),
        issuer: Issuer::new(params, key),
    }
}

/// Self-signed EC P-256 root CA (basicConstraints CA, keyCertSign + cRLSign).
pub fn root_ca(cn: &str) -> Ca {
    root_ca_with(cn, KeyKind::EcP256)
}

/// Self-signed EC P-256 root CA valid from `not_before` to `not_after` (e.g. already expired).
pub fn root_ca_valid(cn: &str, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Ca {
    let key = KeyKind::EcP256.generate();
    let mut params = ca_params(cn);
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.self_signed(&key).expect("self-sign root");
    ca_from(params, key, cert, cn)
}

/// Self-signed root CA with the given key kind.
pub fn root_ca_with(cn: &str, key: KeyKind) -> Ca {
    let key = key.generate();
    let params = ca_params(cn);
    let cert = params.self_signed(&key).expect("self-sign root");
    ca_from(params, key, cert, cn)
}

/// DER OCTET STRING holding `n` bytes of 0x50.
fn der_octet_string(n: usize) -> Vec<u8> {
    let mut out = vec![0x04];
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let len = n.to_be_bytes();
        let len = &len[len.iter().position(|&b| b != 0).unwrap()..];
        out.push(0x80 | len.len() as u8);
        out.extend_from_slice(len);
    }
    out.resize(out.len() + n, 0x50);
    out
}

impl Ca {
    /// EC P-256 intermediate CA signed by `self` (CA, keyCertSign + cRLSign).
    pub fn intermediate(&self, cn: &str) -> Ca {
        self.intermediate_with(cn, KeyKind::EcP256)
    }

    /// Intermediate CA with the given key kind, signed by `self`.
    pub fn intermediate_with(&self, cn: &str, key: KeyKind) -> Ca {
        let key = key.generate();
        let mut params = ca_params(cn);
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign intermediate");
        ca_from(params, key, cert, cn)
    }

    /// EC P-256 intermediate CA signed by `self`, valid from `not_before` to `not_after`.
    pub fn intermediate_valid(
        &self,
        cn: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Ca {
        let key = KeyKind::EcP256.generate();
        let mut params = ca_params(cn);
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign intermediate");
        ca_from(params, key, cert, cn)
    }

    /// `n` intermediates below `self`, each signed by the previous one; `[0]` is signed by
    /// `self`, the last one is the deepest (sign the leaf with it).
    pub fn chain_of(&self, n: usize) -> Vec<Ca> {
        let mut out: Vec<Ca> = Vec::with_capacity(n);
        for i in 1..=n {
            let cn = format!("{} sub {i}", self.name);
            let next = out.last().unwrap_or(self).intermediate(&cn);
            out.push(next);
        }
        out
    }

    /// Leaf signed by `self`.
    pub fn leaf(&self, spec: &LeafSpec) -> Leaf {
        let key = spec.key.generate();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for (ty, value) in &spec.subject {
            // rcgen keys DNs by attribute type: a repeat would silently replace the first.
            assert!(
                params.distinguished_name.get(ty).is_none(),
                "rcgen cannot encode {ty:?} twice in one DN"
            );
            params.distinguished_name.push(ty.clone(), value.clone());
        }
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.serial_number = spec.serial.as_deref().map(SerialNumber::from_slice);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = spec.eku.clone();
        params.use_authority_key_identifier_extension = true;
        params.subject_alt_names = spec
            .server_names
            .iter()
            .map(|name| match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.as_str().try_into().expect("DNS SAN")),
            })
            .chain(spec.sans.iter().cloned())
            .collect();
        params.custom_extensions = spec.extensions.clone();
        if spec.pad_bytes > 0 {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    PAD_EXTENSION_OID,
                    der_octet_string(spec.pad_bytes),
                ));
        }
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let der = cert.der().to_vec();
        Leaf {
            serial: raw_serial_of(&der),
            cert_pem: cert.pem(),
            der,
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            key: spec.key,
        }
    }

    /// Server leaf: CN = first name, EKU serverAuth, SANs from `names` (IPs as IP SANs).
    pub fn server_leaf(&self, names: &[&str]) -> Leaf {
        self.leaf(&LeafSpec {
            subject: vec![(
                DnType::CommonName,
                DnValue::from(*names.first().unwrap_or(&"server")),
            )],
            eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
            server_names: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    /// CRL signed by `self` with explicit validity (e.g. a stale CRL: `next_update` in the
    /// past; rcgen refuses `next_update <= this_update`). CRL number 1; each entry revoked
    /// at `this_update`, reason keyCompromise. Serials are content bytes as in
    /// [`Leaf::serial`] (rcgen strips leading 0x00 and re-adds one if the high bit is set).
    pub fn crl_at(
        &self,
        revoked_serials: &[&[u8]],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Crl {
        self.crl_with(
            revoked_serials,
            this_update,
            next_update,
            (KeyIdMethod::Sha256, 1),
        )
    }

    /// Like [`Ca::crl_at`], with CRL number `number`.
    pub fn crl_numbered(
        &self,
        revoked_serials: &[&[u8]],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        number: u64,
    ) -> Crl {
        let method = (KeyIdMethod::Sha256, number);
        self.crl_with(revoked_serials, this_update, next_update, method)
    }

    /// CRL like [`Ca::crl`] whose authority key identifier claims `key_id` instead of this
    /// CA's own key: a CRL that says it comes from another CA's key (forged or damaged).
    pub fn crl_claiming_key_id(&self, key_id: &[u8], revoked_serials: &[&[u8]]) -> Crl {
        let now = OffsetDateTime::now_utc();
        self.crl_with(
            revoked_serials,
            now - Duration::hours(1),
            now + Duration::days(7),
            (KeyIdMethod::PreSpecified(key_id.to_vec()), 1),
        )
    }

    fn crl_with(
        &self,
        revoked_serials: &[&[u8]],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        (key_identifier_method, number): (KeyIdMethod, u64),
    ) -> Crl {
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: this_update,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method,
        };
        let crl = params.signed_by(&self.issuer).expect("sign CRL");
        Crl {
            der: crl.der().to_vec(),
            pem: crl.pem().expect("CRL PEM"),
        }
    }

    /// The keyIdentifier of this CA's subjectKeyIdentifier extension.
    pub fn key_id(&self) -> Vec<u8> {
        use x509_parser::extensions::ParsedExtension;
        let (_, cert) = x509_parser::parse_x509_certificate(&self.der).expect("CA parses");
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .expect("rcgen writes a subject key identifier for CAs")
    }

    /// CRL (this_update now-1h, next_update now+7d, number 1) revoking the given serials.
    pub fn crl(&self, revoked_serials: &[&[u8]]) -> Crl {
        let now = OffsetDateTime::now_utc();
        self.crl_at(
            revoked_serials,
            now - Duration::hours(1),
            now + Duration::days(7),
        )
    }

    pub fn crl_der(&self, revoked_serials: &[&[u8]]) -> Vec<u8> {
        self.crl(revoked_serials).der
    }

    /// PEM ("X509 CRL").
    pub fn crl_pem(&self, revoked_serials: &[&[u8]]) -> String {
        self.crl(revoked_serials).pem
    }

    /// A CRL of `self` written byte by byte, so that its serials are exactly the given INTEGER
    /// contents (rcgen would re-encode them minimally): e.g. with a redundant leading 0x00.
    /// Needs an EC P-256 CA. thisUpdate now-1h, nextUpdate now+7d, CRL number 1.
    pub fn crl_with_raw_serials(&self, serials: &[&[u8]]) -> Crl {
        use rcgen::SigningKey;
        const ECDSA_SHA256: &[u8] = &[
            0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02,
        ];
        let (_, cert) = x509_parser::parse_x509_certificate(&self.der).expect("CA parses");
        let now = OffsetDateTime::now_utc();
        let utc = |t: OffsetDateTime| {
            let text = format!(
                "{:02}{:02}{:02}{:02}{:02}{:02}Z",
                t.year() % 100,
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            der_tlv(0x17, text.as_bytes())
        };
        let entries: Vec<u8> = serials
            .iter()
            .flat_map(|serial| {
                der_tlv(
                    0x30,
                    &[der_tlv(0x02, serial), utc(now - Duration::hours(1))].concat(),
                )
            })
            .collect();
        let crl_number = der_tlv(
            0x30,
            &[
                der_tlv(0x06, &[0x55, 0x1D, 0x14]),
                der_tlv(0x04, &der_tlv(0x02, &[1])),
            ]
            .concat(),
        );
        let tbs = der_tlv(
            0x30,
            &[
                der_tlv(0x02, &[1]),
                ECDSA_SHA256.to_vec(),
                cert.subject().as_raw().to_vec(),
                utc(now - Duration::hours(1)),
                utc(now + Duration::days(7)),
                der_tlv(0x30, &entries),
                der_tlv(0xA0, &der_tlv(0x30, &crl_number)),
            ]
            .concat(),
        );
        let signature = self.issuer.key().sign(&tbs).expect("sign CRL");
        let bits = [&[0u8][..], &signature].concat();
        let der = der_tlv(
            0x30,
            &[tbs, ECDSA_SHA256.to_vec(), der_tlv(0x03, &bits)].concat(),
        );
        Crl {
            pem: String::from_utf8(pem_of("X509 CRL", &der)).expect("PEM is ASCII"),
            der,
        }
    }

    /// The CA's private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    pub fn cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.der.clone())
    }
}

/// One DER element: tag, definite length, contents.
pub fn der_tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// PEM text of one DER object under `label`.
pub fn pem_of(label: &str, der: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

/// A signed CRL.
#[derive(Clone, Debug)]
pub struct Crl {
    pub der: Vec<u8>,
    pub pem: String,
}

impl Crl {
    pub fn rustls_der(&self) -> CertificateRevocationListDer<'static> {
        CertificateRevocationListDer::from(self.der.clone())
    }
}

impl Leaf {
    pub fn cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.der.clone())
    }

    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// Leaf followed by the given CAs (leaf first, then issuer upwards).
    pub fn chain_der(&self, cas: &[&Ca]) -> Vec<CertificateDer<'static>> {
        std::iter::once(self.cert_der())
            .chain(cas.iter().map(|ca| ca.cert_der()))
            .collect()
    }

    /// PEM bundle: leaf followed by the given CAs.
    pub fn chain_pem(&self, cas: &[&Ca]) -> String {
        std::iter::once(self.cert_pem.as_str())
            .chain(cas.iter().map(|ca| ca.pem.as_str()))
            .collect()
    }
}

/// A whole standard scenario in one call.
pub struct Pki {
    /// Client trust anchor ("certgate test root").
    pub root: Ca,
    /// Issues the client certificates ("certgate test intermediate").
    pub inter: Ca,
    /// Separate root that issues `server` (what test clients trust for the server).
    pub server_ca: Ca,
    /// Server leaf for "localhost" and 127.0.0.1, signed directly by `server_ca`.
    pub server: Leaf,
    /// CN=client, via `inter`.
    pub good: Leaf,
    /// CN=revoked, via `inter`, listed in `inter_crl`.
    pub revoked: Leaf,
    /// CRL of `inter` revoking `revoked`.
    pub inter_crl: Crl,
    /// Empty CRL of `root`.
    pub root_crl: Crl,
}

impl Pki {
    pub fn new() -> Self {
        let root = root_ca("certgate test root");
        let inter = root.intermediate("certgate test intermediate");
        let server_ca = root_ca("certgate test server CA");
        let server = server_ca.server_leaf(&["localhost", "127.0.0.1"]);
        let good = inter.leaf(&LeafSpec::client("client"));
        let revoked = inter.leaf(&LeafSpec::client("revoked"));
        Pki {
            inter_crl: inter.crl(&[&revoked.serial]),
            root_crl: root.crl(&[]),
            root,
            inter,
            server_ca,
            server,
            good,
            revoked,
        }
    }

    /// Both CRLs (inter then root) as one PEM bundle.
    pub fn crls_pem(&self) -> String {
        format!("{}{}", self.inter_crl.pem, self.root_crl.pem)
    }

    pub fn crls_der(&self) -> Vec<CertificateRevocationListDer<'static>> {
        vec![self.inter_crl.rustls_der(), self.root_crl.rustls_der()]
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes `contents` to `dir/name` (creating `dir`) and returns the path.
pub fn write_pem(dir: &Path, name: &str, contents: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}
