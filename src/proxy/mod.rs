//! The request path, in phases: checks (framing refusals, limits, Host/SNI) → route (rule
//! match) → authorize → forward (target choice, retries) → respond and log. Each phase returns
//! `Result<_, ProxyError>`; the error decides the status, the reason and the side blamed.

mod checks;
mod exchange;
mod forward;
pub mod framing;
pub mod headers;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;

use crate::alb::ConnHeaders;
use crate::config::{ListenerConfig, RequestLimits, Timeouts};
use crate::http::{Body, ProxyError};
use crate::metrics::RequestMetrics;
use crate::observe::LogSink;
use crate::routing::{Route, RouteError, Router};
use crate::upstream::TargetGroup;
use exchange::Exchange;

/// What every request handler of a listener shares. Built once at start.
#[derive(Debug)]
pub struct ProxySettings {
    pub name: String,
    pub port_value: HeaderValue,
    pub router: Router,
    pub timeouts: Timeouts,
    /// Shared with each request's trailer filter, so taking it there is a reference count.
    pub strip: Arc<[http::HeaderName]>,
    pub limits: RequestLimits,
    pub access_log: Option<LogSink>,
    /// Request counters per target group, resolved once.
    pub metrics: RequestMetrics,
}

impl ProxySettings {
    pub fn new(
        l: &ListenerConfig,
        port: u16,
        access_log: Option<LogSink>,
        groups: &std::collections::BTreeMap<String, Arc<TargetGroup>>,
    ) -> Result<Self, RouteError> {
        Ok(ProxySettings {
            name: l.name.clone(),
            port_value: HeaderValue::from(port),
            router: Router::new(&l.routes, groups, l.timeouts.backend_connect)?,
            timeouts: l.timeouts,
            strip: l.headers.strip_set().into(),
            limits: l.limits,
            access_log,
            metrics: RequestMetrics::detached(&l.name),
        })
    }

    /// The settings, counting requests into `metrics`.
    pub fn with_metrics(mut self, metrics: RequestMetrics) -> ProxySettings {
        self.metrics = metrics;
        self
    }
}

/// Per-connection state, fixed after the handshake.
#[derive(Debug)]
pub struct ConnContext {
    pub settings: Arc<ProxySettings>,
    pub trace_id: String,
    pub client: SocketAddr,
    /// The client's address, as X-Forwarded-For carries it.
    pub client_ip: HeaderValue,
    /// ALB's client-certificate headers, added to every request.
    pub headers: ConnHeaders,
    pub leaf_subject: Option<String>,
    /// The TLS server name the client asked for, if any.
    pub sni: Option<String>,
    /// HTTP/1.1: the request head the framing guard refused, if it refused one.
    pub framing: Option<Arc<framing::FramingVerdict>>,
}

impl ConnContext {
    pub fn new(
        settings: Arc<ProxySettings>,
        trace_id: String,
        client: SocketAddr,
        headers: ConnHeaders,
        leaf_subject: Option<String>,
        sni: Option<String>,
        framing: Option<Arc<framing::FramingVerdict>>,
    ) -> ConnContext {
        ConnContext {
            settings,
            trace_id,
            client,
            client_ip: HeaderValue::from_str(&client.ip().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("")),
            headers,
            leaf_subject,
            sni,
            framing,
        }
    }
}

/// Handles one request of a connection: the phases in order, then the answer and its log.
pub async fn handle(
    ctx: Arc<ConnContext>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let received = Instant::now();
    let (parts, body) = req.into_parts();
    let mut ex = Exchange::begin(&ctx, &parts, received);
    let outcome = phases(&ctx, &mut ex, parts, body).await;
    let response = match outcome {
        Ok(response) => response,
        Err(e) => ex.refuse(&ctx, &e),
    };
    Ok(ex.finish(&ctx, response))
}

async fn phases(
    ctx: &ConnContext,
    ex: &mut Exchange,
    parts: http::request::Parts,
    body: Incoming,
) -> Result<Response<Body>, ProxyError> {
    checks::check(ctx, ex, &parts)?;
    let route = ctx.settings.router.route(ex.host(), parts.uri.path());
    authorize(ctx, route, &parts)?;
    forward::forward(ctx, ex, route, parts, body).await
}

/// Whether this client may reach this route. Every admitted client may today; per-rule
/// certificate conditions and token checks belong here.
fn authorize(
    _ctx: &ConnContext,
    _route: &Route,
    _parts: &http::request::Parts,
) -> Result<(), ProxyError> {
    Ok(())
}
