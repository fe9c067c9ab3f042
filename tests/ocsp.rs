//! OCSP checks of client certificates (SPEC §13) against a real responder, `openssl ocsp`,
//! run on 127.0.0.1 with a delegated signing certificate, for certificates made by `openssl`
//! with the responder in their AIA extension: good, revoked, responder down (hard_fail and
//! soft_fail), the answer cached until nextUpdate, and a responder signature that is not
//! trusted.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

/// A CA made by openssl, with its `openssl ca` database and an OCSP signing certificate.
struct Ca {
    dir: PathBuf,
    ocsp_port: u16,
}

impl Ca {
    fn new(dir: &Path) -> Ca {
        let ocsp_port = free_port();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                "/CN=OCSP Test Root",
            ],
        );
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ndefault_md=sha256\n",
        )
        .unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(
            dir.join("client.ext"),
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n\
                 authorityInfoAccess=OCSP;URI:http://127.0.0.1:{ocsp_port}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("ocsp.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=OCSPSigning\n",
        )
        .unwrap();
        let ca = Ca {
            dir: dir.to_path_buf(),
            ocsp_port,
        };
        ca.issue("ocsp", "/CN=OCSP Responder", "0x0F", "ocsp.ext");
        ca
    }

    /// A certificate signed by the CA, recorded in its database as valid.
    fn issue(&self, name: &str, subj: &str, serial: &str, ext: &str) -> (PathBuf, PathBuf) {
        let (k, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &k,
                "-out",
                &csr,
                "-subj",
                subj,
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                serial,
                "-days",
                "10",
                "-extfile",
                ext,
                "-out",
                &pem,
            ],
        );
        // Recorded as valid (V), so the responder answers `good` for it.
        let serial_hex = openssl(&self.dir, &["x509", "-in", &pem, "-noout", "-serial"]);
        let serial_hex = serial_hex.trim().trim_start_matches("serial=").to_string();
        let line = format!("V\t301231000000Z\t\t{serial_hex}\tunknown\t{subj}\n");
        let mut index = std::fs::read_to_string(self.dir.join("index.txt")).unwrap();
        index.push_str(&line);
        std::fs::write(self.dir.join("index.txt"), index).unwrap();
        (self.dir.join(pem), self.dir.join(k))
    }

    /// Marks a certificate revoked in the database (before the responder starts).
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

    /// `openssl ocsp` answering for this CA, signed by the delegated responder certificate,
    /// with answers valid 5 minutes.
    fn responder(&self, signer: (&str, &str)) -> Responder {
        let mut child = Command::new("openssl")
            .args(["ocsp", "-index", "index.txt", "-port"])
            .arg(self.ocsp_port.to_string())
            .args([
                "-rsigner",
                signer.0,
                "-rkey",
                signer.1,
                "-CA",
                "ca.pem",
                "-nmin",
                "5",
                "-ignore_err",
            ])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the openssl command is needed (scripts/test installs it)");
        // The responder serves one connection at a time and a bare connect wedges it, so
        // readiness is its own announcement on stderr, not a probe.
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("waiting for OCSP client connections") {
                    let _ = ready_tx.send(());
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("openssl ocsp did not start within 10 s");
        Responder(child)
    }
}

struct Responder(Child);

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A verify listener trusting `ca` with `ocsp = mode`.
async fn proxy(pki: &pki::Pki, ca: &Ca, backend: &Backend, mode: &str) -> Proxy {
    let ca_pem = ca.dir.join("ca.pem").display().to_string();
    Proxy::start_edited(
        pki,
        backend.addr,
        "mode = \"verify\"\ntrust_store = \"corp\"",
        "",
        |t| {
            t.replace(
                "ca_certificates_bundle = \"bundle.pem\"",
                &format!("ca_certificates_bundle = {ca_pem:?}\nocsp = \"{mode}\""),
            )
            .replace(
                "revocation_lists = [\"inter.crl.pem\", \"root.crl.der\"]",
                "",
            )
        },
    )
    .await
}

fn client(pki: &pki::Pki, pem: &Path, key: &Path) -> std::sync::Arc<rustls::ClientConfig> {
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
}

#[tokio::test(flavor = "multi_thread")]
async fn leaves_are_checked_with_their_ocsp_responder() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (good, good_key) = ca.issue("good", "/CN=good", "0x1001", "client.ext");
    let (revoked, revoked_key) = ca.issue("revoked", "/CN=revoked", "0x1002", "client.ext");
    let (late, late_key) = ca.issue("late", "/CN=late", "0x1003", "client.ext");
    ca.revoke(&revoked);
    let backend = Backend::start().await;
    let hard = proxy(&pki, &ca, &backend, "hard_fail").await;
    let soft = proxy(&pki, &ca, &backend, "soft_fail").await;
    let responder = ca.responder(("ocsp.pem", "ocsp.key"));
    let url = format!("http://127.0.0.1:{}", ca.ocsp_port);

    assert_eq!(
        get(hard.addr, client(&pki, &good, &good_key), "/")
            .await
            .unwrap(),
        200
    );
    let rec = &hard.conn_records(1)[0];
    assert_eq!(rec["tls_verify_status"], "Success", "{rec}");
    assert!(rec["tls_verify_detail"].is_null(), "{rec}");

    assert!(get(hard.addr, client(&pki, &revoked, &revoked_key), "/")
        .await
        .is_err());
    let rec = &hard.conn_records(2)[1];
    assert_eq!(rec["tls_verify_status"], "Failed:ClientCertCrlHit", "{rec}");
    let detail = rec["tls_verify_detail"].as_str().unwrap();
    assert!(detail.contains("OCSP") && detail.contains(&url), "{detail}");
    assert_eq!(rec["leaf_client_cert_subject"], "CN=revoked");

    // The responder goes away: answers already had are used until their nextUpdate...
    drop(responder);
    assert_eq!(
        get(hard.addr, client(&pki, &good, &good_key), "/")
            .await
            .unwrap(),
        200
    );
    // ...a certificate never asked about is refused with hard_fail, admitted with soft_fail.
    assert!(get(hard.addr, client(&pki, &late, &late_key), "/")
        .await
        .is_err());
    let rec = &hard.conn_records(4)[3];
    assert_eq!(
        rec["tls_verify_status"], "Failed:ClientCertCrlProcessingError",
        "{rec}"
    );
    assert!(
        rec["tls_verify_detail"].as_str().unwrap().contains(&url),
        "{rec}"
    );
    assert_eq!(
        get(soft.addr, client(&pki, &late, &late_key), "/")
            .await
            .unwrap(),
        200
    );
    let rec = &soft.conn_records(1)[0];
    assert_eq!(rec["tls_verify_status"], "Success", "{rec}");
    let detail = rec["tls_verify_detail"].as_str().unwrap();
    assert!(
        detail.contains("soft_fail") && detail.contains(&url),
        "{detail}"
    );
    // Refused clients never reached the backend.
    assert_eq!(backend.count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_signed_by_a_certificate_the_issuer_did_not_delegate_is_not_believed() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (good, good_key) = ca.issue("good", "/CN=good", "0x2001", "client.ext");
    // A certificate of the CA, but without the OCSP-signing purpose.
    let (rogue, rogue_key) = ca.issue("rogue", "/CN=Not A Responder", "0x2002", "client.ext");
    let backend = Backend::start().await;
    let hard = proxy(&pki, &ca, &backend, "hard_fail").await;
    let _responder = ca.responder((rogue.to_str().unwrap(), rogue_key.to_str().unwrap()));
    assert!(get(hard.addr, client(&pki, &good, &good_key), "/")
        .await
        .is_err());
    let rec = &hard.conn_records(1)[0];
    assert_eq!(
        rec["tls_verify_status"], "Failed:ClientCertCrlProcessingError",
        "{rec}"
    );
    assert!(
        rec["tls_verify_detail"]
            .as_str()
            .unwrap()
            .contains("not for OCSP signing"),
        "{rec}"
    );
}

#[test]
fn an_unknown_ocsp_mode_is_refused_with_its_key_path() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let backend: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let path = write_config(
        dir.path(),
        &pki,
        backend,
        "mode = \"verify\"\ntrust_store = \"corp\"",
        "",
    );
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "ca_certificates_bundle = \"bundle.pem\"",
        "ca_certificates_bundle = \"bundle.pem\"\nocsp = \"maybe\"",
    );
    std::fs::write(&path, text).unwrap();
    let err = certgate::config::load(&path).err().unwrap().to_string();
    assert!(
        err.contains("trust_store.corp.ocsp: \"maybe\" is not one of"),
        "{err}"
    );
}
