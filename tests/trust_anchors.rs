//! The CAs of the bundle as trust anchors (SPEC §16), case by case over 127.0.0.1 with the real
//! proxy: a bundle CA revoked by a CRL of the store is refused (also through a revoked issuer
//! in the bundle), a bundle CA outside its validity admits nobody, a CA that rolled its key over
//! keeps one CRL per key, and CRL serials match whatever redundant leading bytes they carry.
//! Each case runs its own proxy with its own bundle and CRLs; the group fails with the name of
//! every case that did not get its outcome.

mod support;

use std::path::Path;
use std::sync::Arc;

use rcgen::{CertificateParams, Issuer, KeyPair};
use serde_json::Value;
use support::pki::*;
use support::*;
use time::{Duration, OffsetDateTime};

const VERIFY: &str = "mode = \"verify\"\ntrust_store = \"corp\"";

enum Expect {
    Served,
    /// `Failed:<code>`, the alert the client receives, and fragments the detail must say.
    Refused(&'static str, rustls::AlertDescription, Vec<String>),
}

struct Case {
    name: &'static str,
    bundle: Vec<Vec<u8>>,
    crls: Vec<Crl>,
    ignore_expiry: bool,
    /// Leaf first, then what the client sends above it.
    chain: Vec<Vec<u8>>,
    key: Vec<u8>,
    expect: Expect,
}

fn pem_bundle(ders: &[Vec<u8>]) -> String {
    ders.iter()
        .map(|d| String::from_utf8(pem_of("CERTIFICATE", d)).unwrap())
        .collect()
}

/// Starts a verify proxy whose store is `case`'s bundle and CRLs, on files in `dir`.
async fn proxy_for(case: &Case, dir: &Path, pki: &Pki, backend: &Backend) -> Proxy {
    let bundle = write_pem(dir, "anchors.pem", &pem_bundle(&case.bundle));
    let crls: Vec<String> = case
        .crls
        .iter()
        .enumerate()
        .map(|(i, crl)| {
            let path = write_pem(dir, &format!("crl-{i}.pem"), &crl.pem);
            format!("{:?}", path.display().to_string())
        })
        .collect();
    let mutual = if case.ignore_expiry {
        format!("{VERIFY}\nignore_client_certificate_expiry = true")
    } else {
        VERIFY.to_string()
    };
    let (bundle, crls) = (bundle.display().to_string(), crls.join(", "));
    Proxy::start_edited(pki, backend.addr, &mutual, "", move |t| {
        t.replace(
            "ca_certificates_bundle = \"bundle.pem\"",
            &format!("ca_certificates_bundle = {bundle:?}"),
        )
        .replace(
            "revocation_lists = [\"inter.crl.pem\", \"root.crl.der\"]",
            &format!("revocation_lists = [{crls}]"),
        )
    })
    .await
}

fn client(pki: &Pki, chain: &[Vec<u8>], key: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.server_ca.cert_der()).unwrap();
    let certs = chain
        .iter()
        .map(|c| rustls::pki_types::CertificateDer::from(c.clone()))
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.to_vec().into());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

fn alert_of(e: &std::io::Error) -> Option<rustls::AlertDescription> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(a) => Some(*a),
        _ => None,
    }
}

async fn run_case(case: &Case, pki: &Pki) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let proxy = proxy_for(case, dir.path(), pki, &backend).await;
    let r = get(proxy.addr, client(pki, &case.chain, &case.key), "/anchor").await;
    let rec: Value = proxy.conn_records(1)[0].clone();
    let status = rec["tls_verify_status"].as_str().unwrap_or("").to_string();
    let detail = rec["tls_verify_detail"].as_str().unwrap_or("").to_string();
    match &case.expect {
        Expect::Served if matches!(r, Ok(200)) && status == "Success" => Ok(()),
        Expect::Served => Err(format!(
            "expected 200/Success, got {r:?}, {status}: {detail}"
        )),
        Expect::Refused(code, alert, says) => {
            if status != format!("Failed:{code}") || backend.count() != 0 {
                return Err(format!(
                    "expected Failed:{code}, got {r:?}, {status}: {detail}"
                ));
            }
            let got = r.as_ref().err().and_then(alert_of);
            if got != Some(*alert) {
                return Err(format!("expected alert {alert:?}, the client saw {r:?}"));
            }
            match says.iter().find(|s| !detail.contains(s.as_str())) {
                Some(missing) => Err(format!("the detail does not say {missing:?}: {detail}")),
                None => Ok(()),
            }
        }
    }
}

/// A client leaf below `ca` with the given serial (or rcgen's) and validity shift.
fn leaf_of(ca: &Ca, cn: &str, serial: Option<Vec<u8>>) -> Leaf {
    ca.leaf(&LeafSpec {
        serial,
        ..LeafSpec::client(cn)
    })
}

fn presented(leaf: &Leaf, above: &[&Ca]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let chain = std::iter::once(leaf.der.clone())
        .chain(above.iter().map(|c| c.der.clone()))
        .collect();
    (chain, leaf.key_der.clone())
}

/// `ca` issued again by `issuer` with the same name and key, valid from `nb` to `na`.
fn reissued(ca: &Ca, issuer: &Ca, nb: OffsetDateTime, na: OffsetDateTime) -> Vec<u8> {
    let key = KeyPair::from_pem(&ca.key_pem()).unwrap();
    let issuer_key = KeyPair::from_pem(&issuer.key_pem()).unwrap();
    let params = |cn: &str| {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        p.use_authority_key_identifier_extension = true;
        p
    };
    let mut p = params(&ca.name);
    p.not_before = nb;
    p.not_after = na;
    let issuer = Issuer::new(params(&issuer.name), issuer_key);
    p.signed_by(&key, &issuer).unwrap().der().to_vec()
}

fn hex(raw: &[u8]) -> String {
    let bytes = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        all => all,
    };
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn revoked(says: Vec<String>) -> Expect {
    Expect::Refused(
        "ClientCertCrlHit",
        rustls::AlertDescription::CertificateRevoked,
        says,
    )
}

fn expired(says: Vec<String>) -> Expect {
    Expect::Refused(
        "ClientCertExpired",
        rustls::AlertDescription::CertificateExpired,
        says,
    )
}

fn case(
    name: &'static str,
    bundle: &[&[u8]],
    crls: Vec<Crl>,
    client: (Vec<Vec<u8>>, Vec<u8>),
    expect: Expect,
) -> Case {
    Case {
        name,
        bundle: bundle.iter().map(|d| d.to_vec()).collect(),
        crls,
        ignore_expiry: false,
        chain: client.0,
        key: client.1,
        expect,
    }
}

/// Item 1 of issue 11: revoking a CA that is itself in the bundle.
fn revoked_bundle_cas() -> Vec<Case> {
    let root = root_ca("anchors root");
    let inter = root.intermediate("anchors intermediate");
    let sibling = root.intermediate("anchors sibling");
    let below = inter.intermediate("anchors below the intermediate");
    let root_crl = root.crl(&[&inter.serial]);
    let (leaf, sibling_leaf, below_leaf) = (
        leaf_of(&inter, "client of the intermediate", None),
        leaf_of(&sibling, "client of the sibling", None),
        leaf_of(&below, "client below", None),
    );
    let names_inter = || vec!["CN=anchors intermediate".to_string(), hex(&inter.serial)];
    let (r, i) = (root.der.as_slice(), inter.der.as_slice());
    vec![
        case(
            "bundle root + intermediate, nothing revoked",
            &[r, i],
            vec![root.crl(&[]), inter.crl(&[])],
            presented(&leaf, &[]),
            Expect::Served,
        ),
        case(
            "bundle intermediate revoked by its root's CRL, client sends its leaf only",
            &[r, i],
            vec![root_crl.clone(), inter.crl(&[])],
            presented(&leaf, &[]),
            revoked(names_inter()),
        ),
        case(
            "bundle intermediate revoked by its root's CRL, client sends it too",
            &[r, i],
            vec![root_crl.clone()],
            presented(&leaf, &[&inter]),
            revoked(vec![hex(&inter.serial)]),
        ),
        case(
            "a sibling intermediate its root did not revoke still admits",
            &[r, i, sibling.der.as_slice()],
            vec![root_crl.clone()],
            presented(&sibling_leaf, &[]),
            Expect::Served,
        ),
        case(
            "a bundle CA issued by a revoked bundle intermediate",
            &[r, i, below.der.as_slice()],
            vec![root_crl.clone()],
            presented(&below_leaf, &[]),
            revoked(
                [
                    names_inter(),
                    vec!["CN=anchors below the intermediate".to_string()],
                ]
                .concat(),
            ),
        ),
        case(
            "bundle of the intermediate alone, revoked by the CRL of a root outside the bundle",
            &[i],
            vec![root_crl.clone()],
            presented(&leaf, &[]),
            revoked(names_inter()),
        ),
    ]
}

/// Item 2 of issue 11: bundle CAs outside their validity period.
fn bundle_cas_out_of_validity() -> Vec<Case> {
    let now = OffsetDateTime::now_utc();
    let old_root = root_ca_valid(
        "expired root",
        now - Duration::days(400),
        now - Duration::days(1),
    );
    let below_old = old_root.intermediate("below the expired root");
    let root = root_ca("validity root");
    let inter = root.intermediate("validity intermediate");
    let expired_inter = reissued(
        &inter,
        &root,
        now - Duration::days(40),
        now - Duration::days(1),
    );
    let future_inter = reissued(
        &inter,
        &root,
        now + Duration::days(1),
        now + Duration::days(40),
    );
    let leaf = leaf_of(&inter, "client", None);
    let old_leaf = inter.leaf(&LeafSpec {
        not_before: now - Duration::days(30),
        not_after: now - Duration::days(10),
        ..LeafSpec::client("expired client")
    });
    let (r, i) = (root.der.as_slice(), inter.der.as_slice());
    let mut cases = vec![
        case(
            "expired root in the bundle (the client sends its intermediate)",
            &[&old_root.der],
            vec![],
            presented(&leaf_of(&below_old, "below", None), &[&below_old]),
            expired(vec!["CN=expired root".to_string(), "expired at".to_string()]),
        ),
        case(
            "expired intermediate in the bundle, client sends its leaf only",
            &[r, &expired_inter],
            vec![],
            presented(&leaf, &[]),
            expired(vec!["CN=validity intermediate".to_string(), hex(&inter.serial)]),
        ),
        case(
            "intermediate in the bundle not valid yet",
            &[r, &future_inter],
            vec![],
            presented(&leaf, &[]),
            Expect::Refused(
                "ClientCertNotYetValid",
                rustls::AlertDescription::CertificateExpired,
                vec!["valid only from".to_string()],
            ),
        ),
        case(
            "an expired bundle CA beside its renewal (same name and key) admits through the renewal",
            &[r, &expired_inter, i],
            vec![],
            presented(&leaf, &[]),
            Expect::Served,
        ),
        case(
            "ignore_client_certificate_expiry: a valid leaf below an expired bundle CA is refused",
            &[r, &expired_inter],
            vec![],
            presented(&leaf, &[]),
            expired(vec!["expired at".to_string()]),
        ),
        case(
            "ignore_client_certificate_expiry: an expired leaf below a CA that expired after it",
            &[r, &expired_inter],
            vec![],
            presented(&old_leaf, &[]),
            Expect::Served,
        ),
    ];
    for c in cases.iter_mut().filter(|c| c.name.starts_with("ignore_")) {
        c.ignore_expiry = true;
    }
    cases
}

/// Item 7 of issue 11: one CA name, two keys (old and new), one CRL each.
fn key_rollover() -> Vec<Case> {
    let root = root_ca("rollover root");
    let old = root.intermediate("rollover CA");
    let new = root.intermediate("rollover CA");
    let (old_good, old_revoked) = (
        leaf_of(&old, "old good", None),
        leaf_of(&old, "old revoked", None),
    );
    let (new_good, new_revoked) = (
        leaf_of(&new, "new good", None),
        leaf_of(&new, "new revoked", None),
    );
    // A client of the new key with the serial the old key's CRL revokes.
    let twin = leaf_of(&new, "new twin", Some(old_revoked.serial.clone()));
    let crls = || {
        vec![
            old.crl(&[&old_revoked.serial]),
            new.crl(&[&new_revoked.serial]),
        ]
    };
    let says = |l: &Leaf| vec![hex(&l.serial)];
    let mut cases = Vec::new();
    for (in_bundle, bundle) in [
        ("bundle root", vec![root.der.as_slice()]),
        (
            "bundle root + both keys",
            vec![root.der.as_slice(), &old.der, &new.der],
        ),
    ] {
        let mut add = |name: &'static str, leaf: &Leaf, ca: &Ca, expect: Expect| {
            let mut c = case(name, &bundle, crls(), presented(leaf, &[ca]), expect);
            c.name = Box::leak(format!("{in_bundle}: {name}").into_boxed_str());
            cases.push(c);
        };
        add(
            "good client of the old key",
            &old_good,
            &old,
            Expect::Served,
        );
        add(
            "good client of the new key",
            &new_good,
            &new,
            Expect::Served,
        );
        add(
            "revoked client of the old key",
            &old_revoked,
            &old,
            revoked(says(&old_revoked)),
        );
        add(
            "revoked client of the new key",
            &new_revoked,
            &new,
            revoked(says(&new_revoked)),
        );
        add(
            "new-key client with a serial the old key revoked",
            &twin,
            &new,
            Expect::Served,
        );
    }
    cases
}

/// Serials in a CRL with a redundant leading zero byte.
fn serial_encodings() -> Vec<Case> {
    let root = root_ca("serial root");
    let inter = root.intermediate("serial intermediate");
    let leaf = leaf_of(&inter, "serial client", Some(vec![0x05, 0x11, 0x22, 0x33]));
    let high = leaf_of(&inter, "high serial client", Some(vec![0x85, 0x11, 0x22]));
    let padded = inter.crl_with_raw_serials(&[
        &[0x00, 0x05, 0x11, 0x22, 0x33],
        &[0x00, 0x00, 0x85, 0x11, 0x22],
    ]);
    vec![
        case(
            "CRL entry with a redundant leading zero byte",
            &[&root.der],
            vec![padded.clone()],
            presented(&leaf, &[&inter]),
            revoked(vec!["051122".to_string()]),
        ),
        case(
            "CRL entry with a redundant zero before a needed sign byte",
            &[&root.der],
            vec![padded],
            presented(&high, &[&inter]),
            revoked(vec!["851122".to_string()]),
        ),
    ]
}

async fn run_group(group: &str, cases: Vec<Case>) {
    let pki = Pki::new();
    let mut failures = Vec::new();
    for c in &cases {
        if let Err(e) = run_case(c, &pki).await {
            failures.push(format!("{}: {e}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{group}: {} of {} cases did not get their documented outcome:\n  - {}",
        failures.len(),
        cases.len(),
        failures.join("\n  - ")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_ca_revoked_by_a_crl_of_the_store_admits_nobody() {
    run_group("revoked bundle CAs", revoked_bundle_cas()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_ca_outside_its_validity_admits_nobody() {
    run_group("bundle CA validity", bundle_cas_out_of_validity()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_key_of_a_rolled_over_ca_is_judged_by_its_own_crl() {
    run_group("key rollover", key_rollover()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crl_serials_match_whatever_redundant_leading_zeros_they_carry() {
    run_group("serial encodings", serial_encodings()).await;
}
