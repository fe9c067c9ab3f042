//! gRPC requests (content type `application/grpc*`): when certgate itself cannot serve one
//! (no target, target down, timeout, refused), a gRPC client understands only a gRPC status, so
//! the answer is HTTP 200 with `grpc-status` and `grpc-message` in a trailers-only response,
//! mapped from the HTTP status as gRPC's own table does (as ALB does for gRPC target groups).

use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::http::{empty_body, Body, ProxyError};

/// Whether the request speaks gRPC.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// gRPC's mapping of HTTP statuses (doc/http-grpc-status-mapping.md).
pub fn status_for(http: StatusCode) -> u8 {
    match http.as_u16() {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// certgate's refusal as a trailers-only gRPC response.
pub fn trailers_only(e: &ProxyError) -> Response<Body> {
    let mut resp = Response::new(empty_body());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(
        "grpc-status",
        HeaderValue::from(u16::from(status_for(e.status()))),
    );
    // gRPC's grpc-message: printable ASCII as is, `%` and everything else percent-encoded.
    const MESSAGE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
    let message = percent_encoding::utf8_percent_encode(&e.to_string(), MESSAGE).to_string();
    if let Ok(v) = HeaderValue::from_str(&message) {
        h.insert("grpc-message", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_grpc_statuses() {
        let down = ProxyError::TargetConnect {
            target: "http://t".into(),
            why: "refused".into(),
        };
        let resp = trailers_only(&down);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["grpc-status"], "14");
        assert!(resp.headers()["grpc-message"]
            .to_str()
            .unwrap()
            .contains("cannot connect"));
        assert_eq!(status_for(StatusCode::GATEWAY_TIMEOUT), 14);
        assert_eq!(status_for(StatusCode::UNAUTHORIZED), 16);
        assert_eq!(status_for(StatusCode::NOT_IMPLEMENTED), 2);
    }
}
