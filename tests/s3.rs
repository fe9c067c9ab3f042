//! Trust stores loaded from S3 (issue 3), against a real S3-compatible server (moto) on
//! 127.0.0.1: start-up loads, pinned and unpinned object versions, the timed refresh with its
//! last-good-store rule (garbage object, deleted object, S3 down), start-up failures, one
//! `trust_store_version` across proxies, and `truststore describe`.
//!
//! Every test has its own moto server. In-process proxies get their AWS settings from the
//! environment (`aws_env_in_process`), `certgate` processes through `Command::env`; nothing
//! leaves loopback.

mod support;

#[path = "support/s3.rs"]
mod s3_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use s3_support::{aws_env, aws_env_in_process, free_port, s3_table, s3_url, Moto, Put, S3};
use serde_json::Value;
use support::pki::*;
use support::process::ChildGuard;
use support::{client_config, get, json_lines, poll, strip_ansi, write_config, Backend, Proxy};

const VERIFY: &str = "mode = \"verify\"\ntrust_store = \"corp\"";

const BUNDLE_KEY: &str = "corp/ca-bundle.pem";
const INTER_CRL_KEY: &str = "corp/crl/intermediate.crl.pem";
const ROOT_CRL_KEY: &str = "corp/crl/root.crl.der";

/// Bound for a change in S3 to reach a proxy refreshing every second.
const PICKUP: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The trust store in S3 and configs pointing at it
// ---------------------------------------------------------------------------------------------

/// The corp trust store in a versioned bucket: the root CA bundle (PEM), the intermediate's CRL
/// revoking `pki.revoked` (PEM) and the root's empty CRL (DER).
struct Store {
    s3: S3,
    bucket: String,
    bundle: Put,
    inter_crl: Put,
    root_crl: Put,
}

async fn seed(moto: &Moto, bucket: &str, pki: &Pki) -> Store {
    let s3 = moto.client();
    s3.create_versioned_bucket(bucket).await;
    Store {
        bundle: s3.put(bucket, BUNDLE_KEY, pki.root.pem.clone()).await,
        inter_crl: s3
            .put(bucket, INTER_CRL_KEY, pki.inter_crl.pem.clone())
            .await,
        root_crl: s3.put(bucket, ROOT_CRL_KEY, pki.root_crl.der.clone()).await,
        bucket: bucket.to_string(),
        s3,
    }
}

impl Store {
    /// Puts a new current version of the intermediate's CRL revoking `serials`.
    async fn put_inter_crl(&self, pki: &Pki, serials: &[&[u8]]) -> Put {
        let pem = pki.inter.crl_pem(serials);
        self.s3.put(&self.bucket, INTER_CRL_KEY, pem).await
    }

    fn url(&self, key: &str) -> String {
        s3_url(&self.bucket, key, None)
    }
}

/// Where the corp store's sources come from.
struct Sources {
    bundle: String,
    crls: Vec<String>,
}

impl Sources {
    /// Every source follows the current object version.
    fn unpinned(bucket: &str) -> Sources {
        Sources {
            bundle: s3_url(bucket, BUNDLE_KEY, None),
            crls: vec![
                s3_url(bucket, INTER_CRL_KEY, None),
                s3_url(bucket, ROOT_CRL_KEY, None),
            ],
        }
    }

    /// Every source pinned (`?versionId=`) to the version `seed` stored.
    fn pinned(store: &Store) -> Sources {
        let b = &store.bucket;
        Sources {
            bundle: s3_url(b, BUNDLE_KEY, Some(store.bundle.version())),
            crls: vec![
                s3_url(b, INTER_CRL_KEY, Some(store.inter_crl.version())),
                s3_url(b, ROOT_CRL_KEY, Some(store.root_crl.version())),
            ],
        }
    }
}

/// Points the corp store of a `write_config` text at `sources` (CRLs given as `None` keep the
/// local files) and sets its refresh interval.
fn point_at(text: String, bundle: &str, crls: Option<&[String]>, refresh_secs: u64) -> String {
    const BUNDLE_LINE: &str = "ca_certificates_bundle = \"bundle.pem\"";
    const CRLS_LINE: &str = "revocation_lists = [\"inter.crl.pem\", \"root.crl.der\"]";
    assert!(
        text.contains(BUNDLE_LINE) && text.contains(CRLS_LINE),
        "{text}"
    );
    let crls_line = match crls {
        None => CRLS_LINE.to_string(),
        Some(urls) => {
            let quoted: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
            format!("revocation_lists = [{}]", quoted.join(", "))
        }
    };
    text.replace(
        BUNDLE_LINE,
        &format!("ca_certificates_bundle = \"{bundle}\""),
    )
    .replace(
        CRLS_LINE,
        &format!("{crls_line}\nrefresh_interval_secs = {refresh_secs}"),
    )
}

fn s3_edit(sources: &Sources, refresh_secs: u64) -> impl FnOnce(String) -> String + '_ {
    move |t| point_at(t, &sources.bundle, Some(&sources.crls), refresh_secs)
}

/// Writes a verify config in `dir` whose corp store comes from `sources` at `endpoint`.
fn write_s3_config(
    dir: &Path,
    pki: &Pki,
    backend: SocketAddr,
    endpoint: &str,
    sources: &Sources,
    refresh_secs: u64,
) -> PathBuf {
    let path = write_config(dir, pki, backend, VERIFY, &s3_table(endpoint));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, s3_edit(sources, refresh_secs)(text)).unwrap();
    path
}

/// An in-process proxy whose corp store comes from `sources` on `moto`.
async fn start_proxy(
    pki: &Pki,
    backend: &Backend,
    moto: &Moto,
    sources: &Sources,
    refresh_secs: u64,
) -> Proxy {
    let extra = s3_table(&moto.endpoint());
    Proxy::start_edited(
        pki,
        backend.addr,
        VERIFY,
        &extra,
        s3_edit(sources, refresh_secs),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Clients and connection-log records
// ---------------------------------------------------------------------------------------------

/// Sends requests to one listener and reads the connection-log record of each.
struct Probe {
    addr: SocketAddr,
    conn_log: PathBuf,
    records: usize,
    /// stderr of the proxy process, for failure messages.
    stderr: Option<Arc<Mutex<Vec<u8>>>>,
}

impl Probe {
    fn of(proxy: &Proxy) -> Probe {
        Probe {
            addr: proxy.addr,
            conn_log: proxy.conn_log.clone(),
            records: 0,
            stderr: None,
        }
    }

    fn context(&self) -> String {
        match &self.stderr {
            None => String::new(),
            Some(e) => format!(
                "\ncertgate stderr:\n{}",
                strip_ansi(&String::from_utf8_lossy(&e.lock().unwrap()))
            ),
        }
    }

    /// One request as `leaf`: what happened, and its connection-log record.
    async fn request(&mut self, pki: &Pki, leaf: &Leaf) -> (Outcome, Value) {
        let cfg = client_config(pki, Some((leaf, &[&pki.inter])), &[]);
        let r = get(self.addr, cfg, "/probe").await;
        self.records += 1;
        let records = json_lines(&self.conn_log, self.records);
        let rec = records[self.records - 1].clone();
        let status = rec["tls_verify_status"].as_str().unwrap_or_default();
        let outcome = match (&r, status) {
            (Ok(200), "Success") => Outcome::Admitted,
            (Err(_), "Failed:ClientCertCrlHit") => Outcome::Refused,
            (Err(_), "Success") => Outcome::Dropped,
            _ => panic!(
                "client saw {r:?}; record {rec}\nconnection log:\n{}{}",
                records
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                self.context()
            ),
        };
        (outcome, rec)
    }

    async fn expect(&mut self, pki: &Pki, leaf: &Leaf, want: Outcome) -> String {
        let (got, rec) = self.request(pki, leaf).await;
        assert_eq!(got, want, "record {rec}{}", self.context());
        version_of(&rec)
    }

    /// Admits `leaf` now; returns the `trust_store_version` in service.
    async fn admits(&mut self, pki: &Pki, leaf: &Leaf) -> String {
        self.expect(pki, leaf, Outcome::Admitted).await
    }

    /// Refuses `leaf` now (CRL hit); returns the `trust_store_version` in service.
    async fn refuses(&mut self, pki: &Pki, leaf: &Leaf) -> String {
        self.expect(pki, leaf, Outcome::Refused).await
    }

    /// Requests as `leaf` every 200 ms until it is admitted (`admitted`) or refused; returns
    /// the version of that record. Panics after `PICKUP`.
    async fn until(&mut self, pki: &Pki, leaf: &Leaf, admitted: bool, what: &str) -> String {
        let want = if admitted {
            Outcome::Admitted
        } else {
            Outcome::Refused
        };
        let deadline = Instant::now() + PICKUP;
        loop {
            let (got, rec) = self.request(pki, leaf).await;
            if got == want {
                return version_of(&rec);
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen after {PICKUP:?}; last record {rec}{}",
                self.context()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What became of one request.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// 200 from the backend; `Success` in the connection log.
    Admitted,
    /// Handshake refused; `Failed:ClientCertCrlHit`.
    Refused,
    /// Handshake succeeded, then the connection closed without a response: a store swapped in
    /// at that moment no longer admits the client, and certgate closes such open connections.
    Dropped,
}

fn version_of(rec: &Value) -> String {
    let v = rec["trust_store_version"]
        .as_str()
        .unwrap_or_else(|| panic!("no trust_store_version in {rec}"));
    assert!(!v.is_empty(), "empty trust_store_version in {rec}");
    v.to_string()
}

// ---------------------------------------------------------------------------------------------
// certgate processes
// ---------------------------------------------------------------------------------------------

/// The binary with the AWS test environment (moto's endpoint, fake credentials, no instance
/// metadata), plus the S3-specific waits.
struct Certgate(ChildGuard);

impl std::ops::Deref for Certgate {
    type Target = ChildGuard;
    fn deref(&self) -> &ChildGuard {
        &self.0
    }
}

impl std::ops::DerefMut for Certgate {
    fn deref_mut(&mut self) -> &mut ChildGuard {
        &mut self.0
    }
}

impl Certgate {
    fn spawn(args: &[&str], cwd: &Path) -> Certgate {
        Certgate(ChildGuard::spawn_with(args, cwd, |cmd| {
            aws_env(cmd);
        }))
    }

    /// Runs `certgate ARGS` to completion (bounded): (status, stdout, stderr).
    fn run(args: &[&str], cwd: &Path) -> (ExitStatus, String, String) {
        ChildGuard::run_with(args, cwd, |cmd| {
            aws_env(cmd);
        })
    }

    /// Error lines on stderr that contain `needle`.
    fn errors_naming(&self, needle: &str) -> Vec<String> {
        self.stderr()
            .lines()
            .filter(|l| l.contains(" ERROR ") && l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Waits (bounded) until more than `seen` error lines name `needle`; returns them all.
    fn wait_for_errors(&mut self, needle: &str, seen: usize) -> Vec<String> {
        poll(PICKUP, &format!("an error naming {needle}"), || {
            let e = self.errors_naming(needle);
            if e.len() > seen {
                return Some(e);
            }
            self.assert_running();
            None
        })
    }
}

/// `certgate run -c CONFIG` in `dir`, listening, with a probe on its connection log.
struct Running {
    process: Certgate,
    probe: Probe,
}

fn run_proxy(dir: &Path, config: &Path) -> Running {
    let mut process = Certgate::spawn(&["run", "-c", path_str(config)], dir);
    let addr = process.listening_addr();
    let probe = Probe {
        addr,
        conn_log: dir.join("conn.log"),
        records: 0,
        stderr: Some(process.stderr_buffer()),
    };
    Running { process, probe }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// The version `certgate check -c CONFIG` prints for the corp store.
fn check_version(dir: &Path, config: &Path) -> String {
    let (status, out, err) = Certgate::run(&["check", "-c", path_str(config)], dir);
    assert!(status.success(), "check failed ({status}); stderr:\n{err}");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("trust store corp:"))
        .unwrap_or_else(|| panic!("no trust store line in:\n{out}"));
    line.split_once("version ")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| panic!("no version in {line:?}"))
}

/// Asserts that `cmd` failed at start-up and named S3, the bucket and the key on stderr.
fn assert_start_up_refused(what: &str, dir: &Path, args: &[&str], bucket: &str, key: &str) {
    let (status, out, err) = Certgate::run(args, dir);
    assert!(
        !status.success(),
        "{what}: should fail; stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        !err.contains(" listening "),
        "{what}: listened anyway:\n{err}"
    );
    for wanted in ["S3", bucket, key] {
        assert!(
            err.contains(wanted),
            "{what}: stderr should name {wanted:?}:\n{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_store_loaded_from_s3_admits_the_good_client_and_refuses_the_revoked_one() {
    aws_env_in_process();
    let moto = Moto::start();
    let pki = Pki::new();
    let store = seed(&moto, "certgate-load", &pki).await;
    let backend = Backend::start().await;
    let proxy = start_proxy(&pki, &backend, &moto, &Sources::unpinned(&store.bucket), 60).await;
    let mut probe = Probe::of(&proxy);

    let v = probe.admits(&pki, &pki.good).await;
    assert_eq!(backend.count(), 1);
    assert_eq!(
        backend.last().one("x-amzn-mtls-clientcert-subject"),
        "CN=client"
    );
    assert_eq!(probe.refuses(&pki, &pki.revoked).await, v);
    assert_eq!(backend.count(), 1, "a revoked client reached the backend");

    // The same objects in a bucket without versioning (ETags only) work the same way.
    let s3 = moto.client();
    s3.create_bucket("certgate-unversioned").await;
    for (key, body) in [
        (BUNDLE_KEY, pki.root.pem.clone().into_bytes()),
        (INTER_CRL_KEY, pki.inter_crl.pem.clone().into_bytes()),
        (ROOT_CRL_KEY, pki.root_crl.der.clone()),
    ] {
        let put = s3.put("certgate-unversioned", key, body).await;
        assert!(!put.etag.is_empty());
    }
    let proxy2 = start_proxy(
        &pki,
        &backend,
        &moto,
        &Sources::unpinned("certgate-unversioned"),
        60,
    )
    .await;
    let mut probe2 = Probe::of(&proxy2);
    probe2.admits(&pki, &pki.good).await;
    probe2.refuses(&pki, &pki.revoked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn b_pinned_versions_never_change_while_unpinned_sources_follow_the_current_version() {
    aws_env_in_process();
    let moto = Moto::start();
    let pki = Pki::new();
    let store = seed(&moto, "certgate-pinned", &pki).await;
    let backend = Backend::start().await;
    let pinned = start_proxy(&pki, &backend, &moto, &Sources::pinned(&store), 1).await;
    let unpinned = start_proxy(&pki, &backend, &moto, &Sources::unpinned(&store.bucket), 1).await;
    let mut pinned_probe = Probe::of(&pinned);
    let mut unpinned_probe = Probe::of(&unpinned);

    let pinned_v0 = pinned_probe.admits(&pki, &pki.good).await;
    pinned_probe.refuses(&pki, &pki.revoked).await;
    let unpinned_v0 = unpinned_probe.admits(&pki, &pki.good).await;
    unpinned_probe.refuses(&pki, &pki.revoked).await;

    // A new current version of the CRL revokes the good client too.
    let uploaded = Instant::now();
    let new = store
        .put_inter_crl(&pki, &[&pki.revoked.serial, &pki.good.serial])
        .await;
    assert_ne!(new.version(), store.inter_crl.version());

    let unpinned_v1 = unpinned_probe
        .until(
            &pki,
            &pki.good,
            false,
            "unpinned proxy refusing the newly revoked client",
        )
        .await;
    assert_ne!(
        unpinned_v1, unpinned_v0,
        "a new object version must change trust_store_version"
    );

    // The pinned proxy has had at least three refresh intervals to (wrongly) move.
    let settle = Duration::from_millis(3500).saturating_sub(uploaded.elapsed());
    tokio::time::sleep(settle).await;
    assert_eq!(
        pinned_probe.admits(&pki, &pki.good).await,
        pinned_v0,
        "a pinned store must not change"
    );
    pinned_probe.refuses(&pki, &pki.revoked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c_garbage_deleted_and_unreachable_objects_keep_the_last_good_store() {
    aws_env_in_process();
    let mut moto = Moto::start();
    let pki = Pki::new();
    let store = seed(&moto, "certgate-last-good", &pki).await;
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sources = Sources::unpinned(&store.bucket);
    let cfg = write_s3_config(
        dir.path(),
        &pki,
        backend.addr,
        &moto.endpoint(),
        &sources,
        1,
    );
    let Running {
        mut process,
        mut probe,
    } = run_proxy(dir.path(), &cfg);
    let crl_url = store.url(INTER_CRL_KEY);
    let other = pki.inter.leaf(&LeafSpec::client("other"));

    let v1 = probe.admits(&pki, &pki.good).await;
    probe.refuses(&pki, &pki.revoked).await;
    assert!(
        process.errors_naming(&store.bucket).is_empty(),
        "{}",
        process.stderr()
    );

    // Garbage: one error per interval naming the source; v1 stays in service, its CRL too.
    let garbage_at = Instant::now();
    store
        .s3
        .put(&store.bucket, INTER_CRL_KEY, "this is not a CRL\n")
        .await;
    process.wait_for_errors(&crl_url, 0);
    assert_eq!(probe.admits(&pki, &pki.good).await, v1);
    assert_eq!(probe.refuses(&pki, &pki.revoked).await, v1);
    let errors = process.errors_naming(&crl_url);
    let intervals = garbage_at.elapsed().as_secs() as usize + 1;
    assert!(
        errors.len() <= intervals + 1,
        "expected about one error per 1 s interval, got {} in {:?}:\n{}",
        errors.len(),
        garbage_at.elapsed(),
        errors.join("\n")
    );

    // A good object again: picked up at the next interval.
    store
        .put_inter_crl(&pki, &[&pki.revoked.serial, &pki.good.serial])
        .await;
    let v2 = probe
        .until(
            &pki,
            &pki.good,
            false,
            "the repaired CRL revoking the good client",
        )
        .await;
    assert_ne!(v2, v1);
    let seen = process.errors_naming(&crl_url).len();

    // Deleted (a delete marker on the versioned bucket): errors again, v2 stays in service.
    store.s3.delete(&store.bucket, INTER_CRL_KEY).await;
    process.wait_for_errors(&crl_url, seen);
    assert_eq!(probe.refuses(&pki, &pki.good).await, v2);
    assert_eq!(probe.admits(&pki, &other).await, v2);

    // Uploaded again: picked up.
    store.put_inter_crl(&pki, &[&pki.revoked.serial]).await;
    let v3 = probe
        .until(
            &pki,
            &pki.good,
            true,
            "the re-uploaded CRL admitting the good client",
        )
        .await;
    assert_ne!(v3, v2);
    probe.refuses(&pki, &pki.revoked).await;

    // S3 unreachable: errors naming an S3 source, v3 stays in service.
    let any_source = format!("s3://{}/", store.bucket);
    let seen = process.errors_naming(&any_source).len();
    moto.stop();
    process.wait_for_errors(&any_source, seen);
    assert_eq!(probe.admits(&pki, &pki.good).await, v3);
    assert_eq!(probe.refuses(&pki, &pki.revoked).await, v3);
    process.assert_running();
}

#[tokio::test(flavor = "multi_thread")]
async fn d_check_and_run_refuse_to_start_when_s3_is_down_or_the_object_is_missing() {
    aws_env_in_process();
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let backend: SocketAddr = ([127, 0, 0, 1], 9).into();

    // Nothing listens at the endpoint; only the bundle comes from S3.
    let down = format!("http://127.0.0.1:{}", free_port());
    let cfg = write_config(dir.path(), &pki, backend, VERIFY, &s3_table(&down));
    let text = std::fs::read_to_string(&cfg).unwrap();
    let bundle = s3_url("certgate-down", BUNDLE_KEY, None);
    std::fs::write(&cfg, point_at(text, &bundle, None, 60)).unwrap();
    for cmd in ["check", "run"] {
        assert_start_up_refused(
            &format!("{cmd} with S3 down"),
            dir.path(),
            &[cmd, "-c", path_str(&cfg)],
            "certgate-down",
            BUNDLE_KEY,
        );
    }

    // S3 up, bundle and root CRL there, the intermediate's CRL missing.
    let moto = Moto::start();
    let s3 = moto.client();
    s3.create_versioned_bucket("certgate-missing").await;
    s3.put("certgate-missing", BUNDLE_KEY, pki.root.pem.clone())
        .await;
    s3.put("certgate-missing", ROOT_CRL_KEY, pki.root_crl.der.clone())
        .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_s3_config(
        dir.path(),
        &pki,
        backend,
        &moto.endpoint(),
        &Sources::unpinned("certgate-missing"),
        60,
    );
    for cmd in ["check", "run"] {
        assert_start_up_refused(
            &format!("{cmd} with a missing object"),
            dir.path(),
            &[cmd, "-c", path_str(&cfg)],
            "certgate-missing",
            INTER_CRL_KEY,
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn e_three_proxies_on_the_same_objects_agree_on_the_version_before_and_after_an_update() {
    aws_env_in_process();
    let moto = Moto::start();
    let pki = Pki::new();
    let store = seed(&moto, "certgate-fleet", &pki).await;
    let backend = Backend::start().await;
    let sources = Sources::unpinned(&store.bucket);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs: Vec<PathBuf> = dirs
        .iter()
        .map(|d| write_s3_config(d.path(), &pki, backend.addr, &moto.endpoint(), &sources, 1))
        .collect();
    let mut fleet: Vec<Running> = dirs
        .iter()
        .zip(&configs)
        .map(|(d, c)| run_proxy(d.path(), c))
        .collect();

    let mut before = Vec::new();
    for p in &mut fleet {
        before.push(p.probe.admits(&pki, &pki.good).await);
    }
    assert!(before.iter().all(|v| v == &before[0]), "{before:?}");
    assert_eq!(check_version(dirs[0].path(), &configs[0]), before[0]);

    store
        .put_inter_crl(&pki, &[&pki.revoked.serial, &pki.good.serial])
        .await;
    let mut after = Vec::new();
    for p in &mut fleet {
        after.push(
            p.probe
                .until(&pki, &pki.good, false, "the updated CRL")
                .await,
        );
    }
    assert!(after.iter().all(|v| v == &after[0]), "{after:?}");
    assert_ne!(after[0], before[0]);
    assert_eq!(check_version(dirs[1].path(), &configs[1]), after[0]);
    for p in &mut fleet {
        p.process.assert_running();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn f_truststore_describe_shows_the_s3_sources_and_the_version() {
    aws_env_in_process();
    let moto = Moto::start();
    let pki = Pki::new();
    let store = seed(&moto, "certgate-describe", &pki).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_s3_config(
        dir.path(),
        &pki,
        ([127, 0, 0, 1], 9).into(),
        &moto.endpoint(),
        &Sources::unpinned(&store.bucket),
        60,
    );
    let (status, out, err) = Certgate::run(
        &["truststore", "describe", "-c", path_str(&cfg)],
        dir.path(),
    );
    assert!(status.success(), "{status}; stderr:\n{err}");
    for wanted in [
        "trust store: corp\n".to_string(),
        "CA certificates: 1\n".to_string(),
        "- CN=certgate test root (not after ".to_string(),
        "revocation lists: 2 (1 revoked entries in total)".to_string(),
        "- issuer: CN=certgate test intermediate\n".to_string(),
        format!("source: {}", store.url(INTER_CRL_KEY)),
        format!("source: {}", store.url(ROOT_CRL_KEY)),
    ] {
        assert!(out.contains(&wanted), "missing {wanted:?} in:\n{out}");
    }
    let version = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("version: "))
        .unwrap_or_else(|| panic!("no version line in:\n{out}"));
    assert!(!version.is_empty());
    assert_eq!(
        check_version(dir.path(), &cfg),
        version,
        "check and describe read the same objects"
    );
}

// ---------------------------------------------------------------------------------------------
// An endpoint that sends objects without Content-Length
// ---------------------------------------------------------------------------------------------

/// A body of 64 KiB frames until `left` bytes are given, counting what it gave.
struct Endless {
    left: u64,
    given: Arc<std::sync::atomic::AtomicU64>,
}

impl hyper::body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.left.min(64 * 1024);
        self.left -= n;
        self.given
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        let frame = hyper::body::Frame::data(bytes::Bytes::from(vec![b'A'; n as usize]));
        std::task::Poll::Ready(Some(Ok(frame)))
    }
}

/// An S3-like endpoint on 127.0.0.1 that answers every GET with 256 MiB in chunked encoding
/// (no Content-Length) and every HEAD with an ETag. Returns its URL and the bytes its bodies
/// have handed to the connection so far.
async fn endless_s3() -> (String, Arc<std::sync::atomic::AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let given = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = given.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<_>| {
                    let left = if req.method() == http::Method::GET {
                        256 << 20
                    } else {
                        0
                    };
                    let body = Endless {
                        left,
                        given: counter.clone(),
                    };
                    let resp = http::Response::builder()
                        .header("etag", "\"endless\"")
                        .body(body);
                    async move { resp }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (url, given)
}

/// Issue 11: an object served without Content-Length is read only up to the limit, not whole
/// before the limit applies.
#[tokio::test(flavor = "multi_thread")]
async fn g_an_object_without_content_length_is_cut_at_the_limit() {
    aws_env_in_process();
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let backend: SocketAddr = ([127, 0, 0, 1], 9).into();
    let (endpoint, given) = endless_s3().await;
    let cfg = write_config(dir.path(), &pki, backend, VERIFY, &s3_table(&endpoint));
    let text = std::fs::read_to_string(&cfg).unwrap();
    let bundle = s3_url("certgate-endless", BUNDLE_KEY, None);
    std::fs::write(&cfg, point_at(text, &bundle, None, 60)).unwrap();
    let cwd = dir.path().to_path_buf();
    let args = [
        "check".to_string(),
        "-c".to_string(),
        path_str(&cfg).to_string(),
    ];
    let (status, _out, err) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Certgate::run(&args, &cwd)
    })
    .await
    .unwrap();
    assert!(!status.success(), "check accepted an endless bundle: {err}");
    assert!(
        err.contains("more than the limit of 4194304 bytes"),
        "the error names the limit: {err}"
    );
    let given = given.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        given < 64 << 20,
        "certgate read {given} bytes of an object without Content-Length before refusing it"
    );
}
