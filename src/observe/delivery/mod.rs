//! Delivery of a log to S3 the way ALB delivers its logs (SPEC §11): the log's writer thread
//! appends lines to an on-disk spool; a task closes the spool's file every `s3_interval_secs`
//! and uploads the gzip files under ALB's key layout, oldest first, retrying with backoff. An
//! S3 outage never reaches the data path: lines wait on disk (up to the cap) until S3 is back.

pub mod spool;
mod upload;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{LogDelivery, S3Settings};
pub use spool::Spool;

/// Why a log's delivery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("cannot open the log spool {dir}: {source}")]
    Spool {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Which of ALB's two logs: the key layout differs by a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Connection,
    Access,
}

impl LogKind {
    pub fn name(self) -> &'static str {
        match self {
            LogKind::Connection => "connection",
            LogKind::Access => "access",
        }
    }

    /// ALB names connection-log objects `conn_log.{account}_...`, access-log ones `{account}_...`.
    fn file_prefix(self) -> &'static str {
        match self {
            LogKind::Connection => "conn_log.",
            LogKind::Access => "",
        }
    }
}

/// Uploads so far, for metrics and logs.
#[derive(Debug, Default)]
pub struct Uploads {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

/// A running delivery: its spool (which the log's writer appends to) and its upload task.
pub struct Delivery {
    pub kind: LogKind,
    pub spool: Arc<Spool>,
    pub uploads: Arc<Uploads>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Delivery {
    /// Opens the spool and starts the upload task. S3 is not contacted here: a missing or
    /// denied bucket shows as failed uploads (logged, counted, retried), never a failed start.
    pub fn start(
        cfg: &LogDelivery,
        s3: &S3Settings,
        kind: LogKind,
        node_ip: IpAddr,
        dropped: Arc<AtomicU64>,
    ) -> Result<Delivery, DeliveryError> {
        let spool =
            Spool::open(&cfg.spool_dir, cfg.spool_max_bytes, dropped).map_err(|source| {
                DeliveryError::Spool {
                    dir: cfg.spool_dir.clone(),
                    source,
                }
            })?;
        let spool = Arc::new(spool);
        let uploads = Arc::new(Uploads::default());
        let (stop, stop_rx) = watch::channel(false);
        let uploader = upload::Uploader {
            cfg: cfg.clone(),
            settings: s3.clone(),
            kind,
            node_ip,
            spool: spool.clone(),
            uploads: uploads.clone(),
        };
        let task = tokio::spawn(uploader.run(stop_rx));
        Ok(Delivery {
            kind,
            spool,
            uploads,
            stop,
            task: Some(task),
        })
    }

    /// At shutdown, once the log's writer has flushed: the upload task closes the spool's
    /// file and makes a last round (10 s at most). Call on every delivery before waiting on
    /// any, so that their last rounds run together.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits (at most `timeout`) for the last round; what was not uploaded stays spooled for
    /// the next start.
    pub async fn wait(mut self, timeout: Duration) {
        self.stop();
        if let Some(task) = self.task.take() {
            if tokio::time::timeout(timeout, task).await.is_err() {
                tracing::warn!(
                    spool = %self.spool.dir().display(),
                    "log upload not finished at shutdown; the spooled lines are sent at the next start"
                );
            }
        }
    }
}

/// ALB's object key for a log file closed at `end_ms` (Unix milliseconds).
pub fn object_key(
    cfg: &LogDelivery,
    kind: LogKind,
    node_ip: IpAddr,
    end_ms: i64,
    random: &str,
) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(end_ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, m, d) = (t.year(), u8::from(t.month()), t.day());
    let end = format!("{y:04}{m:02}{d:02}T{:02}{:02}Z", t.hour(), t.minute());
    let acct = &cfg.account_id;
    let region = &cfg.region;
    let mut key = String::new();
    if !cfg.prefix.is_empty() {
        key.push_str(&cfg.prefix);
        key.push('/');
    }
    key.push_str(&format!(
        "AWSLogs/{acct}/elasticloadbalancing/{region}/{y:04}/{m:02}/{d:02}/{}{acct}_elasticloadbalancing_{region}_app.{}_{end}_{node_ip}_{random}.log.gz",
        kind.file_prefix(),
        cfg.load_balancer_name,
    ));
    key
}

/// The address in the keys: the listener's when it binds one, else the machine's first
/// non-loopback IPv4 address (ALB names the node that wrote the file).
pub fn node_ip(bind: Option<IpAddr>) -> IpAddr {
    match bind {
        Some(ip) if !ip.is_unspecified() => ip,
        _ => first_interface_ip().unwrap_or(IpAddr::from([127, 0, 0, 1])),
    }
}

fn first_interface_ip() -> Option<IpAddr> {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `addrs` with a list that freeifaddrs releases below; the list
    // is only read in between.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = addrs;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    found = Some(IpAddr::V4(ip));
                    break;
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: releases the list getifaddrs allocated, once.
    unsafe { libc::freeifaddrs(addrs) };
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(prefix: &str) -> LogDelivery {
        LogDelivery {
            bucket: "logs".into(),
            prefix: prefix.into(),
            interval: Duration::from_secs(300),
            account_id: "123456789012".into(),
            load_balancer_name: "edge".into(),
            region: "eu-west-1".into(),
            spool_dir: "/tmp/x".into(),
            spool_max_bytes: 1 << 30,
        }
    }

    #[test]
    fn keys_follow_albs_layout() {
        // 2026-11-22T10:05:30Z
        let end_ms = 1_795_341_930_000;
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(
            object_key(&cfg("lb/a"), LogKind::Connection, ip, end_ms, "2et2e1mx"),
            "lb/a/AWSLogs/123456789012/elasticloadbalancing/eu-west-1/2026/11/22/\
             conn_log.123456789012_elasticloadbalancing_eu-west-1_app.edge_20261122T1005Z_10.0.0.7_2et2e1mx.log.gz"
        );
        assert_eq!(
            object_key(&cfg(""), LogKind::Access, ip, end_ms, "abcdefgh"),
            "AWSLogs/123456789012/elasticloadbalancing/eu-west-1/2026/11/22/\
             123456789012_elasticloadbalancing_eu-west-1_app.edge_20261122T1005Z_10.0.0.7_abcdefgh.log.gz"
        );
    }

    #[test]
    fn a_bound_address_names_the_node() {
        let ip: IpAddr = "192.0.2.4".parse().unwrap();
        assert_eq!(node_ip(Some(ip)), ip);
        assert!(!node_ip(Some("0.0.0.0".parse().unwrap())).is_unspecified());
    }
}
