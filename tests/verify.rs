//! `certgate verify` as users run it (SPEC §15): both forms, text and JSON, `--at` and
//! `--ignore-expiry`, exit 0/1/2, and bad input files named with what they hold. Its agreement
//! with the live handshake, case by case, is checked in `bad_input.rs`.

mod support;

use std::path::Path;

use serde_json::Value;
use support::pki::*;
use support::process::ChildGuard;
use support::*;
use time::OffsetDateTime;

fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let (status, out, err) = ChildGuard::run(args, dir);
    (status.code(), out, err)
}

/// A config with a verify listener taking the CN as identity, and the client files.
fn setup(dir: &Path, pki: &Pki) {
    let mutual = "mode = \"verify\"\ntrust_store = \"corp\"\n\n[listener.client_identity]\nfrom = \"common_name\"\nheader_name = \"X-Client-Identity\"";
    write_config(dir, pki, "127.0.0.1:9".parse().unwrap(), mutual, "");
    write_pem(dir, "good.pem", &pki.good.chain_pem(&[&pki.inter]));
    write_pem(dir, "good.key", &pki.good.key_pem);
    write_pem(dir, "revoked.pem", &pki.revoked.chain_pem(&[&pki.inter]));
    write_pem(dir, "root.pem", &pki.root.pem);
    write_pem(dir, "inter.crl.pem", &pki.inter_crl.pem);
}

const LISTENER: [&str; 4] = ["-c", "certgate.toml", "--listener", "web"];

fn verify<'a>(form: &[&'a str], cert: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["verify"];
    args.extend_from_slice(form);
    args.extend_from_slice(&["--cert", cert]);
    args.extend_from_slice(more);
    args
}

#[test]
fn a_good_chain_is_admitted_with_its_identity_and_headers_in_text_and_json() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), &pki);
    let (code, out, err) = run(dir.path(), &verify(&LISTENER, "good.pem", &[]));
    assert_eq!(code, Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "tls_verify_status: Success");
    assert!(lines[1].starts_with("detail: the client chain verifies against trust store corp"));
    assert_eq!(lines[2], "identity: client");
    assert!(
        lines.contains(&"x-amzn-mtls-clientcert-subject: CN=client"),
        "{out}"
    );
    assert!(lines.contains(&"x-client-identity: client"), "{out}");
    let leaf = expected_url_pem(&[&pki.good.der]);
    assert!(lines.contains(&format!("x-amzn-mtls-clientcert-leaf: {leaf}").as_str()));

    let (code, out, _) = run(dir.path(), &verify(&LISTENER, "good.pem", &["--json"]));
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tls_verify_status"], "Success");
    assert_eq!(v["client_identity"], "client");
    assert_eq!(
        v["headers"]["x-amzn-mtls-clientcert-issuer"],
        "CN=certgate test intermediate"
    );
    assert_eq!(v["headers"]["x-client-identity"], "client");
    assert!(v["tls_verify_detail"].as_str().unwrap().contains("corp"));
}

#[test]
fn a_refused_chain_says_why_with_either_form() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), &pki);
    let bundle = ["--ca-bundle", "root.pem", "--crl", "inter.crl.pem"];
    for form in [&LISTENER[..], &bundle[..]] {
        let (code, out, _) = run(dir.path(), &verify(form, "revoked.pem", &["--json"]));
        assert_eq!(code, Some(1), "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["tls_verify_status"], "Failed:ClientCertCrlHit");
        assert!(v["tls_verify_detail"].as_str().unwrap().contains("revoked"));
        assert!(v["client_identity"].is_null());
        assert_eq!(v["headers"], serde_json::json!({}));
    }
    let (code, out, _) = run(dir.path(), &verify(&bundle, "good.pem", &[]));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("identity: -\n"),
        "the bundle form takes no identity: {out}"
    );
}

#[test]
fn at_and_ignore_expiry_judge_another_instant() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), &pki);
    let expired = pki.inter.leaf(&LeafSpec {
        not_before: OffsetDateTime::now_utc() - time::Duration::days(30),
        not_after: OffsetDateTime::now_utc() - time::Duration::days(1),
        ..LeafSpec::client("expired")
    });
    write_pem(dir.path(), "expired.pem", &expired.chain_pem(&[&pki.inter]));
    let (code, out, _) = run(dir.path(), &verify(&LISTENER, "expired.pem", &[]));
    assert_eq!(code, Some(1));
    assert!(
        out.starts_with("tls_verify_status: Failed:ClientCertExpired\n"),
        "{out}"
    );
    let (code, out, _) = run(
        dir.path(),
        &verify(&LISTENER, "expired.pem", &["--ignore-expiry"]),
    );
    assert_eq!(code, Some(0), "{out}");
    // After the intermediate's notBefore (2 days ago), before the leaf's notAfter.
    let then = OffsetDateTime::now_utc() - time::Duration::hours(36);
    let at = then
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (code, out, _) = run(
        dir.path(),
        &verify(&LISTENER, "expired.pem", &["--at", &at]),
    );
    assert_eq!(code, Some(0), "36 hours ago it was valid: {out}");
    let (code, out, _) = run(
        dir.path(),
        &verify(&LISTENER, "good.pem", &["--at", "2000-01-01T00:00:00Z"]),
    );
    assert_eq!(code, Some(1));
    assert!(out.contains("NotYetValid"), "{out}");
}

#[test]
fn bad_input_exits_2_naming_the_file_and_what_it_holds() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), &pki);
    write_pem(dir.path(), "empty.pem", "");
    write_pem(dir.path(), "text.pem", "hello, I am not a certificate\n");
    write_pem(
        dir.path(),
        "leaf-last.pem",
        &format!("{}{}", pki.inter.pem, pki.good.cert_pem),
    );
    let cases = [
        ("good.key", "holds no certificate, only a PRIVATE KEY"),
        ("inter.crl.pem", "holds no certificate, only an X509 CRL"),
        ("empty.pem", "the file is empty"),
        ("text.pem", "neither PEM nor a DER certificate"),
        ("leaf-last.pem", "has its leaf last"),
        ("missing.pem", "cannot read it"),
    ];
    for (file, says) in cases {
        let (code, out, err) = run(dir.path(), &verify(&LISTENER, file, &[]));
        assert_eq!(code, Some(2), "{file}: {out}{err}");
        assert!(out.is_empty(), "{file}: {out}");
        assert!(err.contains(file) && err.contains(says), "{file}: {err}");
    }
    let (code, _, err) = run(
        dir.path(),
        &verify(
            &["-c", "certgate.toml", "--listener", "nope"],
            "good.pem",
            &[],
        ),
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no listener named \"nope\" (listeners: web)"),
        "{err}"
    );
}
