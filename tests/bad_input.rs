//! Bad input, case by case, each with its documented outcome: client certificates and chains in
//! verify mode, CRL and CA-bundle files swapped in by a reload, config files, and malformed
//! HTTP/1.1 requests over real TLS. Each client case is also judged offline by `certgate verify`,
//! which must give the status the handshake logged. After every case the proxy must still serve a good client, and
//! a file that is refused must leave the last good trust store in service. Each group runs all of
//! its cases and then fails with the name of every case that did not get its outcome.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::string::{BmpString, TeletexString};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SigningKey,
};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use rustls::sign::CertifiedKey;
use serde_json::Value;
use support::pki::*;
use support::*;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VERIFY: &str = "mode = \"verify\"\ntrust_store = \"corp\"";

/// What differed from a case's documented outcome, if anything.
type Verdict = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Fails with every failed case of a group, by name.
fn report(group: &str, total: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{group}: {} of {total} cases did not get their documented outcome:\n  - {}",
        failures.len(),
        failures.join("\n  - ")
    );
}

/// Uppercase hex of serial content bytes without the DER sign byte, computed here.
fn serial_header(raw: &[u8]) -> String {
    let bytes = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        all => all,
    };
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The connection-log records once there are at least `n` (waits up to 5 s, never panics).
async fn records(log: &Path, n: usize) -> Result<Vec<Value>, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let recs: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if recs.len() >= n {
            return Ok(recs);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the connection log has {} records, expected {n}",
                recs.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- a running verify-mode proxy ----

struct Running {
    pki: Pki,
    backend: Backend,
    proxy: Proxy,
    /// Connection-log records so far (one per connection).
    logged: usize,
}

impl Running {
    async fn verify() -> Running {
        let pki = Pki::new();
        let backend = Backend::start().await;
        let proxy = Proxy::verify(&pki, backend.addr).await;
        Running {
            pki,
            backend,
            proxy,
            logged: 0,
        }
    }

    /// A new proxy on the same PKI (same files, so the same store version), with a new log.
    async fn restart(&mut self) {
        self.proxy = Proxy::verify(&self.pki, self.backend.addr).await;
        self.logged = 0;
    }

    fn good_config(&self) -> Arc<rustls::ClientConfig> {
        client_config(
            &self.pki,
            Some((&self.pki.good, &[&self.pki.inter])),
            &[b"http/1.1"],
        )
    }

    /// One GET on a new connection: the status (or the error) and the connection's log record.
    async fn attempt(
        &mut self,
        cfg: Arc<rustls::ClientConfig>,
    ) -> (std::io::Result<u16>, Result<Value, String>) {
        let r = get(self.proxy.addr, cfg, "/case").await;
        self.logged += 1;
        let rec = match records(&self.proxy.conn_log, self.logged).await {
            Ok(recs) => Ok(recs[self.logged - 1].clone()),
            Err(e) => {
                self.logged = records(&self.proxy.conn_log, 0)
                    .await
                    .map(|r| r.len())
                    .unwrap_or(0);
                Err(e)
            }
        };
        (r, rec)
    }

    async fn good_client_served(&mut self) -> Verdict {
        let (r, rec) = self.attempt(self.good_config()).await;
        ensure!(
            matches!(r, Ok(200)),
            "the next good client was not served: {r:?}, record {rec:?}"
        );
        Ok(())
    }

    async fn revoked_client_refused(&mut self) -> Verdict {
        let cfg = client_config(
            &self.pki,
            Some((&self.pki.revoked, &[&self.pki.inter])),
            &[b"http/1.1"],
        );
        let (r, rec) = self.attempt(cfg).await;
        let rec = rec?;
        ensure!(
            r.is_err() && rec["tls_verify_status"] == "Failed:ClientCertCrlHit",
            "the revoked client is no longer refused: {r:?}, record {rec}"
        );
        Ok(())
    }

    fn version(&self) -> String {
        self.proxy
            .server
            .trust_store_version("corp")
            .unwrap_or_default()
    }
}

// ---- clients presenting whatever a case needs ----

/// Presents a fixed chain, whatever its bytes.
#[derive(Debug)]
struct Presents(Arc<CertifiedKey>);

impl ResolvesClientCert for Presents {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// A presented chain (leaf first, any bytes) and the key the client signs with.
struct Presented {
    chain: Vec<Vec<u8>>,
    key: PrivateKeyDer<'static>,
}

impl Presented {
    fn leaf(leaf: &Leaf, cas: &[&Ca]) -> Presented {
        Presented {
            chain: std::iter::once(leaf.der.clone())
                .chain(cas.iter().map(|c| c.der.clone()))
                .collect(),
            key: leaf.private_key_der(),
        }
    }

    /// A client presenting this chain, whatever signature schemes the server lists. A key rustls
    /// cannot load (RSA-1024) is replaced by a fresh P-256 key: the server judges the
    /// Certificate message before the CertificateVerify.
    fn config(&self, pki: &Pki) -> Arc<rustls::ClientConfig> {
        let provider = provider();
        let signer = provider
            .key_provider
            .load_private_key(self.key.clone_key())
            .or_else(|_| provider.key_provider.load_private_key(p256_key()))
            .expect("a P-256 key loads");
        let certs = self
            .chain
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.server_ca.cert_der()).unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(Presents(Arc::new(CertifiedKey::new(
                certs,
                Arc::new(Insisting(signer)),
            )))));
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

fn pkcs8(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

fn p256_key() -> PrivateKeyDer<'static> {
    pkcs8(&KeyKind::EcP256.generate())
}

fn ca_params(cn: &str) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = now - time::Duration::days(2);
    p.not_after = now + time::Duration::days(3650);
    p.use_authority_key_identifier_extension = true;
    p
}

fn leaf_params(cn: &str) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(365);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    p
}

/// An rcgen issuer for a CA of the test PKI: its name and key are all that signing needs.
fn issuer_of(ca: &Ca) -> Issuer<'static, KeyPair> {
    let key = KeyPair::from_pem(&ca.key_pem()).expect("CA key");
    Issuer::new(ca_params(&ca.name), key)
}

/// A certificate of our own making, able to sign further ones.
struct Made {
    der: Vec<u8>,
    key: KeyPair,
    params: CertificateParams,
}

impl Made {
    fn signed_by(params: CertificateParams, issuer: &Issuer<'_, impl SigningKey>) -> Made {
        let key = KeyKind::EcP256.generate();
        let der = params.signed_by(&key, issuer).expect("sign").der().to_vec();
        Made { der, key, params }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    fn presented(&self, above: &[&[u8]]) -> Presented {
        Presented {
            chain: std::iter::once(self.der.clone())
                .chain(above.iter().map(|c| c.to_vec()))
                .collect(),
            key: pkcs8(&self.key),
        }
    }
}

/// A leaf below an intermediate of our own making (signed by the test root).
fn below_intermediate(pki: &Pki, edit: impl FnOnce(&mut CertificateParams)) -> Presented {
    let mut params = ca_params("odd intermediate");
    edit(&mut params);
    let inter = Made::signed_by(params, &issuer_of(&pki.root));
    Made::signed_by(leaf_params("below odd intermediate"), &inter.issuer()).presented(&[&inter.der])
}

/// The test intermediate issued again by the test root, same name and key, expired yesterday.
fn expired_twin(pki: &Pki) -> String {
    let now = OffsetDateTime::now_utc();
    let mut params = ca_params(&pki.inter.name);
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let key = KeyPair::from_pem(&pki.inter.key_pem()).expect("intermediate key");
    params
        .signed_by(&key, &issuer_of(&pki.root))
        .expect("sign")
        .pem()
}

// ---- openssl-made material ----

/// A client certificate made by `openssl x509 -req`, signed by the test intermediate. Without
/// `extensions` openssl writes an X.509 version 1 certificate.
fn openssl_leaf(
    dir: &Path,
    pki: &Pki,
    name: &str,
    newkey: &[&str],
    serial: &str,
    extensions: bool,
) -> Presented {
    write_pem(dir, "inter.pem", &pki.inter.pem);
    write_pem(dir, "inter.key", &pki.inter.key_pem());
    write_pem(
        dir,
        "client.ext",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let subj = format!("/CN={name}");
    let mut args = vec![
        "req", "-new", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj,
    ];
    args.extend_from_slice(newkey);
    openssl(dir, &args);
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "inter.pem",
        "-CAkey",
        "inter.key",
        "-set_serial",
        serial,
        "-days",
        "10",
        "-out",
        &pem,
    ];
    if extensions {
        args.extend_from_slice(&["-extfile", "client.ext"]);
    }
    openssl(dir, &args);
    Presented {
        chain: vec![
            CertificateDer::from_pem_file(dir.join(&pem))
                .expect("openssl certificate")
                .to_vec(),
            pki.inter.der.clone(),
        ],
        key: PrivateKeyDer::from_pem_file(dir.join(&key)).expect("openssl key"),
    }
}

/// A CRL of the test root made by `openssl ca -gencrl` with `cnf_extra` in its CA section;
/// returns DER.
fn openssl_root_crl(dir: &Path, pki: &Pki, name: &str, cnf_extra: &str) -> Vec<u8> {
    let ca = dir.join(name);
    std::fs::create_dir_all(&ca).unwrap();
    write_pem(&ca, "root.pem", &pki.root.pem);
    write_pem(&ca, "root.key", &pki.root.key_pem());
    write_pem(&ca, "index.txt", "");
    write_pem(&ca, "crlnumber", "01\n");
    write_pem(
        &ca,
        "ca.cnf",
        &format!(
            "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ndefault_md=sha256\ndefault_crl_days=30\n{cnf_extra}"
        ),
    );
    openssl(
        &ca,
        &[
            "ca", "-config", "ca.cnf", "-gencrl", "-keyfile", "root.key", "-cert", "root.pem",
            "-out", "crl.pem",
        ],
    );
    CertificateRevocationListDer::from_pem_file(ca.join("crl.pem"))
        .expect("openssl CRL")
        .to_vec()
}

// ---- group 1: client certificates and chains in verify mode ----

enum Expect {
    /// The handshake fails with `Failed:<code>` in the connection log, and tls_verify_detail
    /// says `says` (any case).
    Refused(&'static str, &'static str),
    /// Served; each listed header reaches the backend once with exactly this value.
    Served(Vec<(&'static str, String)>),
}

/// Cases `certgate verify` cannot judge as the handshake does: it has no CertificateVerify
/// signature to check (SPEC §1: the same checks, minus the key-possession proof).
const HANDSHAKE_ONLY: [&str; 1] = ["CertificateVerify signed with another key"];

/// `certgate verify --json` on the presented chain, as the proxy's listener: its status must be
/// the connection log's, and its exit code must say the same (0 admitted, 1 refused).
fn verify_agrees(run: &Running, presented: &Presented, logged: &str) -> Verdict {
    let dir = run.proxy.dir.path();
    let pem: Vec<u8> = presented
        .chain
        .iter()
        .flat_map(|c| pem("CERTIFICATE", c))
        .collect();
    std::fs::write(dir.join("case.pem"), pem).unwrap();
    let args = [
        "verify",
        "-c",
        "certgate.toml",
        "--listener",
        "web",
        "--cert",
        "case.pem",
        "--json",
    ];
    let (exit, out, err) = support::process::ChildGuard::run(&args, dir);
    let answer: Value = serde_json::from_str(out.trim())
        .map_err(|e| format!("certgate verify printed no JSON ({e}): {out} {err}"))?;
    let status = answer["tls_verify_status"].as_str().unwrap_or("");
    ensure!(
        status == logged,
        "certgate verify says {status} ({}), the handshake {logged}",
        answer["tls_verify_detail"]
    );
    let want_exit = if logged == "Success" { 0 } else { 1 };
    ensure!(
        exit.code() == Some(want_exit),
        "certgate verify exited {exit:?} for {logged}: {err}"
    );
    Ok(())
}

async fn client_case(
    run: &mut Running,
    presented: &Presented,
    expect: &Expect,
    offline_too: bool,
) -> Verdict {
    let before = run.backend.count();
    let (r, rec) = run.attempt(presented.config(&run.pki)).await;
    let rec = rec?;
    let status = rec["tls_verify_status"].as_str().unwrap_or("").to_string();
    if offline_too {
        verify_agrees(run, presented, &status)?;
    }
    let detail = rec["tls_verify_detail"].clone();
    match expect {
        Expect::Refused(code, says) => {
            ensure!(
                r.is_err(),
                "expected Failed:{code}, but the request was answered {r:?} ({status})"
            );
            ensure!(
                run.backend.count() == before,
                "a refused client reached the backend"
            );
            ensure!(
                status == format!("Failed:{code}"),
                "expected Failed:{code}, got {status} ({detail})"
            );
            let d = detail.as_str().unwrap_or("").to_lowercase();
            ensure!(
                d.len() > 10 && d.contains(&says.to_lowercase()),
                "tls_verify_detail should say {says:?}: {rec}"
            );
        }
        Expect::Served(headers) => {
            ensure!(
                matches!(r, Ok(200)),
                "expected 200, got {r:?} ({status}: {detail})"
            );
            ensure!(status == "Success", "expected Success, got {status}");
            let seen = run.backend.last();
            for (name, want) in headers {
                let got = seen.all(name);
                ensure!(
                    got == [want.as_str()],
                    "{name}: expected [{want:?}], got {got:?}"
                );
                let logged = match *name {
                    "x-amzn-mtls-clientcert-subject" => Some("leaf_client_cert_subject"),
                    "x-amzn-mtls-clientcert-serial-number" => {
                        Some("leaf_client_cert_serial_number")
                    }
                    _ => None,
                };
                if let Some(field) = logged {
                    ensure!(
                        rec[field] == want.as_str(),
                        "{field} in the connection log: expected {want:?}, got {}",
                        rec[field]
                    );
                }
            }
        }
    }
    run.good_client_served().await
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_and_chains_get_their_documented_outcome() {
    let mut run = Running::verify().await;
    let pki = &run.pki;
    let tmp = tempfile::tempdir().unwrap();
    let inter = pki.inter.der.as_slice();
    let good = &pki.good;

    // A leaf with an unknown extension marked critical (OID under the documentation PEN).
    let mut critical = leaf_params("critical");
    let mut ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 32473, 2], vec![5, 0]);
    ext.set_criticality(true);
    critical.custom_extensions.push(ext);
    let critical = Made::signed_by(critical, &issuer_of(&pki.inter));

    // Two CAs that certify each other, neither in the bundle.
    let (key_a, key_b) = (KeyKind::EcP256.generate(), KeyKind::EcP256.generate());
    let (params_a, params_b) = (ca_params("loop A"), ca_params("loop B"));
    let loop_a = params_a
        .signed_by(&key_a, &Issuer::from_params(&params_b, &key_b))
        .unwrap();
    let loop_b = params_b
        .signed_by(&key_b, &Issuer::from_params(&params_a, &key_a))
        .unwrap();
    let in_loop = Made::signed_by(
        leaf_params("in a loop"),
        &Issuer::from_params(&params_a, &key_a),
    );

    // A leaf that signs another leaf.
    let not_ca = Made::signed_by(leaf_params("not a CA"), &issuer_of(&pki.inter));
    let below_not_ca = Made::signed_by(leaf_params("below a leaf"), &not_ca.issuer());

    let mut self_signed = leaf_params("self-signed");
    self_signed.use_authority_key_identifier_extension = false;
    let self_key = KeyKind::EcP256.generate();
    let self_signed = self_signed.self_signed(&self_key).unwrap().der().to_vec();

    let huge: Vec<u8> = (0..25u8).map(|i| 0x8A ^ i.wrapping_mul(37)).collect();
    let huge_leaf = pki.inter.leaf(&LeafSpec {
        serial: Some(huge.clone()),
        ..LeafSpec::client("huge serial")
    });
    let long_cn = format!("{}, {}", "x".repeat(2000), "y".repeat(2000));
    let with_subject = |subject: Vec<(DnType, DnValue)>| {
        pki.inter.leaf(&LeafSpec {
            subject,
            ..LeafSpec::default()
        })
    };
    let bmp = with_subject(vec![(
        DnType::CommonName,
        DnValue::BmpString(BmpString::try_from("Zoë 日").unwrap()),
    )]);
    let teletex = with_subject(vec![(
        DnType::CommonName,
        DnValue::TeletexString(TeletexString::try_from("tele, tex").unwrap()),
    )]);
    let empty_subject = with_subject(vec![]);
    let long = with_subject(vec![(DnType::CommonName, DnValue::from(long_cn.as_str()))]);

    let now = OffsetDateTime::now_utc();
    let subject = |v: &str| vec![("x-amzn-mtls-clientcert-subject", v.to_string())];
    let garbage_leaf = |chain: Vec<Vec<u8>>| Presented {
        chain,
        key: p256_key(),
    };
    let cases: Vec<(&str, Presented, Expect)> = vec![
        (
            "malformed DER leaf (arbitrary bytes)",
            garbage_leaf(vec![b"\x30\x82\xff\xffthis is not a certificate".to_vec()]),
            Expect::Refused("ClientCertInvalid", "DER"),
        ),
        (
            "truncated DER leaf",
            garbage_leaf(vec![
                good.der[..good.der.len() / 2].to_vec(),
                inter.to_vec(),
            ]),
            Expect::Refused("ClientCertInvalid", ""),
        ),
        (
            "zero-length certificate",
            garbage_leaf(vec![Vec::new()]),
            Expect::Refused("ClientCertInvalid", ""),
        ),
        (
            "leaf with trailing bytes after its DER",
            Presented {
                chain: vec![[good.der.as_slice(), b"\x00\x00"].concat(), inter.to_vec()],
                key: good.private_key_der(),
            },
            Expect::Refused("ClientCertInvalid", ""),
        ),
        (
            "truncated chain (intermediate missing)",
            Presented::leaf(good, &[]),
            Expect::Refused("ClientCertUntrusted", ""),
        ),
        (
            "chain loop (two CAs certifying each other, neither trusted)",
            in_loop.presented(&[loop_a.der().as_ref(), loop_b.der().as_ref()]),
            Expect::Refused("ClientCertUntrusted", ""),
        ),
        (
            "intermediate presented three times",
            Presented::leaf(good, &[&pki.inter, &pki.inter, &pki.inter]),
            Expect::Served(subject("CN=client")),
        ),
        (
            "leaf presented twice",
            Presented {
                chain: vec![good.der.clone(), good.der.clone(), inter.to_vec()],
                key: good.private_key_der(),
            },
            Expect::Served(subject("CN=client")),
        ),
        (
            "duplicates beyond max_chain_depth (5 certificates)",
            Presented::leaf(good, &[&pki.inter, &pki.inter, &pki.inter, &pki.inter]),
            Expect::Refused("ClientCertMaxChainDepthExceeded", "5 certificates"),
        ),
        (
            "X.509 v1 leaf (openssl x509 -req without extensions)",
            openssl_leaf(
                tmp.path(),
                pki,
                "v1",
                &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
                "4660",
                false,
            ),
            Expect::Refused("ClientCertTypeUnsupported", "version 1"),
        ),
        (
            "RSA-1024 leaf",
            openssl_leaf(
                tmp.path(),
                pki,
                "rsa1024",
                &["-newkey", "rsa:1024"],
                "7",
                true,
            ),
            Expect::Refused("ClientCertTypeUnsupported", "1024-bit"),
        ),
        (
            // Not advertised in the CertificateRequest; this client sends it anyway.
            "Ed25519 leaf sent although not asked for",
            openssl_leaf(
                tmp.path(),
                pki,
                "ed25519",
                &["-newkey", "ed25519"],
                "8",
                true,
            ),
            Expect::Refused("ClientCertTypeUnsupported", "Ed25519 key"),
        ),
        (
            "RSASSA-PSS-keyed leaf (id-RSASSA-PSS public key)",
            openssl_leaf(
                tmp.path(),
                pki,
                "rsapss",
                &["-newkey", "rsa-pss", "-pkeyopt", "rsa_keygen_bits:2048"],
                "9",
                true,
            ),
            Expect::Refused("ClientCertTypeUnsupported", "RSASSA-PSS key"),
        ),
        (
            "unknown critical extension",
            critical.presented(&[inter]),
            Expect::Refused("ClientCertInvalid", "critical"),
        ),
        (
            "25-byte serial with the high bit set",
            Presented::leaf(&huge_leaf, &[&pki.inter]),
            Expect::Served(vec![(
                "x-amzn-mtls-clientcert-serial-number",
                serial_header(&huge),
            )]),
        ),
        (
            // webpki accepts negative serials (RFC 5280 asks users to cope with them); the
            // header is the DER content byte of -5, two's complement 0xFB, like any other byte.
            "negative serial -5 (openssl -set_serial -5)",
            openssl_leaf(
                tmp.path(),
                pki,
                "negative",
                &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
                "-5",
                true,
            ),
            Expect::Served(vec![(
                "x-amzn-mtls-clientcert-serial-number",
                "FB".to_string(),
            )]),
        ),
        (
            "BMPString CN",
            Presented::leaf(&bmp, &[&pki.inter]),
            Expect::Served(subject(r"CN=Zo\C3\AB \E6\97\A5")),
        ),
        (
            "TeletexString CN with a comma",
            Presented::leaf(&teletex, &[&pki.inter]),
            Expect::Served(subject(r"CN=tele\, tex")),
        ),
        (
            "empty subject",
            Presented::leaf(&empty_subject, &[&pki.inter]),
            Expect::Served(subject("")),
        ),
        (
            "4000-character CN with a comma",
            Presented::leaf(&long, &[&pki.inter]),
            Expect::Served(subject(&format!("CN={}", long_cn.replace(',', "\\,")))),
        ),
        (
            "expired intermediate",
            below_intermediate(pki, |p| {
                p.not_before = now - time::Duration::days(30);
                p.not_after = now - time::Duration::days(1);
            }),
            Expect::Refused("ClientCertExpired", "expired"),
        ),
        (
            "intermediate not valid yet",
            below_intermediate(pki, |p| {
                p.not_before = now + time::Duration::days(1);
            }),
            Expect::Refused("ClientCertNotYetValid", "valid only from"),
        ),
        (
            // SPEC §16: the intermediate's CRL (old key) does not speak for the new key.
            "intermediate rolled over to a new key (same name), the old key's CRL in the store",
            below_intermediate(pki, |p| {
                p.distinguished_name = DistinguishedName::new();
                p.distinguished_name
                    .push(DnType::CommonName, "certgate test intermediate");
            }),
            Expect::Served(subject("CN=below odd intermediate")),
        ),
        (
            // RFC 5280 §4.2.1.3: without keyCertSign the key must not verify certificates;
            // OpenSSL refuses such a chain ("key usage does not include certificate signing").
            "intermediate whose key usage lacks keyCertSign",
            below_intermediate(pki, |p| {
                p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
            }),
            Expect::Refused("ClientCertUntrusted", ""),
        ),
        (
            "a leaf used as an intermediate",
            below_not_ca.presented(&[not_ca.der.as_slice(), inter]),
            Expect::Refused("ClientCertUntrusted", ""),
        ),
        (
            "self-signed leaf",
            Presented {
                chain: vec![self_signed],
                key: pkcs8(&self_key),
            },
            Expect::Refused("ClientCertUntrusted", ""),
        ),
        (
            "the bundle's root CA presented as the client certificate",
            Presented {
                chain: vec![pki.root.der.clone()],
                key: PrivateKeyDer::from_pem_slice(pki.root.key_pem().as_bytes()).unwrap(),
            },
            Expect::Refused("ClientCertUntrusted", ""),
        ),
        (
            "CertificateVerify signed with another key",
            Presented {
                chain: vec![good.der.clone(), inter.to_vec()],
                key: p256_key(),
            },
            Expect::Refused("ClientCertRejected", "CertificateVerify"),
        ),
    ];

    let total = cases.len();
    let mut failures = Vec::new();
    for (name, presented, expect) in &cases {
        let offline_too = !HANDSHAKE_ONLY.contains(name);
        if let Err(e) = client_case(&mut run, presented, expect, offline_too).await {
            failures.push(format!("{name}: {e}"));
        }
    }
    report("client certificates", total, &failures);
}

// ---- groups 2 and 3: CRL and bundle files, loaded by a reload ----

enum Contents {
    Bytes(Vec<u8>),
    /// A sparse file of this many bytes (cheap, however large).
    Sparse(u64),
}

enum Load {
    /// The reload reports one problem naming the file and saying each fragment (any case).
    Refused(Vec<&'static str>),
    /// The file goes into service (a new trust_store_version).
    Accepted,
}

struct LoadCase {
    name: &'static str,
    file: &'static str,
    contents: Contents,
    expect: Load,
}

fn write_contents(path: &Path, contents: &Contents) {
    match contents {
        Contents::Bytes(b) => std::fs::write(path, b).unwrap(),
        Contents::Sparse(len) => std::fs::File::create(path)
            .and_then(|f| f.set_len(*len))
            .unwrap(),
    }
}

/// Puts `case` on disk and reloads; whatever happened, the good client must still be served
/// and the revoked one refused. The original files are put back (and reloaded) afterwards.
async fn load_case(
    run: &mut Running,
    case: &LoadCase,
    originals: &[(PathBuf, Vec<u8>)],
    baseline: &str,
) -> Verdict {
    let verdict = load_and_check(run, case, baseline).await;
    for (path, bytes) in originals {
        let name = path.file_name().unwrap();
        std::fs::write(run.proxy.dir.path().join(name), bytes).unwrap();
    }
    let mut problems = run.proxy.server.reload().await;
    let rollback = |p: &String| p.contains("older than the CRL in service");
    if !problems.is_empty() && problems.iter().all(rollback) {
        // The case put a newer CRL in service: the original back is a rollback, refused by
        // design (SPEC §16). Start over from the original files instead.
        run.restart().await;
        problems.clear();
    }
    let restored = run.version();
    verdict?;
    ensure!(
        problems.is_empty() && restored == baseline,
        "putting the original files back did not restore the store: {problems:?}, version {restored}"
    );
    Ok(())
}

async fn load_and_check(run: &mut Running, case: &LoadCase, baseline: &str) -> Verdict {
    write_contents(&run.proxy.dir.path().join(case.file), &case.contents);
    let problems = run.proxy.server.reload().await;
    let version = run.version();
    match &case.expect {
        Load::Refused(says) => {
            ensure!(
                problems.len() == 1,
                "expected one problem, got {problems:?}"
            );
            let p = &problems[0];
            ensure!(
                p.contains(case.file),
                "the problem does not name {}: {p}",
                case.file
            );
            for s in says {
                ensure!(
                    p.to_lowercase().contains(&s.to_lowercase()),
                    "the problem does not say {s:?}: {p}"
                );
            }
            ensure!(
                version == baseline,
                "trust_store_version went from {baseline} to {version}: a refused file is in service"
            );
        }
        Load::Accepted => {
            ensure!(
                problems.is_empty(),
                "expected the file to load: {problems:?}"
            );
            ensure!(
                version != baseline,
                "trust_store_version did not change ({version})"
            );
        }
    }
    run.good_client_served().await?;
    run.revoked_client_refused().await
}

async fn run_load_cases(group: &str, run: &mut Running, cases: &[LoadCase]) {
    let dir = run.proxy.dir.path().to_path_buf();
    let originals: Vec<(PathBuf, Vec<u8>)> = ["bundle.pem", "inter.crl.pem", "root.crl.der"]
        .iter()
        .map(|f| (dir.join(f), std::fs::read(dir.join(f)).unwrap()))
        .collect();
    let baseline = run.version();
    run.good_client_served().await.unwrap();
    run.revoked_client_refused().await.unwrap();
    let mut failures = Vec::new();
    for case in cases {
        if let Err(e) = load_case(run, case, &originals, &baseline).await {
            failures.push(format!("{} ({}): {e}", case.name, case.file));
        }
    }
    report(group, cases.len(), &failures);
}

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn crl_files_get_their_documented_outcome_and_never_replace_a_good_store() {
    let mut run = Running::verify().await;
    let tmp = tempfile::tempdir().unwrap();
    let pki = &run.pki;
    let now = OffsetDateTime::now_utc();
    let imposter = root_ca("certgate test root");
    let stranger = root_ca("some other CA");
    let root_crl = pki.root_crl.der.clone();
    let delta = openssl_root_crl(
        tmp.path(),
        pki,
        "delta",
        "crlnumber=crlnumber\ncrl_extensions=crlext\n[crlext]\ndeltaCRL=critical,DER:02:01:01\n",
    );
    // Without crlnumber and CRL extensions openssl writes a version 1 CRL.
    let v1 = openssl_root_crl(tmp.path(), pki, "v1", "");
    let b = |v: &[u8]| Contents::Bytes(v.to_vec());
    let cases = vec![
        LoadCase {
            name: "bad signature (the root's name, another key)",
            file: "root.crl.der",
            contents: b(&imposter.crl_der(&[&pki.inter.serial])),
            expect: Load::Refused(vec!["signature does not verify"]),
        },
        LoadCase {
            // A CRL of a CA that is not in the bundle speaks for no certificate of this store.
            name: "issuer outside the bundle, revoking the good client's serial",
            file: "root.crl.der",
            contents: b(&stranger.crl_der(&[&pki.good.serial])),
            expect: Load::Accepted,
        },
        LoadCase {
            // A stale CRL stays in use (revocation_lists_expired = "use", the default) and
            // still revokes. Its thisUpdate is not older than the one in service (no rollback).
            name: "expired CRL (nextUpdate in the past) still revokes",
            file: "inter.crl.pem",
            contents: b(pki
                .inter
                .crl_at(
                    &[&pki.revoked.serial],
                    now - time::Duration::hours(1),
                    now - time::Duration::minutes(1),
                )
                .pem
                .as_bytes()),
            expect: Load::Accepted,
        },
        LoadCase {
            // SPEC §16, no rollback: an older thisUpdate that lists nothing would un-revoke.
            name: "the intermediate's CRL with an older thisUpdate than the one in service",
            file: "inter.crl.pem",
            contents: b(pki
                .inter
                .crl_at(
                    &[],
                    now - time::Duration::days(2),
                    now + time::Duration::days(7),
                )
                .pem
                .as_bytes()),
            expect: Load::Refused(vec![
                "is older than the CRL in service",
                "kept the one in service",
            ]),
        },
        LoadCase {
            // Serials compare by value: `00 05` is 5.
            name: "CRL entry for the revoked client with a redundant leading zero byte",
            file: "inter.crl.pem",
            contents: b(pki
                .inter
                .crl_with_raw_serials(&[&[&[0u8][..], &pki.revoked.serial].concat()])
                .pem
                .as_bytes()),
            expect: Load::Accepted,
        },
        LoadCase {
            // SPEC §16 (key rollover): a CRL with the intermediate's name from another key
            // does not apply to chains through the intermediate's key.
            name: "the intermediate's CRL beside one from another key with the same name",
            file: "inter.crl.pem",
            contents: b(format!(
                "{}{}",
                pki.inter_crl.pem,
                root_ca("certgate test intermediate")
                    .crl(&[&pki.good.serial])
                    .pem
            )
            .as_bytes()),
            expect: Load::Accepted,
        },
        LoadCase {
            name: "malformed bytes",
            file: "inter.crl.pem",
            contents: b(b"\x00\x01 these bytes are no CRL at all \xff\xfe"),
            expect: Load::Refused(vec!["not a valid CRL"]),
        },
        LoadCase {
            name: "truncated DER",
            file: "root.crl.der",
            contents: b(&root_crl[..root_crl.len() / 2]),
            expect: Load::Refused(vec!["not a valid CRL"]),
        },
        LoadCase {
            name: "PEM with the wrong label (CERTIFICATE)",
            file: "inter.crl.pem",
            contents: Contents::Bytes(pem("CERTIFICATE", &pki.inter_crl.der)),
            expect: Load::Refused(vec!["no PEM CRL"]),
        },
        LoadCase {
            name: "PEM CRL whose base64 is broken",
            file: "inter.crl.pem",
            contents: b(
                b"-----BEGIN X509 CRL-----\n!!!! not base64 !!!!\n-----END X509 CRL-----\n",
            ),
            expect: Load::Refused(vec!["CRL"]),
        },
        LoadCase {
            name: "a good CRL followed by a broken one in the same PEM file",
            file: "inter.crl.pem",
            contents: b(format!(
                "{}-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
                pki.inter_crl.pem
            )
            .as_bytes()),
            expect: Load::Refused(vec!["not a valid CRL"]),
        },
        LoadCase {
            name: "a certificate where a CRL belongs (DER)",
            file: "root.crl.der",
            contents: b(&pki.root.der),
            expect: Load::Refused(vec!["not a valid CRL"]),
        },
        LoadCase {
            name: "delta CRL (openssl, critical deltaCRLIndicator)",
            file: "root.crl.der",
            contents: b(&delta),
            expect: Load::Refused(vec!["delta"]),
        },
        LoadCase {
            // RFC 5280 v1 CRLs (no version field) are what `openssl ca -gencrl` writes without a
            // crlnumber; certgate cannot use them, and the message must say it is the version.
            name: "version 1 CRL (openssl ca -gencrl without crlnumber)",
            file: "root.crl.der",
            contents: b(&v1),
            expect: Load::Refused(vec!["version"]),
        },
        LoadCase {
            name: "empty file",
            file: "inter.crl.pem",
            contents: b(b""),
            expect: Load::Refused(vec!["CRL"]),
        },
        LoadCase {
            name: "over the 50 MB limit",
            file: "inter.crl.pem",
            contents: Contents::Sparse(50 * 1024 * 1024 + 1),
            expect: Load::Refused(vec!["52428800"]),
        },
    ];
    run_load_cases("CRL files", &mut run, &cases).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ca_bundles_get_their_documented_outcome_and_never_replace_a_good_store() {
    let mut run = Running::verify().await;
    let pki = &run.pki;
    let root = pki.root.pem.as_str();
    let b = |s: String| Contents::Bytes(s.into_bytes());
    let cases = vec![
        LoadCase {
            name: "comments and blank lines",
            file: "bundle.pem",
            contents: b(format!(
                "# corp roots\n\n   \n# rotated 2026-11\n{root}\n\n# end of bundle\n"
            )),
            expect: Load::Accepted,
        },
        LoadCase {
            name: "the same CA twice",
            file: "bundle.pem",
            contents: b(format!("{root}{root}")),
            expect: Load::Accepted,
        },
        LoadCase {
            // Text outside PEM blocks is ignored, as OpenSSL and nginx do.
            name: "a CA followed by trailing text junk",
            file: "bundle.pem",
            contents: b(format!("{root}trailing junk that is not PEM\n\x01\x02\n")),
            expect: Load::Accepted,
        },
        LoadCase {
            // The client still chains through the root; the expired twin refuses nobody else.
            name: "the intermediate issued again already expired (same key) beside the root",
            file: "bundle.pem",
            contents: b(format!("{root}{}", expired_twin(pki))),
            expect: Load::Accepted,
        },
        LoadCase {
            name: "a non-CA certificate after the CA",
            file: "bundle.pem",
            contents: b(format!("{root}{}", pki.good.cert_pem)),
            expect: Load::Refused(vec!["certificate #2", "CN=client", "not a CA"]),
        },
        LoadCase {
            name: "a non-CA certificate before the CA",
            file: "bundle.pem",
            contents: b(format!("{}{root}", pki.revoked.cert_pem)),
            expect: Load::Refused(vec!["certificate #1", "CN=revoked", "not a CA"]),
        },
        LoadCase {
            name: "empty file",
            file: "bundle.pem",
            contents: b(String::new()),
            expect: Load::Refused(vec!["no PEM certificate"]),
        },
        LoadCase {
            name: "only garbage",
            file: "bundle.pem",
            contents: Contents::Bytes(b"\x00\x01garbage, no PEM here\xff\n".to_vec()),
            expect: Load::Refused(vec!["no PEM certificate"]),
        },
        LoadCase {
            name: "only a CRL",
            file: "bundle.pem",
            contents: b(pki.inter_crl.pem.clone()),
            expect: Load::Refused(vec!["no PEM certificate"]),
        },
        LoadCase {
            name: "a CA followed by a truncated PEM block",
            file: "bundle.pem",
            contents: b(format!(
                "{root}-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n"
            )),
            expect: Load::Refused(vec!["certificate #2"]),
        },
        LoadCase {
            name: "a CA followed by a PEM block that is not X.509",
            file: "bundle.pem",
            contents: Contents::Bytes(
                [root.as_bytes(), &pem("CERTIFICATE", b"not a certificate")].concat(),
            ),
            expect: Load::Refused(vec!["certificate #2", "not a valid X.509"]),
        },
        LoadCase {
            name: "over the 4 MB limit",
            file: "bundle.pem",
            contents: Contents::Sparse(4 * 1024 * 1024 + 1),
            expect: Load::Refused(vec!["4194304"]),
        },
    ];
    run_load_cases("CA bundles", &mut run, &cases).await;
}

// ---- group 4: config files ----

#[test]
fn config_errors_name_the_key_path() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let with_headers =
        format!("{VERIFY}\n\n[listener.headers]\nx_amzn_mtls_clientcert_subject = \"HEADER\"\n");
    let path = write_config(
        dir.path(),
        &pki,
        "127.0.0.1:9".parse().unwrap(),
        &with_headers,
        "",
    );
    let base = std::fs::read_to_string(&path).unwrap();
    let parse = |text: &str| certgate::config::from_str(text, &path, dir.path());
    if let Err(e) = parse(&base.replace("HEADER", "X-Client-Subject")) {
        panic!("the base config must be valid: {e}");
    }
    let second_web = "\n[[listener]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\n\
                      certificate_chain = \"server.pem\"\nprivate_key = \"server.key\"\n\
                      backend = \"http://127.0.0.1:9\"\n";
    type Edit = Box<dyn Fn(&str) -> String>;
    let replace = |from: &'static str, to: &'static str| -> Edit {
        Box::new(move |t: &str| t.replace(from, to))
    };
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "response header of the wrong form",
            replace(
                "[listener.headers]",
                "[listener.response_headers]\nx_frame_options = \"ALLOWALL\"\naccess_control_max_age = \"soon\"\n\n[listener.headers]",
            ),
            vec![
                "listener[0] (web).response_headers.x_frame_options: \"ALLOWALL\" is not allowed",
                "listener[0] (web).response_headers.access_control_max_age",
            ],
        ),
        (
            "unknown protocol_version",
            replace(
                "backend = ",
                "default_target_group = \"g\"\n[target_group.g]\ntargets = [\"http://127.0.0.1:9\"]\nprotocol_version = \"HTTP3\"\n\n[[listener.rule]]\npath = \"/never\"\ntarget_group = \"g\"\n#",
            ),
            vec!["target_group.g.protocol_version: \"HTTP3\" is not one of"],
        ),
        (
            "unknown key",
            replace("bind = ", "bindd = \"x\"\nbind = "),
            vec!["listener[0].bindd: unknown key"],
        ),
        (
            "wrong type (bind = 8443)",
            replace("bind = \"127.0.0.1:0\"", "bind = 8443"),
            vec!["listener[0].bind", "invalid type"],
        ),
        (
            "unknown mode value",
            replace("mode = \"verify\"", "mode = \"strict\""),
            vec!["listener[0].mutual_authentication.mode", "strict"],
        ),
        (
            "bind is not IP:port",
            replace("bind = \"127.0.0.1:0\"", "bind = \"localhost:https\""),
            vec!["listener[0] (web).bind: \"localhost:https\" is not an IP:port address"],
        ),
        (
            "two listeners named web",
            Box::new(move |t: &str| format!("{t}{second_web}")),
            vec!["listener[1] (web).name", "used by another listener"],
        ),
        (
            "verify without a trust store",
            replace("trust_store = \"corp\"\n", ""),
            vec!["listener[0] (web).mutual_authentication.trust_store: is required"],
        ),
        (
            "verify with an undefined trust store",
            replace("trust_store = \"corp\"\n", "trust_store = \"nope\"\n"),
            vec![
                "listener[0] (web).mutual_authentication.trust_store",
                "nope",
            ],
        ),
        (
            "s3:// source without a key",
            replace("\"bundle.pem\"", "\"s3://bucket-only\""),
            vec![
                "trust_store.corp.ca_certificates_bundle",
                "s3://bucket-only",
                "s3://bucket/key",
            ],
        ),
        (
            "s3:// source with an unknown query",
            replace("\"root.crl.der\"", "\"s3://b/root.crl?version=3\""),
            vec!["trust_store.corp.revocation_lists[1]", "versionId"],
        ),
        (
            "missing CRL file",
            replace("\"root.crl.der\"", "\"missing.crl\""),
            vec!["trust_store.corp.revocation_lists[1]", "missing.crl"],
        ),
        (
            "refresh_interval_secs = 0",
            replace(
                "[trust_store.corp]",
                "[trust_store.corp]\nrefresh_interval_secs = 0",
            ),
            vec!["trust_store.corp.refresh_interval_secs"],
        ),
        (
            "revocation_lists_expired with an unknown value",
            replace(
                "[trust_store.corp]",
                "[trust_store.corp]\nrevocation_lists_expired = \"ignore\"",
            ),
            vec![
                "trust_store.corp.revocation_lists_expired: \"ignore\" is not one of \"use\", \"reject\"",
            ],
        ),
        (
            "header renamed to a reserved name (Host)",
            replace("\"HEADER\"", "\"Host\""),
            vec![
                "listener[0] (web).headers.x_amzn_mtls_clientcert_subject",
                "reserved",
            ],
        ),
        (
            "header renamed to an invalid name",
            replace("\"HEADER\"", "\"Bad Header\""),
            vec![
                "listener[0] (web).headers.x_amzn_mtls_clientcert_subject",
                "not a valid HTTP header name",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, edit, wanted) in &cases {
        let text = edit(&base).replace("HEADER", "X-Client-Subject");
        let verdict = match parse(&text) {
            Ok(_) => Err("the config was accepted".to_string()),
            Err(e) => {
                let shown = e.to_string();
                let missing: Vec<&&str> = wanted.iter().filter(|w| !shown.contains(**w)).collect();
                if !shown.contains("certgate.toml") {
                    Err(format!("the message does not name the file: {shown}"))
                } else if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!("the message lacks {missing:?}: {shown}"))
                }
            }
        };
        if let Err(e) = verdict {
            failures.push(format!("{name}: {e}"));
        }
    }
    report("config files", cases.len(), &failures);
}

// ---- group 5: malformed requests over TLS from a good client ----

/// Whether `buf` holds one whole response (by Content-Length or the chunked terminator).
fn response_complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let head = text[..end].to_ascii_lowercase();
    let body = &buf[end + 4..];
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= len;
    }
    head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n")
}

/// Sends raw bytes on a new TLS connection and reads one response (until it is whole or the
/// server closes), for at most 10 s.
async fn exchange(
    addr: std::net::SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    request: &[u8],
) -> Result<String, String> {
    let mut tls = connect(addr, cfg)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    // A server that answers early may stop reading; its answer is still there to read.
    let _ = tls.write_all(request).await;
    let _ = tls.flush().await;
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 16 * 1024];
        while !response_complete(&buf) {
            match tls.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    let r = tokio::time::timeout(Duration::from_secs(10), read).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    match r {
        Err(_) => Err(format!("no whole response within 10 s, got {text:?}")),
        Ok(Err(e)) if buf.is_empty() => Err(format!("no response: {e}")),
        Ok(_) => Ok(text),
    }
}

struct RequestCase {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// Fragments the response body must contain (any case).
    body_says: &'static [&'static str],
}

impl RequestCase {
    fn says(self, body_says: &'static [&'static str]) -> Self {
        RequestCase { body_says, ..self }
    }
}

fn req(name: &'static str, request: String, status: u16) -> RequestCase {
    RequestCase {
        name,
        request: request.into_bytes(),
        status,
        body_says: &[],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_their_documented_status_and_the_proxy_keeps_serving() {
    let run = Running::verify().await;
    let cfg = run.good_config();
    let end = "Connection: close\r\n\r\n";
    let pad = |n: usize| "a".repeat(n);
    let many: String = (0..70)
        .map(|i| format!("X-Pad-{i:02}: {}\r\n", pad(1000)))
        .collect();
    let cases = vec![
        req(
            "obs-fold header line",
            format!("GET /fold HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n  b\r\n{end}"),
            400,
        ),
        req(
            "two different Content-Length values",
            format!(
                "POST /cl HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n{end}hello!"
            ),
            400,
        ),
        req(
            // Request smuggling shape: refused below hyper (proxy/framing.rs).
            "Content-Length and Transfer-Encoding",
            format!(
                "POST /clte HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n{end}5\r\nhello\r\n0\r\n\r\n"
            ),
            400,
        )
        .says(&["both Content-Length and Transfer-Encoding"]),
        req(
            "Transfer-Encoding, then Content-Length",
            format!(
                "POST /tecl HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n{end}5\r\nhello\r\n0\r\n\r\n"
            ),
            400,
        )
        .says(&["both Content-Length and Transfer-Encoding"]),
        RequestCase {
            // Dropped before forwarding (the `_` spellings are never framing to certgate, and
            // must not become framing for a backend that maps `_` to `-`).
            body_says: &["backend saw /under"],
            ..req(
                "Transfer_Encoding and Content_Length in underscore spelling",
                format!(
                    "POST /under HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\
                     Transfer_Encoding: chunked\r\nContent_Length: 3\r\n{end}hello"
                ),
                200,
            )
        },
        req(
            "space in a header name",
            format!("GET / HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n{end}"),
            400,
        ),
        req(
            "control byte in a header name",
            format!("GET / HTTP/1.1\r\nHost: localhost\r\nBad\x01Name: x\r\n{end}"),
            400,
        ),
        req(
            "NUL in a header value",
            format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Nul: a\0b\r\n{end}"),
            400,
        ),
        req(
            "absurd request line (control byte in the method, HTTP/9.9)",
            format!("\x7fGET /%%% HTTP/9.9\r\nHost: localhost\r\n{end}"),
            400,
        ),
        req(
            "request target of 70 KB",
            format!("GET /{} HTTP/1.1\r\nHost: localhost\r\n{end}", pad(70_000)),
            414,
        ),
        req(
            "absolute URI naming another host",
            format!("GET http://evil.example/x HTTP/1.1\r\nHost: localhost\r\n{end}"),
            421,
        ),
        req(
            "Host other than the TLS server name",
            format!("GET /x HTTP/1.1\r\nHost: evil.example\r\n{end}"),
            421,
        ),
        req(
            "two Host lines naming different hosts",
            format!("GET /x HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n{end}"),
            400,
        )
        .says(&["2 Host header fields"]),
        req(
            "two identical Host lines",
            format!("GET /x HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n{end}"),
            400,
        )
        .says(&["2 Host header fields"]),
        RequestCase {
            request: b"GET /x HTTP/1.1\r\nHost: evil.example\xff\r\nConnection: close\r\n\r\n"
                .to_vec(),
            ..req("Host with a byte that is not text", String::new(), 400)
                .says(&["evil.example\\xff", "not a valid host"])
        },
        req(
            "Host with userinfo",
            format!("GET /x HTTP/1.1\r\nHost: user@localhost\r\n{end}"),
            400,
        )
        .says(&["not a valid host"]),
        req(
            "Host with a space",
            format!("GET /x HTTP/1.1\r\nHost: local host\r\n{end}"),
            400,
        )
        .says(&["not a valid host"]),
        RequestCase {
            body_says: &["backend saw /ten"],
            ..req(
                "HTTP/1.0 request",
                "GET /ten HTTP/1.0\r\nHost: localhost\r\n\r\n".to_string(),
                200,
            )
        },
        req(
            "HTTP/1.0 request with Transfer-Encoding",
            "POST /ten HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_string(),
            400,
        ),
        req(
            "non-HTTP bytes after the handshake",
            "\u{16}\u{3}\u{1}\0\u{5}hello\0\u{1} garbage\r\n\r\n".to_string(),
            400,
        ),
        req(
            "one header of exactly 16 KiB",
            format!("GET /edge HTTP/1.1\r\nHost: localhost\r\nX-Edge: {}\r\n{end}", pad(16384)),
            200,
        ),
        RequestCase {
            body_says: &["16384"],
            ..req(
                "one header of 20 KB",
                format!("GET /big HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n{end}", pad(20_000)),
                431,
            )
        },
        req(
            "request head over twice max_request_header_bytes",
            format!(
                "GET /huge HTTP/1.1\r\nHost: localhost\r\n{}{end}",
                (0..60).map(|i| format!("X-H{i}: {}\r\n", pad(2500))).collect::<String>()
            ),
            431,
        )
        .says(&["request head is larger than 131072 bytes"]),
        req(
            "101 header fields",
            format!(
                "GET /count HTTP/1.1\r\nHost: localhost\r\n{}{end}",
                (0..100).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
            ),
            431,
        )
        .says(&["more than 100 header fields"]),
        RequestCase {
            body_says: &["65536"],
            ..req(
                "70 KB of headers in 1 KB fields",
                format!("GET /many HTTP/1.1\r\nHost: localhost\r\n{many}{end}"),
                431,
            )
        },
        RequestCase {
            body_says: &["upgrades", "not supported"],
            ..req(
                "Upgrade: h2c",
                "GET /h2c HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                    .to_string(),
                501,
            )
        },
        RequestCase {
            // Forwarded; a target that does not switch protocols answers as usual.
            body_says: &["backend saw /ws"],
            ..req(
                "Upgrade: websocket to a target that does not upgrade",
                "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                    .to_string(),
                200,
            )
        },
        RequestCase {
            body_says: &["not supported"],
            ..req(
                "CONNECT",
                "CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n".to_string(),
                501,
            )
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let verdict = async {
            let resp = exchange(run.proxy.addr, cfg.clone(), &case.request).await?;
            let status = status_of(&resp);
            let head = resp.lines().next().unwrap_or("");
            ensure!(
                status == Some(case.status),
                "expected {}, got {head:?}",
                case.status
            );
            let body = resp
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_lowercase())
                .unwrap_or_default();
            for s in case.body_says {
                ensure!(
                    body.contains(&s.to_lowercase()),
                    "the body does not say {s:?}: {body:?}"
                );
            }
            let next = get(run.proxy.addr, cfg.clone(), "/next").await;
            ensure!(
                matches!(next, Ok(200)),
                "the next good request on a new connection got {next:?}"
            );
            Ok::<(), String>(())
        };
        if let Err(e) = verdict.await {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    report("requests", cases.len(), &failures);
}
