//! Bad input on the server side of TLS (SPEC §12), case by case: an unknown `ssl_policy`, a
//! certificate file holding only a key, and SNI names no DNS name can be (too long for one, or
//! too long for anything) sent by `openssl s_client` and by a hand-built ClientHello. Each is
//! refused with a message naming what was wrong, and the proxy keeps serving.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use support::pki::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OFF: &str = "mode = \"off\"";
const SINGLE: &str = "certificate_chain = \"server.pem\"\nprivate_key = \"server.key\"\n";

/// `certgate check` on the standard test config after `edit`: exit code, stdout, stderr.
fn check(dir: &Path, pki: &Pki, edit: impl FnOnce(String) -> String) -> (i32, String, String) {
    let cfg = write_config(dir, pki, "127.0.0.1:9".parse().unwrap(), OFF, "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, edit(text)).unwrap();
    let (status, out, err) = process::ChildGuard::run(&["check", "-c", cfg.to_str().unwrap()], dir);
    (status.code().unwrap_or(-1), out, err)
}

#[test]
fn an_unknown_policy_name_lists_every_supported_policy() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = check(dir.path(), &pki, |t| {
        t.replace(
            SINGLE,
            &format!("{SINGLE}ssl_policy = \"ELBSecurityPolicy-TLS13\"\n"),
        )
    });
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("listener[0] (web).ssl_policy"), "{err}");
    assert!(err.contains("not a known policy"), "{err}");
    for p in &certgate::crypto::policy::POLICIES {
        assert!(err.contains(p.name), "{} not listed in {err}", p.name);
    }
}

#[test]
fn a_certificate_file_with_only_a_key_is_refused_naming_the_file() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = check(dir.path(), &pki, |t| {
        t.replace(
            "certificate_chain = \"server.pem\"",
            "certificate_chain = \"server.key\"",
        )
    });
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("certificate_chain ")
            && err.contains("server.key: contains a private key but no certificate"),
        "{err}"
    );
}

/// A TLS 1.2/1.3 ClientHello whose server_name extension carries `name`, in one record.
fn client_hello(name: &[u8]) -> Vec<u8> {
    fn u16be(n: usize) -> [u8; 2] {
        (n as u16).to_be_bytes()
    }
    let mut sni = Vec::new();
    sni.extend_from_slice(&u16be(name.len() + 3));
    sni.push(0); // host_name
    sni.extend_from_slice(&u16be(name.len()));
    sni.extend_from_slice(name);
    let mut ext = Vec::new();
    let mut push_ext = |kind: u16, body: &[u8]| {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&u16be(body.len()));
        ext.extend_from_slice(body);
    };
    push_ext(0x0000, &sni);
    push_ext(0x000a, &[0x00, 0x02, 0x00, 0x1d]); // supported_groups: x25519
    push_ext(0x000b, &[0x01, 0x00]); // ec_point_formats: uncompressed
    push_ext(0x000d, &[0x00, 0x04, 0x04, 0x03, 0x08, 0x04]); // signature_algorithms
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]); // ECDHE AES-128-GCM
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    body.extend_from_slice(&u16be(ext.len()));
    body.extend_from_slice(&ext);
    let mut handshake = vec![0x01, 0];
    handshake.extend_from_slice(&u16be(body.len()));
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16be(handshake.len()));
    record.extend_from_slice(&handshake);
    record
}

/// Sends `hello` and reads what the server answers until it closes or has sent `enough`
/// bytes (at most 5 s).
async fn answer_to(addr: SocketAddr, hello: &[u8], enough: usize) -> Vec<u8> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut out = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        while out.len() < enough {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let done = tokio::time::timeout(Duration::from_secs(5), read).await;
    assert!(done.is_ok(), "the server neither answered nor closed");
    out
}

/// A fatal `illegal_parameter` alert record (TLS 1.2 framing, as rustls sends before a version
/// is agreed).
const ILLEGAL_PARAMETER: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x2f];

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_sni_is_refused_cleanly_and_the_proxy_keeps_serving() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&pki, backend.addr, OFF, "").await;
    let d = proxy.dir.path();
    write_pem(d, "server-ca.pem", &pki.server_ca.pem);

    // 255 bytes of well-formed labels: the most openssl sends, 2 more than a DNS name may be.
    let label = "a".repeat(63);
    let long = format!("{label}.{label}.{label}.{}", "b".repeat(63));
    assert_eq!(long.len(), 255);
    let out = openssl_s_client(d, proxy.addr, &long);
    assert!(
        out.contains("illegal parameter") && !out.contains("BEGIN CERTIFICATE"),
        "{out}"
    );

    // 16,000 bytes, as much as one record holds: refused with the same alert.
    let huge = vec![b'x'; 16_000];
    let answer = answer_to(proxy.addr, &client_hello(&huge), usize::MAX).await;
    assert_eq!(answer, ILLEGAL_PARAMETER, "answer: {answer:02x?}");
    // The same hello with a valid name is answered with a ServerHello (handshake record).
    let answer = answer_to(proxy.addr, &client_hello(b"localhost"), 1).await;
    assert_eq!(answer.first(), Some(&0x16), "answer: {answer:02x?}");

    let records = proxy.conn_records(3);
    for r in &records[..2] {
        assert!(r.to_string().len() < 2000, "the name was logged: {r}");
        assert!(
            r["tls_verify_status"]
                .as_str()
                .is_some_and(|s| s.starts_with("Failed")),
            "{r}"
        );
    }
    // And it still serves.
    let status = get(proxy.addr, client_config(&pki, None, &[]), "/after").await;
    assert_eq!(status.unwrap(), 200);
}

/// `openssl s_client -servername NAME`; its stdout and stderr together.
fn openssl_s_client(dir: &Path, addr: SocketAddr, name: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-CAfile", "server-ca.pem", "-servername", name])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text
}
