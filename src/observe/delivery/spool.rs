//! The on-disk spool of a log delivered to S3: lines are appended to `current.log`; every
//! interval it is moved to `closing/` (a rename, so the log's writer never waits for the
//! compression) and gzipped from there into `ready/`, one file per future S3 object. A file
//! leaves `ready/` only once S3 has it. The spool never takes more than its cap: past it, the
//! oldest ready files are deleted and their lines counted as dropped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use flate2::write::GzEncoder;
use flate2::Compression;

const CURRENT: &str = "current.log";
const CLOSING: &str = "closing";
const READY: &str = "ready";
const TMP_PREFIX: &str = ".tmp-";

/// A gzip file waiting for upload: `ready/{end_ms}-{random}-{lines}.log.gz`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ready {
    /// When the file was closed, Unix milliseconds: ALB's "end time" of its lines.
    pub end_ms: i64,
    /// ALB's random part of the key, so replicas and files of one minute never collide.
    pub random: String,
    pub lines: u64,
    pub path: PathBuf,
}

impl Ready {
    fn parse(path: PathBuf) -> Option<Ready> {
        let name = path.file_name()?.to_str()?.strip_suffix(".log.gz")?;
        let mut parts = name.splitn(3, '-');
        let end_ms = parts.next()?.parse().ok()?;
        let random = parts.next()?.to_string();
        let lines = parts.next()?.parse().ok()?;
        Some(Ready {
            end_ms,
            random,
            lines,
            path,
        })
    }
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    /// Held while files of `closing/` are compressed (one compression at a time).
    compressing: Mutex<()>,
    /// Lines lost to the cap or to a failing disk; shared with the log's other drops.
    dropped: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct State {
    current: Option<File>,
    /// The end time given to the last file closed, Unix milliseconds.
    last_end_ms: i64,
    current_bytes: u64,
    current_lines: u64,
    /// Bytes of the files in `closing/` (uncompressed) and `ready/`.
    closing_bytes: u64,
    ready_bytes: u64,
}

impl State {
    fn total(&self) -> u64 {
        self.current_bytes + self.closing_bytes + self.ready_bytes
    }
}

impl Spool {
    /// Opens (creating) the spool in `dir`. Lines a previous run left (in `current.log` or
    /// `closing/`) are closed into ready files, so that they are delivered too.
    pub fn open(dir: &Path, max_bytes: u64, dropped: Arc<AtomicU64>) -> io::Result<Spool> {
        fs::create_dir_all(dir.join(READY))?;
        fs::create_dir_all(dir.join(CLOSING))?;
        let spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            state: Mutex::default(),
            compressing: Mutex::new(()),
            dropped,
        };
        {
            let mut st = spool.lock();
            st.ready_bytes = dir_bytes(&dir.join(READY), true)?;
            st.closing_bytes = dir_bytes(&dir.join(CLOSING), false)?;
            if let Ok(text) = fs::read(spool.current_path()) {
                st.current_bytes = text.len() as u64;
                st.current_lines = text.iter().filter(|&&b| b == b'\n').count() as u64;
            }
            spool.take_current(&mut st)?;
        }
        spool.compress_closing()?;
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current_path(&self) -> PathBuf {
        self.dir.join(CURRENT)
    }

    /// Appends a block of `lines` complete lines. Past the cap, the current file is closed
    /// early and the oldest ready files go.
    pub fn append(&self, block: &[u8], lines: u64) -> io::Result<()> {
        let over = {
            let mut st = self.lock();
            if let Err(e) = self.write_current(&mut st, block) {
                self.dropped.fetch_add(lines, Ordering::Relaxed);
                st.current = None;
                return Err(e);
            }
            st.current_bytes += block.len() as u64;
            st.current_lines += lines;
            st.total() > self.max_bytes
        };
        if over {
            self.rotate()?;
        }
        Ok(())
    }

    fn write_current(&self, st: &mut State, block: &[u8]) -> io::Result<()> {
        if st.current.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.current_path())?;
            st.current = Some(f);
        }
        match st.current.as_mut() {
            Some(f) => f.write_all(block),
            None => Ok(()),
        }
    }

    /// Closes the current file into a ready one (nothing when it holds no line). Only the
    /// rename happens under the lock the writer takes; the compression does not.
    pub fn rotate(&self) -> io::Result<()> {
        self.take_current(&mut self.lock())?;
        self.compress_closing()
    }

    /// Moves `current.log` to `closing/{end_ms}-{random}-{lines}.log`.
    fn take_current(&self, st: &mut State) -> io::Result<()> {
        st.current = None;
        if st.current_lines == 0 {
            return Ok(());
        }
        // Names sort by end time; two files closed in one millisecond still get distinct,
        // ordered times, so they are uploaded (and keyed) in the order they were written.
        let end_ms = now_ms().max(st.last_end_ms + 1);
        st.last_end_ms = end_ms;
        let name = format!("{end_ms:013}-{}-{}.log", random_part(), st.current_lines);
        fs::rename(self.current_path(), self.dir.join(CLOSING).join(name))?;
        st.closing_bytes += st.current_bytes;
        st.current_bytes = 0;
        st.current_lines = 0;
        Ok(())
    }

    /// Gzips every file of `closing/` into `ready/`, then applies the cap.
    fn compress_closing(&self) -> io::Result<()> {
        let _one = self.compressing.lock().unwrap_or_else(|p| p.into_inner());
        let mut closing: Vec<PathBuf> = fs::read_dir(self.dir.join(CLOSING))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        closing.sort();
        for path in closing {
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            let raw = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let tmp = self.dir.join(READY).join(format!("{TMP_PREFIX}{name}.gz"));
            let size = gzip(&path, &tmp)?;
            fs::rename(&tmp, self.dir.join(READY).join(format!("{name}.gz")))?;
            fs::remove_file(&path)?;
            let mut st = self.lock();
            st.closing_bytes = st.closing_bytes.saturating_sub(raw);
            st.ready_bytes += size;
        }
        self.enforce_cap(&mut self.lock());
        Ok(())
    }

    /// Deletes the oldest ready files while the spool is over its cap.
    fn enforce_cap(&self, st: &mut State) {
        if st.total() <= self.max_bytes {
            return;
        }
        for f in self.list() {
            if st.total() <= self.max_bytes {
                break;
            }
            let size = fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
            if fs::remove_file(&f.path).is_ok() {
                st.ready_bytes = st.ready_bytes.saturating_sub(size);
                self.dropped.fetch_add(f.lines, Ordering::Relaxed);
                tracing::warn!(
                    spool = %self.dir.display(),
                    lines = f.lines,
                    cap_bytes = self.max_bytes,
                    "log spool full: dropped its oldest file"
                );
            }
        }
    }

    /// The ready files, oldest first.
    pub fn ready(&self) -> Vec<Ready> {
        let _st = self.lock();
        self.list()
    }

    fn list(&self) -> Vec<Ready> {
        let mut out: Vec<Ready> = fs::read_dir(self.dir.join(READY))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| Ready::parse(e.path()))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// A file S3 now has.
    pub fn delivered(&self, f: &Ready) {
        let mut st = self.lock();
        let size = fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
        if fs::remove_file(&f.path).is_ok() {
            st.ready_bytes = st.ready_bytes.saturating_sub(size);
        }
    }

    /// Bytes on disk: the current file, those being closed and the ready ones.
    pub fn bytes(&self) -> u64 {
        self.lock().total()
    }
}

/// Bytes of the files in `dir`; in `ready/` (`ready`), half-written gzip files of a previous
/// run are removed instead.
fn dir_bytes(dir: &Path, ready: bool) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if ready && entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let _ = fs::remove_file(entry.path());
        } else {
            total += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    Ok(total)
}

/// Gzips `from` into `to`; returns the compressed size.
fn gzip(from: &Path, to: &Path) -> io::Result<u64> {
    let mut input = BufReader::new(File::open(from)?);
    let out = BufWriter::new(File::create(to)?);
    let mut gz = GzEncoder::new(out, Compression::default());
    io::copy(&mut input, &mut gz)?;
    let out = gz.finish()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// Eight lowercase letters and digits, like the random part of ALB's log keys.
fn random_part() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(path: &Path) -> String {
        let mut s = String::new();
        io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(File::open(path).unwrap()),
            &mut s,
        )
        .unwrap();
        s
    }

    #[test]
    fn lines_become_ready_gzip_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let dropped = Arc::new(AtomicU64::new(0));
        let spool = Spool::open(dir.path(), 1 << 20, dropped.clone()).unwrap();
        spool.rotate().unwrap();
        assert!(spool.ready().is_empty(), "no file without lines");
        spool.append(b"a 1\na 2\n", 2).unwrap();
        spool.rotate().unwrap();
        spool.append(b"b 1\n", 1).unwrap();
        spool.rotate().unwrap();
        let ready = spool.ready();
        assert_eq!(ready.len(), 2);
        assert_eq!(ready[0].lines, 2);
        assert_eq!(ready[0].random.len(), 8);
        assert_eq!(gunzip(&ready[0].path), "a 1\na 2\n");
        assert_eq!(gunzip(&ready[1].path), "b 1\n");
        spool.delivered(&ready[0]);
        assert_eq!(spool.ready().len(), 1);
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn lines_left_by_a_previous_run_are_closed_into_a_ready_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(READY)).unwrap();
        fs::create_dir_all(dir.path().join(CLOSING)).unwrap();
        fs::write(dir.path().join(CURRENT), "x\ny\n").unwrap();
        fs::write(
            dir.path()
                .join(CLOSING)
                .join("0000000000001-abcdefgh-1.log"),
            "w\n",
        )
        .unwrap();
        fs::write(dir.path().join(READY).join(".tmp-half"), "junk").unwrap();
        let spool = Spool::open(dir.path(), 1 << 20, Arc::default()).unwrap();
        let ready = spool.ready();
        assert_eq!(ready.len(), 2);
        assert_eq!((ready[0].end_ms, ready[0].lines), (1, 1));
        assert_eq!(gunzip(&ready[0].path), "w\n");
        assert_eq!(ready[1].lines, 2);
        assert_eq!(gunzip(&ready[1].path), "x\ny\n");
        assert!(!dir.path().join(READY).join(".tmp-half").exists());
    }

    #[test]
    fn past_the_cap_the_oldest_lines_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let dropped = Arc::new(AtomicU64::new(0));
        let cap = 64 * 1024;
        let spool = Spool::open(dir.path(), cap, dropped.clone()).unwrap();
        // Lines that do not compress: random hex, 1000 lines of 65 bytes per file.
        let mut total = 0u64;
        for _ in 0..20 {
            let mut block = String::new();
            for _ in 0..1000 {
                block.push_str(&format!("{:064x}\n", rand::random::<u128>()));
            }
            spool.append(block.as_bytes(), 1000).unwrap();
            spool.rotate().unwrap();
            total += 1000;
            assert!(spool.bytes() <= cap, "{} > {cap}", spool.bytes());
        }
        let kept: u64 = spool.ready().iter().map(|f| f.lines).sum();
        let lost = dropped.load(Ordering::Relaxed);
        assert!(lost > 0);
        assert_eq!(kept + lost, total);
        // The newest lines are the ones kept.
        let newest = spool.ready().last().unwrap().end_ms;
        assert!(spool.ready().iter().all(|f| f.end_ms <= newest));
    }
}
