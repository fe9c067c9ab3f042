//! The running proxy: loads trust stores, binds every listener, starts the background tasks
//! (store refresh, health checks, memory trim), reloads on demand and drains on shutdown.

mod logs;
mod signals;
mod view;

pub use signals::{run, serve_until_signal};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{Admin, Readiness, Serving};
use crate::config::{Config, ListenerConfig, ListenerProtocol, LogFormat};
use crate::jwt::Validator;
use crate::listener::{accept_loop, AcceptContext, ConnLog, Listener};
use crate::metrics::{Exporter, ListenerMetrics, Metrics, RequestMetrics};
use crate::observe::LogSink;
use crate::proxy::ProxySettings;
use crate::routing::RouteError;
use crate::tls::{ListenerTls, TlsError};
use crate::truststore::reload::Reloader;
use crate::truststore::source::Sources;
use crate::truststore::{loader, Stores, TrustStore, TrustStoreError};
use crate::upstream::client::UpstreamError;
use crate::upstream::TargetGroup;

/// The `[jwt_validation.NAME]` validators, by name.
type Validators = BTreeMap<String, Arc<Validator>>;

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
    #[error(transparent)]
    Jwt(#[from] crate::jwt::JwtError),
    #[error("admin endpoint: cannot bind {addr}: {error}")]
    AdminBind {
        addr: SocketAddr,
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
    validators: Validators,
    reloader: Arc<Reloader>,
    /// Where server certificates are read from (files, S3).
    cert_sources: Arc<Sources>,
    stop: watch::Sender<bool>,
    graceful: Option<Arc<GracefulShutdown>>,
    tasks: Vec<JoinHandle<()>>,
    pub conn_log: LogSink,
    logs: Option<logs::Logs>,
    /// `/readyz`'s answer, turned to 503 by SIGTERM.
    pub readiness: Arc<Readiness>,
    admin: Option<Admin>,
    /// How long `/readyz` says 503 before the listeners close (with `[admin]` only).
    shutdown_delay: Duration,
}

impl Server {
    /// Loads everything, binds every listener and starts serving. Any failure stops the start
    /// with a message naming the listener, store or file.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        // The admin endpoint comes first: probes see 503 while the stores load.
        let readiness = Arc::new(Readiness::default());
        let admin = match &config.admin {
            Some(a) => Some(
                Admin::bind(a.bind, readiness.clone())
                    .await
                    .map_err(|error| StartError::AdminBind {
                        addr: a.bind,
                        error,
                    })?,
            ),
            None => None,
        };
        let metrics = Metrics::default();
        let sources = Sources::new(config.s3.clone());
        let (stores, states) = loader::load_all(&config, &sources).await?;
        let validators = load_validators(&config, &metrics).await?;
        let logs = logs::Logs::open(&config)?;
        let (conn_log, access_log) = (logs.conn.clone(), logs.access.clone());
        let log_uploads = logs.uploads();
        let groups = crate::upstream::groups(&config);
        let cert_sources = Arc::new(Sources::new(config.s3.clone()));
        let mut bound = Vec::new();
        for l in &config.listeners {
            let certs = crate::tls::load_certificates(l, &cert_sources).await?;
            crate::tls::log_loaded(&l.name, &certs);
            crate::listener::staple::first_staples(&certs).await;
            let certs = Arc::new(certs);
            bound.push(
                bind(
                    l,
                    &stores,
                    certs,
                    access_log.clone(),
                    &groups,
                    &validators,
                    &metrics,
                )
                .await?,
            );
        }
        let reloader = Arc::new(
            Reloader::new(config.trust_stores.clone(), sources, stores, states)
                .with_metrics(&metrics),
        );
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
            if listener.config.protocol == ListenerProtocol::Https {
                tasks.push(tokio::spawn(crate::listener::certs::refresh_loop(
                    listener.clone(),
                    cert_sources.clone(),
                    stop_rx.clone(),
                )));
                tasks.push(tokio::spawn(crate::listener::staple::staple_loop(
                    listener.clone(),
                    stop_rx.clone(),
                )));
            }
            listeners.push(listener);
        }
        tasks.extend(reloader.spawn_refresh(&stop_rx));
        for v in validators.values() {
            v.spawn_refresh();
        }
        tasks.extend(health_checks(&groups, &stop_rx)?);
        tasks.push(tokio::spawn(signals::release_memory_loop(stop_rx)));
        if let Some(admin) = &admin {
            let mut logs = vec![("connection", conn_log.clone())];
            logs.extend(access_log.clone().map(|a| ("access", a)));
            let view = Arc::new(view::ServerView {
                listeners: listeners.clone(),
                reloader: reloader.clone(),
                groups,
                logs,
                uploads: log_uploads,
            });
            admin.serve(Serving {
                exporter: Exporter::new(&metrics, view.clone()),
                trust_stores: view,
            });
        }
        readiness.started();
        Ok(Server {
            listeners,
            validators,
            reloader,
            cert_sources,
            stop,
            graceful: Some(graceful),
            tasks,
            conn_log,
            logs: Some(logs),
            readiness,
            shutdown_delay: config
                .admin
                .as_ref()
                .map_or(Duration::ZERO, |a| a.shutdown_delay),
            admin,
        })
    }

    /// Where the admin endpoint listens, when `[admin]` is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.local)
    }

    /// How long to keep serving with `/readyz` at 503 after SIGTERM.
    pub fn shutdown_delay(&self) -> Duration {
        self.shutdown_delay
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
        for v in self.validators.values() {
            if let Err(e) = v.refresh().await {
                problems.push(e.to_string());
            }
        }
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
        if let Some(logs) = self.logs.take() {
            logs.close().await;
        }
        if let Some(admin) = self.admin.take() {
            admin.close().await;
        }
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
    validators: &Validators,
    metrics: &Metrics,
) -> Result<(TcpListener, Arc<Listener>), StartError> {
    let tls = ListenerTls::build(l, stores, certs)?;
    let bind_error = |error| StartError::Bind {
        listener: l.name.clone(),
        addr: l.bind,
        error,
    };
    let socket = TcpListener::bind(l.bind).await.map_err(bind_error)?;
    let local = socket.local_addr().map_err(bind_error)?;
    let proxy = ProxySettings::new(l, local.port(), access_log, groups)?;
    let routes = proxy.router.routes().iter().map(|r| r.group.name());
    let requests = RequestMetrics::new(metrics, &l.name, routes);
    let proxy = proxy.with_metrics(requests).with_validators(l, validators);
    let handshakes = ListenerMetrics::new(metrics, &l.name, tls.mode.as_str());
    let listener = Listener::new(l.clone(), local, tls, Arc::new(proxy)).with_metrics(handshakes);
    Ok((socket, Arc::new(listener)))
}

fn announce(listener: &Listener) {
    tracing::info!(
        listener = %listener.name(),
        addr = %listener.local,
        mode = listener.tls.load().mode.as_str(),
        default_action = %listener.config.routes.default_action.describe(),
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

/// Fetches every validator's JWKS; one that cannot be fetched stops the start, naming it.
pub async fn load_validators(config: &Config, metrics: &Metrics) -> Result<Validators, StartError> {
    let sources = Arc::new(Sources::new(config.s3.clone()));
    let mut out = BTreeMap::new();
    for (name, cfg) in &config.jwt_validators {
        let counters = crate::metrics::JwtMetrics::new(metrics, name);
        let v = Validator::load(cfg.clone(), sources.clone(), counters).await?;
        tracing::info!(validator = %name, kids = ?v.key_ids(), "JWKS loaded");
        out.insert(name.clone(), v);
    }
    Ok(out)
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
