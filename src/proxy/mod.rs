//! Forwarding requests to the backend: header operations, pooled HTTP/1.1 to the backend, and
//! error answers that say which side failed (400 client, 502/504 backend).

pub mod framing;
pub mod headers;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body as _, Incoming};

use crate::balancer::client::TargetTlsError;
use crate::balancer::{HealthEvent, Router, Target, TargetGroup};
use crate::config::{ListenerConfig, Timeouts};
use crate::logs::access::AccessRecord;
use crate::logs::LogSink;
use headers::ConnHeaders;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Per-listener state shared by all its connections. Built once at start.
#[derive(Debug)]
pub struct ListenerShared {
    pub name: String,
    pub port_value: HeaderValue,
    pub router: Router,
    pub timeouts: Timeouts,
    /// Shared with each request's trailer filter, so taking it there is a reference count.
    pub strip: Arc<[http::HeaderName]>,
    pub header_names: crate::config::HeaderNames,
    pub limits: crate::config::RequestLimits,
    pub access_log: Option<LogSink>,
    /// Open verify-mode connections, re-checked when the trust store is reloaded.
    pub open_conns: Arc<crate::listener::OpenConns>,
    /// One permit per open client connection (`max_connections`).
    pub conn_slots: Arc<tokio::sync::Semaphore>,
    pub max_connections: usize,
}

impl ListenerShared {
    pub fn new(
        l: &ListenerConfig,
        port: u16,
        access_log: Option<LogSink>,
        groups: &BTreeMap<String, Arc<TargetGroup>>,
    ) -> Result<Self, TargetTlsError> {
        Ok(ListenerShared {
            name: l.name.clone(),
            port_value: HeaderValue::from(port),
            router: Router::new(&l.routes, groups, l.timeouts.backend_connect)?,
            timeouts: l.timeouts,
            strip: l.headers.strip_set().into(),
            header_names: l.headers.clone(),
            limits: l.limits,
            conn_slots: Arc::new(tokio::sync::Semaphore::new(l.max_connections)),
            max_connections: l.max_connections,
            access_log,
            open_conns: Arc::default(),
        })
    }
}

/// Per-connection state, fixed after the handshake.
#[derive(Debug)]
pub struct ConnContext {
    pub trace_id: String,
    pub client: SocketAddr,
    /// The client's address, as X-Forwarded-For carries it.
    pub client_ip: HeaderValue,
    pub listener: Arc<ListenerShared>,
    pub headers: ConnHeaders,
    pub leaf_subject: Option<String>,
    /// The TLS server name the client asked for, if any.
    pub sni: Option<String>,
    /// HTTP/1.1: heads the framing guard refused (see [`framing`]).
    pub framing: Option<Arc<framing::FramingVerdict>>,
    /// Requests seen on this connection so far.
    pub requests: std::sync::atomic::AtomicU64,
}

fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("{msg}\n")))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// Handles one request of a connection: rewrite, forward, answer, log.
pub async fn handle(
    ctx: Arc<ConnContext>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let received = Instant::now();
    let l = &ctx.listener;
    let (mut parts, body) = req.into_parts();

    let pq = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    // The request target's authority (HTTP/2 `:authority`, HTTP/1.1 absolute-form) wins over
    // a Host header (RFC 9113 §8.3.1, RFC 9112 §3.2.2), and becomes the Host the backend sees.
    let authority_host = parts.uri.authority().map(|a| a.to_string());
    let host = authority_host.clone().or_else(|| {
        parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
    });
    // Without an access log only the timings and the error reason are needed: the strings
    // below are built only for a log that will be written.
    let logging = l.access_log.is_some();
    let mut log = AccessRecord {
        target_processing_time: -1.0,
        ..AccessRecord::default()
    };
    if logging {
        log.timestamp = crate::logs::timestamp(time::OffsetDateTime::now_utc());
        log.conn_trace_id = ctx.trace_id.clone();
        log.listener = l.name.clone();
        log.client_ip = ctx.client_ip.to_str().unwrap_or_default().to_string();
        log.client_port = ctx.client.port();
        log.request = format!(
            "{} {} {}",
            parts.method,
            pq.as_str(),
            version_name(parts.version)
        );
        log.method = parts.method.to_string();
        log.path = pq.as_str().to_string();
        log.http_version = version_name(parts.version);
        log.host = host.clone();
        log.user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        log.leaf_client_cert_subject = ctx.leaf_subject.clone();
    }

    let index = ctx
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(r) = ctx.framing.as_ref().and_then(|f| f.rejection_for(index)) {
        // hyper saw a stand-in; log the request the client actually sent.
        log.request = format!("{} {} {}", r.method, r.target, r.version);
        log.method = r.method.clone();
        log.path = r.target.clone();
        log.http_version = r.version;
        log.host = r.host.clone();
        log.user_agent = r.user_agent.clone();
        log.error_reason = Some(r.reason.clone());
        let mut resp = text(r.status, &r.reason);
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(finish(&ctx, log, resp, received));
    }

    if let Some((status, reason)) = refuse(&ctx, &parts, host.as_deref()) {
        log.error_reason = Some(reason.clone());
        let mut resp = text(status, &reason);
        // The framing of anything after a refused request cannot be trusted: close.
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(finish(&ctx, log, resp, received));
    }

    headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_owned(&mut parts.headers, &l.strip);
    if parts.version == Version::HTTP_2 {
        headers::join_cookies(&mut parts.headers);
    }
    // A Host header the client sent is already in place; an authority becomes the Host.
    if let Some(h) = authority_host
        .as_deref()
        .and_then(|h| HeaderValue::from_str(h).ok())
    {
        parts.headers.insert(http::header::HOST, h);
    }
    headers::set_forwarded(&mut parts.headers, &ctx.client_ip, &l.port_value);
    for (name, value) in &ctx.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    let route = l.router.route(host.as_deref(), parts.uri.path());
    if logging {
        log.target_group = Some(route.group.name().to_string());
    }
    // Only a request without a body may go to another target (see the error arm below).
    let retryable = body.is_end_stream() && route.group.targets.len() > 1;
    // Trailer fields are forwarded, but never a certgate-owned name among them.
    let strip = l.strip.clone();
    let mut body = Some(
        body.map_frame(move |frame| match frame.into_trailers() {
            Ok(mut trailers) => {
                headers::strip_owned(&mut trailers, &strip);
                hyper::body::Frame::trailers(trailers)
            }
            Err(frame) => frame,
        })
        .boxed(),
    );
    let mut tried: Vec<Arc<Target>> = Vec::new();
    let response = loop {
        let Some(pick) = route.group.pick(&tried) else {
            let reason = format!("target group {} has no targets", route.group.name());
            log.error_reason = Some(reason.clone());
            break text(StatusCode::SERVICE_UNAVAILABLE, &reason);
        };
        let target = pick.target.clone();
        if logging {
            log.target = Some(target.url.url.clone());
        }
        let uri = Uri::builder()
            .scheme(if target.url.https { "https" } else { "http" })
            .authority(target.url.authority.clone())
            .path_and_query(pq.clone())
            .build();
        let uri = match uri {
            Ok(u) => u,
            Err(e) => {
                let reason = format!("cannot address target {}: {e}", target.url.url);
                log.error_reason = Some(reason.clone());
                break text(StatusCode::BAD_GATEWAY, &reason);
            }
        };
        let mut upstream = Request::new(body.take().unwrap_or_else(empty_body));
        *upstream.method_mut() = parts.method.clone();
        *upstream.uri_mut() = uri;
        *upstream.version_mut() = Version::HTTP_11;
        // Only a request that may be sent again needs its headers kept.
        *upstream.headers_mut() = if retryable {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };

        let sent = Instant::now();
        log.request_processing_time = secs(sent - received);
        let result =
            tokio::time::timeout(l.timeouts.backend_response, route.client.request(upstream)).await;
        drop(pick);
        match result {
            Err(_) => {
                let reason = format!(
                    "target {} sent no response within {}s",
                    target.url.url,
                    l.timeouts.backend_response.as_secs()
                );
                log.error_reason = Some(reason.clone());
                break text(StatusCode::GATEWAY_TIMEOUT, &reason);
            }
            Ok(Err(e)) if client_side(&e) => {
                let reason = format!(
                    "client aborted the request body: {}",
                    crate::error_chain(&e)
                );
                log.error_reason = Some(reason.clone());
                break text(StatusCode::BAD_REQUEST, &reason);
            }
            Ok(Err(e)) => {
                let why = crate::error_chain(&e);
                let connect = e.is_connect();
                if connect {
                    route
                        .group
                        .observe(&target, &HealthEvent::ConnectFailed(why.clone()));
                }
                tried.push(target.clone());
                // Another target may take the request when none of it can have been acted on
                // (no connection), or when repeating it is harmless (an idempotent method
                // without a body, RFC 9110 §9.2.2), as nginx's proxy_next_upstream does.
                let again = retryable
                    && (connect || idempotent(&parts.method))
                    && tried.len() < MAX_ATTEMPTS
                    && tried.len() < route.group.targets.len();
                if again {
                    tracing::debug!(conn_trace_id = %ctx.trace_id, target = %target.url.url, "trying another target after: {why}");
                    continue;
                }
                let reason = if connect {
                    format!("cannot connect to target {}: {why}", target.url.url)
                } else {
                    format!("target {} failed: {why}", target.url.url)
                };
                log.error_reason = Some(reason.clone());
                break text(StatusCode::BAD_GATEWAY, &reason);
            }
            Ok(Ok(resp)) => {
                log.target_processing_time = secs(sent.elapsed());
                log.target_status_code = Some(resp.status().as_u16());
                let (mut rparts, rbody) = resp.into_parts();
                headers::strip_hop_by_hop(&mut rparts.headers);
                break Response::from_parts(rparts, rbody.boxed());
            }
        }
    };
    Ok(finish(&ctx, log, response, received))
}

fn idempotent(m: &http::Method) -> bool {
    use http::Method as M;
    [M::GET, M::HEAD, M::OPTIONS, M::TRACE, M::PUT, M::DELETE].contains(m)
}

/// Attempts per request when targets fail before answering.
const MAX_ATTEMPTS: usize = 3;

pub(crate) fn empty_body() -> Body {
    http_body_util::Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn finish(
    ctx: &ConnContext,
    mut log: AccessRecord,
    response: Response<Body>,
    received: Instant,
) -> Response<Body> {
    let status = response.status().as_u16();
    log.elb_status_code = status;
    if let Some(reason) = &log.error_reason {
        tracing::warn!(conn_trace_id = %ctx.trace_id, listener = %ctx.listener.name, status, "{reason}");
    }
    let total = secs(received.elapsed());
    log.response_processing_time = secs_f64(
        (total - log.request_processing_time - log.target_processing_time.max(0.0)).max(0.0),
    );
    if let Some(sink) = &ctx.listener.access_log {
        sink.write(log.to_json());
    }
    response
}

fn secs(d: std::time::Duration) -> f64 {
    secs_f64(d.as_secs_f64())
}

/// Seconds with microsecond precision, so logs show `0.000105`, not float noise.
fn secs_f64(s: f64) -> f64 {
    (s * 1_000_000.0).round() / 1_000_000.0
}

/// Requests certgate answers itself instead of forwarding: the status and the reason.
fn refuse(
    ctx: &ConnContext,
    parts: &http::request::Parts,
    host: Option<&str>,
) -> Option<(StatusCode, String)> {
    let h = &parts.headers;
    let limits = &ctx.listener.limits;
    // Framing conflicts never get here: hyper refuses differing Content-Length values and
    // obs-fold with 400, and with Transfer-Encoding present it drops Content-Length (RFC 9112
    // §6.3); the request is then re-framed towards the backend, so no two parsers disagree.
    if let Some((name, value)) = h
        .iter()
        .find(|(_, v)| v.len() > limits.max_header_field_bytes)
    {
        return Some((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "request header {name} is {} bytes, more than the limit of {}",
                value.len(),
                limits.max_header_field_bytes
            ),
        ));
    }
    let total: usize = h.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if total > limits.max_header_bytes {
        return Some((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "request headers are {total} bytes, more than the limit of {}",
                limits.max_header_bytes
            ),
        ));
    }
    if h.contains_key(http::header::UPGRADE) || parts.method == http::Method::CONNECT {
        return Some((
            StatusCode::NOT_IMPLEMENTED,
            "protocol upgrades (WebSocket, CONNECT) are not supported by certgate".to_string(),
        ));
    }
    // A client certificate was checked for the name the client connected to; a request for
    // another host on the same connection is answered 421 (RFC 9110 §15.5.20), not forwarded.
    if let (Some(sni), Some(host)) = (ctx.sni.as_deref(), host) {
        if !sni.eq_ignore_ascii_case(host_name(host)) {
            return Some((
                StatusCode::MISDIRECTED_REQUEST,
                format!("request for host {host:?} on a connection made for {sni:?}"),
            ));
        }
    }
    None
}

/// The name part of a Host value: without the port, and without brackets for IPv6.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether a failed forward was the client's doing (its request body broke off), not the
/// backend's: that is a 400 and must not be blamed on the backend.
fn client_side(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_user() || h.is_body_write_aborted() {
                return true;
            }
            if h.is_incomplete_message() || h.is_parse() || h.is_closed() {
                return false;
            }
        }
        cur = err.source();
    }
    false
}
