//! Opening the connection and access logs at start: each one's local destination, and its
//! delivery to S3 (spool and upload task) when configured; closing them at shutdown.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::StartError;
use crate::config::{Config, LogConfig, LogDestination, S3Settings};
use crate::observe::delivery::{self, Delivery, LogKind};
use crate::observe::LogSink;

/// The logs of a running server.
pub(super) struct Logs {
    pub conn: LogSink,
    pub access: Option<LogSink>,
    deliveries: Vec<Delivery>,
}

impl Logs {
    pub fn open(config: &Config) -> Result<Logs, StartError> {
        let bind = config.listeners.first().map(|l| l.bind.ip());
        let node_ip = delivery::node_ip(bind);
        let mut deliveries = Vec::new();
        let conn = open(
            &config.connection_log,
            &config.s3,
            LogKind::Connection,
            node_ip,
            &mut deliveries,
        )?;
        let access = match &config.access_log {
            Some(a) => Some(open(
                a,
                &config.s3,
                LogKind::Access,
                node_ip,
                &mut deliveries,
            )?),
            None => None,
        };
        Ok(Logs {
            conn,
            access,
            deliveries,
        })
    }

    /// (log label, upload counts) of the logs delivered to S3, for the metrics.
    pub fn uploads(&self) -> Vec<(&'static str, Arc<delivery::Uploads>)> {
        self.deliveries
            .iter()
            .map(|d| (d.kind.name(), d.uploads.clone()))
            .collect()
    }

    /// Once no connection writes any more: every line to its destination and spool, then
    /// each delivery's last upload round (bounded).
    pub async fn close(self) {
        let sinks: Vec<LogSink> = std::iter::once(self.conn.clone())
            .chain(self.access.clone())
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for s in sinks {
                s.flush(Duration::from_secs(2));
            }
        })
        .await;
        for d in &self.deliveries {
            d.stop();
        }
        for d in self.deliveries {
            d.wait(Duration::from_secs(15)).await;
        }
    }
}

fn open(
    log: &LogConfig,
    s3: &S3Settings,
    kind: LogKind,
    node_ip: IpAddr,
    deliveries: &mut Vec<Delivery>,
) -> Result<LogSink, StartError> {
    let what = match kind {
        LogKind::Connection => "connection log",
        LogKind::Access => "access log",
    };
    let dropped = Arc::default();
    let spool = match &log.s3 {
        Some(cfg) => {
            let d = Delivery::start(cfg, s3, kind, node_ip, Arc::clone(&dropped)).map_err(|e| {
                StartError::Log {
                    what,
                    dest: cfg.spool_dir.display().to_string(),
                    error: match e {
                        delivery::DeliveryError::Spool { source, .. } => source,
                    },
                }
            })?;
            let spool = d.spool.clone();
            deliveries.push(d);
            Some(spool)
        }
        None => None,
    };
    LogSink::open_with(log.destination.as_ref(), spool, log.format, what, dropped).map_err(
        |error| StartError::Log {
            what,
            dest: match &log.destination {
                Some(LogDestination::Stdout) | None => "stdout".to_string(),
                Some(LogDestination::File(p)) => p.display().to_string(),
            },
            error,
        },
    )
}
