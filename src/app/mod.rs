//! The running proxy: loads trust stores, binds every listener, starts the background tasks
//! (store refresh, health checks, memory trim), reloads on demand and drains on shutdown.

mod signals;

pub use signals::{run, serve_until_signal};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ListenerConfig, LogDestination, LogFormat};
use crate::listener::{accept_loop, AcceptContext, ConnLog, Listener};
use crate::observe::LogSink;
use crate::proxy::ProxySettings;
use crate::routing::RouteError;
use crate::tls::{ListenerTls, TlsError};
use crate::truststore::reload::Reloader;
use crate::truststore::source::Sources;
use crate::truststore::{loader, Stores, TrustStore, TrustStoreError};
use crate::upstream::client::UpstreamError;
use crate::upstream::TargetGroup;

/// How long in-flight requests get to finish after SIGTERM/SIGINT.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    TrustStore(#[from] TrustStoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("listener {listener}: cannot bind {addr}: {error}")]
    Bind {
        listener: String,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error(transparent)]
    Routes(#[from] RouteError),
    #[error(transparent)]
    Targets(#[from] UpstreamError),
    #[error("cannot open {what} {dest}: {error}")]
    Log {
        what: &'static str,
        dest: String,
        error: std::io::Error,
    },
    #[error("cannot handle signal {signal}: {error}")]
    Signal {
        signal: String,
        error: std::io::Error,
    },
}

pub struct Server {
    listeners: Vec<Arc<Listener>>,
    reloader: Arc<Reloader>,
    /// Where server certificates are read from (files, S3).
    cert_sources: Arc<Sources>,
    stop: watch::Sender<bool>,
    graceful: Option<Arc<GracefulShutdown>>,
    tasks: Vec<JoinHandle<()>>,
    pub conn_log: LogSink,
    access_log: Option<LogSink>,
}

fn open_log(dest: &LogDestination, what: &'static str) -> Result<LogSink, StartError> {
    LogSink::open(dest, what).map_err(|error| StartError::Log {
        what,
        dest: match dest {
            LogDestination::Stdout => "stdout".to_string(),
            LogDestination::File(p) => p.display().to_string(),
        },
        error,
    })
}

impl Server {
    /// Loads everything, binds every listener and starts serving. Any failure stops the start
    /// with a message naming the listener, store or file.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        let sources = Sources::new(config.s3.clone());
        let (stores, states) = loader::load_all(&config, &sources).await?;
        let conn_log = open_log(&config.connection_log.destination, "connection log")?;
        let access_log = match &config.access_log {
            Some(d) => Some(open_log(d, "access log")?),
            None => None,
        };
        let groups = crate::upstream::groups(&config);
        let cert_sources = Arc::new(Sources::new(config.s3.clone()));
        let mut bound = Vec::new();
        for l in &config.listeners {
            let certs = crate::tls::load_certificates(l, &cert_sources).await?;
            crate::tls::log_loaded(&l.name, &certs);
            bound.push(bind(l, &stores, Arc::new(certs), access_log.clone(), &groups).await?);
        }
        let reloader = Arc::new(Reloader::new(
            config.trust_stores.clone(),
            sources,
            stores,
            states,
        ));
        let (stop, stop_rx) = watch::channel(false);
        let graceful = Arc::new(GracefulShutdown::new());
        let accept = AcceptContext {
            conn_log: ConnLog {
                sink: conn_log.clone(),
                alb_format: config.connection_log.format == LogFormat::Alb,
            },
            stop: stop_rx.clone(),
            graceful: graceful.clone(),
            stores: reloader.subscribe(),
        };
        let mut tasks = Vec::new();
        let mut listeners = Vec::new();
        for (socket, listener) in bound {
            announce(&listener);
            tasks.push(tokio::spawn(accept_loop(
                socket,
                listener.clone(),
                accept.clone(),
            )));
            tasks.push(tokio::spawn(crate::listener::certs::refresh_loop(
                listener.clone(),
                cert_sources.clone(),
                stop_rx.clone(),
            )));
            listeners.push(listener);
        }
        tasks.extend(reloader.spawn_refresh(&stop_rx));
        tasks.extend(health_checks(&groups, &stop_rx)?);
        tasks.push(tokio::spawn(signals::release_memory_loop(stop_rx)));
        Ok(Server {
            listeners,
            reloader,
            cert_sources,
            stop,
            graceful: Some(graceful),
            tasks,
            conn_log,
            access_log,
        })
    }

    pub fn local_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listener(name).map(|l| l.local)
    }

    /// Re-reads every trust store and server certificate and swaps in what loads; whatever
    /// fails keeps its last good version. Returns the problems (empty when all went well).
    pub async fn reload(&self) -> Vec<String> {
        let mut problems = self.reloader.reload_all().await;
        let stores = self.reloader.stores();
        problems.extend(rebuild_all(&self.listeners, &stores));
        for l in &self.listeners {
            if let Err(e) = l.refresh_certificates(&self.cert_sources, true).await {
                problems.push(e);
            }
        }
        problems
    }

    /// A running listener, by name.
    pub fn listener(&self, name: &str) -> Option<&Arc<Listener>> {
        self.listeners.iter().find(|l| l.name() == name)
    }

    /// A trust store as currently served.
    pub fn trust_store(&self, name: &str) -> Option<Arc<TrustStore>> {
        self.reloader.stores().get(name).cloned()
    }

    /// Version of a trust store as currently served.
    pub fn trust_store_version(&self, name: &str) -> Option<String> {
        self.reloader.trust_store_version(name)
    }

    /// Stops accepting, lets open connections finish their in-flight requests for at most
    /// `grace`, then returns whether every connection closed in time.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let drained = match self.graceful.take().and_then(|g| Arc::try_unwrap(g).ok()) {
            Some(graceful) => tokio::time::timeout(grace, graceful.shutdown())
                .await
                .is_ok(),
            None => false,
        };
        let sinks: Vec<LogSink> = std::iter::once(self.conn_log.clone())
            .chain(self.access_log.clone())
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for s in sinks {
                s.flush(Duration::from_secs(2));
            }
        })
        .await;
        drained
    }
}

/// Builds one listener's TLS and request settings and binds its socket.
async fn bind(
    l: &ListenerConfig,
    stores: &Stores,
    certs: Arc<crate::tls::ServerCerts>,
    access_log: Option<LogSink>,
    groups: &BTreeMap<String, Arc<TargetGroup>>,
) -> Result<(TcpListener, Arc<Listener>), StartError> {
    let tls = ListenerTls::build(l, stores, certs)?;
    let bind_error = |error| StartError::Bind {
        listener: l.name.clone(),
        addr: l.bind,
        error,
    };
    let socket = TcpListener::bind(l.bind).await.map_err(bind_error)?;
    let local = socket.local_addr().map_err(bind_error)?;
    let proxy = Arc::new(ProxySettings::new(l, local.port(), access_log, groups)?);
    Ok((
        socket,
        Arc::new(Listener::new(l.clone(), local, tls, proxy)),
    ))
}

fn announce(listener: &Listener) {
    tracing::info!(
        listener = %listener.name(),
        addr = %listener.local,
        mode = listener.tls.load().mode.as_str(),
        default_target_group = %listener.proxy.router.default_route().group.name(),
        "listening"
    );
}

/// Rebuilds every listener's TLS state on `stores`; a listener that fails keeps its current
/// state. Returns the problems.
fn rebuild_all(listeners: &[Arc<Listener>], stores: &Stores) -> Vec<String> {
    let mut problems = Vec::new();
    for l in listeners {
        if let Err(e) = l.rebuild_tls(stores) {
            tracing::error!(listener = %l.name(), "reload failed, keeping the current TLS settings: {e}");
            problems.push(e.to_string());
        }
    }
    problems
}

/// One active health-check task per group that has checks and targets.
fn health_checks(
    groups: &BTreeMap<String, Arc<TargetGroup>>,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, StartError> {
    let mut tasks = Vec::new();
    for group in groups.values() {
        let hc = &group.config.health_check;
        if !hc.enabled || group.targets.is_empty() {
            continue;
        }
        let client = crate::upstream::client::client(&group.config, hc.timeout)?;
        tracing::info!(
            target_group = %group.name(),
            targets = group.targets.len(),
            path = %hc.path,
            interval_secs = hc.interval.as_secs(),
            "health checks started"
        );
        tasks.push(tokio::spawn(crate::upstream::health::run(
            group.clone(),
            client,
            stop.clone(),
        )));
    }
    Ok(tasks)
}
