//! The `certgate` binary as users run it: `check`, `truststore describe`, `pki demo`, `run`
//! (with the real curl, SIGHUP reload and SIGTERM drain) and `demo`.
//!
//! Tokio tests use the multi-thread runtime: the test body is driven by `block_on` on the test
//! thread while spawned tasks (`support::Backend`, in-flight requests) run on the worker
//! threads, so the blocking helpers below (child processes, bounded polls) never stall them.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::pki::*;
use support::process::{ChildGuard, BIN};
use support::{
    capture, client_config, free_port, get, json_lines, poll, strip_ansi, write_config, Backend,
};

const VERIFY: &str = "mode = \"verify\"\ntrust_store = \"corp\"";
/// Bound for anything that should take well under a second.
const SHORT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs the real curl (no ~/.curlrc, no proxy, bounded) in `dir`.
fn curl(dir: &Path, args: &[&str]) -> Output {
    Command::new("curl")
        .current_dir(dir)
        .args(["-q", "-sS", "--noproxy", "*", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (is it installed?)")
}

/// curl's exit code for a client the server refused: with TLS 1.3 the refusal reaches curl
/// after its side of the handshake, on the first read (56); earlier it is a handshake error (35).
/// Anything else (55: a TCP reset overtook the alert) means the client did not get its alert.
fn assert_curl_refused(out: &Output, who: &str) {
    let code = out.status.code();
    assert!(
        matches!(code, Some(35) | Some(56)),
        "{who}: curl should fail with 35 or 56, got {code:?}; stdout {:?}, stderr {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes the client-side files curl needs next to the ones `write_config` wrote.
fn write_client_files(dir: &Path, pki: &Pki) {
    write_pem(dir, "server_ca.pem", &pki.server_ca.pem);
    write_pem(dir, "good_chain.pem", &pki.good.chain_pem(&[&pki.inter]));
    write_pem(dir, "good.key", &pki.good.key_pem);
    write_pem(
        dir,
        "revoked_chain.pem",
        &pki.revoked.chain_pem(&[&pki.inter]),
    );
    write_pem(dir, "revoked.key", &pki.revoked.key_pem);
}

/// Replaces a file in one step (write then rename), as a deployment tool would.
fn replace_file(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

fn is_trace_id(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 36
            && s.starts_with("TID_")
            && s[4..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// Records whose `tls_verify_status` is `status`.
fn with_status<'a>(records: &'a [Value], status: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["tls_verify_status"] == status)
        .collect()
}

/// Parses the JSON lines among `text` (other lines are ignored).
fn json_lines_of(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `sha256:` + 16 lowercase hex digits.
fn assert_version(v: &str) {
    let hex = v
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("version {v:?}"));
    assert!(
        hex.len() == 16
            && hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "version {v:?}"
    );
}

/// RFC 3339 (UTC, `Z`) of a CRL's nextUpdate, as `describe` prints it.
fn next_update_of(crl_der: &[u8]) -> String {
    let (_, crl) = x509_parser::parse_x509_crl(crl_der).expect("parse CRL");
    let t = crl.next_update().expect("CRL has nextUpdate").timestamp();
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// An address nothing listens on; `check` and `describe` never connect to the backend.
fn unused_backend() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9))
}

// ---------------------------------------------------------------------------------------------
// certgate check
// ---------------------------------------------------------------------------------------------

#[test]
fn check_accepts_a_valid_config_and_prints_a_summary() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &pki, unused_backend(), VERIFY, "");
    let (status, out, err) = ChildGuard::run(&["check", "-c", path_str(&cfg)], dir.path());
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert!(out.contains(&format!("{}: OK", cfg.display())), "{out}");
    assert!(
        out.contains(
            "listener web: 127.0.0.1:0 -> http://127.0.0.1:9, mode verify, trust store corp"
        ),
        "{out}"
    );
    let store = out
        .lines()
        .find(|l| l.trim_start().starts_with("trust store corp:"))
        .unwrap_or_else(|| panic!("no trust store line in:\n{out}"));
    assert!(
        store.contains("1 CA(s), 2 CRL(s), 1 revoked entries, version sha256:"),
        "{store}"
    );
    assert_version(store.rsplit(' ').next().unwrap());
}

/// Writes the standard PKI files and a valid verify config, applies `edit` to the config text,
/// runs `check` and returns (config path, stderr) after asserting that it failed.
/// Problems found while validating the config name the config file; problems found while
/// loading a file it points to name that file instead.
fn check_fails(dir: &Path, edit: impl FnOnce(String) -> String) -> (PathBuf, String) {
    let pki = Pki::new();
    let cfg = write_config(dir, &pki, unused_backend(), VERIFY, "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit changed nothing");
    std::fs::write(&cfg, edited).unwrap();
    let (status, out, err) = ChildGuard::run(&["check", "-c", path_str(&cfg)], dir);
    assert_eq!(
        status.code(),
        Some(1),
        "check should fail; stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(!out.contains("OK"), "{out}");
    (cfg, err)
}

fn assert_all(err: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(err.contains(w), "missing {w:?} in:\n{err}");
    }
}

#[test]
fn check_refuses_a_bad_bind_address() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, err) = check_fails(dir.path(), |t| {
        t.replace("bind = \"127.0.0.1:0\"", "bind = \"localhost:https\"")
    });
    assert_all(
        &err,
        &[
            &cfg.display().to_string(),
            "listener[0] (web).bind: \"localhost:https\" is not an IP:port address",
        ],
    );
}

#[test]
fn check_refuses_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, err) = check_fails(dir.path(), |t| {
        t.replace("\"server.key\"", "\"missing.key\"")
    });
    let missing = dir.path().join("missing.key");
    assert_all(
        &err,
        &[
            &cfg.display().to_string(),
            "listener[0] (web).private_key: ",
            &missing.display().to_string(),
            "No such file",
        ],
    );
}

#[test]
fn check_refuses_a_verify_listener_without_trust_store() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, err) = check_fails(dir.path(), |t| {
        t.replacen("trust_store = \"corp\"\n", "", 1)
    });
    assert_all(
        &err,
        &[&cfg.display().to_string(), "listener[0] (web).mutual_authentication.trust_store: is required when mode = \"verify\""],
    );
}

#[test]
fn check_refuses_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, err) = check_fails(dir.path(), |t| {
        t.replace(
            "mode = \"verify\"",
            "mode = \"verify\"\ntrust_stor = \"corp\"",
        )
    });
    assert_all(
        &err,
        &[
            &cfg.display().to_string(),
            "listener[0].mutual_authentication.trust_stor: unknown key",
        ],
    );
}

#[test]
fn check_refuses_an_unusable_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_, err) = check_fails(dir.path(), |t| {
        t.replace("\"server.key\"", "\"bundle.pem\"")
    });
    let key = dir.path().join("bundle.pem");
    assert_all(
        &err,
        &[
            "listener web: private_key ",
            &key.display().to_string(),
            "no usable PEM private key",
        ],
    );
}

#[test]
fn check_lists_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, err) = check_fails(dir.path(), |t| {
        t.replace("bind = \"127.0.0.1:0\"", "bind = \"nope\"")
            .replace("\"server.pem\"", "\"missing-chain.pem\"")
            .replacen("trust_store = \"corp\"\n", "", 1)
            .replace("\"root.crl.der\"", "\"missing.crl\"")
    });
    assert_all(
        &err,
        &[
            &cfg.display().to_string(),
            "4 problem(s)",
            "listener[0] (web).bind: \"nope\" is not an IP:port address",
            "listener[0] (web).certificate_chain: ",
            "missing-chain.pem",
            "listener[0] (web).mutual_authentication.trust_store: is required",
            "trust_store.corp.revocation_lists[1]: ",
            "missing.crl",
        ],
    );
}

#[test]
fn run_refuses_an_invalid_config_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let cfg = write_config(dir.path(), &pki, unused_backend(), "mode = \"verify\"", "");
    let (status, _, err) = ChildGuard::run(&["run", "-c", path_str(&cfg)], dir.path());
    assert_eq!(status.code(), Some(1), "{err}");
    assert_all(
        &err,
        &[
            &cfg.display().to_string(),
            "listener[0] (web).mutual_authentication.trust_store: is required",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// certgate truststore describe, certgate pki demo
// ---------------------------------------------------------------------------------------------

#[test]
fn truststore_describe_shows_cas_crls_and_version() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let bundle = write_pem(
        dir.path(),
        "two-cas.pem",
        &format!("{}{}", pki.root.pem, pki.inter.pem),
    );
    let crl = write_pem(dir.path(), "inter.crl.pem", &pki.inter_crl.pem);
    let (status, out, err) = ChildGuard::run(
        &[
            "truststore",
            "describe",
            "--ca-bundle",
            path_str(&bundle),
            "--crl",
            path_str(&crl),
        ],
        dir.path(),
    );
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert_all(
        &out,
        &[
            "CA certificates: 2",
            "- CN=certgate test root (not after ",
            "- CN=certgate test intermediate (not after ",
            "revocation lists: 1 (1 revoked entries in total)",
            "- issuer: CN=certgate test intermediate\n",
            &format!("source: {}\n", crl.display()),
            "revoked entries: 1\n",
            &format!("next update: {}\n", next_update_of(&pki.inter_crl.der)),
        ],
    );
    let version = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("version: "))
        .unwrap_or_else(|| panic!("no version line in:\n{out}"));
    assert_version(version);
}

#[test]
fn truststore_describe_of_a_config_store_matches_check() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &pki, unused_backend(), VERIFY, "");
    let (status, out, err) = ChildGuard::run(
        &["truststore", "describe", "-c", path_str(&cfg), "corp"],
        dir.path(),
    );
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert_all(
        &out,
        &[
            "trust store: corp\n",
            "- CN=certgate test root (not after ",
            "revocation lists: 2 (1 revoked entries in total)",
            "- issuer: CN=certgate test intermediate\n",
            "- issuer: CN=certgate test root\n",
            "revoked entries: 0\n",
            &format!("next update: {}\n", next_update_of(&pki.inter_crl.der)),
            &format!("next update: {}\n", next_update_of(&pki.root_crl.der)),
        ],
    );
    let version = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("version: "))
        .unwrap();
    assert_version(version);
    // The same sources give the same version in `check`.
    let (status, check_out, _) = ChildGuard::run(&["check", "-c", path_str(&cfg)], dir.path());
    assert!(status.success());
    assert!(
        check_out.contains(&format!("version {version}")),
        "{check_out}"
    );

    let (status, _, err) = ChildGuard::run(
        &["truststore", "describe", "-c", path_str(&cfg), "nosuch"],
        dir.path(),
    );
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("no [trust_store.nosuch]"), "{err}");
}

#[test]
fn check_and_describe_warn_about_expired_and_revoked_bundle_cas() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let retired = root_ca_valid(
        "retired root",
        now - time::Duration::days(400),
        now - time::Duration::days(1),
    );
    let cfg = write_config(dir.path(), &pki, unused_backend(), VERIFY, "");
    let bundle = format!("{}{}{}", pki.root.pem, pki.inter.pem, retired.pem);
    write_pem(dir.path(), "bundle.pem", &bundle);
    let root_crl = pki.root.crl_der(&[&pki.inter.serial]);
    std::fs::write(dir.path().join("root.crl.der"), root_crl).unwrap();
    let expired = format!(
        "warning: the bundle CA CN=retired root (serial {}) expired at ",
        certgate::x509::serial_hex(&retired.serial)
    );
    let revoked = format!(
        "warning: the bundle CA CN=certgate test intermediate (serial {}) is revoked by a CRL of the trust store",
        certgate::x509::serial_hex(&pki.inter.serial)
    );

    let (status, out, err) = ChildGuard::run(&["check", "-c", path_str(&cfg)], dir.path());
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert_all(&out, &[&expired, &revoked, "(ClientCertExpired)"]);
    let (status, out, err) = ChildGuard::run(
        &["truststore", "describe", "-c", path_str(&cfg), "corp"],
        dir.path(),
    );
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert_all(&out, &[&expired, &revoked, "- CN=retired root (not after "]);
}

#[test]
fn check_and_describe_mark_a_crl_past_its_next_update() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let cfg = write_config(dir.path(), &pki, unused_backend(), VERIFY, "");
    let stale = pki.inter.crl_at(
        &[&pki.revoked.serial],
        now - time::Duration::days(8),
        now - time::Duration::days(1),
    );
    write_pem(dir.path(), "inter.crl.pem", &stale.pem);
    let next = next_update_of(&stale.der);
    let warning = format!(
        "the CRL from CN=certgate test intermediate ({}) is past its nextUpdate {next}; still in use",
        dir.path().join("inter.crl.pem").display()
    );

    let (status, out, err) = ChildGuard::run(&["check", "-c", path_str(&cfg)], dir.path());
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert_all(&out, &[&format!("warning: {warning}")]);
    let (status, out, err) = ChildGuard::run(
        &["truststore", "describe", "-c", path_str(&cfg), "corp"],
        dir.path(),
    );
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert_all(
        &out,
        &[
            &format!("next update: {next} (EXPIRED: past nextUpdate)"),
            &format!("warning: {warning}"),
        ],
    );
}

#[test]
fn truststore_describe_refuses_a_garbage_crl() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let bundle = write_pem(dir.path(), "root.pem", &pki.root.pem);
    let crl = write_pem(dir.path(), "garbage.crl", "this is not a CRL\n");
    let (status, out, err) = ChildGuard::run(
        &[
            "truststore",
            "describe",
            "--ca-bundle",
            path_str(&bundle),
            "--crl",
            path_str(&crl),
        ],
        dir.path(),
    );
    assert_eq!(status.code(), Some(1), "stdout:\n{out}");
    assert_all(&err, &[&crl.display().to_string(), "not a valid CRL"]);
}

#[test]
fn pki_demo_writes_a_pki_that_describe_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("new/demo");
    let (status, out, err) =
        ChildGuard::run(&["pki", "demo", "--out", path_str(&out_dir)], dir.path());
    assert!(status.success(), "{status}; stderr:\n{err}");
    let files = [
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
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), files.len());
    for f in files {
        let p = out_dir.join(f);
        assert!(
            std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false),
            "{} missing or empty",
            p.display()
        );
        assert!(
            out.lines().any(|l| l == p.display().to_string()),
            "{} not listed in:\n{out}",
            p.display()
        );
    }

    let bundle = out_dir.join("ca-bundle.pem");
    let crl = out_dir.join("intermediate.crl.pem");
    let (status, out, err) = ChildGuard::run(
        &[
            "truststore",
            "describe",
            "--ca-bundle",
            path_str(&bundle),
            "--crl",
            path_str(&crl),
        ],
        dir.path(),
    );
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert_all(
        &out,
        &[
            "CA certificates: 2",
            "- CN=certgate demo root CA,OU=demo CA,O=certgate demo,C=US (not after 2045-01-01T00:00:00Z)",
            "- CN=certgate demo intermediate CA,OU=demo CA,O=certgate demo,C=US (not after 2045-01-01T00:00:00Z)",
            "- issuer: CN=certgate demo intermediate CA,OU=demo CA,O=certgate demo,C=US\n",
            "revoked entries: 1\n",
            "next update: 2045-01-01T00:00:00Z\n",
        ],
    );
    assert_version(
        out.lines()
            .find_map(|l| l.trim().strip_prefix("version: "))
            .unwrap(),
    );
}

/// The mode bits of a file itself (a symlink is not followed), or None for a symlink.
#[cfg(unix)]
fn file_mode(p: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::symlink_metadata(p).unwrap();
    m.file_type()
        .is_file()
        .then(|| m.permissions().mode() & 0o777)
}

#[cfg(unix)]
#[test]
fn pki_demo_keeps_keys_private_and_never_writes_through_a_planted_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    std::fs::create_dir(&out_dir).unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, out_dir.join("root-ca.key")).unwrap();
    let run = || ChildGuard::run(&["pki", "demo", "--out", path_str(&out_dir)], dir.path());
    let (status, _, err) = run();
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let check_files = || {
        let names: Vec<String> = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 14, "no temporary file left behind: {names:?}");
        for name in names {
            let mode = file_mode(&out_dir.join(&name));
            let mode = mode.unwrap_or_else(|| panic!("{name} is not a regular file"));
            if name.ends_with(".key") {
                assert_eq!(mode & 0o077, 0, "{name} has mode {mode:o}");
            } else {
                assert_eq!(mode & 0o022, 0, "{name} has mode {mode:o}");
            }
        }
    };
    check_files();
    // A second run onto the same directory replaces the demo PKI.
    let before = std::fs::read(out_dir.join("root-ca.key")).unwrap();
    let (status, _, err) = run();
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert_ne!(std::fs::read(out_dir.join("root-ca.key")).unwrap(), before);
    check_files();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

// ---------------------------------------------------------------------------------------------
// certgate run
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn run_serves_curl_and_logs_every_connection() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &pki, backend.addr, VERIFY, "");
    write_client_files(dir.path(), &pki);
    let mut proxy = ChildGuard::spawn(&["run", "-c", path_str(&cfg)], dir.path(), &[]);
    let addr = proxy.listening_addr();
    let url = format!("https://{addr}/x");
    let d = dir.path();

    let good = curl(
        d,
        &[
            "--cacert",
            "server_ca.pem",
            "--cert",
            "good_chain.pem",
            "--key",
            "good.key",
            "-H",
            "X-Amzn-Mtls-Clientcert-Subject: forged",
            "-H",
            "x-amzn-mtls-clientcert: forged",
            &url,
        ],
    );
    assert_eq!(
        good.status.code(),
        Some(0),
        "curl stderr: {}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&good.stdout),
        "backend saw /x with 0 body bytes"
    );
    let seen = backend.last();
    assert_eq!(seen.all("x-amzn-mtls-clientcert-subject"), ["CN=client"]);
    assert!(!seen.has("x-amzn-mtls-clientcert"), "{:?}", seen.headers);
    assert!(
        seen.headers.iter().all(|(_, v)| !v.contains("forged")),
        "{:?}",
        seen.headers
    );

    let revoked = curl(
        d,
        &[
            "--cacert",
            "server_ca.pem",
            "--cert",
            "revoked_chain.pem",
            "--key",
            "revoked.key",
            &url,
        ],
    );
    assert_curl_refused(&revoked, "revoked client");
    let anonymous = curl(d, &["--cacert", "server_ca.pem", &url]);
    assert_curl_refused(&anonymous, "client without certificate");
    assert_eq!(backend.count(), 1, "a refused client reached the backend");

    let conn = json_lines(&dir.path().join("conn.log"), 3);
    assert_eq!(conn.len(), 3, "one record per connection: {conn:#?}");
    let ok = with_status(&conn, "Success");
    let crl_hit = with_status(&conn, "Failed:ClientCertCrlHit");
    let unmapped = with_status(&conn, "Failed:UnmappedConnectionError");
    assert_eq!(
        (ok.len(), crl_hit.len(), unmapped.len()),
        (1, 1, 1),
        "{conn:#?}"
    );
    assert_eq!(ok[0]["leaf_client_cert_subject"], "CN=client");
    assert_eq!(crl_hit[0]["leaf_client_cert_subject"], "CN=revoked");
    assert!(unmapped[0]["leaf_client_cert_subject"].is_null());
    assert!(unmapped[0]["tls_verify_detail"].is_string());
    for r in &conn {
        assert!(is_trace_id(&r["conn_trace_id"]), "{r}");
        assert_eq!(r["listener_port"], addr.port());
        assert_eq!(r["mode"], "verify");
    }
    let ids: std::collections::HashSet<&str> = conn
        .iter()
        .filter_map(|r| r["conn_trace_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "trace ids must be unique");

    let access = json_lines(&dir.path().join("access.log"), 1);
    assert_eq!(access.len(), 1, "{access:#?}");
    assert_eq!(access[0]["conn_trace_id"], ok[0]["conn_trace_id"]);
    assert_eq!(access[0]["elb_status_code"], 200);
    assert_eq!(access[0]["path"], "/x");
    proxy.assert_running();
}

/// Spec §3: a refused client gets "the matching TLS alert". curl sends its HTTP/2 preface right
/// after its Finished; if the proxy closes with those bytes unread, the kernel answers with a
/// TCP reset that destroys the alert before curl reads it (curl: "(55) getpeername() failed
/// with errno 107"). Several attempts, because the race is timing-dependent.
#[tokio::test(flavor = "multi_thread")]
async fn refused_curl_clients_receive_the_tls_alert() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &pki, backend.addr, VERIFY, "");
    write_client_files(dir.path(), &pki);
    let mut proxy = ChildGuard::spawn(&["run", "-c", path_str(&cfg)], dir.path(), &[]);
    let url = format!("https://{}/x", proxy.listening_addr());
    let revoked = [
        "--cacert",
        "server_ca.pem",
        "--cert",
        "revoked_chain.pem",
        "--key",
        "revoked.key",
        &url,
    ];
    let anonymous = ["--cacert", "server_ca.pem", &url];
    for attempt in 1..=4 {
        for (args, alert) in [
            (&revoked[..], "alert certificate revoked"),
            (&anonymous[..], "alert certificate required"),
        ] {
            let out = curl(dir.path(), args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                matches!(out.status.code(), Some(35) | Some(56)) && err.contains(alert),
                "attempt {attempt}: curl should report the TLS alert {alert:?}, got {:?}: {err}",
                out.status.code()
            );
        }
    }
    assert_eq!(backend.count(), 0);
    proxy.assert_running();
}

/// Connects with `client` and GETs `path`; `Ok(status)` or the error (a refused certificate
/// shows up as an error on the first read with TLS 1.3).
async fn get_as(addr: SocketAddr, pki: &Pki, client: &Leaf, path: &str) -> std::io::Result<u16> {
    get(
        addr,
        client_config(pki, Some((client, &[&pki.inter])), &[]),
        path,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_crls_and_keeps_the_last_good_store() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &pki, backend.addr, VERIFY, "");
    let conn_log = dir.path().join("conn.log");
    let crl_path = dir.path().join("inter.crl.pem");
    let mut proxy = ChildGuard::spawn(&["run", "-c", path_str(&cfg)], dir.path(), &[]);
    let pid = proxy.pid();
    let addr = proxy.listening_addr();

    assert_eq!(get_as(addr, &pki, &pki.good, "/before").await.unwrap(), 200);
    let first = json_lines(&conn_log, 1);
    assert_eq!(first[0]["tls_verify_status"], "Success");
    let v1 = first[0]["trust_store_version"]
        .as_str()
        .unwrap()
        .to_string();
    assert_version(&v1);

    // Revoke the good client and reload.
    replace_file(&crl_path, pki.inter.crl_pem(&[&pki.good.serial]).as_bytes());
    proxy.signal("HUP");
    let deadline = Instant::now() + SHORT;
    loop {
        // A connection that completed its handshake just before the swap may instead be
        // closed by the revalidation of open connections; wait for a handshake refusal.
        let refused_at_handshake = || {
            let r = json_lines_of(&std::fs::read_to_string(&conn_log).unwrap_or_default());
            !with_status(&r, "Failed:ClientCertCrlHit").is_empty()
        };
        match get_as(addr, &pki, &pki.good, "/poll").await {
            Err(_) if refused_at_handshake() => break,
            Err(_) | Ok(200) => {}
            Ok(s) => panic!("unexpected status {s} while waiting for the reload"),
        }
        proxy.assert_running();
        assert!(
            Instant::now() < deadline,
            "good client still admitted after SIGHUP; stderr:\n{}",
            proxy.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.assert_running();
    assert_eq!(proxy.pid(), pid);
    // The record is written by a log thread, possibly after the client saw the refusal.
    let records = poll(SHORT, "a ClientCertCrlHit record", || {
        let r = json_lines_of(&std::fs::read_to_string(&conn_log).unwrap_or_default());
        (!with_status(&r, "Failed:ClientCertCrlHit").is_empty()).then_some(r)
    });
    let hit = *with_status(&records, "Failed:ClientCertCrlHit")
        .last()
        .unwrap();
    assert_eq!(hit["leaf_client_cert_subject"], "CN=client");
    assert!(is_trace_id(&hit["conn_trace_id"]));
    let v2 = hit["trust_store_version"].as_str().unwrap().to_string();
    assert_version(&v2);
    assert_ne!(v1, v2, "the reloaded store must have a new version");

    // A broken CRL: the reload fails, the last good store (v2) stays in service.
    let n = records.len();
    replace_file(&crl_path, b"garbage, not a CRL\n");
    proxy.signal("HUP");
    let err = proxy.wait_for_stderr("keeping the last good store", SHORT);
    let line = err
        .lines()
        .find(|l| l.contains("keeping the last good store"))
        .unwrap();
    assert!(
        line.contains(&crl_path.display().to_string()),
        "the message should name the file: {line}"
    );
    proxy.assert_running();

    assert!(
        get_as(addr, &pki, &pki.good, "/after-garbage")
            .await
            .is_err(),
        "revoked client admitted"
    );
    let other = pki.inter.leaf(&LeafSpec::client("other"));
    assert_eq!(get_as(addr, &pki, &other, "/other").await.unwrap(), 200);
    // Records are written by a log thread; wait for the one of the "other" client.
    let records = poll(SHORT, "the record of the other client", || {
        let r = json_lines_of(&std::fs::read_to_string(&conn_log).unwrap_or_default());
        r.iter()
            .any(|x| x["leaf_client_cert_subject"] == "CN=other")
            .then_some(r)
    });
    assert!(records.len() >= n + 2, "{records:#?}");
    let last_of = |cn: &str| {
        records
            .iter()
            .rev()
            .find(|r| r["leaf_client_cert_subject"] == cn)
            .cloned()
            .unwrap()
    };
    let refused = last_of("CN=client");
    let admitted = last_of("CN=other");
    assert_eq!(
        refused["tls_verify_status"], "Failed:ClientCertCrlHit",
        "{refused}"
    );
    assert_eq!(admitted["tls_verify_status"], "Success", "{admitted}");
    for r in [&refused, &admitted] {
        assert_eq!(r["trust_store_version"], v2.as_str(), "{r}");
    }
    proxy.assert_running();
    assert_eq!(proxy.pid(), pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &pki, backend.addr, VERIFY, "");
    // Port 0, read back from the log: a port picked in advance could be taken by a parallel test.
    let mut proxy = ChildGuard::spawn(&["run", "-c", path_str(&cfg)], dir.path(), &[]);
    let addr = proxy.listening_addr();

    let client = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    let in_flight = tokio::spawn(get(addr, client, "/slow"));
    poll(SHORT, "the slow request to reach the backend", || {
        (backend.count() == 1).then_some(())
    });
    proxy.signal("TERM");
    // The backend holds /slow for 3 s: the listener must close well before that.
    poll(
        Duration::from_secs(2),
        "the listener to refuse new connections",
        || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .is_err()
                .then_some(())
        },
    );
    assert!(
        !in_flight.is_finished(),
        "the slow request ended before the backend answered"
    );
    proxy.assert_running();

    let status = tokio::time::timeout(SHORT, in_flight)
        .await
        .expect("in-flight request did not finish")
        .unwrap();
    assert_eq!(status.unwrap(), 200);
    let exit = proxy.wait_exit(SHORT);
    assert_eq!(exit.code(), Some(0), "stderr:\n{}", proxy.stderr());
    assert!(
        proxy.stderr().contains("all connections closed"),
        "{}",
        proxy.stderr()
    );
}

// ---------------------------------------------------------------------------------------------
// certgate demo
// ---------------------------------------------------------------------------------------------

#[test]
fn demo_prints_working_curl_commands() {
    let cwd = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut demo = ChildGuard::spawn(
        &["demo", "--bind", &bind],
        cwd.path(),
        &[("TMPDIR", tmp.path())],
    );
    let err = demo.wait_for_stderr("Stop with Ctrl-C", SHORT);

    let commands: Vec<Vec<&str>> = err
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .map(|l| l.split_whitespace().skip(1).collect())
        .collect();
    assert_eq!(
        commands.len(),
        5,
        "good, good on /admin/, revoked, expired, no certificate:\n{err}"
    );
    let hello = format!("https://{bind}/hello");
    let find = |who: &str| {
        commands
            .iter()
            .filter(|c| c.last() == Some(&hello.as_str()))
            .find(|c| c.iter().any(|a| a.ends_with(&format!("/{who}-client.pem"))))
            .unwrap_or_else(|| panic!("no curl command for the {who} client in:\n{err}"))
    };
    let tmp_prefix = tmp.path().display().to_string();
    let admin = format!("https://{bind}/admin/");
    for c in &commands {
        assert!(
            c.last() == Some(&hello.as_str()) || c.last() == Some(&admin.as_str()),
            "{c:?}"
        );
        // Run from a directory without truststores/demo, the embedded PKI goes to TMPDIR.
        assert!(
            c.iter().any(|a| a.starts_with(&tmp_prefix)),
            "{c:?} does not use {tmp_prefix}"
        );
    }

    let good = curl(cwd.path(), find("good"));
    let body = String::from_utf8_lossy(&good.stdout);
    assert_eq!(
        good.status.code(),
        Some(0),
        "curl stderr: {}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(body.contains("x-amzn-mtls-clientcert-subject"), "{body}");
    assert!(
        body.contains("CN=good-client,OU=clients,O=certgate demo,C=US"),
        "{body}"
    );
    assert!(
        body.contains("\"x-client-identity\": \"good-client\""),
        "{body}"
    );
    let on_admin = commands
        .iter()
        .find(|c| c.last() == Some(&admin.as_str()))
        .unwrap();
    let refused = curl(cwd.path(), on_admin);
    assert_eq!(
        String::from_utf8_lossy(&refused.stdout),
        "/admin is for ops-* clients\n"
    );
    assert_curl_refused(&curl(cwd.path(), find("revoked")), "revoked demo client");
    assert_curl_refused(&curl(cwd.path(), find("expired")), "expired demo client");
    let anonymous = commands.iter().find(|c| !c.contains(&"--cert")).unwrap();
    assert_curl_refused(
        &curl(cwd.path(), anonymous),
        "demo client without certificate",
    );

    let records = poll(SHORT, "the demo's connection log on stdout", || {
        let r = json_lines_of(&demo.stdout());
        (r.len() >= 5).then_some(r)
    });
    let status_of = |s: &str| with_status(&records, s);
    assert_eq!(status_of("Success").len(), 2, "{records:#?}");
    let crl_hit = status_of("Failed:ClientCertCrlHit");
    assert_eq!(crl_hit.len(), 1, "{records:#?}");
    assert_eq!(
        crl_hit[0]["leaf_client_cert_subject"],
        "CN=revoked-client,OU=clients,O=certgate demo,C=US"
    );
    let expired = status_of("Failed:ClientCertExpired");
    assert_eq!(expired.len(), 1, "{records:#?}");
    assert_eq!(
        expired[0]["leaf_client_cert_subject"],
        "CN=expired-client,OU=clients,O=certgate demo,C=US"
    );
    assert_eq!(
        status_of("Failed:UnmappedConnectionError").len(),
        1,
        "{records:#?}"
    );
    assert!(
        records.iter().all(|r| is_trace_id(&r["conn_trace_id"])),
        "{records:#?}"
    );

    // Ctrl-C stops it cleanly.
    demo.signal("INT");
    let exit = demo.wait_exit(SHORT);
    assert_eq!(exit.code(), Some(0), "stderr:\n{}", demo.stderr());
}

/// Someone else planted what an earlier certgate used in the shared temp dir: the demo must
/// make a private directory of its own and write nothing through those paths.
#[cfg(unix)]
#[test]
fn demo_keeps_its_files_in_a_private_directory_of_its_own() {
    let cwd = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&elsewhere, tmp.path().join("certgate-demo")).unwrap();
    let access = tmp.path().join("certgate-demo-access.log");
    std::os::unix::fs::symlink(&victim, &access).unwrap();
    let bind = format!("127.0.0.1:{}", free_port());
    let mut demo = ChildGuard::spawn(
        &["demo", "--bind", &bind],
        cwd.path(),
        &[("TMPDIR", tmp.path())],
    );
    let err = demo.wait_for_stderr("Stop with Ctrl-C", SHORT);
    let good: Vec<&str> = err
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("curl ") && l.contains("good-client"))
        .unwrap_or_else(|| panic!("no curl command for the good client:\n{err}"))
        .split_whitespace()
        .skip(1)
        .collect();
    let cert = good
        .iter()
        .find(|a| a.ends_with("good-client.pem"))
        .unwrap();
    let private = Path::new(cert).parent().unwrap().to_path_buf();
    assert_eq!(private.parent(), Some(tmp.path()), "{}", private.display());
    assert!(!private.ends_with("certgate-demo"), "{}", private.display());
    assert_eq!(file_mode(&private.join("good-client.key")), Some(0o600));
    use std::os::unix::fs::PermissionsExt;
    let dir_mode = std::fs::symlink_metadata(&private)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700, "{}", private.display());
    assert!(
        err.contains(&format!(
            "Access log: {}",
            private.join("access.log").display()
        )),
        "{err}"
    );
    let out = curl(cwd.path(), &good);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    poll(SHORT, "the demo's access log", || {
        let text = std::fs::read_to_string(private.join("access.log")).unwrap_or_default();
        (!text.is_empty()).then_some(())
    });
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    demo.signal("INT");
    assert_eq!(demo.wait_exit(SHORT).code(), Some(0), "{}", demo.stderr());
    assert!(
        !private.exists(),
        "the demo's directory is removed when it ends"
    );
}

#[test]
fn demo_on_a_busy_port_explains_what_to_do() {
    let cwd = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = busy.local_addr().unwrap().to_string();
    let mut demo = ChildGuard::spawn(
        &["demo", "--bind", &bind],
        cwd.path(),
        &[("TMPDIR", tmp.path())],
    );
    let exit = demo.wait_exit(SHORT);
    assert_eq!(exit.code(), Some(1));
    assert_all(&demo.stderr(), &[&format!("cannot bind {bind}"), "--bind"]);
}

/// The connection log goes to stdout, and stdout is a pipe nobody reads any more: every write
/// fails with EPIPE. The proxy must keep serving and say on stderr that it drops log lines.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_costs_log_lines_not_the_proxy() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &pki, backend.addr, VERIFY, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("path = \"conn.log\"", "path = \"-\"");
    std::fs::write(&cfg, text).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "-c", path_str(&cfg)])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("CERTGATE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let reader = capture(child.stderr.take().unwrap(), stderr.clone());
    // Killed however the test ends, a failed assertion included.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(child);
    // The address it bound (port 0), from its "listening" line.
    let addr: SocketAddr = poll(SHORT, "the listening line", || {
        let e = strip_ansi(&String::from_utf8_lossy(&stderr.lock().unwrap()));
        e.lines()
            .find(|l| l.contains(" listening "))
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("addr=")))
            .and_then(|a| a.parse().ok())
    });
    for i in 0..20 {
        assert_eq!(
            get_as(addr, &pki, &pki.good, "/").await.unwrap(),
            200,
            "request {i}"
        );
    }
    let err = poll(SHORT, "a log-write error on stderr", || {
        let e = String::from_utf8_lossy(&stderr.lock().unwrap()).into_owned();
        e.contains("cannot write log").then_some(e)
    });
    assert!(err.contains("connection log"), "{err}");
    assert!(child.0.try_wait().unwrap().is_none(), "proxy exited: {err}");
    drop(child);
    let _ = reader.join();
}
