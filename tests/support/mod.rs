//! Test harness: a real HTTP backend that records what it receives, the real proxy on
//! 127.0.0.1:0 with a generated PKI on disk, and rustls clients speaking HTTP/1.1 or HTTP/2.
#![allow(dead_code)]

pub mod h2wire;
pub mod jwt;
pub mod ocsp;
pub mod pki;
pub mod process;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use pki::{Ca, Leaf, Pki};

/// One request as the backend saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Every header field in arrival order: (lowercase name, raw value).
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// All values of a header.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of a header; panics if it is absent or repeated.
    pub fn one(&self, name: &str) -> &str {
        let v = self.all(name);
        assert_eq!(v.len(), 1, "header {name}: {v:?} in {:?}", self.headers);
        v[0]
    }

    pub fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }
}

/// A real HTTP/1.1 backend on 127.0.0.1 recording every request.
pub struct Backend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    pub async fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let s = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<Incoming>| {
                        let s = s.clone();
                        async move {
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(n, v)| {
                                    (
                                        n.as_str().to_string(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                })
                                .collect();
                            let path = req.uri().to_string();
                            s.lock().unwrap().push(Seen {
                                method: req.method().to_string(),
                                path: path.clone(),
                                headers,
                            });
                            if path.starts_with("/slow") {
                                tokio::time::sleep(Duration::from_secs(3)).await;
                            }
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(format!(
                                "backend saw {path} with {} body bytes",
                                body.len()
                            ))));
                            // Headers a response-header rule may replace or remove.
                            if path.starts_with("/with-headers") {
                                let h = resp.headers_mut();
                                h.insert("server", "test-backend".parse().unwrap());
                                h.insert("x-frame-options", "ALLOWALL".parse().unwrap());
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Backend { addr, seen }
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("backend saw no request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Files of one proxy instance.
pub struct Proxy {
    pub server: certgate::app::Server,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub conn_log: PathBuf,
    pub access_log: PathBuf,
}

/// Writes the PKI files a proxy needs and returns the config text for one listener.
/// `mutual` is the body of `[listener.mutual_authentication]`; `extra` is appended verbatim.
pub fn write_config(
    dir: &Path,
    pki: &Pki,
    backend: SocketAddr,
    mutual: &str,
    extra: &str,
) -> PathBuf {
    pki::write_pem(dir, "server.pem", &pki.server.cert_pem);
    pki::write_pem(dir, "server.key", &pki.server.key_pem);
    pki::write_pem(
        dir,
        "bundle.pem",
        &format!("# test bundle\n\n{}", pki.root.pem),
    );
    pki::write_pem(dir, "inter.crl.pem", &pki.inter_crl.pem);
    std::fs::write(dir.join("root.crl.der"), &pki.root_crl.der).unwrap();
    let text = format!(
        r#"
[[listener]]
name = "web"
bind = "127.0.0.1:0"
certificate_chain = "server.pem"
private_key = "server.key"
backend = "http://{backend}"

[listener.mutual_authentication]
{mutual}

[trust_store.corp]
ca_certificates_bundle = "bundle.pem"
revocation_lists = ["inter.crl.pem", "root.crl.der"]

[connection_log]
path = "conn.log"

[access_log]
path = "access.log"

{extra}
"#
    );
    let path = dir.join("certgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

impl Proxy {
    pub async fn start(pki: &Pki, backend: SocketAddr, mutual: &str, extra: &str) -> Proxy {
        Self::start_edited(pki, backend, mutual, extra, |t| t).await
    }

    /// Like `start`, with the config text passed through `edit` before the proxy reads it.
    pub async fn start_edited(
        pki: &Pki,
        backend: SocketAddr,
        mutual: &str,
        extra: &str,
        edit: impl FnOnce(String) -> String,
    ) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), pki, backend, mutual, extra);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(text)).unwrap();
        let cfg = certgate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let server = certgate::app::Server::start(cfg)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = server.local_addr("web").unwrap();
        Proxy {
            conn_log: dir.path().join("conn.log"),
            access_log: dir.path().join("access.log"),
            server,
            addr,
            dir,
        }
    }

    pub async fn verify(pki: &Pki, backend: SocketAddr) -> Proxy {
        Self::start(
            pki,
            backend,
            "mode = \"verify\"\ntrust_store = \"corp\"",
            "",
        )
        .await
    }

    /// The connection-log records, waiting (bounded) until at least `n` are written.
    pub fn conn_records(&self, n: usize) -> Vec<serde_json::Value> {
        json_lines(&self.conn_log, n)
    }

    pub fn access_records(&self, n: usize) -> Vec<serde_json::Value> {
        json_lines(&self.access_log, n)
    }
}

/// Reads JSON lines from `path`, waiting up to 5 s for at least `n` of them.
pub fn json_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} lines in {}, have {}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client config trusting the test server CA, presenting `client` (leaf + given CAs).
pub fn client_config(
    pki: &Pki,
    client: Option<(&Leaf, &[&Ca])>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.server_ca.cert_der()).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some((leaf, cas)) => b
            .with_client_auth_cert(leaf.chain_der(cas), leaf.private_key_der())
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// Like [`client_config`] with a certificate, but the client sends it whatever signature
/// schemes the server's CertificateRequest lists, as a careless client may: the server's
/// certificate checks, not the client's choice, then decide.
pub fn client_config_insisting(pki: &Pki, leaf: &Leaf, cas: &[&Ca]) -> Arc<rustls::ClientConfig> {
    let key = provider()
        .key_provider
        .load_private_key(leaf.private_key_der())
        .unwrap();
    let certified = rustls::sign::CertifiedKey::new(leaf.chain_der(cas), Arc::new(Insisting(key)));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.server_ca.cert_der()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(AlwaysSend(Arc::new(certified))));
    Arc::new(cfg)
}

/// Resolves to its one certificate, whatever the server asked for.
#[derive(Debug)]
struct AlwaysSend(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for AlwaysSend {
    fn resolve(
        &self,
        _root_hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A signing key that picks its own scheme, ignoring the ones the server offered.
#[derive(Debug)]
pub struct Insisting(pub Arc<dyn rustls::sign::SigningKey>);

impl rustls::sign::SigningKey for Insisting {
    fn choose_scheme(
        &self,
        _offered: &[rustls::SignatureScheme],
    ) -> Option<Box<dyn rustls::sign::Signer>> {
        use rustls::SignatureScheme as S;
        self.0.choose_scheme(&[
            S::ED25519,
            S::ECDSA_NISTP256_SHA256,
            S::ECDSA_NISTP384_SHA384,
            S::ECDSA_NISTP521_SHA512,
            S::RSA_PSS_SHA256,
        ])
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        self.0.algorithm()
    }
}

pub type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// Connects and completes the client side of the handshake.
pub async fn connect(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timeout"))?
}

/// Sends raw HTTP/1.1 bytes and reads until the server closes; returns the response text.
/// With TLS 1.3 a refused client certificate shows up here, on the first read.
pub async fn raw_http1(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    request: &str,
) -> std::io::Result<String> {
    let mut tls = connect(addr, cfg).await?;
    tls.write_all(request.as_bytes()).await?;
    tls.flush().await?;
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    match r {
        Err(_) => Err(std::io::Error::other("response timeout")),
        Ok(Err(e)) if out.is_empty() => Err(e),
        Ok(_) => Ok(String::from_utf8_lossy(&out).into_owned()),
    }
}

/// Reads one response (Content-Length or chunked body) off a keep-alive connection.
pub async fn h1_read(tls: &mut Tls) -> std::io::Result<(u16, String)> {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let head = text[..end].to_ascii_lowercase();
                let body = &text[end + 4..];
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                let complete = match len {
                    Some(n) => body.len() >= n,
                    None => body.ends_with("0\r\n\r\n"),
                };
                if complete {
                    let status = status_of(&text)
                        .ok_or_else(|| std::io::Error::other(format!("no status in {text:?}")))?;
                    return Ok((status, text));
                }
            }
            let n = tls.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("closed after {:?}", String::from_utf8_lossy(&buf)),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| std::io::Error::other("response timeout"))?
}

/// A simple GET over HTTP/1.1 with `Connection: close`; returns the status code.
pub async fn get(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
) -> std::io::Result<u16> {
    let resp = raw_http1(
        addr,
        cfg,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
    .await?;
    status_of(&resp).ok_or_else(|| std::io::Error::other(format!("no status line in {resp:?}")))
}

pub fn status_of(resp: &str) -> Option<u16> {
    resp.split_whitespace().nth(1)?.parse().ok()
}

/// An HTTP/2 request (ALPN h2) with extra headers; returns the status.
pub async fn get_h2(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<u16, String> {
    let tls = connect(addr, cfg).await.map_err(|e| e.to_string())?;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().uri(format!("https://localhost{path}"));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(http_body_util::Empty::<Bytes>::new()).unwrap();
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

/// Independent computation of ALB's URL-encoded PEM for the tests: standard base64 in 64-char
/// lines, then only space and newline percent-encoded.
pub fn expected_url_pem(ders: &[&[u8]]) -> String {
    use base64::Engine;
    let mut pem = String::new();
    for der in ders {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.replace(' ', "%20").replace('\n', "%0A")
}

pub fn der(c: &CertificateDer<'_>) -> Vec<u8> {
    c.as_ref().to_vec()
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Removes ANSI colour sequences (`ESC [ ... letter`) from log output.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Copies everything read from `pipe` into `into`, on a thread of its own.
pub fn capture(
    mut pipe: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

/// Runs the `openssl` command in `dir`; panics with its stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command is needed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed P-256 CA made by `openssl req -x509` in `dir`: `ca.key` and `ca.pem`.
pub fn openssl_root_ca(dir: &Path, subj: &str) {
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
            subj,
        ],
    );
}

/// Signs `csr` with the CA of `openssl_root_ca` in `dir` for ten days, with `serial` and the
/// extensions of `ext`, into `pem`.
pub fn openssl_sign(dir: &Path, csr: &str, serial: &str, ext: &str, pem: &str) {
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            csr,
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
            pem,
        ],
    );
}

/// Calls `f` every 25 ms until it returns `Some`, panicking after `timeout`.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Every `warn!` of this test binary, as the proxy's stderr would show them. Tests tell their
/// own lines apart by the connection's trace id.
pub fn warnings() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
