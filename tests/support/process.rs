//! The `certgate` binary as a child process: stdout and stderr collected, bounded waits, and
//! killed when dropped so that no test path (a failed assertion included) leaves it running.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{capture, poll, strip_ansi};

pub const BIN: &str = env!("CARGO_BIN_EXE_certgate");

pub struct ChildGuard {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

impl ChildGuard {
    /// Starts `certgate ARGS` in `cwd` with `env` added (logs at info level, no colours).
    pub fn spawn(args: &[&str], cwd: &Path, env: &[(&str, &Path)]) -> ChildGuard {
        Self::spawn_with(args, cwd, |cmd| {
            for (k, v) in env {
                cmd.env(k, v);
            }
        })
    }

    /// Like `spawn`, with `configure` applied to the command (environment, say) first.
    pub fn spawn_with(args: &[&str], cwd: &Path, configure: impl FnOnce(&mut Command)) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(cwd)
            .env("CERTGATE_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            capture(child.stdout.take().unwrap(), stdout.clone()),
            capture(child.stderr.take().unwrap(), stderr.clone()),
        ];
        ChildGuard {
            child,
            stdout,
            stderr,
            readers,
            exited: None,
        }
    }

    /// Runs `certgate ARGS` to completion (bounded) and returns (status, stdout, stderr).
    pub fn run(args: &[&str], cwd: &Path) -> (ExitStatus, String, String) {
        Self::run_with(args, cwd, |_| {})
    }

    pub fn run_with(
        args: &[&str],
        cwd: &Path,
        configure: impl FnOnce(&mut Command),
    ) -> (ExitStatus, String, String) {
        let mut g = ChildGuard::spawn_with(args, cwd, configure);
        let status = g.wait_exit(Duration::from_secs(60));
        (status, g.stdout(), g.stderr())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// The buffer stderr is collected into, for readers that outlive a borrow.
    pub fn stderr_buffer(&self) -> Arc<Mutex<Vec<u8>>> {
        self.stderr.clone()
    }

    pub fn stderr(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(&self.stderr.lock().unwrap()))
    }

    /// Panics (with its stderr) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            self.exited = Some(status);
            panic!(
                "certgate exited unexpectedly ({status}); stderr:\n{}",
                self.stderr()
            );
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`, `INT`) with kill(1).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {sig} {} failed", self.pid());
    }

    /// Waits (bounded) until stderr contains `needle`; returns all of stderr.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        poll(timeout, &format!("{needle:?} on certgate's stderr"), || {
            let err = self.stderr();
            if err.contains(needle) {
                return Some(err);
            }
            self.assert_running();
            None
        })
    }

    /// Waits for the "listening" log line and returns the address it names.
    pub fn listening_addr(&mut self) -> SocketAddr {
        let err = self.wait_for_stderr(" listening ", Duration::from_secs(30));
        let line = err.lines().find(|l| l.contains(" listening ")).unwrap();
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .unwrap_or_else(|| panic!("no addr= in {line:?}"));
        addr.parse().unwrap_or_else(|e| panic!("{addr:?}: {e}"))
    }

    /// Waits (bounded) until 127.0.0.1:`port` accepts TCP connections.
    pub fn wait_for_port(&mut self, port: u16, deadline: std::time::Instant) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            self.assert_running();
            assert!(
                std::time::Instant::now() < deadline,
                "port {port} never accepted; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits (bounded) for the process to exit, then for its output to be fully collected.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let status = poll(timeout, "certgate to exit", || {
            self.child.try_wait().expect("try_wait")
        });
        self.exited = Some(status);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        status
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
