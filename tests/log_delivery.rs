//! Connection and access logs delivered to S3 the way ALB delivers them (SPEC §11), against a
//! real S3-compatible server (moto) on 127.0.0.1: objects under ALB's keys, gzip files (opened
//! with the `gzip` command) of lines with ALB's fields, and no line lost to a missing bucket or
//! an S3 outage while the proxy keeps serving.

mod support;

#[path = "support/s3.rs"]
mod s3_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use s3_support::{aws_env_in_process, s3_table, Moto, S3};
use support::pki::Pki;
use support::{client_config, get, Backend, Proxy};

const VERIFY: &str = "mode = \"verify\"\ntrust_store = \"corp\"";
const BUCKET: &str = "alb-logs";
const ACCOUNT: &str = "123456789012";

/// The config's log sections, replaced by ones that deliver to S3 every `interval` seconds
/// (and keep a local copy of the connection log in ALB's format, to compare with what S3
/// received).
fn with_delivery(text: String, interval: u64) -> String {
    let logs = format!(
        "[connection_log]\npath = \"conn.log\"\nformat = \"alb\"\ns3 = \"s3://{BUCKET}/lb\"\n\
         s3_interval_secs = {interval}\naccount_id = \"{ACCOUNT}\"\nload_balancer_name = \"edge\"\n\
         s3_spool_dir = \"spool\"\n\n\
         [access_log]\nformat = \"alb\"\ns3 = \"s3://{BUCKET}/lb\"\ns3_interval_secs = {interval}\n\
         account_id = \"{ACCOUNT}\"\nload_balancer_name = \"edge\"\ns3_spool_dir = \"spool\"\n"
    );
    text.replace(
        "[connection_log]\npath = \"conn.log\"\n\n[access_log]\npath = \"access.log\"\n",
        &logs,
    )
}

async fn start(pki: &Pki, backend: &Backend, moto: &Moto) -> Proxy {
    start_every(pki, backend, moto, 1).await
}

async fn start_every(pki: &Pki, backend: &Backend, moto: &Moto, interval: u64) -> Proxy {
    Proxy::start_edited(
        pki,
        backend.addr,
        VERIFY,
        &format!(
            "{}\n[admin]\nbind = \"127.0.0.1:0\"\n",
            s3_table(&moto.endpoint())
        ),
        |t| with_delivery(t, interval),
    )
    .await
}

fn gunzip(gz: &[u8]) -> String {
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the gzip command");
    child.stdin.take().unwrap().write_all(gz).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "gzip -dc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// ALB's key for one log: prefix, account, region, the date of the file's end time, then the
/// file name with the node's address and eight random characters.
fn key_pattern(conn: bool) -> Regex {
    let kind = if conn { "conn_log\\." } else { "" };
    Regex::new(&format!(
        "^lb/AWSLogs/{ACCOUNT}/elasticloadbalancing/us-east-1/(\\d{{4}})/(\\d{{2}})/(\\d{{2}})/\
         {kind}{ACCOUNT}_elasticloadbalancing_us-east-1_app\\.edge_(\\d{{8}})T\\d{{4}}Z_127\\.0\\.0\\.1_[a-z0-9]{{8}}\\.log\\.gz$"
    ))
    .unwrap()
}

/// The fields of ALB's connection-log line, each in the shape ALB's Athena table parses.
fn conn_line() -> Regex {
    Regex::new(concat!(
        r#"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z (127\.0\.0\.1) ([0-9]+) ([0-9]+) "#,
        r#"([A-Za-z0-9.-]+) ([^ ]+) ([-.0-9]+) "([^"]*)" ([^ ]+) ([^ ]+) "#,
        r#"(Success|Failed:[A-Za-z]+) (TID_[0-9a-f]{32}) ([^ ]+) ([^ ]+) ([^ ]+)$"#
    ))
    .unwrap()
}

/// ALB's access-log line as Athena's ALB access-log table reads it (its 30 fields, the same
/// field patterns as the documented table), anchored at both ends.
fn access_line() -> Regex {
    Regex::new(concat!(
        r#"^(https|h2) ([^ ]*) ([^ ]*) ([^ ]*):([0-9]*) ([^ ]*)[:-]([0-9]*) ([-.0-9]*) ([-.0-9]*) "#,
        r#"([-.0-9]*) (|[-0-9]*) (-|[-0-9]*) ([-0-9]*) ([-0-9]*) "([^ ]*) (.*) (- |[^ ]*)" "#,
        r#""([^"]*)" ([A-Z0-9-_]+) ([A-Za-z0-9.-]*) ([^ ]*) "([^"]*)" "([^"]*)" "([^"]*)" "#,
        r#"([-.0-9]*) ([^ ]*) "([^"]*)" "([^"]*)" "([^ ]*)" "([^\s]+?)" "([^\s]+)" "([^ ]*)" "#,
        r#""([^ ]*)" (TID_[0-9a-f]{32})$"#
    ))
    .unwrap()
}

/// The lines of every delivered object of one log, after checking each key; by key.
async fn delivered(s3: &S3, conn: bool) -> BTreeMap<String, Vec<String>> {
    let pattern = key_pattern(conn);
    let mut out = BTreeMap::new();
    for (key, body) in s3.objects(BUCKET, "lb/").await {
        let is_conn = key.contains("/conn_log.");
        if is_conn != conn {
            continue;
        }
        let caps = pattern
            .captures(&key)
            .unwrap_or_else(|| panic!("{key} is not ALB's key layout"));
        // The date directories are the end time's date.
        assert_eq!(
            format!("{}{}{}", &caps[1], &caps[2], &caps[3]),
            caps[4].to_string(),
            "{key}"
        );
        let text = gunzip(&body);
        out.insert(key, text.lines().map(str::to_string).collect());
    }
    out
}

async fn wait_for_lines(s3: &S3, conn: bool, n: usize, what: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines: Vec<String> = delivered(s3, conn).await.into_values().flatten().collect();
        if lines.len() >= n {
            assert_eq!(lines.len(), n, "{what}: {lines:#?}");
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {n} lines in S3 after 30 s",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn scrape(p: &Proxy) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = p.server.admin_addr().unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut raw))
        .await
        .unwrap()
        .unwrap();
    raw
}

/// Gzip files waiting in the spool.
fn spooled_files(proxy: &Proxy, log: &str) -> usize {
    std::fs::read_dir(proxy.dir.path().join("spool").join(log).join("ready"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_reach_s3_under_albs_keys_as_albs_lines() {
    aws_env_in_process();
    let moto = Moto::start();
    let s3 = moto.client();
    s3.create_bucket(BUCKET).await;
    let pki = Pki::new();
    let backend = Backend::start().await;
    let p = start(&pki, &backend, &moto).await;
    let good = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    let revoked = client_config(&pki, Some((&pki.revoked, &[&pki.inter])), &[]);
    for i in 0..5 {
        assert_eq!(
            get(p.addr, good.clone(), &format!("/n{i}")).await.unwrap(),
            200
        );
    }
    // Refused in the handshake: a connection-log line, no access-log line.
    let _ = get(p.addr, revoked, "/").await;

    let conn = wait_for_lines(&s3, true, 6, "connection log").await;
    let re = conn_line();
    for line in &conn {
        assert!(re.is_match(line), "not an ALB connection-log line: {line}");
    }
    let statuses: Vec<String> = conn
        .iter()
        .map(|l| re.captures(l).unwrap()[10].to_string())
        .collect();
    assert_eq!(statuses.iter().filter(|s| *s == "Success").count(), 5);
    assert!(
        statuses.contains(&"Failed:ClientCertCrlHit".to_string()),
        "{statuses:?}"
    );

    let access = wait_for_lines(&s3, false, 5, "access log").await;
    let re = access_line();
    for line in &access {
        let caps = re
            .captures(line)
            .unwrap_or_else(|| panic!("not an ALB access-log line: {line}"));
        assert_eq!(&caps[11], "200", "elb_status_code in {line}");
        assert!(caps[16].starts_with("https://localhost/n"), "{line}");
    }
    // Every access line belongs to a delivered connection.
    for line in &access {
        let tid = line.rsplit(' ').next().unwrap();
        assert!(conn.iter().any(|c| c.contains(tid)), "{tid}");
    }
    p.server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_and_an_s3_outage_lose_no_spooled_line() {
    aws_env_in_process();
    let mut moto = Moto::start();
    let port = moto.port;
    let pki = Pki::new();
    let backend = Backend::start().await;
    // No bucket yet: the proxy starts and serves all the same.
    let p = start(&pki, &backend, &moto).await;
    let good = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    for i in 0..3 {
        assert_eq!(
            get(p.addr, good.clone(), &format!("/a{i}")).await.unwrap(),
            200
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while spooled_files(&p, "connection") == 0 {
        assert!(Instant::now() < deadline, "nothing spooled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more intervals without a bucket: the files wait.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(spooled_files(&p, "connection") > 0);
    let s3 = moto.client();
    s3.create_bucket(BUCKET).await;
    let before = wait_for_lines(&s3, true, 3, "after the bucket appeared").await;
    wait_for_lines(&s3, false, 3, "access log after the bucket appeared").await;

    // S3 goes away; requests go on, each answered at once.
    moto.stop();
    for i in 0..4 {
        let t = Instant::now();
        assert_eq!(
            get(p.addr, good.clone(), &format!("/b{i}")).await.unwrap(),
            200
        );
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a request waited on S3"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while spooled_files(&p, "connection") == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing spooled during the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;

    // S3 is back (empty, at the same address): the outage's lines arrive.
    let moto = Moto::start_on(Some(port));
    let s3 = moto.client();
    s3.create_bucket(BUCKET).await;
    let after = wait_for_lines(&s3, true, 4, "after the outage").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while spooled_files(&p, "connection") > 0 {
        assert!(Instant::now() < deadline, "spool not emptied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What S3 received over both phases is exactly the local copy.
    let mut local: Vec<String> = std::fs::read_to_string(&p.conn_log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut sent: Vec<String> = before.into_iter().chain(after).collect();
    local.sort();
    sent.sort();
    assert_eq!(sent, local);
    assert_eq!(p.server.conn_log.dropped(), 0);
    let access = wait_for_lines(&s3, false, 4, "access log after the outage").await;
    assert!(
        access.iter().all(|l| access_line().is_match(l)),
        "{access:#?}"
    );
    assert!(Path::new(&p.dir.path().join("spool/access")).is_dir());
    // The failed uploads are counted, and no line was dropped.
    let metrics = scrape(&p).await;
    let sample = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    assert!(sample(r#"certgate_log_uploads_total{log="connection",result="failure"}"#) >= 2.0);
    assert!(sample(r#"certgate_log_uploads_total{log="connection",result="success"}"#) >= 2.0);
    assert_eq!(
        sample(r#"certgate_log_lines_dropped_total{log="connection"}"#),
        0.0
    );
    assert_eq!(
        sample(r#"certgate_log_lines_dropped_total{log="access"}"#),
        0.0
    );
    p.server.shutdown(Duration::from_secs(5)).await;
}

/// With an hour-long interval nothing is due before shutdown: the last round at shutdown
/// closes the spool's files and delivers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_what_the_interval_has_not() {
    aws_env_in_process();
    let moto = Moto::start();
    let s3 = moto.client();
    s3.create_bucket(BUCKET).await;
    let pki = Pki::new();
    let backend = Backend::start().await;
    let p = start_every(&pki, &backend, &moto, 3600).await;
    let good = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    for i in 0..2 {
        assert_eq!(
            get(p.addr, good.clone(), &format!("/s{i}")).await.unwrap(),
            200
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        delivered(&s3, true).await.is_empty(),
        "delivered before the interval"
    );
    let dir = p.dir.path().to_path_buf();
    let t = Instant::now();
    p.server.shutdown(Duration::from_secs(5)).await;
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let conn: Vec<String> = delivered(&s3, true).await.into_values().flatten().collect();
    let access: Vec<String> = delivered(&s3, false)
        .await
        .into_values()
        .flatten()
        .collect();
    assert_eq!((conn.len(), access.len()), (2, 2), "{conn:#?} {access:#?}");
    let ready = std::fs::read_dir(dir.join("spool/connection/ready"))
        .unwrap()
        .count();
    assert_eq!(ready, 0, "files left in the spool");
}
