//! The admin endpoint's answers, one function per path; every other path is 404.

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::AdminState;
use crate::metrics::Format;

type Answer = Response<Full<Bytes>>;

pub(super) fn answer<B>(state: &AdminState, req: &Request<B>) -> Answer {
    let path = req.uri().path();
    let known = matches!(path, "/healthz" | "/readyz" | "/metrics" | "/truststores");
    if !known {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => readyz(state),
        "/metrics" => metrics(state, req),
        _ => trust_stores(state),
    }
}

fn text(status: StatusCode, body: &'static str) -> Answer {
    with_type(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Answer {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn readyz(state: &AdminState) -> Answer {
    match state.readiness.state() {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(why) => with_type(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            Bytes::from(format!("{why}\n")),
        ),
    }
}

fn metrics<B>(state: &AdminState, req: &Request<B>) -> Answer {
    let Some(serving) = state.serving() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "starting\n");
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    match serving.exporter.encode(format) {
        Ok(body) => with_type(StatusCode::OK, format.content_type(), Bytes::from(body)),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n"),
    }
}

fn trust_stores(state: &AdminState) -> Answer {
    let Some(serving) = state.serving() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "starting\n");
    };
    let body = serving.trust_stores.trust_stores().to_string();
    with_type(StatusCode::OK, "application/json", Bytes::from(body))
}
