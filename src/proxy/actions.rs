//! The rule actions that answer without a target: fixed responses (ALB's `fixed-response`) and
//! redirects (ALB's `redirect`, its placeholders filled from the request).

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};

use super::exchange::Exchange;
use super::ConnContext;
use crate::config::{FixedResponse, Redirect};
use crate::http::{Body, ProxyError};
use crate::wildcard::strip_port;

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

/// The request's own URL parts, as a redirect's placeholders name them.
#[derive(Debug, Clone, Copy)]
pub struct UrlParts<'a> {
    /// `http` or `https`.
    pub protocol: &'a str,
    /// Without its port.
    pub host: &'a str,
    /// The listener's port.
    pub port: &'a str,
    /// Without its leading `/`.
    pub path: &'a str,
    /// Without `?`.
    pub query: &'a str,
}

/// The answer of a `redirect` action: 301 or 302 with the URL its templates give.
pub fn redirect(
    ctx: &ConnContext,
    ex: &Exchange,
    r: &Redirect,
    parts: &http::request::Parts,
) -> Result<Response<Body>, ProxyError> {
    let host = ex.host().map(strip_port).filter(|h| !h.is_empty());
    let Some(host) = host else {
        return Err(ProxyError::RedirectUnbuildable {
            why: "the request names no host (no Host header or :authority)".to_string(),
        });
    };
    let url = UrlParts {
        protocol: ctx.settings.scheme,
        host,
        port: ctx.settings.port_value.to_str().unwrap_or_default(),
        path: parts
            .uri
            .path()
            .strip_prefix('/')
            .unwrap_or(parts.uri.path()),
        query: parts.uri.query().unwrap_or_default(),
    };
    let location = location(r, &url);
    let location =
        HeaderValue::from_str(&location).map_err(|_| ProxyError::RedirectUnbuildable {
            why: "the URL it gives is not a valid Location value".to_string(),
        })?;
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = if r.status_code == 301 {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::FOUND
    };
    response.headers_mut().insert(LOCATION, location);
    Ok(response)
}

/// The redirect's URL for a request. The port is left out when it is the protocol's default
/// (ALB writes `:443` too; the URL means the same without it), and `?` when the query is empty.
pub fn location(r: &Redirect, url: &UrlParts<'_>) -> String {
    let protocol = fill(&r.protocol, url).to_ascii_lowercase();
    let host = fill(&r.host, url);
    let port = fill(&r.port, url);
    let path = fill(&r.path, url);
    let query = fill(&r.query, url);
    let default_port = matches!(
        (protocol.as_str(), port.as_str()),
        ("https", "443") | ("http", "80")
    );
    let mut out = format!("{protocol}://{host}");
    if !default_port {
        out.push(':');
        out.push_str(&port);
    }
    out.push_str(&path);
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    out
}

/// A template with its placeholders replaced by the request's parts.
fn fill(template: &str, url: &UrlParts<'_>) -> String {
    template
        .replace("#{protocol}", url.protocol)
        .replace("#{host}", url.host)
        .replace("#{port}", url.port)
        .replace("#{path}", url.path)
        .replace("#{query}", url.query)
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

    fn redirect_to(protocol: &str, host: &str, port: &str, path: &str, query: &str) -> Redirect {
        Redirect {
            protocol: protocol.into(),
            host: host.into(),
            port: port.into(),
            path: path.into(),
            query: query.into(),
            status_code: 301,
        }
    }

    const REQUEST: UrlParts<'static> = UrlParts {
        protocol: "http",
        host: "shop.example",
        port: "8080",
        path: "cart/items",
        query: "a=1&b=2",
    };

    #[test]
    fn placeholders_take_the_request_parts() {
        let to_https = redirect_to("HTTPS", "#{host}", "443", "/#{path}", "#{query}");
        assert_eq!(
            location(&to_https, &REQUEST),
            "https://shop.example/cart/items?a=1&b=2"
        );
        let moved = redirect_to(
            "#{protocol}",
            "new.#{host}",
            "#{port}",
            "/v2/#{path}",
            "from=#{host}",
        );
        assert_eq!(
            location(&moved, &REQUEST),
            "http://new.shop.example:8080/v2/cart/items?from=shop.example"
        );
        let plain = UrlParts {
            query: "",
            ..REQUEST
        };
        let elsewhere = redirect_to("HTTPS", "example.org", "8443", "/", "#{query}");
        assert_eq!(location(&elsewhere, &plain), "https://example.org:8443/");
    }
}
