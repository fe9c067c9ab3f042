//! OCSP stapling of certgate's own certificate (SPEC §13) against a real responder, `openssl
//! ocsp` on 127.0.0.1, read back with `openssl s_client -status`: a good answer is stapled, a
//! revoked certificate or an expired answer is not, a responder that is down at start-up leaves
//! the certificate served without a staple until it comes up, a reloaded certificate is
//! stapled anew, and `certgate check` says what is stapled. Config mistakes name their key.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::ocsp::Ca;
use support::*;

/// An off-mode listener serving `chain`/`key` with `ocsp_stapling = true` and `extra` keys.
async fn proxy(pki: &pki::Pki, backend: &Backend, chain: &Path, key: &Path, extra: &str) -> Proxy {
    let (chain, key) = (chain.display().to_string(), key.display().to_string());
    Proxy::start_edited(pki, backend.addr, "mode = \"off\"", "", |t| {
        t.replace(
            "certificate_chain = \"server.pem\"\nprivate_key = \"server.key\"",
            &format!(
                "certificate_chain = {chain:?}\nprivate_key = {key:?}\nocsp_stapling = true\n{extra}"
            ),
        )
    })
    .await
}

/// What `openssl s_client -status` prints about the staple of `addr`.
fn staple_of(addr: SocketAddr, ca: &Ca) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost", "-status", "-CAfile"])
        .arg(ca.dir.join("ca.pem"))
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("BEGIN CERTIFICATE"),
        "no handshake: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn stapled_good(text: &str) -> bool {
    text.contains("OCSP Response Status: successful") && text.contains("Cert Status: good")
}

fn not_stapled(text: &str) -> bool {
    text.contains("OCSP response: no response sent")
}

/// `certgate check` on the proxy's config: (success, stdout + stderr).
fn check(proxy: &Proxy) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_certgate"))
        .args(["check", "-c"])
        .arg(proxy.dir.path().join("certgate.toml"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn server_cert(ca: &Ca, name: &str, serial: &str, ext: &str) -> (PathBuf, PathBuf) {
    let (pem, key) = ca.issue(name, &format!("/CN={name}"), serial, ext);
    (ca.chain(name, &pem), key)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_good_answer_is_stapled_and_check_shows_it() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (chain, key) = server_cert(&ca, "www", "0x3001", "server.ext");
    let _responder = ca.responder(Ca::delegated());
    let backend = Backend::start().await;
    let proxy = proxy(&pki, &backend, &chain, &key, "").await;
    let text = staple_of(proxy.addr, &ca);
    assert!(stapled_good(&text), "{text}");
    assert!(text.contains("Responder Id: CN = OCSP Responder"), "{text}");

    let url = format!("http://127.0.0.1:{}", ca.ocsp_port);
    let (ok, out) = check(&proxy);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "ocsp stapling: stapled: good from {url}, thisUpdate"
        )),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ocsp_responder_url_is_asked_instead_of_the_aia() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (chain, key) = server_cert(&ca, "plain", "0x3101", "server-no-aia.ext");
    let _responder = ca.responder(Ca::delegated());
    let backend = Backend::start().await;
    let url = format!("http://127.0.0.1:{}/", ca.ocsp_port);
    let extra = format!("ocsp_responder_url = {url:?}");
    let proxy = proxy(&pki, &backend, &chain, &key, &extra).await;
    let text = staple_of(proxy.addr, &ca);
    assert!(stapled_good(&text), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_certificate_gets_no_staple() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (pem, key) = ca.issue("gone", "/CN=gone", "0x3201", "server.ext");
    ca.revoke(&pem);
    let chain = ca.chain("gone", &pem);
    let _responder = ca.responder(Ca::delegated());
    let backend = Backend::start().await;
    let proxy = proxy(&pki, &backend, &chain, &key, "").await;
    let text = staple_of(proxy.addr, &ca);
    assert!(not_stapled(&text), "{text}");
    let (ok, out) = check(&proxy);
    assert!(ok, "{out}");
    assert!(
        out.contains("ocsp stapling: not stapled:")
            && out.contains("the responder says the certificate is revoked at"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_answer_is_not_stapled() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (chain, key) = server_cert(&ca, "late", "0x3301", "server.ext");
    // A responder a day behind: its answers' nextUpdate (5 minutes on) passed long ago.
    let _responder = ca.responder_at(Ca::delegated(), Some("-1d"));
    let backend = Backend::start().await;
    let proxy = proxy(&pki, &backend, &chain, &key, "").await;
    let text = staple_of(proxy.addr, &ca);
    assert!(not_stapled(&text), "{text}");
    let (ok, out) = check(&proxy);
    assert!(ok, "{out}");
    assert!(out.contains("past its nextUpdate"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_responder_down_at_start_leaves_no_staple_until_it_answers() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (chain, key) = server_cert(&ca, "early", "0x3401", "server.ext");
    let backend = Backend::start().await;
    let proxy = proxy(&pki, &backend, &chain, &key, "").await;
    let text = staple_of(proxy.addr, &ca);
    assert!(not_stapled(&text), "{text}");
    // Retries start at 2 s and double: the staple appears within a few of them.
    let _responder = ca.responder(Ca::delegated());
    let addr = proxy.addr;
    let ca_ref = &ca;
    poll(
        Duration::from_secs(20),
        "a staple after the responder came up",
        || stapled_good(&staple_of(addr, ca_ref)).then_some(()),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reloaded_certificate_is_stapled_anew() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (chain, key) = server_cert(&ca, "first", "0x3501", "server.ext");
    // Its renewal, known to the responder (which reads its database once, at start).
    let (next_chain, next_key) = server_cert(&ca, "second", "0x3502", "server.ext");
    let _responder = ca.responder(Ca::delegated());
    let backend = Backend::start().await;
    let proxy = proxy(&pki, &backend, &chain, &key, "").await;
    let text = staple_of(proxy.addr, &ca);
    assert!(stapled_good(&text) && text.contains("CN = first"), "{text}");
    // The renewed certificate in the same files: stapled before it serves.
    std::fs::copy(&next_chain, &chain).unwrap();
    std::fs::copy(&next_key, &key).unwrap();
    let problems = proxy.server.reload().await;
    assert!(problems.is_empty(), "{problems:?}");
    let text = staple_of(proxy.addr, &ca);
    assert!(text.contains("subject=CN = second"), "{text}");
    assert!(stapled_good(&text), "{text}");
    assert!(text.contains("Serial Number: 3502"), "{text}");
}

#[test]
fn stapling_config_mistakes_name_their_key() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let backend: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let path = write_config(dir.path(), &pki, backend, "", "");
    let text = std::fs::read_to_string(&path).unwrap();
    let with = |keys: &str| {
        let edited = text.replace(
            "private_key = \"server.key\"",
            &format!("private_key = \"server.key\"\n{keys}"),
        );
        std::fs::write(&path, edited).unwrap();
        certgate::config::load(&path).err().map(|e| e.to_string())
    };
    let err = with("ocsp_stapling = true\nocsp_responder_url = \"ftp://ocsp.test\"").unwrap();
    assert!(
        err.contains("listener[0] (web).ocsp_responder_url: \"ftp://ocsp.test\": must be an http:// or https:// URL"),
        "{err}"
    );
    let err = with("ocsp_responder_url = \"http://ocsp.test\"").unwrap();
    assert!(
        err.contains(
            "listener[0] (web).ocsp_responder_url: is only used with ocsp_stapling = true"
        ),
        "{err}"
    );
    assert!(with("ocsp_stapling = true\nocsp_responder_url = \"https://ocsp.test/x\"").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn stapling_without_the_issuer_in_the_chain_is_refused_naming_the_certificate() {
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (pem, key) = ca.issue("alone", "/CN=alone", "0x3601", "server.ext");
    let backend = Backend::start().await;
    // `Proxy` cannot start; `check` says why.
    let proxy_dir = tempfile::tempdir().unwrap();
    let path = write_config(proxy_dir.path(), &pki, backend.addr, "", "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "certificate_chain = \"server.pem\"\nprivate_key = \"server.key\"",
        &format!(
            "certificate_chain = {:?}\nprivate_key = {:?}\nocsp_stapling = true",
            pem.display().to_string(),
            key.display().to_string()
        ),
    );
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_certgate"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("certificate_chain {}", pem.display()))
            && stderr.contains("needs the issuer's certificate (CN=OCSP Test Root)"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_good_staple_outlives_the_responder_until_shortly_before_its_next_update() {
    use certgate::ocsp::staple::Stapler;
    let log = warnings();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (chain, key) = server_cert(&ca, "kept", "0x3701", "server.ext");
    let certified = certgate::tls::load_certified_key(
        "web",
        &chain,
        &key,
        &certgate::crypto::crypto_provider(),
    )
    .unwrap();
    let stapler = Stapler::new(
        "stapler kept".into(),
        &certified.cert,
        certified.clone(),
        None,
    )
    .unwrap();
    let checker = certgate::ocsp::Checker::new();
    let responder = ca.responder(Ca::delegated());
    stapler.refresh(&checker).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let served = stapler.current(now).expect("stapled");
    assert!(served.ocsp.is_some());
    // Refreshed at half the 5-minute validity, not before.
    assert!(
        (now + 140..=now + 151).contains(&stapler.due()),
        "{}",
        stapler.due()
    );

    drop(responder);
    stapler.refresh(&checker).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        stapler.current(now).is_some(),
        "the last good staple is kept"
    );
    assert!(
        stapler.describe(now).contains("stapled: last good answer"),
        "{}",
        stapler.describe(now)
    );
    // The retry comes soon, not at half validity.
    assert!(stapler.due() <= now + 2, "{}", stapler.due());
    // Failing again for the same reason is not logged again.
    stapler.refresh(&checker).await;
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let logged: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("stapler kept: no OCSP staple from"))
        .collect();
    assert_eq!(logged.len(), 1, "{text}");
    assert!(
        logged[0].contains("the last good staple is served until"),
        "{}",
        logged[0]
    );
    // Dropped before its nextUpdate (5 minutes after thisUpdate), not at it.
    assert!(stapler.current(now + 240).is_some());
    assert!(stapler.current(now + 290).is_none());
    assert!(stapler.describe(now + 290).starts_with("not stapled:"));
}
