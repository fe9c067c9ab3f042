//! How current the CRLs are (SPEC §16): a CRL past its nextUpdate stays in use and is warned
//! about at load, `revocation_lists_expired = "reject"` turns it into
//! `Failed:ClientCertCrlProcessingError` for the clients it covers, and a reload never puts an
//! older CRL (thisUpdate or CRL number) in place of the one in service.

mod support;

use serde_json::Value;
use support::pki::*;
use support::*;
use time::{Duration, OffsetDateTime};

const VERIFY: &str = "mode = \"verify\"\ntrust_store = \"corp\"";
const CRLS_LINE: &str = "revocation_lists = [\"inter.crl.pem\", \"root.crl.der\"]";

/// RFC 3339 at second precision, as certgate prints CRL times.
fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The status and detail of the last connection-log record, once `n` are written.
fn last_verify(proxy: &Proxy, n: usize) -> (String, String) {
    let recs: Vec<Value> = proxy.conn_records(n);
    let rec = recs.last().cloned().unwrap_or_default();
    (
        rec["tls_verify_status"].as_str().unwrap_or("").to_string(),
        rec["tls_verify_detail"].as_str().unwrap_or("").to_string(),
    )
}

fn stale_inter_crl(pki: &Pki) -> Crl {
    let now = OffsetDateTime::now_utc();
    pki.inter.crl_at(
        &[&pki.revoked.serial],
        now - Duration::days(8),
        now - Duration::days(1),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crl_past_its_next_update_stays_in_use_and_is_warned_about_at_load() {
    let log = warnings();
    let mut pki = Pki::new();
    let stale = stale_inter_crl(&pki);
    let next = rfc3339(OffsetDateTime::now_utc() - Duration::days(1));
    pki.inter_crl = stale;
    let backend = Backend::start().await;
    let proxy = Proxy::start(&pki, backend.addr, VERIFY, "").await;

    let good = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    assert_eq!(get(proxy.addr, good, "/").await.unwrap(), 200);
    let revoked = client_config(&pki, Some((&pki.revoked, &[&pki.inter])), &[]);
    assert!(get(proxy.addr, revoked, "/").await.is_err());
    let (status, _) = last_verify(&proxy, 2);
    assert_eq!(
        status, "Failed:ClientCertCrlHit",
        "the stale CRL still revokes"
    );

    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("is past its nextUpdate") && l.contains("trust_store=corp"))
        .unwrap_or_else(|| panic!("no warning at load in:\n{text}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("the CRL from CN=certgate test intermediate"),
        "{line}"
    );
    assert!(line.contains(&next[..16]), "nextUpdate {next} in {line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reject_refuses_the_clients_an_expired_crl_covers() {
    let mut pki = Pki::new();
    pki.inter_crl = stale_inter_crl(&pki);
    let next = rfc3339(OffsetDateTime::now_utc() - Duration::days(1));
    let backend = Backend::start().await;
    let proxy = Proxy::start_edited(&pki, backend.addr, VERIFY, "", |t| {
        t.replace(
            CRLS_LINE,
            &format!("{CRLS_LINE}\nrevocation_lists_expired = \"reject\""),
        )
    })
    .await;

    let good = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    assert!(get(proxy.addr, good.clone(), "/").await.is_err());
    let (status, detail) = last_verify(&proxy, 1);
    assert_eq!(status, "Failed:ClientCertCrlProcessingError", "{detail}");
    assert!(
        detail.contains("the CRL from CN=certgate test intermediate is past its nextUpdate"),
        "{detail}"
    );
    assert!(
        detail.contains(&next[..16]),
        "nextUpdate {next} in {detail}"
    );
    assert_eq!(backend.count(), 0);
    let revoked = client_config(&pki, Some((&pki.revoked, &[&pki.inter])), &[]);
    assert!(get(proxy.addr, revoked, "/").await.is_err());
    assert_eq!(last_verify(&proxy, 2).0, "Failed:ClientCertCrlHit");

    // A current CRL from the same issuer serves the client again.
    write_pem(
        proxy.dir.path(),
        "inter.crl.pem",
        &pki.inter.crl_pem(&[&pki.revoked.serial]),
    );
    assert_eq!(proxy.server.reload().await, Vec::<String>::new());
    assert_eq!(get(proxy.addr, good, "/").await.unwrap(), 200);
}

/// Reloads with `crl` as inter.crl.pem and returns the problems.
async fn reload_with(proxy: &Proxy, crl: &Crl) -> Vec<String> {
    write_pem(proxy.dir.path(), "inter.crl.pem", &crl.pem);
    proxy.server.reload().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_never_replaces_a_crl_by_an_older_one() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&pki, backend.addr, VERIFY, "").await;
    let version = proxy.server.trust_store_version("corp").unwrap();
    let revoked = client_config(&pki, Some((&pki.revoked, &[&pki.inter])), &[]);
    let now = OffsetDateTime::now_utc();

    // An older thisUpdate that lists nothing: replayed, it would un-revoke the client.
    let old = pki
        .inter
        .crl_at(&[], now - Duration::days(3), now + Duration::days(7));
    let problems = reload_with(&proxy, &old).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = &problems[0];
    for want in [
        "trust store corp",
        "inter.crl.pem",
        "CRL from CN=certgate test intermediate: thisUpdate ",
        "is older than the CRL in service (thisUpdate ",
        "; kept the one in service",
    ] {
        assert!(p.contains(want), "missing {want:?} in {p}");
    }
    assert_eq!(proxy.server.trust_store_version("corp").unwrap(), version);
    assert!(get(proxy.addr, revoked.clone(), "/").await.is_err());

    // The CRL number decides when both carry one: 5 goes in, then 3 (same thisUpdate) is refused.
    let this = now + Duration::seconds(1);
    let five = pki
        .inter
        .crl_numbered(&[&pki.revoked.serial], this, now + Duration::days(7), 5);
    assert_eq!(reload_with(&proxy, &five).await, Vec::<String>::new());
    let version = proxy.server.trust_store_version("corp").unwrap();
    let three = pki
        .inter
        .crl_numbered(&[], this, now + Duration::days(7), 3);
    let problems = reload_with(&proxy, &three).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .contains("CRL number 03 is lower than the CRL in service (CRL number 05, from "),
        "{problems:?}"
    );
    assert_eq!(proxy.server.trust_store_version("corp").unwrap(), version);
    assert!(get(proxy.addr, revoked.clone(), "/").await.is_err());

    // An older CRL beside the current one of the same issuer takes nothing away: no rollback,
    // on this reload or the next.
    let both = Crl {
        der: Vec::new(),
        pem: format!("{}{}", old.pem, five.pem),
    };
    assert_eq!(reload_with(&proxy, &both).await, Vec::<String>::new());
    assert_eq!(proxy.server.reload().await, Vec::<String>::new());
    assert!(get(proxy.addr, revoked, "/").await.is_err());
    let good = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    assert_eq!(get(proxy.addr, good, "/").await.unwrap(), 200);
}
