//! The request path, in phases: checks (framing refusals, limits, Host/SNI) → route (rule
//! match, on the request and the client certificate) → authorize (tokens) → the rule's action
//! (forward: target choice, retries; or a fixed response or a redirect) → respond and log. Each phase returns
//! `Result<_, ProxyError>`; the error decides the status, the reason and the side blamed.

mod actions;
mod authorize;
mod checks;
mod exchange;
mod forward;
pub mod framing;
mod grpc;
pub mod headers;
pub mod websocket;

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
use crate::jwt::Validator;
use crate::metrics::RequestMetrics;
use crate::observe::LogSink;
use crate::routing::{Action, RouteError, Router};
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
    pub drop_invalid_header_fields: bool,
    /// `[listener.response_headers]`, applied to every answer.
    pub response_headers: crate::config::ResponseHeaders,
    /// The listener's `authenticate_jwt` validator, run on every request.
    pub jwt: Option<Arc<Validator>>,
    /// Each rule's `authenticate_jwt` validator, by rule index.
    pub rule_jwt: Vec<Option<Arc<Validator>>>,
    /// `https` or `http`: the listener's protocol, as X-Forwarded-Proto and redirects name it.
    pub scheme: &'static str,
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
            strip: l.strip_set().into(),
            limits: l.limits,
            drop_invalid_header_fields: l.drop_invalid_header_fields,
            jwt: None,
            rule_jwt: Vec::new(),
            scheme: l.protocol.scheme(),
            response_headers: l.response_headers.clone(),
            access_log,
            metrics: RequestMetrics::detached(&l.name),
        })
    }

    /// The settings with the listener's and its rules' `authenticate_jwt` validators.
    pub fn with_validators(
        mut self,
        l: &ListenerConfig,
        validators: &std::collections::BTreeMap<String, Arc<Validator>>,
    ) -> ProxySettings {
        let find = |name: &Option<String>| name.as_ref().and_then(|n| validators.get(n).cloned());
        self.jwt = find(&l.authenticate_jwt);
        self.rule_jwt = l
            .routes
            .rules
            .iter()
            .map(|r| find(&r.authenticate_jwt))
            .collect();
        self
    }

    /// Whether any request of this listener may need a token checked.
    pub fn checks_tokens(&self) -> bool {
        self.jwt.is_some() || self.rule_jwt.iter().any(Option::is_some)
    }

    /// The settings, counting requests into `metrics`.
    pub fn with_metrics(mut self, metrics: RequestMetrics) -> ProxySettings {
        self.metrics = metrics;
        self
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
    /// SHA-256 of the verified client certificate (DER), for certificate-bound tokens; set
    /// only on listeners that check tokens.
    pub cert_thumbprint: Option<[u8; 32]>,
    /// A WebSocket upgrade the target accepted, for the connection task to relay.
    pub relay: websocket::RelaySlot,
    /// The handshake's protocol and cipher (OpenSSL names), for ALB's access-log line.
    pub tls: (Option<&'static str>, Option<&'static str>),
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
            cert_thumbprint: None,
            relay: std::sync::Mutex::new(None),
            tls: (None, None),
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
    let grpc = grpc::is_grpc(&parts.headers);
    let outcome = phases(&ctx, &mut ex, parts, body).await;
    let response = match outcome {
        Ok(response) => response,
        Err(e) if grpc => {
            drop(ex.refuse(&ctx, &e));
            grpc::trailers_only(&e)
        }
        Err(e) => ex.refuse(&ctx, &e),
    };
    let response = modify_headers(&ctx.settings.response_headers, response);
    Ok(ex.finish(&ctx, response))
}

/// ALB's header modification: the configured headers replace the target's, and `Server` goes
/// when `server_enabled = false`.
fn modify_headers(
    r: &crate::config::ResponseHeaders,
    mut response: Response<Body>,
) -> Response<Body> {
    if r.set.is_empty() && !r.remove_server {
        return response;
    }
    let h = response.headers_mut();
    for (name, value) in &r.set {
        h.insert(name.clone(), value.clone());
    }
    if r.remove_server {
        h.remove(http::header::SERVER);
    }
    response
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
    authorize::authorize(ctx, ex, &matched, &parts).await?;
    match matched.action {
        Action::Forward(route) => forward::forward(ctx, ex, route, parts, body).await,
        Action::FixedResponse(fixed) => Ok(actions::fixed_response(fixed)),
        Action::Redirect(redirect) => actions::redirect(ctx, ex, redirect, &parts),
    }
}
