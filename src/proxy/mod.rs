//! The request path, in phases: checks (framing refusals, limits, Host/SNI) → route (rule
//! match, on the request and the client certificate) → authorize → the rule's action (forward:
//! target choice, retries; or a fixed response) → respond and log. Each phase returns
//! `Result<_, ProxyError>`; the error decides the status, the reason and the side blamed.

mod actions;
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
use crate::config::{CertFacts, RequestFacts};
use crate::config::{ListenerConfig, RequestLimits, Timeouts};
use crate::http::{Body, ProxyError};
use crate::observe::LogSink;
use crate::routing::{Action, Matched, RouteError, Router};
use crate::upstream::TargetGroup;
use crate::x509::{Identity, LeafFacts};
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
            strip: l.strip_set().into(),
            limits: l.limits,
            access_log,
        })
    }
}

/// What the handshake established about the client's certificate, for rules and logs.
#[derive(Debug, Clone, Default)]
pub struct ClientCert {
    /// The leaf was verified against the trust store (verify mode, a certificate sent): only
    /// then may a rule's certificate conditions match.
    pub verified: bool,
    pub leaf: Option<LeafFacts>,
    pub identity: Identity,
}

impl ClientCert {
    /// What rule conditions may see: only a verified certificate's facts.
    pub fn facts(&self) -> Option<CertFacts<'_>> {
        let leaf = self.leaf.as_ref().filter(|_| self.verified)?;
        Some(CertFacts {
            identity: self.identity.value(),
            issuer: &leaf.issuer,
        })
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
    pub cert: ClientCert,
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
        cert: ClientCert,
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
            cert,
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
    let request = RequestFacts {
        host: ex.host(),
        path: parts.uri.path(),
        cert: ctx.cert.facts(),
    };
    let matched = ctx.settings.router.route(&request);
    authorize(ctx, ex, &matched, &parts)?;
    match matched.action {
        Action::Forward(route) => forward::forward(ctx, ex, route, parts, body).await,
        Action::FixedResponse(fixed) => Ok(actions::fixed_response(fixed)),
    }
}

/// The authorize phase: whether this client may have the matched rule's action. A rule's
/// certificate conditions (`client_identity`, `client_issuer`) take part in matching, as ALB's
/// conditions do: a client that fails them falls through to a later rule, typically a fixed
/// 403 for the same path. What a rule demands beyond its conditions (a rule's
/// `authenticate_jwt`) is checked here, before the action runs.
fn authorize(
    _ctx: &ConnContext,
    ex: &mut Exchange,
    matched: &Matched<'_>,
    _parts: &http::request::Parts,
) -> Result<(), ProxyError> {
    ex.set_rule(matched.rule);
    Ok(())
}
