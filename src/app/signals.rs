//! The process around the server: SIGHUP reloads, SIGTERM/SIGINT drain and stop, and freed
//! heap memory handed back to the system while it runs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Server, StartError, DEFAULT_GRACE};
use crate::config::Config;

/// How often freed heap memory is handed back to the system.
const MEMORY_TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// certgate's own allocations go to jemalloc (see `main.rs`), which returns freed pages by
/// itself; the C code of the TLS library (aws-lc) still allocates with glibc's malloc, which
/// keeps freed memory in its arenas until `malloc_trim`. Trimming every few seconds lets that
/// part of the footprint follow the load too. A no-op on other C libraries.
pub(super) async fn release_memory_loop(mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(MEMORY_TRIM_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let _ = tokio::task::spawn_blocking(trim_heap).await;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks and returns free
    // pages to the kernel; it takes no pointers from us and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// Runs until SIGTERM or SIGINT; SIGHUP reloads trust stores and server certificates.
pub async fn run(config: Config) -> Result<(), StartError> {
    serve_until_signal(Server::start(config).await?, DEFAULT_GRACE).await
}

/// Serves until SIGTERM or SIGINT, reloading on SIGHUP, then drains for at most `grace`.
pub async fn serve_until_signal(server: Server, grace: Duration) -> Result<(), StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let server = Arc::new(server);
    let sig = |k| {
        signal(k).map_err(|error| StartError::Signal {
            signal: format!("{k:?}"),
            error,
        })
    };
    let mut hup = sig(SignalKind::hangup())?;
    let mut term = sig(SignalKind::terminate())?;
    let mut int = sig(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading trust stores and server certificates");
                let problems = server.reload().await;
                if problems.is_empty() {
                    tracing::info!("reload complete");
                } else {
                    tracing::warn!(problems = problems.len(), "reload finished with problems; last good versions stay in service");
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    server.readiness.drain();
    let delay = server.shutdown_delay();
    if !delay.is_zero() {
        tracing::info!(
            delay_secs = delay.as_secs(),
            "stopping: /readyz answers 503; still serving until the delay is over"
        );
        // A second signal cuts the delay short.
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    tracing::info!(
        grace_secs = DEFAULT_GRACE.as_secs(),
        "stopping: no new connections, finishing in-flight requests"
    );
    let server = match Arc::try_unwrap(server) {
        Ok(s) => s,
        Err(_) => return Ok(()),
    };
    if server.shutdown(grace).await {
        tracing::info!("all connections closed");
    } else {
        tracing::warn!("grace period over; closing remaining connections");
    }
    Ok(())
}
