//! Who the client is (SPEC §9), end to end over 127.0.0.1 with the real curl and a real backend:
//! optional client certificates, the identity taken from the certificate (every `from` and
//! `san_type`), the identity header a client cannot forge, RFC 9440 headers, and rules that
//! authorize by identity with fixed responses.

mod support;

use std::path::Path;

use rcgen::{CustomExtension, DnType, DnValue, OtherNameValue, SanType};
use serde_json::Value;
use support::pki::*;
use support::*;

/// Verify mode that admits clients without a certificate.
const OPTIONAL: &str = "mode = \"verify\"\ntrust_store = \"corp\"\nfail_if_no_peer_cert = false";

/// What curl got: its exit code, the status line's code (0 when none) and the body.
struct Curled {
    exit: Option<i32>,
    status: u16,
    body: String,
}

/// Runs the real curl against `url` in `dir` (bounded, no ~/.curlrc), presenting `who`'s
/// `{who}.pem`/`{who}.key` from `dir` when given.
async fn curl(dir: &Path, url: &str, who: Option<&str>, extra: &[&str]) -> Curled {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.current_dir(dir)
        .args(["-q", "-sS", "--noproxy", "*", "--max-time", "10"])
        .args(["--cacert", "server_ca.pem", "-w", "\n%{http_code}"]);
    if let Some(who) = who {
        cmd.args([
            "--cert",
            &format!("{who}.pem"),
            "--key",
            &format!("{who}.key"),
        ]);
    }
    let out = cmd.args(extra).arg(url).output().await.expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Curled {
        exit: out.status.code(),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_string(),
    }
}

/// Writes a client's chain (leaf + intermediate) and key as `{who}.pem`/`{who}.key`.
fn write_client(dir: &Path, pki: &Pki, who: &str, leaf: &Leaf) {
    write_pem(dir, &format!("{who}.pem"), &leaf.chain_pem(&[&pki.inter]));
    write_pem(dir, &format!("{who}.key"), &leaf.key_pem);
}

fn url(proxy: &Proxy, path: &str) -> String {
    format!("https://localhost:{}{path}", proxy.addr.port())
}

/// Starts a proxy with `mutual` and `extra`, with the server CA and the standard good and
/// revoked clients written for curl.
async fn start(pki: &Pki, backend: &Backend, mutual: &str, extra: &str) -> Proxy {
    let proxy = Proxy::start(pki, backend.addr, mutual, extra).await;
    let dir = proxy.dir.path();
    write_pem(dir, "server_ca.pem", &pki.server_ca.pem);
    write_client(dir, pki, "good", &pki.good);
    write_client(dir, pki, "revoked", &pki.revoked);
    proxy
}

fn mtls_headers(seen: &Seen) -> Vec<&str> {
    seen.headers
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.starts_with("x-amzn-mtls") || *n == "x-client-identity")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_certificates_admit_no_certificate_and_still_refuse_a_bad_one() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = start(&pki, &backend, OPTIONAL, "").await;
    let dir = proxy.dir.path();

    let none = curl(dir, &url(&proxy, "/none"), None, &[]).await;
    assert_eq!((none.exit, none.status), (Some(0), 200), "{}", none.body);
    let seen = backend.last();
    assert!(
        mtls_headers(&seen).is_empty(),
        "no certificate, no mTLS headers: {:?}",
        seen.headers
    );

    let good = curl(dir, &url(&proxy, "/good"), Some("good"), &[]).await;
    assert_eq!(good.status, 200);
    assert_eq!(
        backend.last().one("x-amzn-mtls-clientcert-subject"),
        "CN=client"
    );

    let revoked = curl(dir, &url(&proxy, "/revoked"), Some("revoked"), &[]).await;
    assert!(
        matches!(revoked.exit, Some(35) | Some(56)),
        "a revoked certificate is still refused: {:?} {}",
        revoked.exit,
        revoked.body
    );
    assert_eq!(backend.count(), 2, "the revoked client reached the backend");

    let recs = proxy.conn_records(3);
    let no_cert = &recs[0];
    assert_eq!(no_cert["tls_verify_status"], "Success", "{no_cert}");
    assert!(no_cert["leaf_client_cert_subject"].is_null(), "{no_cert}");
    let detail = no_cert["tls_verify_detail"].as_str().unwrap_or("");
    assert!(detail.contains("no certificate"), "{no_cert}");
    assert!(recs[1]["tls_verify_detail"].is_null(), "{}", recs[1]);
    assert_eq!(recs[2]["tls_verify_status"], "Failed:ClientCertCrlHit");

    // The jq line of the README finds exactly the client that came without a certificate.
    let jq = std::process::Command::new("jq")
        .args([
            "-c",
            "select(.leaf_client_cert_subject == null and .tls_verify_status == \"Success\") | .client_port",
        ])
        .arg(&proxy.conn_log)
        .output()
        .expect("run jq");
    let ports = String::from_utf8_lossy(&jq.stdout);
    assert_eq!(ports.trim(), no_cert["client_port"].to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_required_certificate_is_still_required_by_default() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = start(
        &pki,
        &backend,
        "mode = \"verify\"\ntrust_store = \"corp\"",
        "",
    )
    .await;
    let none = curl(proxy.dir.path(), &url(&proxy, "/"), None, &[]).await;
    assert!(matches!(none.exit, Some(35) | Some(56)), "{:?}", none.exit);
    let rec = proxy.conn_records(1).pop().unwrap();
    assert_eq!(rec["tls_verify_status"], "Failed:UnmappedConnectionError");
    assert_eq!(backend.count(), 0);
}

// ---- [listener.client_identity] ----

/// OID of Microsoft's UPN otherName, a common one.
const UPN: [u64; 10] = [1, 3, 6, 1, 4, 1, 311, 20, 2, 3];

/// CN=ops-1,O=Corp with two SANs of each usual type and a UPN otherName.
fn many_names(pki: &Pki) -> Leaf {
    let ia5 = |s: &str| s.try_into().expect("IA5 string");
    pki.inter.leaf(&LeafSpec {
        subject: vec![
            (DnType::OrganizationName, DnValue::from("Corp")),
            (DnType::CommonName, DnValue::from("ops-1")),
        ],
        sans: vec![
            SanType::DnsName(ia5("a.example")),
            SanType::URI(ia5("spiffe://corp/admin/ops-1")),
            SanType::IpAddress("10.0.0.7".parse().unwrap()),
            SanType::DnsName(ia5("b.example")),
            SanType::Rfc822Name(ia5("ops@example.com")),
            SanType::IpAddress("2001:db8::1".parse().unwrap()),
            SanType::OtherName((UPN.to_vec(), OtherNameValue::Utf8String("svc-7".into()))),
        ],
        ..LeafSpec::default()
    })
}

/// A leaf whose only SAN is an otherName holding an INTEGER, not a string.
fn other_name_integer(pki: &Pki) -> Leaf {
    let oid = der_tlv(
        0x06,
        &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03],
    );
    let value = der_tlv(0xA0, &der_tlv(0x02, &[5]));
    let other = der_tlv(0xA0, &[oid, value].concat());
    let san = der_tlv(0x30, &other);
    pki.inter.leaf(&LeafSpec {
        extensions: vec![CustomExtension::from_oid_content(&[2, 5, 29, 17], san)],
        ..LeafSpec::client("odd other name")
    })
}

fn subject(pki: &Pki, value: DnValue) -> Leaf {
    pki.inter.leaf(&LeafSpec {
        subject: vec![(DnType::CommonName, value)],
        ..LeafSpec::default()
    })
}

/// One client of an identity case: its leaf, and the identity it must get (`Ok`) or the words
/// the access log must give for having none (`Err`).
type Client<'a> = (&'a Leaf, Result<&'a str, &'a str>);

/// Starts a verify listener with `[listener.client_identity]` = `identity` (header
/// X-Client-Identity) and checks each client with curl: the header the backend gets (the forged
/// copies a client sends never reach it), the connection log and the access log.
async fn identity_case(pki: &Pki, identity: &str, clients: &[Client<'_>]) {
    let backend = Backend::start().await;
    let section = format!(
        "{}\n\n[listener.client_identity]\n{identity}\nheader_name = \"X-Client-Identity\"\n",
        "mode = \"verify\"\ntrust_store = \"corp\""
    );
    let proxy = start(pki, &backend, &section, "").await;
    let dir = proxy.dir.path();
    for (i, (leaf, want)) in clients.iter().enumerate() {
        write_client(dir, pki, "case", leaf);
        let forged = [
            "-H",
            "X-Client-Identity: admin",
            "-H",
            "x_client-identity: admin",
        ];
        let r = curl(dir, &url(&proxy, "/who"), Some("case"), &forged).await;
        assert_eq!(r.status, 200, "{identity}: client {i}: {}", r.body);
        let seen = backend.last();
        let conn = proxy.conn_records(i + 1).pop().unwrap();
        let access = proxy.access_records(i + 1).pop().unwrap();
        assert!(!seen.has("x_client-identity"), "{:?}", seen.headers);
        match want {
            Ok(id) => {
                assert_eq!(
                    seen.all("x-client-identity"),
                    [*id],
                    "{identity}: client {i}"
                );
                assert_eq!(conn["client_identity"], *id, "{conn}");
                assert_eq!(access["client_identity"], *id, "{access}");
                assert!(access["client_identity_detail"].is_null(), "{access}");
            }
            Err(why) => {
                assert!(
                    !seen.has("x-client-identity"),
                    "{identity}: {:?}",
                    seen.headers
                );
                assert!(conn["client_identity"].is_null(), "{conn}");
                assert!(access["client_identity"].is_null(), "{access}");
                let detail = access["client_identity_detail"].as_str().unwrap_or("");
                assert!(detail.contains(why), "{identity}: client {i}: {access}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_identity_source_names_the_client_and_a_missing_field_names_nobody() {
    let pki = Pki::new();
    let leaf = many_names(&pki);
    let odd = other_name_integer(&pki);
    let bmp = subject(&pki, DnValue::BmpString("Zoë".try_into().unwrap()));
    let long = subject(&pki, DnValue::from("x".repeat(1500)));
    let empty = pki.inter.leaf(&LeafSpec {
        subject: vec![],
        ..LeafSpec::default()
    });
    let san = |t: &str, i: usize| {
        format!("from = \"subject_alternative_name\"\nsan_type = \"{t}\"\nsan_index = {i}")
    };
    identity_case(
        &pki,
        "from = \"distinguished_name\"",
        &[
            (&leaf, Ok("CN=ops-1,O=Corp")),
            (&empty, Err("empty subject")),
        ],
    )
    .await;
    identity_case(
        &pki,
        "from = \"common_name\"",
        &[
            (&leaf, Ok("ops-1")),
            (&bmp, Ok(r"Zo\C3\AB")),
            (&empty, Err("no common name")),
            (&long, Err("more than 1024")),
        ],
    )
    .await;
    identity_case(&pki, &san("dns", 1), &[(&leaf, Ok("b.example"))]).await;
    identity_case(&pki, &san("ip", 0), &[(&leaf, Ok("10.0.0.7"))]).await;
    identity_case(&pki, &san("ip", 1), &[(&leaf, Ok("2001:db8::1"))]).await;
    identity_case(&pki, &san("email", 0), &[(&leaf, Ok("ops@example.com"))]).await;
    identity_case(
        &pki,
        &san("uri", 0),
        &[
            (&leaf, Ok("spiffe://corp/admin/ops-1")),
            (&pki.good, Err("no subject alternative names")),
        ],
    )
    .await;
    identity_case(&pki, &san("uri", 1), &[(&leaf, Err("has 1 uri SAN(s)"))]).await;
    identity_case(
        &pki,
        &san("other_name", 0),
        &[(&leaf, Ok("svc-7")), (&odd, Err("UTF-8 string"))],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_identity_header_is_stripped_from_clients_without_a_certificate() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let section = format!(
        "{OPTIONAL}\n\n[listener.client_identity]\nfrom = \"common_name\"\nheader_name = \"X-Client-Identity\"\n"
    );
    let proxy = start(&pki, &backend, &section, "").await;
    let forged = [
        "-H",
        "X-Client-Identity: ops-1",
        "-H",
        "X_CLIENT_IDENTITY: ops-1",
    ];
    let r = curl(proxy.dir.path(), &url(&proxy, "/"), None, &forged).await;
    assert_eq!(r.status, 200);
    let seen = backend.last();
    assert!(mtls_headers(&seen).is_empty(), "{:?}", seen.headers);
    assert!(!seen.has("x_client_identity"), "{:?}", seen.headers);
    let access = proxy.access_records(1).pop().unwrap();
    assert!(access["client_identity"].is_null(), "{access}");
    assert!(access["client_identity_detail"].is_null(), "{access}");
}

// ---- what `check` refuses ----

/// Each edit of a valid verify config, and the fragments its one problem must contain.
fn refused_configs(cases: &[(String, String, String, Vec<String>)]) {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let backend: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut failures = Vec::new();
    for (name, mutual, extra, want) in cases {
        let path = write_config(dir.path(), &pki, backend, mutual, extra);
        let text = std::fs::read_to_string(&path).unwrap();
        match certgate::config::from_str(&text, &path, dir.path()) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e) => {
                let msg = e.to_string();
                if let Some(missing) = want.iter().find(|w| !msg.contains(w.as_str())) {
                    failures.push(format!("{name}: {missing:?} not in: {msg}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const VERIFY: &str = "mode = \"verify\"\ntrust_store = \"corp\"";

fn with_identity(mode: &str, body: &str) -> String {
    format!("{mode}\n\n[listener.client_identity]\n{body}\n")
}

#[test]
fn check_refuses_wrong_identity_settings_by_key_path() {
    let key = "listener[0] (web).client_identity";
    let cases: Vec<(String, String, Vec<String>)> = vec![
        (
            "san_type without subject_alternative_name".into(),
            with_identity(VERIFY, "from = \"common_name\"\nsan_type = \"uri\""),
            vec![format!("{key}.san_type: only allowed with from = \"subject_alternative_name\"")],
        ),
        (
            "negative san_index".into(),
            with_identity(
                VERIFY,
                "from = \"subject_alternative_name\"\nsan_type = \"dns\"\nsan_index = -1",
            ),
            vec![format!("{key}.san_index: -1 is out of range")],
        ),
        (
            "subject_alternative_name without san_type".into(),
            with_identity(VERIFY, "from = \"subject_alternative_name\""),
            vec![format!("{key}.san_type: is required")],
        ),
        (
            "header name of an ALB header".into(),
            with_identity(
                VERIFY,
                "from = \"common_name\"\nheader_name = \"X-Amzn-Mtls-Clientcert-Subject\"",
            ),
            vec![format!("{key}.header_name"), "collides".into()],
        ),
        (
            "header name of an ALB header spelt with _".into(),
            with_identity(
                VERIFY,
                "from = \"common_name\"\nheader_name = \"x_amzn_mtls_clientcert\"",
            ),
            vec![format!("{key}.header_name"), "collides".into()],
        ),
        (
            "header name X-Forwarded-For".into(),
            with_identity(VERIFY, "from = \"common_name\"\nheader_name = \"X-Forwarded-For\""),
            vec![format!("{key}.header_name"), "collides".into()],
        ),
        (
            "identity on a passthrough listener".into(),
            with_identity("mode = \"passthrough\"", "from = \"common_name\""),
            vec![format!("{key}: only allowed when mutual_authentication.mode = \"verify\"")],
        ),
        (
            "unknown from".into(),
            with_identity(VERIFY, "from = \"serial\""),
            vec!["listener[0].client_identity.from".into(), "serial".into()],
        ),
        (
            "fail_if_no_peer_cert on passthrough".into(),
            "mode = \"passthrough\"\nfail_if_no_peer_cert = false".into(),
            vec!["listener[0] (web).mutual_authentication.fail_if_no_peer_cert: only allowed when mode = \"verify\"".into()],
        ),
    ];
    refused_configs(
        &cases
            .iter()
            .map(|(n, m, w)| (n.clone(), m.clone(), String::new(), w.clone()))
            .collect::<Vec<_>>(),
    );
}

// ---- rules on the client certificate, fixed responses ----

/// The README's worked example: everyone may come without a certificate, `/admin/*` is for
/// `ops-*` clients only.
fn admin_example(admin: std::net::SocketAddr) -> (String, String) {
    let mutual = format!(
        "{OPTIONAL}\n\n[listener.client_identity]\nfrom = \"common_name\"\nheader_name = \"X-Client-Identity\"\n"
    );
    let extra = format!(
        r#"
[[listener.rule]]
path = "/admin/*"
client_identity = ["ops-*", "spiffe://corp/admin/*"]
target_group = "admin"

[[listener.rule]]
path = "/admin/*"
fixed_response = {{ status_code = 403, content_type = "text/plain", message_body = "forbidden" }}

[[listener.rule]]
path = "/by-issuer"
client_issuer = ["CN=certgate test inter*"]
fixed_response = {{ status_code = 200, content_type = "application/json", message_body = "{{\"issuer\":\"ok\"}}" }}

[target_group.admin]
targets = ["http://{admin}"]
[target_group.admin.health_check]
enabled = false
"#
    );
    (mutual, extra)
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_authorize_by_identity_and_answer_the_rest_with_a_fixed_response() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let admin = Backend::start().await;
    let (mutual, extra) = admin_example(admin.addr);
    let proxy = start(&pki, &backend, &mutual, &extra).await;
    let dir = proxy.dir.path();
    write_client(
        dir,
        &pki,
        "ops",
        &pki.inter.leaf(&LeafSpec::client("ops-1")),
    );

    let ops = curl(dir, &url(&proxy, "/admin/users"), Some("ops"), &[]).await;
    assert_eq!(ops.status, 200, "{}", ops.body);
    assert_eq!(admin.count(), 1, "the ops client reaches the admin group");
    assert_eq!(admin.last().one("x-client-identity"), "ops-1");

    let other = curl(dir, &url(&proxy, "/admin/users"), Some("good"), &[]).await;
    assert_eq!((other.status, other.body.as_str()), (403, "forbidden"));
    let anonymous = curl(dir, &url(&proxy, "/admin/users"), None, &["-i"]).await;
    assert_eq!(anonymous.status, 403);
    assert!(
        anonymous
            .body
            .to_lowercase()
            .contains("content-type: text/plain"),
        "{}",
        anonymous.body
    );
    let forged = curl(
        dir,
        &url(&proxy, "/admin/users"),
        None,
        &["-H", "X-Client-Identity: ops-1"],
    )
    .await;
    assert_eq!(
        forged.status, 403,
        "a forged identity header authorizes nothing"
    );
    assert_eq!(
        admin.count(),
        1,
        "only the ops client reached the admin group"
    );

    let public = curl(dir, &url(&proxy, "/public"), None, &[]).await;
    assert_eq!(public.status, 200);
    assert_eq!(backend.count(), 1);

    let by_issuer = curl(dir, &url(&proxy, "/by-issuer"), Some("good"), &[]).await;
    assert_eq!(
        (by_issuer.status, by_issuer.body.as_str()),
        (200, "{\"issuer\":\"ok\"}")
    );
    let no_issuer = curl(dir, &url(&proxy, "/by-issuer"), None, &[]).await;
    assert_eq!(no_issuer.status, 200);
    assert_eq!(
        backend.count(),
        2,
        "without a certificate the issuer rule does not match"
    );

    let access = proxy.access_records(7);
    let rules: Vec<&Value> = access.iter().map(|r| &r["rule"]).collect();
    assert_eq!(
        rules[..4],
        [
            &Value::from(0),
            &Value::from(1),
            &Value::from(1),
            &Value::from(1)
        ]
    );
    assert!(access[1]["target"].is_null(), "{}", access[1]);
    // The README's jq line: who was refused.
    let jq = std::process::Command::new("jq")
        .args([
            "-r",
            r#"select(.elb_status_code == 403) | .client_identity // "(no certificate)""#,
        ])
        .arg(&proxy.access_log)
        .output()
        .expect("run jq");
    assert_eq!(
        String::from_utf8_lossy(&jq.stdout),
        "client\n(no certificate)\n(no certificate)\n"
    );
}

#[test]
fn check_refuses_wrong_rules_by_key_path() {
    let key = "listener[0] (web).rule[0]";
    let identity = with_identity(VERIFY, "from = \"common_name\"");
    let fixed = |f: &str| format!("[[listener.rule]]\npath = \"/a\"\nfixed_response = {{ {f} }}\n");
    let rule = |body: &str| format!("[[listener.rule]]\npath = \"/a\"\n{body}\n");
    let forbidden = "fixed_response = { status_code = 403 }";
    let cases: Vec<(&str, String, String, Vec<String>)> = vec![
        (
            "identity condition on a passthrough listener",
            "mode = \"passthrough\"".into(),
            rule(&format!("client_identity = [\"ops-*\"]\n{forbidden}")),
            vec![format!("{key}.client_identity: a certificate condition needs mutual_authentication.mode = \"verify\"")],
        ),
        (
            "issuer condition on an off listener",
            "mode = \"off\"".into(),
            rule(&format!("client_issuer = [\"CN=*\"]\n{forbidden}")),
            vec![format!("{key}.client_issuer: a certificate condition needs")],
        ),
        (
            "identity condition without [listener.client_identity]",
            VERIFY.into(),
            rule(&format!("client_identity = [\"ops-*\"]\n{forbidden}")),
            vec![format!("{key}.client_identity: needs a [listener.client_identity] section")],
        ),
        (
            "empty identity list",
            identity.clone(),
            rule(&format!("client_identity = []\n{forbidden}")),
            vec![format!("{key}.client_identity: is empty")],
        ),
        (
            "a 302 fixed response",
            VERIFY.into(),
            fixed("status_code = 302"),
            vec![format!("{key}.fixed_response.status_code: 302 is not a 2XX, 4XX or 5XX status")],
        ),
        (
            "an unknown content type",
            VERIFY.into(),
            fixed("status_code = 403, content_type = \"text/xml\""),
            vec![format!("{key}.fixed_response.content_type: \"text/xml\" is not one of")],
        ),
        (
            "a body of 1025 bytes",
            VERIFY.into(),
            fixed(&format!("status_code = 403, message_body = \"{}\"", "x".repeat(1025))),
            vec![format!("{key}.fixed_response.message_body: is 1025 bytes, more than 1024")],
        ),
        (
            "two actions",
            VERIFY.into(),
            rule(&format!("target_group = \"web/backend\"\n{forbidden}")),
            vec![format!("{key}: give exactly one action")],
        ),
        (
            "no action",
            VERIFY.into(),
            rule(""),
            vec![format!("{key}: needs an action")],
        ),
        (
            "an identity rule shadowed by an earlier, wider one",
            identity.clone(),
            format!(
                "{}{}",
                rule(&format!("client_identity = [\"ops-*\"]\n{forbidden}")),
                rule(&format!("client_identity = [\"ops-1\"]\n{forbidden}"))
            ),
            vec!["listener[0] (web).rule[1]: can never match".into()],
        ),
    ];
    refused_configs(
        &cases
            .into_iter()
            .map(|(n, m, e, w)| (n.to_string(), m, e, w))
            .collect::<Vec<_>>(),
    );
}

/// A structured-field byte sequence (`:base64:`) decoded back to its bytes.
fn sf_bytes(item: &str) -> Vec<u8> {
    use base64::Engine;
    let inner = item
        .trim()
        .strip_prefix(':')
        .and_then(|s| s.strip_suffix(':'))
        .unwrap_or_else(|| panic!("{item:?} is not a byte sequence"));
    base64::engine::general_purpose::STANDARD
        .decode(inner)
        .unwrap_or_else(|e| panic!("{item:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc9440_headers_carry_the_der_and_are_stripped_from_clients() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let headers = "\n[listener.headers]\nclient_cert_rfc9440 = true\n";
    let proxy = start(&pki, &backend, &format!("{OPTIONAL}\n{headers}"), "").await;
    let dir = proxy.dir.path();
    let forged = [
        "-H",
        "Client-Cert: :AAAA:",
        "-H",
        "Client-Cert-Chain: :AAAA:",
    ];

    let good = curl(dir, &url(&proxy, "/"), Some("good"), &forged).await;
    assert_eq!(good.status, 200, "{}", good.body);
    let seen = backend.last();
    assert_eq!(seen.all("client-cert").len(), 1, "the forged one is gone");
    assert_eq!(sf_bytes(seen.one("client-cert")), pki.good.der);
    let chain: Vec<Vec<u8>> = seen
        .one("client-cert-chain")
        .split(',')
        .map(sf_bytes)
        .collect();
    assert_eq!(
        chain,
        vec![pki.inter.der.clone()],
        "intermediates, leaf excluded"
    );

    let anonymous = curl(dir, &url(&proxy, "/"), None, &forged).await;
    assert_eq!(anonymous.status, 200);
    let seen = backend.last();
    assert!(!seen.has("client-cert") && !seen.has("client-cert-chain"));

    // A listener that does not send them still strips them: a backend may trust them.
    let plain = start(&pki, &backend, OPTIONAL, "").await;
    let got = curl(plain.dir.path(), &url(&plain, "/"), Some("good"), &forged).await;
    assert_eq!(got.status, 200);
    let seen = backend.last();
    assert!(!seen.has("client-cert") && !seen.has("client-cert-chain"));
}
