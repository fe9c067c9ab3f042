//! The upload task of one log: every interval it closes the spool's file, then puts each ready
//! file to S3, oldest first. A failure stops the round, is logged (at a bounded rate) and
//! counted, and the round is tried again after a backoff of 1 s doubling up to a minute.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use tokio::sync::watch;

use super::spool::{Ready, Spool};
use super::{object_key, LogKind, Uploads};
use crate::config::{LogDelivery, S3Settings};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// At most one error line per this long while S3 keeps failing.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// The last round at shutdown gets this long.
const FINAL_ROUND: Duration = Duration::from_secs(10);

pub(super) struct Uploader {
    pub cfg: LogDelivery,
    pub settings: S3Settings,
    pub kind: LogKind,
    pub node_ip: IpAddr,
    pub spool: Arc<Spool>,
    pub uploads: Arc<Uploads>,
}

impl Uploader {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let client = crate::truststore::source::client(&self.settings).await;
        let mut next_close = Instant::now() + self.cfg.interval;
        let mut backoff: Option<Duration> = None;
        let mut retry_at: Option<Instant> = None;
        let mut last_warning: Option<Instant> = None;
        // Files a previous run left are sent right away.
        let mut due = !self.spool.ready().is_empty();
        loop {
            if due {
                match self.round(&client).await {
                    Ok(()) => {
                        if backoff.take().is_some() {
                            tracing::info!(log = self.kind.name(), bucket = %self.cfg.bucket, "log delivery to S3 works again");
                        }
                        retry_at = None;
                    }
                    Err(e) => {
                        let b = backoff.map_or(FIRST_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
                        backoff = Some(b);
                        retry_at = Some(Instant::now() + b);
                        if last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                            last_warning = Some(Instant::now());
                            tracing::error!(
                                log = self.kind.name(),
                                error = %e,
                                spooled_bytes = self.spool.bytes(),
                                retry_in_secs = b.as_secs(),
                                "log delivery to S3 failed; lines stay spooled and are retried"
                            );
                        }
                    }
                }
            }
            let wake = retry_at.map_or(next_close, |r| r.min(next_close));
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = stop.changed() => {
                    self.close().await;
                    let _ = tokio::time::timeout(FINAL_ROUND, self.round(&client)).await;
                    return;
                }
            }
            if Instant::now() >= next_close {
                next_close = Instant::now() + self.cfg.interval;
                self.close().await;
            }
            due = true;
        }
    }

    /// Closes the spool's current file (gzip happens on a blocking thread).
    async fn close(&self) {
        let spool = self.spool.clone();
        let closed = tokio::task::spawn_blocking(move || spool.rotate()).await;
        if let Ok(Err(e)) = closed {
            tracing::error!(log = self.kind.name(), spool = %self.spool.dir().display(), error = %e, "cannot close the log spool's file");
        }
    }

    /// Uploads every ready file, oldest first; stops at the first failure.
    async fn round(&self, client: &aws_sdk_s3::Client) -> Result<(), String> {
        for f in self.spool.ready() {
            self.put(client, &f).await?;
            self.spool.delivered(&f);
            self.uploads.ok.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn put(&self, client: &aws_sdk_s3::Client, f: &Ready) -> Result<(), String> {
        let key = object_key(&self.cfg, self.kind, self.node_ip, f.end_ms, &f.random);
        // Streamed from the file: a large interval's file is never held in memory whole.
        let body = ByteStream::from_path(&f.path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", f.path.display()))?;
        let sent = client
            .put_object()
            .bucket(&self.cfg.bucket)
            .key(&key)
            .content_type("application/x-gzip")
            .body(body)
            .send()
            .await;
        sent.map(|_| ()).map_err(|e| {
            self.uploads.failed.fetch_add(1, Ordering::Relaxed);
            format!(
                "S3 PutObject of s3://{}/{key} failed: {}",
                self.cfg.bucket,
                crate::truststore::source::sdk_error(&e)
            )
        })
    }
}
