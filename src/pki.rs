//! `certgate pki demo`: a small PKI for trying every case by hand — a root and an intermediate,
//! a server certificate for localhost, good, revoked and expired clients, and the CRLs.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use time::macros::datetime;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot generate the demo PKI: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The files `pki demo` writes, by name.
pub const FILES: [&str; 14] = [
    "root-ca.pem",
    "root-ca.key",
    "intermediate-ca.pem",
    "intermediate-ca.key",
    "ca-bundle.pem",
    "intermediate.crl.pem",
    "server.pem",
    "server.key",
    "good-client.pem",
    "good-client.key",
    "revoked-client.pem",
    "revoked-client.key",
    "expired-client.pem",
    "expired-client.key",
];

fn name(cn: &str, ou: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "certgate demo");
    dn.push(DnType::OrganizationalUnitName, ou);
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(cn, "demo CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = datetime!(2025-01-01 00:00:00 UTC);
    p.not_after = datetime!(2045-01-01 00:00:00 UTC);
    p
}

struct Made {
    cert_pem: String,
    key_pem: String,
    serial: Vec<u8>,
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    serial: &[u8],
    valid: (OffsetDateTime, OffsetDateTime),
    server: bool,
) -> Result<Made, rcgen::Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = name(cn, if server { "servers" } else { "clients" });
    p.serial_number = Some(SerialNumber::from_slice(serial));
    p.not_before = valid.0;
    p.not_after = valid.1;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    if server {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
        ];
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let cert = p.signed_by(&key, issuer)?;
    Ok(Made {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        serial: serial.to_vec(),
    })
}

/// Generates the demo PKI in memory: `(file name, contents)` for every name in [`FILES`].
pub fn generate() -> Result<Vec<(&'static str, String)>, PkiError> {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let root_params = ca_params("certgate demo root CA");
    let root_cert = root_params.self_signed(&root_key)?;
    let root_pem = root_cert.pem();
    let root_key_pem = root_key.serialize_pem();
    let root = Issuer::new(root_params, root_key);

    let inter_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut inter_params = ca_params("certgate demo intermediate CA");
    inter_params.use_authority_key_identifier_extension = true;
    let inter_cert = inter_params.signed_by(&inter_key, &root)?;
    let inter_pem = inter_cert.pem();
    let inter_key_pem = inter_key.serialize_pem();
    let inter = Issuer::new(inter_params, inter_key);

    let long = (
        datetime!(2025-01-01 00:00:00 UTC),
        datetime!(2045-01-01 00:00:00 UTC),
    );
    let server = leaf(&root, "localhost", &[0x10, 0x01], long, true)?;
    let good = leaf(&inter, "good-client", &[0x20, 0x01], long, false)?;
    // High bit set: the serial header must show it without the DER sign byte.
    let revoked = leaf(&inter, "revoked-client", &[0xA0, 0x02], long, false)?;
    let expired = leaf(
        &inter,
        "expired-client",
        &[0x20, 0x03],
        (
            datetime!(2020-01-01 00:00:00 UTC),
            datetime!(2021-01-01 00:00:00 UTC),
        ),
        false,
    )?;

    let crl = CertificateRevocationListParams {
        this_update: datetime!(2025-01-01 00:00:00 UTC),
        next_update: datetime!(2045-01-01 00:00:00 UTC),
        crl_number: SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from_slice(&revoked.serial),
            revocation_time: datetime!(2025-01-02 00:00:00 UTC),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&inter)?;

    // Client files carry leaf + intermediate, as most clients send them.
    let chain = |m: &Made| format!("{}{}", m.cert_pem, inter_pem);
    Ok(vec![
        ("root-ca.pem", root_pem.clone()),
        ("root-ca.key", root_key_pem),
        ("intermediate-ca.pem", inter_pem.clone()),
        ("intermediate-ca.key", inter_key_pem),
        (
            "ca-bundle.pem",
            format!(
                "# certgate demo trust store. Every certificate here is a trust anchor, so clients\n\
                 # that send only their leaf (openssl s_client without -cert_chain) verify too.\n\
                 # root CA\n{root_pem}# intermediate CA\n{inter_pem}"
            ),
        ),
        ("intermediate.crl.pem", crl.pem()?),
        ("server.pem", server.cert_pem.clone()),
        ("server.key", server.key_pem),
        ("good-client.pem", chain(&good)),
        ("good-client.key", good.key_pem),
        ("revoked-client.pem", chain(&revoked)),
        ("revoked-client.key", revoked.key_pem),
        ("expired-client.pem", chain(&expired)),
        ("expired-client.key", expired.key_pem),
    ])
}

/// Writes the demo PKI into `dir`, creating it. A second run onto the same directory replaces
/// the files it wrote before.
pub fn write_demo(dir: &Path) -> Result<Vec<PathBuf>, PkiError> {
    std::fs::create_dir_all(dir).map_err(|error| PkiError::Write {
        path: dir.to_path_buf(),
        error,
    })?;
    let mut out = Vec::new();
    for (file, contents) in generate()? {
        let path = dir.join(file);
        write_file(&path, contents.as_bytes(), is_private_key(file))?;
        out.push(path);
    }
    Ok(out)
}

/// Private keys are the demo files named `*.key`.
pub fn is_private_key(file: &str) -> bool {
    file.ends_with(".key")
}

/// Writes `contents` to `path` through a new file in the same directory, renamed over `path`.
///
/// The new file is created exclusively (`O_CREAT|O_EXCL`, which never follows a symlink) with
/// mode 0600 for a private key and 0644 otherwise (less the umask), so a key is never readable
/// by others, not even for a moment. The rename replaces whatever is at `path` (an earlier
/// demo's file, or a symlink planted there) without following it, so no other file is written.
pub fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), PkiError> {
    let failed = |error| PkiError::Write {
        path: path.to_path_buf(),
        error,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        failed(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let suffix: u64 = rand::random();
    let temp = dir.join(format!(".{}.{suffix:016x}.tmp", name.to_string_lossy()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if private { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = private;
    let written = options
        .open(&temp)
        .and_then(|mut f| {
            f.write_all(contents)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map_err(failed)
}
