//! Connection and access logs. Records are formatted on the connection's task and handed to a
//! writer thread through a bounded queue: the data path never waits on a disk or a pipe, and a
//! full disk or a closed stdout costs log lines, never the proxy.

pub mod access;
pub mod connection;
pub mod delivery;

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{LogDestination, LogFormat};
use delivery::Spool;

/// Lines queued per log before new ones are dropped (and counted). The queue's slots are
/// allocated up front (32 bytes each); with the writer draining it every 10 ms this holds
/// bursts of over 800,000 lines a second.
const QUEUE_LINES: usize = 8_192;

/// Bytes of lines a log holds before new ones are dropped (and counted): those queued and the
/// block being written. A destination that stalls (a pipe nobody reads) costs at most this
/// much memory per log (plus the writer's block of at most 1 MiB), however long the lines;
/// 8,192 lines of ALB's size take about 4 MiB.
pub const QUEUE_BYTES: usize = 8 * 1024 * 1024;

enum Msg {
    Line(String),
    /// Answered once every line queued before it has been handed to the destination.
    Flush(SyncSender<()>),
}

/// A log destination with its writer thread. Cloning shares the thread.
#[derive(Clone, Debug)]
pub struct LogSink {
    tx: SyncSender<Msg>,
    counts: Arc<Counts>,
    /// The line format this log's destinations take.
    format: LogFormat,
}

/// What a sink and its writer thread share.
#[derive(Debug, Default)]
struct Counts {
    /// Lines lost to a full queue, a failing destination or the S3 spool's cap.
    dropped: Arc<AtomicU64>,
    /// Bytes of the lines accepted and not yet handed to the destination (see [`QUEUE_BYTES`]).
    held: AtomicUsize,
}

impl Counts {
    /// Reserves room for `n` bytes; false (and nothing reserved) when the bound is reached.
    fn reserve(&self, n: usize) -> bool {
        let before = self.held.fetch_add(n, Ordering::Relaxed);
        if before + n > QUEUE_BYTES {
            self.held.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn release(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
    }
}

impl LogSink {
    /// Opens the destination (appending to files) and starts its writer thread.
    pub fn open(dest: &LogDestination, what: &'static str) -> io::Result<LogSink> {
        Self::open_with(Some(dest), None, LogFormat::Json, what, Arc::default())
    }

    /// A log with a local destination, a spool for delivery to S3, or both; `dropped` counts
    /// the lines lost (the spool counts its own drops there too).
    pub fn open_with(
        dest: Option<&LogDestination>,
        spool: Option<Arc<Spool>>,
        format: LogFormat,
        what: &'static str,
        dropped: Arc<AtomicU64>,
    ) -> io::Result<LogSink> {
        let out: Option<Box<dyn Write + Send>> = match dest {
            None => None,
            Some(LogDestination::Stdout) => Some(Box::new(io::stdout())),
            Some(LogDestination::File(p)) => {
                if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                Some(Box::new(
                    OpenOptions::new().create(true).append(true).open(p)?,
                ))
            }
        };
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let counts = Arc::new(Counts {
            dropped,
            held: AtomicUsize::new(0),
        });
        let c = counts.clone();
        let outputs = Outputs { out, spool };
        std::thread::Builder::new()
            .name(format!("certgate-{what}"))
            .spawn(move || writer(rx, outputs, &c, what))?;
        Ok(LogSink { tx, counts, format })
    }

    /// The line format this log wants: the caller formats records accordingly.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Queues one line (without its newline). Never blocks: a queue full in lines or in bytes
    /// drops the line.
    pub fn write(&self, line: String) {
        let n = line.len() + 1;
        if !self.counts.reserve(n) {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counts.release(n);
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Bytes of lines accepted and not yet written; never more than [`QUEUE_BYTES`].
    pub fn held_bytes(&self) -> usize {
        self.counts.held.load(Ordering::Relaxed)
    }

    /// Waits (at most `timeout`) until every line queued so far is written; used at shutdown.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = sync_channel(1);
        let deadline = Instant::now() + timeout;
        let mut msg = Msg::Flush(tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// Lines lost to a full queue or a failing destination since start.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }
}

/// Where a log's writer thread puts its blocks of lines.
struct Outputs {
    out: Option<Box<dyn Write + Send>>,
    spool: Option<Arc<Spool>>,
}

impl Outputs {
    /// Hands a block of `lines` lines to every destination. The spool counts its own losses;
    /// the error returned is the local destination's.
    fn write(
        &mut self,
        buf: &[u8],
        lines: u64,
        what: &str,
        spool_warned: &mut Option<Instant>,
    ) -> io::Result<()> {
        if let Some(spool) = &self.spool {
            if let Err(e) = spool.append(buf, lines) {
                if spool_warned.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    *spool_warned = Some(Instant::now());
                    tracing::error!(log = what, spool = %spool.dir().display(), error = %e, "cannot write the S3 log spool; dropping lines");
                }
            }
        }
        match &mut self.out {
            Some(out) => out.write_all(buf).and_then(|_| out.flush()),
            None => Ok(()),
        }
    }
}

fn writer(rx: Receiver<Msg>, mut out: Outputs, counts: &Counts, what: &str) {
    let dropped = &counts.dropped;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut last_warning: Option<Instant> = None;
    let mut failing = false;
    let mut flushes = Vec::new();
    let mut reported_drops = 0u64;
    let mut spool_warned = None;
    while let Ok(first) = rx.recv() {
        buf.clear();
        let mut batch = 0u64;
        let mut next = Some(first);
        // Take what is already queued too, so a busy proxy writes in large blocks.
        while let Some(msg) = next.take() {
            match msg {
                Msg::Line(line) => {
                    batch += 1;
                    buf.extend_from_slice(line.as_bytes());
                    buf.push(b'\n');
                }
                Msg::Flush(done) => flushes.push(done),
            }
            if buf.len() < 1024 * 1024 {
                next = rx.try_recv().ok();
            }
        }
        let written = if batch == 0 {
            Ok(())
        } else {
            out.write(&buf, batch, what, &mut spool_warned)
        };
        // The lines' bytes are held until the destination took them (or failed).
        counts.release(buf.len());
        match written {
            Ok(()) => {
                if failing {
                    tracing::warn!(log = what, "log destination is writable again");
                    failing = false;
                }
            }
            Err(e) => {
                dropped.fetch_add(batch, Ordering::Relaxed);
                failing = true;
                let due = last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10));
                if due {
                    last_warning = Some(Instant::now());
                    tracing::error!(
                        log = what,
                        error = %e,
                        dropped = dropped.load(Ordering::Relaxed),
                        "cannot write log; dropping lines and carrying on"
                    );
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.try_send(());
        }
        // Lines dropped because the queue was full are reported here too, at a bounded rate.
        let dropped_now = dropped.load(Ordering::Relaxed);
        if dropped_now > reported_drops
            && !failing
            && last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10))
        {
            last_warning = Some(Instant::now());
            tracing::warn!(
                log = what,
                dropped = dropped_now - reported_drops,
                total_dropped = dropped_now,
                "log lines dropped: the destination cannot keep up"
            );
            reported_drops = dropped_now;
        }
        // Let lines gather before the next write. While this thread sleeps, queuing a line is a
        // plain push: no wake-up and no context switch per connection or request. A line reaches
        // its destination within this pause of being queued.
        std::thread::sleep(BATCH_PAUSE);
    }
}

/// Longest a queued line waits for the writer thread (when lines arrive continuously).
const BATCH_PAUSE: Duration = Duration::from_millis(10);

/// `TID_` + 32 lowercase hex digits, unique per connection.
pub fn new_trace_id() -> String {
    let v: u128 = rand::random();
    format!("TID_{v:032x}")
}

/// UTC with microseconds, as ALB writes its timestamps.
pub fn timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_have_alb_shape() {
        let a = new_trace_id();
        assert_eq!(a.len(), 36);
        assert!(a.starts_with("TID_"));
        assert!(a[4..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, new_trace_id());
    }

    #[test]
    fn timestamp_has_microseconds() {
        let t = time::macros::datetime!(2026-11-22 10:00:00.123456 UTC);
        assert_eq!(timestamp(t), "2026-11-22T10:00:00.123456Z");
    }

    /// The access-log sink writes into a FIFO that nobody reads: its writer thread blocks for
    /// good. Lines of 60 KB (a huge request path) must not pile up past the byte bound.
    #[cfg(unix)]
    #[test]
    fn a_stalled_destination_holds_a_bounded_number_of_bytes() {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("stalled.fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // A reader that never reads, so that opening for writing does not block.
        let _reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let sink = LogSink::open(&LogDestination::File(fifo), "test").unwrap();
        let line = "x".repeat(60 * 1024);
        let lines = 1_000u64;
        for _ in 0..lines {
            sink.write(line.clone());
        }
        std::thread::sleep(Duration::from_millis(100));
        let kept = lines - sink.dropped();
        // Besides the bound, the pipe's own buffer (64 KiB to 1 MiB) may have taken a few.
        let max_kept = ((QUEUE_BYTES + 1024 * 1024) / line.len()) as u64;
        assert!(
            kept <= max_kept,
            "{kept} lines of 60 KB held for a stalled destination (at most {max_kept})"
        );
        assert!(sink.held_bytes() <= QUEUE_BYTES, "{}", sink.held_bytes());
    }

    /// Lines the S3 spool drops at its cap count as the log's dropped lines (the metric).
    #[test]
    fn spool_drops_count_as_dropped_lines() {
        let dir = tempfile::tempdir().unwrap();
        let dropped: Arc<AtomicU64> = Arc::default();
        let spool = Arc::new(Spool::open(dir.path(), 64 * 1024, dropped.clone()).unwrap());
        let sink =
            LogSink::open_with(None, Some(spool.clone()), LogFormat::Alb, "test", dropped).unwrap();
        for _ in 0..5_000 {
            sink.write(format!("{:064x}", rand::random::<u128>()));
        }
        assert!(sink.flush(Duration::from_secs(5)));
        spool.rotate().unwrap();
        let kept: u64 = spool.ready().iter().map(|f| f.lines).sum();
        assert!(sink.dropped() > 0);
        assert_eq!(kept + sink.dropped(), 5_000);
        assert!(spool.bytes() <= 64 * 1024);
    }

    #[test]
    fn file_sink_writes_lines_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/conn.log");
        let sink = LogSink::open(&LogDestination::File(path.clone()), "test").unwrap();
        for i in 0..100 {
            sink.write(format!("line {i}"));
        }
        assert!(sink.flush(Duration::from_secs(5)));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 100);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() == 100 {
                assert_eq!(text.lines().nth(42), Some("line 42"));
                break;
            }
            assert!(Instant::now() < deadline, "lines not written: {text:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
