//! The server side of TLS end to end: `ssl_policy` (protocols, suites, key-exchange groups
//! including X25519MLKEM768, as rustls and `openssl s_client` clients see them), several
//! certificates chosen by SNI, encrypted private keys, and certificates that reload themselves.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::aws_lc_rs::kx_group;
use rustls::crypto::SupportedKxGroup;
use support::pki::*;
use support::*;

const OFF: &str = "mode = \"off\"";
const SINGLE: &str = "certificate_chain = \"server.pem\"\nprivate_key = \"server.key\"\n";

/// A client trusting the test server CA with only these groups and protocol versions.
fn client(
    pki: &Pki,
    groups: &[&'static dyn SupportedKxGroup],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = groups.to_vec();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.server_ca.cert_der()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

async fn proxy_with_policy(pki: &Pki, backend: SocketAddr, policy: Option<&str>) -> Proxy {
    let extra = policy
        .map(|p| format!("ssl_policy = \"{p}\"\n"))
        .unwrap_or_default();
    Proxy::start_edited(pki, backend, OFF, "", |t| {
        t.replace(SINGLE, &format!("{SINGLE}{extra}"))
    })
    .await
}

/// `openssl s_client` against `addr` with `args`; whether the handshake completed, and stdout.
async fn s_client(dir: &Path, addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let mut all: Vec<String> = vec![
        "s_client".into(),
        "-connect".into(),
        addr.to_string(),
        "-CAfile".into(),
        "server-ca.pem".into(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("openssl")
            .args(&all)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.success() && stdout.contains("Verify return code: 0"),
            stdout,
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn default_policy_negotiates_x25519mlkem768_with_a_client_that_offers_it() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = proxy_with_policy(&pki, backend.addr, None).await;
    let pq = client(&pki, &[kx_group::X25519MLKEM768, kx_group::X25519], BOTH);
    let tls = connect(proxy.addr, pq).await.unwrap();
    let group = tls.get_ref().1.negotiated_key_exchange_group().unwrap();
    assert_eq!(group.name(), rustls::NamedGroup::X25519MLKEM768);
    drop(tls);
    let classical = client(&pki, &[kx_group::X25519], BOTH);
    drop(connect(proxy.addr, classical).await.unwrap());
    let records = proxy.conn_records(2);
    let groups: Vec<&str> = records
        .iter()
        .map(|r| r["tls_keyexchange"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["X25519MLKEM768", "X25519"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_classical_policy_does_not_offer_the_hybrid_group() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = proxy_with_policy(
        &pki,
        backend.addr,
        Some("ELBSecurityPolicy-TLS13-1-2-Res-2021-06"),
    )
    .await;
    let pq_only = client(&pki, &[kx_group::X25519MLKEM768], BOTH);
    assert!(connect(proxy.addr, pq_only).await.is_err());
    let both = client(&pki, &[kx_group::X25519MLKEM768, kx_group::X25519], BOTH);
    let tls = connect(proxy.addr, both).await.unwrap();
    let group = tls.get_ref().1.negotiated_key_exchange_group().unwrap();
    assert_eq!(group.name(), rustls::NamedGroup::X25519);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls13_only_policy_refuses_tls12_clients_openssl_and_rustls() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = proxy_with_policy(
        &pki,
        backend.addr,
        Some("ELBSecurityPolicy-TLS13-1-3-2021-06"),
    )
    .await;
    write_pem(proxy.dir.path(), "server-ca.pem", &pki.server_ca.pem);
    let tls12 = client(&pki, &[kx_group::X25519], &[&rustls::version::TLS12]);
    assert!(connect(proxy.addr, tls12).await.is_err());
    let (ok, _) = s_client(proxy.dir.path(), proxy.addr, &["-tls1_2"]).await;
    assert!(!ok, "TLS 1.2 accepted by a TLS 1.3-only policy");
    let (ok, out) = s_client(
        proxy.dir.path(),
        proxy.addr,
        &["-tls1_3", "-groups", "secp384r1"],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("TLSv1.3"), "{out}");
    let records = proxy.conn_records(3);
    assert_eq!(records[2]["tls_keyexchange"], "secp384r1", "{records:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls12_policies_offer_alb_suites_in_alb_order() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = proxy_with_policy(
        &pki,
        backend.addr,
        Some("ELBSecurityPolicy-FS-1-2-Res-2020-10"),
    )
    .await;
    write_pem(proxy.dir.path(), "server-ca.pem", &pki.server_ca.pem);
    let (ok, _) = s_client(proxy.dir.path(), proxy.addr, &["-tls1_3"]).await;
    assert!(!ok, "TLS 1.3 accepted by a TLS 1.2-only policy");
    // The server's order decides: AES-128 before AES-256 whatever the client prefers.
    let (ok, out) = s_client(
        proxy.dir.path(),
        proxy.addr,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("ECDHE-ECDSA-AES128-GCM-SHA256"), "{out}");
    // ChaCha20 is not in ALB's TLS 1.2 list.
    let (ok, _) = s_client(
        proxy.dir.path(),
        proxy.addr,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
    )
    .await;
    assert!(!ok, "a suite outside the policy was negotiated");
}

fn leaf_of(ca: &Ca, names: &[&str], key: KeyKind) -> Leaf {
    ca.leaf(&LeafSpec {
        subject: vec![(
            rcgen::DnType::CommonName,
            rcgen::DnValue::from(format!("{} {key:?}", names[0])),
        )],
        key,
        eku: vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth],
        server_names: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
}

/// Writes `NAME.pem`/`NAME.key` and returns the `certificates` entry for them.
fn entry(dir: &Path, name: &str, leaf: &Leaf) -> String {
    let chain = write_pem(dir, &format!("{name}.pem"), &leaf.cert_pem);
    let key = write_pem(dir, &format!("{name}.key"), &leaf.key_pem);
    format!("{{ certificate_chain = {chain:?}, private_key = {key:?} }}")
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_chosen_by_sni_exact_then_wildcard_else_the_first() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = &pki.server_ca;
    let entries = [
        entry(
            dir.path(),
            "default",
            &leaf_of(ca, &["localhost"], KeyKind::EcP256),
        ),
        entry(
            dir.path(),
            "wild",
            &leaf_of(ca, &["*.example.com"], KeyKind::EcP256),
        ),
        entry(
            dir.path(),
            "api-ec",
            &leaf_of(ca, &["api.example.com"], KeyKind::EcP256),
        ),
        entry(
            dir.path(),
            "api-rsa",
            &leaf_of(ca, &["api.example.com"], KeyKind::Rsa2048),
        ),
    ];
    let list = format!("certificates = [{}]\n", entries.join(", "));
    let proxy =
        Proxy::start_edited(&pki, backend.addr, OFF, "", |t| t.replace(SINGLE, &list)).await;
    let d = proxy.dir.path();
    write_pem(d, "server-ca.pem", &pki.server_ca.pem);
    let served = |sni: &'static str, extra: &'static [&'static str]| async move {
        let mut args = vec!["-servername", sni];
        args.extend_from_slice(extra);
        let (ok, out) = s_client(d, proxy.addr, &args).await;
        assert!(ok, "{sni}: {out}");
        out
    };
    let subject = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("subject="))
            .unwrap_or_default()
            .to_string()
    };
    assert!(subject(&served("api.example.com", &[]).await).contains("api.example.com EcP256"));
    let rsa = served(
        "api.example.com",
        &["-sigalgs", "rsa_pss_rsae_sha256:rsa_pkcs1_sha256"],
    )
    .await;
    assert!(subject(&rsa).contains("api.example.com Rsa2048"), "{rsa}");
    assert!(subject(&served("www.example.com", &[]).await).contains("*.example.com"));
    assert!(subject(&served("API.Example.COM.", &[]).await).contains("api.example.com"));
    assert!(subject(&served("a.b.example.com", &[]).await).contains("localhost"));
    assert!(subject(&served("other.test", &[]).await).contains("localhost"));
}

/// Encrypts `server.key` in `dir` as `server.enc.key` with `openssl pkcs8 -topk8 -v2 CIPHER`.
fn encrypt_key(dir: &Path, cipher: &str, password: &str) {
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            cipher,
            "-in",
            "server.key",
            "-out",
            "server.enc.key",
            "-passout",
            &format!("pass:{password}"),
        ],
    );
}

/// `certgate check` on the standard test config after `edit`, with `env` set.
fn check(
    dir: &Path,
    pki: &Pki,
    env: &[(&str, &str)],
    prepare: impl FnOnce(&Path),
    edit: impl FnOnce(String) -> String,
) -> (Option<i32>, String, String) {
    let cfg = write_config(dir, pki, "127.0.0.1:9".parse().unwrap(), OFF, "");
    prepare(dir);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, edit(text)).unwrap();
    let (status, out, err) =
        process::ChildGuard::run_with(&["check", "-c", cfg.to_str().unwrap()], dir, |c| {
            for (k, v) in env {
                c.env(k, v);
            }
        });
    (status.code(), out, err)
}

const ENCRYPTED: &str = "certificate_chain = \"server.pem\"\nprivate_key = \"server.enc.key\"\n";

#[test]
fn encrypted_keys_load_with_a_password_file_or_env_and_a_wrong_one_is_refused() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let with_file = |t: String| {
        t.replace(
            SINGLE,
            &format!("{ENCRYPTED}private_key_password_file = \"pass.txt\"\n"),
        )
    };
    // A trailing newline (as `echo` writes) is not part of the password.
    let (code, out, err) = check(
        d,
        &pki,
        &[],
        |d| {
            encrypt_key(d, "aes-256-cbc", "s3cret pass");
            std::fs::write(d.join("pass.txt"), "s3cret pass\n").unwrap();
        },
        with_file,
    );
    assert_eq!(code, Some(0), "{out}{err}");

    let with_env = |t: String| {
        t.replace(
            SINGLE,
            &format!("{ENCRYPTED}private_key_password_env = \"CG_KEY_PASS\"\n"),
        )
    };
    let (code, out, err) = check(d, &pki, &[("CG_KEY_PASS", "s3cret pass")], |_| {}, with_env);
    assert_eq!(code, Some(0), "{out}{err}");

    let (code, _, err) = check(d, &pki, &[("CG_KEY_PASS", "not-it")], |_| {}, with_env);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("server.enc.key") && err.contains("wrong password"),
        "{err}"
    );
    assert!(!err.contains("not-it"), "the password was printed: {err}");

    let (code, _, err) = check(d, &pki, &[], |_| {}, with_env);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("CG_KEY_PASS") && err.contains("not set"),
        "{err}"
    );

    let (code, _, err) = check(d, &pki, &[], |_| {}, |t| t.replace(SINGLE, ENCRYPTED));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("ENCRYPTED PRIVATE KEY") && err.contains("private_key_password"),
        "{err}"
    );
}

#[test]
fn an_encrypted_key_with_an_unsupported_cipher_is_named() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = check(
        dir.path(),
        &pki,
        &[("CG_PASS2", "pw")],
        |d| {
            encrypt_key(d, "des3", "pw");
        },
        |t| {
            t.replace(
                SINGLE,
                &format!("{ENCRYPTED}private_key_password_env = \"CG_PASS2\"\n"),
            )
        },
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("DES-EDE3-CBC") && err.contains("server.enc.key"),
        "{err}"
    );
}

#[test]
fn check_prints_the_policy_and_refuses_legacy_and_unknown_names() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = check(dir.path(), &pki, &[], |_| {}, |t| t);
    assert_eq!(code, Some(0), "{err}");
    for want in [
        "ssl_policy ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09: TLSv1.3, TLSv1.2",
        "cipher suites: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, ECDHE-ECDSA-AES128-GCM-SHA256",
        "key exchange: X25519MLKEM768, SecP256r1MLKEM768, X25519, secp256r1, secp384r1",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    let policy = |name: &'static str| {
        move |t: String| t.replace(SINGLE, &format!("{SINGLE}ssl_policy = \"{name}\"\n"))
    };
    let (code, _, err) = check(
        dir.path(),
        &pki,
        &[],
        |_| {},
        policy("ELBSecurityPolicy-2016-08"),
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("listener[0] (web).ssl_policy")
            && err.contains("nearest supported policy is \"ELBSecurityPolicy-TLS13-1-2-2021-06\""),
        "{err}"
    );
    let (code, _, err) = check(
        dir.path(),
        &pki,
        &[],
        |_| {},
        policy("ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04"),
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("FIPS") && err.contains("ELBSecurityPolicy-TLS13-1-2-2021-06"),
        "{err}"
    );
    let (code, _, err) = check(dir.path(), &pki, &[], |_| {}, policy("strong"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("supported: ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"),
        "{err}"
    );
}

#[test]
fn check_names_a_mismatched_pair_and_warns_about_an_unselectable_certificate() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = leaf_of(&pki.server_ca, &["a.example.com"], KeyKind::EcP256);
    let b = leaf_of(&pki.server_ca, &["b.example.com"], KeyKind::EcP256);
    let ip_only = leaf_of(&pki.server_ca, &["127.0.0.1"], KeyKind::EcP256);
    let list = |d: &Path| {
        let mut e = vec![
            entry(d, "a", &a),
            entry(d, "b", &b),
            entry(d, "ip", &ip_only),
        ];
        e.push(entry(d, "a2", &a));
        format!("certificates = [{}]\n", e.join(", "))
    };
    let certificates = list(d);
    let (code, out, err) = check(d, &pki, &[], |_| {}, |t| t.replace(SINGLE, &certificates));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("warning: certificates[2]") && out.contains("no DNS name"),
        "{out}"
    );
    assert!(
        out.contains("warning: certificates[3]") && out.contains("earlier certificate"),
        "{out}"
    );
    assert!(!out.contains("warning: certificates[1]"), "{out}");

    // b's key with a's certificate.
    std::fs::copy(d.join("a.key"), d.join("b.key")).unwrap();
    let (code, _, err) = check(d, &pki, &[], |_| {}, |t| t.replace(SINGLE, &certificates));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("certificates[1].private_key")
            && err.contains("b.key")
            && err.contains("b.pem"),
        "{err}"
    );
}

#[test]
fn an_expired_server_certificate_is_allowed_and_warned_about() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let expired = pki.server_ca.leaf(&LeafSpec {
        not_before: now - time::Duration::days(30),
        not_after: now - time::Duration::days(1),
        eku: vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth],
        server_names: vec!["localhost".into()],
        ..Default::default()
    });
    let (code, out, err) = check(
        dir.path(),
        &pki,
        &[],
        |d| {
            write_pem(d, "server.pem", &expired.cert_pem);
            write_pem(d, "server.key", &expired.key_pem);
        },
        |t| t,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("has expired (it is still served)"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_certificate_file_is_served_without_a_restart_and_garbage_keeps_the_last_good() {
    let logs = warnings();
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start_edited(&pki, backend.addr, OFF, "", |t| {
        t.replace(SINGLE, &format!("{SINGLE}refresh_interval_secs = 1\n"))
    })
    .await;
    let cfg = client_config(&pki, None, &[]);
    let served = |tls: &Tls| {
        tls.get_ref().1.peer_certificates().unwrap()[0]
            .as_ref()
            .to_vec()
    };
    let open = connect(proxy.addr, cfg.clone()).await.unwrap();
    assert_eq!(served(&open), pki.server.der);

    let renewed = pki.server_ca.server_leaf(&["localhost", "127.0.0.1"]);
    // The key first, then the chain: a half-written pair is refused until both match.
    write_pem(proxy.dir.path(), "server.key", &renewed.key_pem);
    write_pem(proxy.dir.path(), "server.pem", &renewed.cert_pem);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tls = connect(proxy.addr, cfg.clone()).await.unwrap();
        if served(&tls) == renewed.der {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new certificate not served within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The connection opened before keeps working on its certificate.
    assert_eq!(served(&open), pki.server.der);

    let chain_path = write_pem(proxy.dir.path(), "server.pem", "garbage\n");
    let marker = chain_path.display().to_string();
    let logged = |logs: &std::sync::Mutex<Vec<u8>>| {
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        text.lines()
            .filter(|l| l.contains(&marker) && l.contains("keeping the last good"))
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while logged(&logs) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "broken certificate not reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tls = connect(proxy.addr, cfg.clone()).await.unwrap();
    assert_eq!(served(&tls), renewed.der);
    // Checked again on the next interval, but logged once.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(logged(&logs), 1);
}
