//! The rule actions that answer without a target: fixed responses (ALB's `fixed-response`).

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::config::FixedResponse;
use crate::http::Body;

/// The answer of a `fixed_response` action: its status, content type and body.
pub fn fixed_response(f: &FixedResponse) -> Response<Body> {
    let body = Full::new(Bytes::from(f.message_body.clone()))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    // Validation admits only 2XX, 4XX and 5XX codes.
    *response.status_mut() =
        StatusCode::from_u16(f.status_code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(f.content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_with_the_configured_status_type_and_body() {
        let r = fixed_response(&FixedResponse {
            status_code: 403,
            content_type: "application/json",
            message_body: "{\"error\":\"forbidden\"}".into(),
        });
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "{\"error\":\"forbidden\"}");
    }
}
