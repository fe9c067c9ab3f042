//! One request and its answer as the access log sees them: what the client asked for, what
//! each phase learned (group, target, timings), and the closing record.

use std::time::{Duration, Instant};

use http::request::Parts;
use http::uri::PathAndQuery;
use http::Response;

use super::framing::Rejection;
use super::ConnContext;
use crate::config::LogFormat;
use crate::http::{version_name, Body, ProxyError};
use crate::metrics::RequestMetrics;
use crate::observe::access::{clip, AccessRecord};
use crate::routing::Route;

/// A request in flight.
pub struct Exchange {
    received: Instant,
    /// Only for a log that will be written are strings built.
    logging: bool,
    /// The request target's authority (HTTP/2 `:authority`, HTTP/1.1 absolute-form), which
    /// wins over a Host header (RFC 9113 §8.3.1, RFC 9112 §3.2.2).
    pub authority: Option<String>,
    host: Option<String>,
    pub path_and_query: PathAndQuery,
    pub log: AccessRecord,
    /// The chosen target group's slot in the listener's request metrics.
    metrics_slot: usize,
}

impl Exchange {
    pub fn begin(ctx: &ConnContext, parts: &Parts, received: Instant) -> Exchange {
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let authority = parts.uri.authority().map(|a| a.to_string());
        let host = authority.clone().or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        });
        let mut ex = Exchange {
            received,
            logging: ctx.settings.access_log.is_some(),
            authority,
            host,
            path_and_query,
            metrics_slot: crate::metrics::handles::NO_GROUP,
            log: AccessRecord {
                target_processing_time: -1.0,
                ..AccessRecord::default()
            },
        };
        if ex.logging {
            ex.describe_request(ctx, parts);
        }
        ex
    }

    fn describe_request(&mut self, ctx: &ConnContext, parts: &Parts) {
        let log = &mut self.log;
        let pq = self.path_and_query.as_str();
        log.timestamp = crate::observe::timestamp(time::OffsetDateTime::now_utc());
        log.conn_trace_id = ctx.trace_id.clone();
        log.listener = ctx.settings.name.clone();
        log.client_ip = ctx.client_ip.to_str().unwrap_or_default().to_string();
        log.client_port = ctx.client.port();
        log.request = clip(&format!(
            "{} {} {}",
            parts.method,
            pq,
            version_name(parts.version)
        ));
        log.method = clip(parts.method.as_str());
        log.path = clip(pq);
        log.http_version = version_name(parts.version);
        log.host = self.host.as_deref().map(clip);
        log.user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|h| h.to_str().ok())
            .map(clip);
        let cert = &ctx.cert;
        log.leaf_client_cert_subject = cert.leaf.as_ref().map(|l| l.subject.clone());
        log.client_identity = cert.identity.value().map(str::to_string);
        log.client_identity_detail = cert.identity.missing().map(str::to_string);
        (log.ssl_protocol, log.ssl_cipher) = ctx.tls;
        log.domain_name = ctx.sni.clone();
    }

    /// The host the request is for (authority, else Host), as the client wrote it.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// hyper saw the framing guard's stand-in; the log shows what the client really sent.
    pub fn describe_refused_head(&mut self, r: &Rejection) {
        let log = &mut self.log;
        log.request = clip(&format!("{} {} {}", r.method, r.target, r.version));
        log.method = clip(&r.method);
        log.path = clip(&r.target);
        log.http_version = r.version;
        log.host = r.host.as_deref().map(clip);
        log.user_agent = r.user_agent.as_deref().map(clip);
    }

    /// The rule that matched (`None`: the listener's default action).
    pub fn set_rule(&mut self, rule: Option<usize>) {
        self.log.rule = rule;
    }

    pub fn set_target_group(&mut self, route: &Route) {
        self.metrics_slot = RequestMetrics::route_slot(route.index);
        if self.logging {
            self.log.target_group = Some(route.group.name().to_string());
        }
    }

    pub fn set_target(&mut self, url: &str) {
        if self.logging {
            self.log.target = Some(url.to_string());
        }
    }

    /// The request is on its way to a target now.
    pub fn sent(&mut self, at: Instant) {
        self.log.request_processing_time = secs(at - self.received);
    }

    /// The target's response headers arrived.
    pub fn answered(&mut self, sent: Instant, status: u16) {
        self.log.target_processing_time = secs(sent.elapsed());
        self.log.target_status_code = Some(status);
    }

    /// certgate's own answer for a request it did not complete.
    pub fn refuse(&mut self, ctx: &ConnContext, e: &ProxyError) -> Response<Body> {
        // The reason may quote what the client sent (a Host of 16 KiB).
        let reason = clip(&e.to_string());
        tracing::warn!(
            conn_trace_id = %ctx.trace_id,
            listener = %ctx.settings.name,
            status = e.status().as_u16(),
            side = e.side().as_str(),
            "{reason}"
        );
        self.log.error_reason = Some(reason);
        e.response()
    }

    /// Closes the record with the status sent and writes it to the access log.
    pub fn finish(mut self, ctx: &ConnContext, response: Response<Body>) -> Response<Body> {
        let log = &mut self.log;
        log.elb_status_code = response.status().as_u16();
        let elapsed = self.received.elapsed();
        let metrics = &ctx.settings.metrics;
        metrics.record(self.metrics_slot, log.elb_status_code, elapsed);
        let total = secs(elapsed);
        log.response_processing_time = round_micros(
            (total - log.request_processing_time - log.target_processing_time.max(0.0)).max(0.0),
        );
        if let Some(sink) = &ctx.settings.access_log {
            sink.write(match sink.format() {
                LogFormat::Json => log.to_json(),
                LogFormat::Alb => log.to_alb(),
            });
        }
        response
    }
}

fn secs(d: Duration) -> f64 {
    round_micros(d.as_secs_f64())
}

/// Seconds with microsecond precision, so logs show `0.000105`, not float noise.
fn round_micros(s: f64) -> f64 {
    (s * 1_000_000.0).round() / 1_000_000.0
}
