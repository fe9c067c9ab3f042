//! The PKI both benchmarks start from: a root CA and an intermediate (issuing) CA, EC P-256,
//! as a typical private PKI has them. Each benchmark issues its own leaf below the intermediate.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::macros::datetime;

pub fn key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key generation")
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CountryName, "US");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example Corp");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = datetime!(2024-01-01 00:00:00 UTC);
    params.not_after = datetime!(2044-01-01 00:00:00 UTC);
    params
}

/// Root CA and the intermediate it signed, with issuers for signing below each.
pub struct Cas {
    pub root: Certificate,
    pub root_issuer: Issuer<'static, KeyPair>,
    pub intermediate: Certificate,
    pub intermediate_issuer: Issuer<'static, KeyPair>,
}

pub fn cas(intermediate_cn: &str) -> Cas {
    let root_key = key();
    let root_params = ca_params("Example Corp Root CA");
    let root = root_params.self_signed(&root_key).expect("root CA");
    let root_issuer = Issuer::new(root_params, root_key);

    let intermediate_key = key();
    let mut intermediate_params = ca_params(intermediate_cn);
    intermediate_params.use_authority_key_identifier_extension = true;
    let intermediate = intermediate_params
        .signed_by(&intermediate_key, &root_issuer)
        .expect("intermediate CA");
    Cas {
        root,
        root_issuer,
        intermediate,
        intermediate_issuer: Issuer::new(intermediate_params, intermediate_key),
    }
}
