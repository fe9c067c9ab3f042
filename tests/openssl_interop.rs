//! Certificates and CRLs made by the `openssl` command, as many users make them, checked two
//! ways: certgate's header values must equal what `openssl x509 -nameopt RFC2253` prints (an
//! independent oracle for DN, serial and dates), and the proxy must accept, revoke and refuse
//! them end to end.

mod support;

use std::path::{Path, PathBuf};

use support::*;

/// A CA made by `openssl req -x509`, with an `openssl ca` database for CRLs.
struct OpensslCa {
    dir: PathBuf,
}

impl OpensslCa {
    fn new(dir: &Path) -> OpensslCa {
        openssl_root_ca(dir, "/C=US/O=Acme, Inc./CN=Acme Root");
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ncrlnumber=crlnumber\ndefault_md=sha256\ndefault_crl_days=30\n",
        )
        .unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        std::fs::write(
            dir.join("client.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        OpensslCa {
            dir: dir.to_path_buf(),
        }
    }

    /// A client certificate with `subj` (openssl -subj syntax), `key` as for `-newkey`.
    fn client(
        &self,
        name: &str,
        subj: &str,
        key: &[&str],
        serial: &str,
        multivalue: bool,
    ) -> (PathBuf, PathBuf) {
        let (k, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let mut args = vec![
            "req", "-new", "-nodes", "-utf8", "-keyout", &k, "-out", &csr, "-subj", subj,
        ];
        args.extend_from_slice(key);
        if multivalue {
            args.push("-multivalue-rdn");
        }
        openssl(&self.dir, &args);
        openssl_sign(&self.dir, &csr, serial, "client.ext", &pem);
        (self.dir.join(pem), self.dir.join(k))
    }

    fn revoke(&self, pem: &Path) {
        openssl(
            &self.dir,
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-keyfile",
                "ca.key",
                "-cert",
                "ca.pem",
                "-revoke",
                pem.to_str().unwrap(),
            ],
        );
    }

    fn crl(&self, out: &str) {
        openssl(
            &self.dir,
            &[
                "ca", "-config", "ca.cnf", "-gencrl", "-keyfile", "ca.key", "-cert", "ca.pem",
                "-out", out,
            ],
        );
    }

    /// What openssl itself says, as certgate should print it.
    fn oracle(&self, pem: &Path) -> (String, String, String, String) {
        let p = pem.to_str().unwrap();
        let line = |args: &[&str], prefix: &str| {
            let out = openssl(&self.dir, args);
            out.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {out}"))
                .to_string()
        };
        let subject = line(
            &[
                "x509", "-in", p, "-noout", "-subject", "-nameopt", "RFC2253",
            ],
            "subject=",
        );
        let issuer = line(
            &["x509", "-in", p, "-noout", "-issuer", "-nameopt", "RFC2253"],
            "issuer=",
        );
        let serial = line(&["x509", "-in", p, "-noout", "-serial"], "serial=");
        let iso = |s: String| s.replace(' ', "T");
        let nb = iso(line(
            &[
                "x509",
                "-in",
                p,
                "-noout",
                "-startdate",
                "-dateopt",
                "iso_8601",
            ],
            "notBefore=",
        ));
        let na = iso(line(
            &[
                "x509", "-in", p, "-noout", "-enddate", "-dateopt", "iso_8601",
            ],
            "notAfter=",
        ));
        (
            subject,
            issuer,
            serial,
            format!("NotBefore={nb};NotAfter={na}"),
        )
    }
}

fn der_of(pem: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(pem)
        .unwrap()
        .to_vec()
}

const SUBJECTS: [(&str, &str, bool); 5] = [
    (
        "alb",
        "/C=US/ST=Washington/L=Seattle/O=mTLS/OU=rootCA/CN=rootcamtls.com",
        false,
    ),
    (
        "multi",
        "/C=US/ST=Wash, State/O=Acme \"Q\"/CN=alice+UID=42",
        true,
    ),
    ("utf8", "/DC=com/DC=example/O=Straße/CN=Zoë", false),
    (
        "escapes",
        "/O=#hash;semi<lt>gt\\back/CN= lead and trail ",
        false,
    ),
    ("email", "/serialNumber=123/emailAddress=a@b.c/CN=x", false),
];

#[test]
fn header_values_match_openssl_rfc2253_output() {
    let dir = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(dir.path());
    let serials = [
        "0xFEF257372D5C14D4",
        "0x03A5B1",
        "2",
        "0x00FF",
        "0x7F01020304050607080910111213141516171819",
    ];
    for ((name, subj, multi), serial) in SUBJECTS.iter().zip(serials) {
        let (pem, _) = ca.client(
            name,
            subj,
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            serial,
            *multi,
        );
        let facts = certgate::x509::leaf_facts(&der_of(&pem)).unwrap();
        let (subject, issuer, openssl_serial, validity) = ca.oracle(&pem);
        assert_eq!(facts.subject, subject, "{name}");
        assert_eq!(facts.issuer, issuer, "{name}");
        assert_eq!(facts.serial_hex, openssl_serial, "{name}");
        assert_eq!(facts.validity, validity, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_made_clients_and_crls_work_end_to_end() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(dir.path());
    let (rsa_pem, rsa_key) = ca.client(
        "rsa",
        "/O=Acme/CN=rsa-client",
        &["-newkey", "rsa:2048"],
        "0x1001",
        false,
    );
    let (ec_pem, ec_key) = ca.client(
        "ec",
        "/O=Acme/CN=ec-client",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "0x1002",
        false,
    );
    ca.revoke(&ec_pem);
    ca.crl("ca.crl.pem");
    // A DER copy of the same CRL: both encodings are accepted.
    openssl(
        dir.path(),
        &[
            "crl",
            "-in",
            "ca.crl.pem",
            "-outform",
            "DER",
            "-out",
            "ca.crl.der",
        ],
    );

    let backend = Backend::start().await;
    let cfg_dir = tempfile::tempdir().unwrap();
    let path = write_config(
        cfg_dir.path(),
        &pki,
        backend.addr,
        "mode = \"verify\"\ntrust_store = \"corp\"",
        "",
    );
    let ca_pem = dir.path().join("ca.pem").display().to_string();
    let crl_der = dir.path().join("ca.crl.der").display().to_string();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "ca_certificates_bundle = \"bundle.pem\"",
            &format!("ca_certificates_bundle = {ca_pem:?}"),
        )
        .replace(
            "revocation_lists = [\"inter.crl.pem\", \"root.crl.der\"]",
            &format!("revocation_lists = [{crl_der:?}]"),
        );
    std::fs::write(&path, text).unwrap();
    let server = certgate::app::Server::start(certgate::config::load(&path).unwrap())
        .await
        .unwrap();
    let addr = server.local_addr("web").unwrap();

    let client = |pem: &Path, key: &Path| {
        use rustls::pki_types::pem::PemObject;
        let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(pem)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.server_ca.cert_der()).unwrap();
        std::sync::Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
                .unwrap(),
        )
    };
    assert_eq!(
        get(addr, client(&rsa_pem, &rsa_key), "/").await.unwrap(),
        200
    );
    let seen = backend.last();
    assert_eq!(
        seen.one("x-amzn-mtls-clientcert-subject"),
        ca.oracle(&rsa_pem).0
    );
    assert_eq!(seen.one("x-amzn-mtls-clientcert-serial-number"), "1001");
    assert_eq!(
        seen.one("x-amzn-mtls-clientcert-issuer"),
        "CN=Acme Root,O=Acme\\, Inc.,C=US"
    );
    assert_eq!(
        seen.one("x-amzn-mtls-clientcert-leaf"),
        expected_url_pem(&[&der_of(&rsa_pem)])
    );

    assert!(
        get(addr, client(&ec_pem, &ec_key), "/").await.is_err(),
        "revoked by openssl's CRL"
    );
    let recs = json_lines(&cfg_dir.path().join("conn.log"), 2);
    assert_eq!(
        recs[1]["tls_verify_status"], "Failed:ClientCertCrlHit",
        "{}",
        recs[1]
    );
    assert_eq!(recs[1]["leaf_client_cert_serial_number"], "1002");
}

/// A listener trusting `ca` (no CRLs) in `mode`, and the server CA's PEM path for s_client.
async fn listener_trusting(
    pki: &pki::Pki,
    ca: &OpensslCa,
    backend: &Backend,
    cfg_dir: &Path,
    mode: &str,
) -> (certgate::app::Server, std::net::SocketAddr, PathBuf) {
    let mutual = format!("mode = \"{mode}\"\ntrust_store = \"corp\"");
    let mutual = if mode == "verify" {
        mutual
    } else {
        format!("mode = \"{mode}\"")
    };
    let path = write_config(cfg_dir, pki, backend.addr, &mutual, "");
    let ca_pem = ca.dir.join("ca.pem").display().to_string();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "ca_certificates_bundle = \"bundle.pem\"",
            &format!("ca_certificates_bundle = {ca_pem:?}"),
        )
        .replace(
            "revocation_lists = [\"inter.crl.pem\", \"root.crl.der\"]",
            "",
        );
    std::fs::write(&path, text).unwrap();
    let server = certgate::app::Server::start(certgate::config::load(&path).unwrap())
        .await
        .unwrap();
    let addr = server.local_addr("web").unwrap();
    let server_ca = pki::write_pem(cfg_dir, "server-ca.pem", &pki.server_ca.pem);
    (server, addr, server_ca)
}

/// `openssl s_client` against `addr` with `args`, sending `request`; everything it printed.
async fn s_client(
    addr: std::net::SocketAddr,
    server_ca: &Path,
    args: &[&str],
    request: &str,
) -> String {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-CAfile")
        .arg(server_ca)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the openssl command is needed (scripts/test installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(request.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("s_client finished within 20 s")
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What certgate's key policy accepts, as OpenSSL names the schemes: ECDSA, RSA-PSS with
/// rsaEncryption keys, RSA PKCS#1 v1.5 — no Ed25519, Ed448, ML-DSA or SHA-1.
const ACCEPTED_SCHEMES: &str = "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512:RSA-PSS+SHA256:\
RSA-PSS+SHA384:RSA-PSS+SHA512:RSA+SHA256:RSA+SHA384:RSA+SHA512";

#[tokio::test(flavor = "multi_thread")]
async fn certificate_request_lists_only_the_schemes_of_accepted_keys() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(dir.path());
    let backend = Backend::start().await;
    for mode in ["verify", "passthrough"] {
        let cfg_dir = tempfile::tempdir().unwrap();
        let (_server, addr, server_ca) =
            listener_trusting(&pki, &ca, &backend, cfg_dir.path(), mode).await;
        for version in ["-tls1_3", "-tls1_2"] {
            let out = s_client(addr, &server_ca, &[version], "").await;
            let requested = out
                .lines()
                .find_map(|l| l.strip_prefix("Requested Signature Algorithms: "))
                .unwrap_or_else(|| panic!("{mode} {version}: no requested list in\n{out}"));
            assert_eq!(requested, ACCEPTED_SCHEMES, "{mode} {version}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_holding_ed25519_and_ecdsa_certificates_presents_the_ecdsa_one() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(dir.path());
    let (ed_pem, ed_key) = ca.client(
        "ed",
        "/CN=ed-client",
        &["-newkey", "ed25519"],
        "0x2001",
        false,
    );
    let (ec_pem, ec_key) = ca.client(
        "ec",
        "/CN=ec-client",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "0x2002",
        false,
    );
    let backend = Backend::start().await;
    let cfg_dir = tempfile::tempdir().unwrap();
    let (_server, addr, server_ca) =
        listener_trusting(&pki, &ca, &backend, cfg_dir.path(), "verify").await;
    let request = "GET /both HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    // The Ed25519 certificate comes first, as the one the client would use if it could.
    let out = s_client(
        addr,
        &server_ca,
        &[
            "-quiet",
            "-cert",
            ed_pem.to_str().unwrap(),
            "-key",
            ed_key.to_str().unwrap(),
            "-xcert",
            ec_pem.to_str().unwrap(),
            "-xkey",
            ec_key.to_str().unwrap(),
        ],
        request,
    )
    .await;
    assert!(out.contains("HTTP/1.1 200"), "{out}");
    assert_eq!(
        backend.last().one("x-amzn-mtls-clientcert-subject"),
        "CN=ec-client"
    );
    let recs = json_lines(&cfg_dir.path().join("conn.log"), 1);
    assert_eq!(recs[0]["tls_verify_status"], "Success", "{}", recs[0]);

    // Holding only the Ed25519 certificate, the client finds nothing it may send.
    let out = s_client(
        addr,
        &server_ca,
        &[
            "-quiet",
            "-cert",
            ed_pem.to_str().unwrap(),
            "-key",
            ed_key.to_str().unwrap(),
        ],
        request,
    )
    .await;
    assert!(!out.contains("HTTP/1.1 200"), "{out}");
    let recs = json_lines(&cfg_dir.path().join("conn.log"), 2);
    assert_eq!(
        recs[1]["leaf_client_cert_subject"],
        serde_json::Value::Null,
        "{}",
        recs[1]
    );
}
