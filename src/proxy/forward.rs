//! The forward phase: the request rewritten for the target (owned and hop-by-hop headers out,
//! ALB and X-Forwarded headers in), sent to a target of the routed group, and tried on another
//! target when that is safe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::request::Parts;
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};

use super::exchange::Exchange;
use super::{headers, websocket, ConnContext};
use crate::http::{empty_body, Body, ProxyError};
use crate::routing::Route;
use crate::upstream::client::ClientError;
use crate::upstream::{HealthEvent, Pick, Target};

/// Attempts per request when targets fail before answering.
const MAX_ATTEMPTS: usize = 3;

/// Sends the request to the route's group and returns the target's response.
pub async fn forward(
    ctx: &ConnContext,
    ex: &mut Exchange,
    route: &Route,
    mut parts: Parts,
    body: Incoming,
) -> Result<Response<Body>, ProxyError> {
    let websocket = websocket::upgrade_of(&parts) == websocket::Upgrade::WebSocket;
    let mut client_upgrade = None;
    let h2 = route.group.config.protocol_version.is_h2();
    let te_trailers = h2 && asks_for_trailers(&parts.headers);
    rewrite(ctx, ex, &mut parts);
    if te_trailers {
        // The one TE value HTTP/2 allows; gRPC servers look for it.
        parts
            .headers
            .insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    if websocket {
        client_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        websocket::restore_headers(&mut parts.headers);
    }
    ex.set_target_group(route);
    // Only a request without a body may go to another target (see `may_retry`).
    let retryable = body.is_end_stream() && route.group.targets.len() > 1;
    let client_failed = Arc::new(AtomicBool::new(false));
    let mut body = Some(client_body(ctx, body, client_failed.clone()));
    let mut tried: Vec<Arc<Target>> = Vec::new();
    loop {
        let Some(pick) = route.group.pick(&tried) else {
            return Err(ProxyError::NoTargets {
                group: route.group.name().to_string(),
            });
        };
        let target = pick.target.clone();
        ex.set_target(&target.url.url);
        let headers = if retryable {
            // Only a request that may be sent again needs its headers kept.
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        let version = if h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let upstream = upstream_request(ex, &parts, &target, headers, body.take(), version)?;
        let error = match send(ctx, ex, route, pick, upstream).await? {
            Ok(mut response) => {
                if websocket {
                    let framing = ctx.framing.as_deref();
                    websocket::accept(&mut response, client_upgrade, &ctx.relay, framing);
                }
                return Ok(response);
            }
            Err(error) => error,
        };
        let why = crate::error_chain(&error);
        if client_failed.load(Ordering::Relaxed) {
            return Err(ProxyError::ClientBodyAborted { why });
        }
        tried.push(target.clone());
        let connect = error.is_connect();
        let retry = retryable
            && may_retry(connect, &parts.method)
            && tried.len() < MAX_ATTEMPTS
            && tried.len() < route.group.targets.len();
        failed(ctx, route, &target, connect, why, retry)?;
    }
}

/// One attempt at the picked target: its response, the client error to judge (inner `Err`),
/// or a timeout (outer `Err`).
async fn send(
    ctx: &ConnContext,
    ex: &mut Exchange,
    route: &Route,
    pick: Pick,
    upstream: Request<Body>,
) -> Result<Result<Response<Body>, ClientError>, ProxyError> {
    let sent = Instant::now();
    ex.sent(sent);
    let timeout = ctx.settings.timeouts.backend_response;
    let result = tokio::time::timeout(timeout, route.client.request(upstream)).await;
    let target = pick.target.clone();
    drop(pick);
    match result {
        Err(_) => Err(ProxyError::TargetTimeout {
            target: target.url.url.clone(),
            secs: timeout.as_secs(),
        }),
        Ok(Err(e)) => Ok(Err(e)),
        Ok(Ok(resp)) => {
            ex.answered(sent, resp.status().as_u16());
            let (mut rparts, rbody) = resp.into_parts();
            headers::strip_hop_by_hop(&mut rparts.headers);
            Ok(Ok(Response::from_parts(rparts, rbody.boxed())))
        }
    }
}

/// After a failed attempt: a failed connect takes the target out of rotation; unless another
/// target may be tried (`retry`), the request fails with the reason.
fn failed(
    ctx: &ConnContext,
    route: &Route,
    target: &Target,
    connect: bool,
    why: String,
    retry: bool,
) -> Result<(), ProxyError> {
    if connect {
        route
            .group
            .observe(target, &HealthEvent::ConnectFailed(why.clone()));
    }
    if retry {
        tracing::debug!(conn_trace_id = %ctx.trace_id, target = %target.url.url, "trying another target after: {why}");
        return Ok(());
    }
    let target = target.url.url.clone();
    Err(if connect {
        ProxyError::TargetConnect { target, why }
    } else {
        ProxyError::TargetFailed { target, why }
    })
}

/// The client's headers as the target gets them.
fn rewrite(ctx: &ConnContext, ex: &Exchange, parts: &mut Parts) {
    let settings = &ctx.settings;
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_owned(&mut parts.headers, &settings.strip);
    if settings.drop_invalid_header_fields {
        headers::drop_invalid_fields(&mut parts.headers);
    }
    if parts.version == Version::HTTP_2 {
        headers::join_cookies(&mut parts.headers);
    }
    // A Host header the client sent is already in place; an authority becomes the Host.
    if let Some(h) = ex
        .authority
        .as_deref()
        .and_then(|h| HeaderValue::from_str(h).ok())
    {
        parts.headers.insert(http::header::HOST, h);
    }
    let (ip, scheme) = (&ctx.client_ip, settings.scheme);
    headers::set_forwarded(&mut parts.headers, ip, scheme, &settings.port_value);
    for (name, value) in &ctx.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
}

/// The client's body on its way to the target. Trailer fields are forwarded, but never a
/// certgate-owned name among them. A failure of the client's side (it broke off mid-body) is
/// noted in `client_failed`, so that the failed forward is blamed on the client, not the target.
fn client_body(ctx: &ConnContext, body: Incoming, client_failed: Arc<AtomicBool>) -> Body {
    let strip = ctx.settings.strip.clone();
    body.map_frame(move |frame| match frame.into_trailers() {
        Ok(mut trailers) => {
            headers::strip_owned(&mut trailers, &strip);
            hyper::body::Frame::trailers(trailers)
        }
        Err(frame) => frame,
    })
    .map_err(move |e| {
        client_failed.store(true, Ordering::Relaxed);
        e
    })
    .boxed()
}

fn upstream_request(
    ex: &Exchange,
    parts: &Parts,
    target: &Target,
    headers: http::HeaderMap,
    body: Option<Body>,
    version: Version,
) -> Result<Request<Body>, ProxyError> {
    let uri = Uri::builder()
        .scheme(if target.url.https { "https" } else { "http" })
        .authority(target.url.authority.clone())
        .path_and_query(ex.path_and_query.clone())
        .build()
        .map_err(|e| ProxyError::TargetAddress {
            target: target.url.url.clone(),
            why: e.to_string(),
        })?;
    let mut upstream = Request::new(body.unwrap_or_else(empty_body));
    *upstream.method_mut() = parts.method.clone();
    *upstream.uri_mut() = uri;
    *upstream.version_mut() = version;
    *upstream.headers_mut() = headers;
    Ok(upstream)
}

/// Whether the client's TE lists `trailers`.
fn asks_for_trailers(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// Another target may take the request when none of it can have been acted on (no
/// connection), or when repeating it is harmless (an idempotent method without a body, RFC 9110
/// §9.2.2), as nginx's proxy_next_upstream does.
fn may_retry(connect_failed: bool, method: &http::Method) -> bool {
    use http::Method as M;
    connect_failed || [M::GET, M::HEAD, M::OPTIONS, M::TRACE, M::PUT, M::DELETE].contains(method)
}
