//! CPU time and memory of the server under test, read from /proc. A server may be several
//! processes (nginx: a master and its workers), so a process and all its descendants are summed;
//! /proc/PID/stat of a process already includes every one of its threads.

use std::collections::BTreeMap;

/// One reading over a process tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// utime + stime in seconds, summed over the tree.
    pub cpu_secs: f64,
    /// VmRSS summed over the tree (shared pages counted once per process).
    pub rss_kib: u64,
    /// VmHWM (peak RSS since start) summed over the tree.
    pub hwm_kib: u64,
    pub processes: usize,
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (ppid, utime + stime in ticks) from /proc/PID/stat.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `root` and every process descending from it.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some((ppid, _)) = stat(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// CPU and memory of the tree rooted at `root` right now; `None` once the root is gone.
pub fn usage(root: u32) -> Option<Usage> {
    stat(root)?;
    let mut u = Usage::default();
    let tck = ticks_per_sec();
    for pid in tree(root) {
        let Some((_, ticks)) = stat(pid) else {
            continue;
        };
        u.cpu_secs += ticks as f64 / tck;
        u.rss_kib += status_kib(pid, "VmRSS:");
        u.hwm_kib += status_kib(pid, "VmHWM:");
        u.processes += 1;
    }
    Some(u)
}

/// CPU seconds this process has used so far.
pub fn own_cpu_secs() -> f64 {
    stat(std::process::id())
        .map(|(_, t)| t as f64 / ticks_per_sec())
        .unwrap_or(0.0)
}
