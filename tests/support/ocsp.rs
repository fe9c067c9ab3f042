//! A CA made by `openssl`, with its `openssl ca` database, a delegated OCSP signing
//! certificate, and `openssl ocsp` answering for it on 127.0.0.1 (optionally under faketime,
//! so that its answers are already expired). Certificates it issues name the responder in
//! their AIA extension.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, openssl, openssl_root_ca, openssl_sign};

pub struct Ca {
    pub dir: PathBuf,
    pub ocsp_port: u16,
}

/// Extensions of a client certificate whose AIA names `port`'s responder.
pub fn client_ext(port: u16) -> String {
    format!(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n\
         authorityInfoAccess=OCSP;URI:http://127.0.0.1:{port}\n"
    )
}

/// Extensions of a server certificate for `localhost`, with `port`'s responder in its AIA
/// when given.
pub fn server_ext(port: Option<u16>) -> String {
    let mut ext = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
                   extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n"
        .to_string();
    if let Some(port) = port {
        ext.push_str(&format!(
            "authorityInfoAccess=OCSP;URI:http://127.0.0.1:{port}\n"
        ));
    }
    ext
}

impl Ca {
    pub fn new(dir: &Path) -> Ca {
        let ocsp_port = free_port();
        openssl_root_ca(dir, "/CN=OCSP Test Root");
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ndefault_md=sha256\n",
        )
        .unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("client.ext"), client_ext(ocsp_port)).unwrap();
        std::fs::write(dir.join("server.ext"), server_ext(Some(ocsp_port))).unwrap();
        std::fs::write(dir.join("server-no-aia.ext"), server_ext(None)).unwrap();
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
    pub fn issue(&self, name: &str, subj: &str, serial: &str, ext: &str) -> (PathBuf, PathBuf) {
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
        openssl_sign(&self.dir, &csr, serial, ext, &pem);
        // Recorded as valid (V), so the responder answers `good` for it.
        let serial_hex = openssl(&self.dir, &["x509", "-in", &pem, "-noout", "-serial"]);
        let serial_hex = serial_hex.trim().trim_start_matches("serial=").to_string();
        let line = format!("V\t301231000000Z\t\t{serial_hex}\tunknown\t{subj}\n");
        let mut index = std::fs::read_to_string(self.dir.join("index.txt")).unwrap();
        index.push_str(&line);
        std::fs::write(self.dir.join("index.txt"), index).unwrap();
        (self.dir.join(pem), self.dir.join(k))
    }

    /// The file `{name}-chain.pem`: the certificate `pem`, then the CA.
    pub fn chain(&self, name: &str, pem: &Path) -> PathBuf {
        let mut text = std::fs::read_to_string(pem).unwrap();
        text.push_str(&std::fs::read_to_string(self.dir.join("ca.pem")).unwrap());
        let path = self.dir.join(format!("{name}-chain.pem"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Marks a certificate revoked in the database (before the responder starts).
    pub fn revoke(&self, pem: &Path) {
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

    /// `openssl ocsp` answering for this CA, signed by `signer` (certificate, key), with
    /// answers valid 5 minutes.
    pub fn responder(&self, signer: (&str, &str)) -> Responder {
        self.responder_at(signer, None)
    }

    /// The delegated responder, its clock set back by `faketime` (e.g. `-1d`) when given.
    pub fn responder_at(&self, signer: (&str, &str), faketime: Option<&str>) -> Responder {
        self.responder_with(signer, faketime, true)
    }

    /// The responder; without `next_update` its answers carry no nextUpdate.
    pub fn responder_with(
        &self,
        signer: (&str, &str),
        faketime: Option<&str>,
        next_update: bool,
    ) -> Responder {
        let mut cmd = match faketime {
            Some(offset) => {
                let mut c = Command::new("faketime");
                c.args(["-f", offset, "openssl"]);
                c
            }
            None => Command::new("openssl"),
        };
        let mut child = cmd
            .args(["ocsp", "-index", "index.txt", "-port"])
            .arg(self.ocsp_port.to_string())
            .args([
                "-rsigner",
                signer.0,
                "-rkey",
                signer.1,
                "-CA",
                "ca.pem",
                "-ignore_err",
            ])
            .args(if next_update {
                &["-nmin", "5"][..]
            } else {
                &[]
            })
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl (and faketime) are needed (scripts/test installs them)");
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

    /// The delegated responder's certificate and key.
    pub fn delegated() -> (&'static str, &'static str) {
        ("ocsp.pem", "ocsp.key")
    }
}

pub struct Responder(Child);

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A verify listener trusting `ca` with `ocsp = mode`.
pub async fn proxy(
    pki: &super::pki::Pki,
    ca: &Ca,
    backend: &super::Backend,
    mode: &str,
) -> super::Proxy {
    let ca_pem = ca.dir.join("ca.pem").display().to_string();
    super::Proxy::start_edited(
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

pub fn client(
    pki: &super::pki::Pki,
    pem: &Path,
    key: &Path,
) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(pem)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.server_ca.cert_der()).unwrap();
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap(),
    )
}
