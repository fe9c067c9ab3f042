//! A rolling restart without a failed request (SPEC §11): two certgate processes behind the
//! test's own round-robin "load balancer", which health-checks each replica's `/readyz` and
//! sends only to those answering 200, as an ALB or Kubernetes would. One replica is stopped
//! with SIGTERM (it answers 503 for `shutdown_delay_secs`, then drains) and started again on
//! the same ports while the client loop goes on.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::pki::Pki;
use support::process::ChildGuard;
use support::{client_config, free_port, write_config, Backend};

const VERIFY: &str = "mode = \"verify\"\ntrust_store = \"corp\"";
/// How often the test's load balancer asks each replica's `/readyz`.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// One replica: its directory, ports and process.
struct Replica {
    dir: tempfile::TempDir,
    data: SocketAddr,
    admin: SocketAddr,
    /// None while the replica's old process is stopping and the new one not yet started.
    process: Option<ChildGuard>,
    /// `/readyz` status at the load balancer's last health check (0: no answer).
    status: Arc<AtomicU16>,
}

impl Replica {
    fn start(pki: &Pki, backend: SocketAddr) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let data = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let extra = format!("[admin]\nbind = \"{admin}\"\nshutdown_delay_secs = 1\n");
        let path = write_config(dir.path(), pki, backend, VERIFY, &extra);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("bind = \"127.0.0.1:0\"", &format!("bind = \"{data}\""));
        std::fs::write(&path, text).unwrap();
        let process = Some(spawn(dir.path()));
        Replica {
            dir,
            data,
            admin,
            process,
            status: Arc::default(),
        }
    }

    fn ready(&self) -> bool {
        self.status.load(Ordering::Relaxed) == 200
    }
}

fn spawn(dir: &Path) -> ChildGuard {
    ChildGuard::spawn(&["run", "--config", "certgate.toml"], dir, &[])
}

/// `GET /readyz` on the admin port; its status, 0 when the port does not answer.
async fn readyz(admin: SocketAddr) -> u16 {
    let ask = async {
        let mut s = TcpStream::connect(admin).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        support::status_of(&String::from_utf8_lossy(&raw))
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// The load balancer's health checks: every [`CHECK_EVERY`] until `stop`.
fn health_checks(replicas: Vec<(SocketAddr, Arc<AtomicU16>)>, stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            for (admin, status) in &replicas {
                status.store(readyz(*admin).await, Ordering::Relaxed);
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    });
}

async fn wait_ready(r: &Replica, deadline: Instant) {
    while !r.ready() {
        assert!(
            Instant::now() < deadline,
            "replica at {} never ready",
            r.data
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_with_sigterm_costs_no_request() {
    let pki = Pki::new();
    let backend = Backend::start().await;
    let mut replicas = [
        Replica::start(&pki, backend.addr),
        Replica::start(&pki, backend.addr),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    health_checks(
        replicas
            .iter()
            .map(|r| (r.admin, r.status.clone()))
            .collect(),
        stop.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    for r in &replicas {
        wait_ready(r, deadline).await;
    }

    let client = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[]);
    // Requests each replica answered: before the restart, during it, after it.
    let mut served = [[0u32; 3]; 2];
    let mut failures = Vec::new();
    let mut phase = 0; // 0 before SIGTERM, 1 until the new process is ready, 2 after
    let mut next = 0usize;
    let mut restart: Option<tokio::task::JoinHandle<ChildGuard>> = None;
    let mut requests = 0u32;
    let mut saw_draining = false;
    // Bounded: ends once the restarted replica has answered 20 requests, or at the deadline.
    while served[0][2] < 20 {
        assert!(
            Instant::now() < deadline,
            "loop did not finish: served {served:?}"
        );
        if phase == 0 && served[0][0] >= 20 && served[1][0] >= 20 {
            // Stop replica 0; the old process exits after its delay and drain, and a new one
            // takes the same ports.
            let mut old = replicas[0].process.take().unwrap();
            old.signal("TERM");
            let dir = replicas[0].dir.path().to_path_buf();
            restart = Some(tokio::task::spawn_blocking(move || {
                let status = old.wait_exit(Duration::from_secs(30));
                assert!(status.success(), "old replica: {status}\n{}", old.stderr());
                spawn(&dir)
            }));
            phase = 1;
        }
        if phase == 1 {
            saw_draining |= replicas[0].status.load(Ordering::Relaxed) == 503;
            if restart.as_ref().is_some_and(|h| h.is_finished()) {
                replicas[0].process = Some(restart.take().unwrap().await.unwrap());
                phase = 2;
            }
        }
        // Round robin over the replicas the health checks call ready.
        let pick = (0..2)
            .map(|i| (next + i) % 2)
            .find(|&i| replicas[i].ready());
        let Some(i) = pick else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        next = i + 1;
        // A replica that is still the old process in phase 1 counts as "during".
        let when = if i == 0 && phase == 1 {
            1
        } else {
            phase.min(2)
        };
        requests += 1;
        match support::get(replicas[i].data, client.clone(), &format!("/r{requests}")).await {
            Ok(200) => served[i][when] += 1,
            other => failures.push(format!("request {requests} to replica {i}: {other:?}")),
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed: {failures:#?}\nserved {served:?}",
        failures.len()
    );
    // The load balancer saw the stopping replica's 503, and the other replica carried the
    // traffic while replica 0 was away.
    assert!(saw_draining, "no 503 from /readyz after SIGTERM");
    assert!(served[1][1] > 0, "served {served:?}");
}
