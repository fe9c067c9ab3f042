//! The admin endpoint (`[admin] bind`, SPEC §11): plain HTTP/1.1 on its own socket, apart from
//! the data listeners, answering the probes (`/healthz`, `/readyz`), the scrape (`/metrics`) and
//! `/truststores`. It never proxies. Connections are bounded in number, in header size and in
//! time, so the port cannot be used to wear the process down.

mod routes;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::metrics::Exporter;

/// Admin connections open at once; more are closed on accept. Probes and scrapes use one or two.
const MAX_CONNECTIONS: usize = 32;
/// A request head must arrive within this (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest an admin connection stays open, however busy.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Read buffer, and so the largest request head (hyper's smallest allowed value).
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Whether the process should get traffic: `/readyz` is 200 only between start-up (every
/// listener bound, every trust store loaded) and SIGTERM.
#[derive(Debug, Default)]
pub struct Readiness {
    started: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// Every listener is bound and every trust store loaded.
    pub fn started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    /// SIGTERM: from now on `/readyz` answers 503, for good.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// `Ok` when ready, else why not, in words.
    pub fn state(&self) -> Result<(), &'static str> {
        if self.draining.load(Ordering::SeqCst) {
            Err("draining: shutting down")
        } else if !self.started.load(Ordering::SeqCst) {
            Err("starting: listeners or trust stores not ready yet")
        } else {
            Ok(())
        }
    }
}

/// What the proxy shows through `/truststores`.
pub trait TrustStoresView: Send + Sync + 'static {
    /// One JSON object per trust store in service, by name.
    fn trust_stores(&self) -> serde_json::Value;
}

/// What the endpoint serves once the proxy is up; before that, `/metrics` and `/truststores`
/// answer 503.
pub struct Serving {
    pub exporter: Exporter,
    pub trust_stores: Arc<dyn TrustStoresView>,
}

/// What every admin request handler shares.
pub struct AdminState {
    pub readiness: Arc<Readiness>,
    serving: OnceLock<Serving>,
}

/// The running endpoint.
pub struct Admin {
    pub local: SocketAddr,
    pub state: Arc<AdminState>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Admin {
    /// Binds `addr` and starts answering (probes at once; metrics once [`Admin::serve`] is
    /// called).
    pub async fn bind(addr: SocketAddr, readiness: Arc<Readiness>) -> std::io::Result<Admin> {
        let socket = TcpListener::bind(addr).await?;
        let local = socket.local_addr()?;
        let state = Arc::new(AdminState {
            readiness,
            serving: OnceLock::new(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(socket, state.clone(), stop_rx));
        tracing::info!(addr = %local, "admin endpoint listening");
        Ok(Admin {
            local,
            state,
            stop,
            task,
        })
    }

    /// Starts serving metrics and trust stores (once; later calls change nothing).
    pub fn serve(&self, serving: Serving) {
        let _ = self.state.serving.set(serving);
    }

    /// Closes the endpoint and waits for its accept loop.
    pub async fn close(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(socket: TcpListener, state: Arc<AdminState>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            a = socket.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "admin endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Past the limit the connection is closed at once.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            serve_connection(stream, state).await;
            drop(slot);
        });
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<AdminState>) {
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(routes::answer(&state, &req)) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
}

impl AdminState {
    fn serving(&self) -> Option<&Serving> {
        self.serving.get()
    }
}
