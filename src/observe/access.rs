//! One access-log record per request, as a JSON line or as ALB's access-log line, linked to the
//! connection log by `conn_trace_id`. Field names follow ALB's access log where ALB has one.
//! Values a client chooses are cut to [`MAX_FIELD_BYTES`], saying so.

use std::fmt::Write as _;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct AccessRecord {
    pub timestamp: String,
    pub conn_trace_id: String,
    pub listener: String,
    pub client_ip: String,
    pub client_port: u16,
    pub request: String,
    pub method: String,
    pub path: String,
    pub http_version: &'static str,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    pub elb_status_code: u16,
    /// Index of the `[[listener.rule]]` that matched; null for the default action.
    pub rule: Option<usize>,
    /// The target that served the request (`scheme://host:port`); null when none was tried.
    pub target: Option<String>,
    pub target_group: Option<String>,
    pub target_status_code: Option<u16>,
    /// Seconds from receiving the request headers to sending the request to the target.
    pub request_processing_time: f64,
    /// Seconds from sending the request to the target until its response headers arrive;
    /// -1 when the target gave no response (ALB's convention).
    pub target_processing_time: f64,
    /// Seconds from the target's response headers to sending them to the client.
    pub response_processing_time: f64,
    pub error_reason: Option<String>,
    pub leaf_client_cert_subject: Option<String>,
    /// `sub` and `iss` of the token that a JWT check accepted.
    pub jwt_sub: Option<String>,
    pub jwt_iss: Option<String>,
    /// Who the client is (`[listener.client_identity]`), when known.
    pub client_identity: Option<String>,
    /// Why a listener that takes identities has none for this client's certificate.
    pub client_identity_detail: Option<String>,
    /// For ALB's line only (the JSON record leaves them out): the handshake's protocol and
    /// cipher, and the TLS server name the client asked for.
    #[serde(skip)]
    pub ssl_protocol: Option<&'static str>,
    #[serde(skip)]
    pub ssl_cipher: Option<&'static str>,
    #[serde(skip)]
    pub domain_name: Option<String>,
}

impl AccessRecord {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialise access record: {e}\"}}"))
    }

    /// ALB's access-log line: its 30 fields in its order (type ... conn_trace_id), `-` where
    /// certgate has no value (byte counts, trace id, certificate ARN, classification), so that
    /// ALB's Athena table reads it.
    pub fn to_alb(&self) -> String {
        let mut s = String::with_capacity(512);
        let kind = if self.http_version == "HTTP/2.0" {
            "h2"
        } else {
            "https"
        };
        let target = self
            .target
            .as_deref()
            .map(|t| t.split_once("://").map_or(t, |(_, hp)| hp))
            .map(|hp| hp.trim_end_matches('/'))
            .unwrap_or("-");
        let time = |t: f64| {
            if t < 0.0 {
                "-1".to_string()
            } else {
                format!("{t:.6}")
            }
        };
        let target_status = self.target_status_code.map(|c| c.to_string());
        let _ = write!(
            s,
            "{kind} {ts} {elb} {ip}:{port} {target} {rq} {tg} {rs} {status} {tstatus} - - ",
            ts = self.timestamp,
            elb = field(&self.listener),
            ip = self.client_ip,
            port = self.client_port,
            rq = time(self.request_processing_time),
            tg = time(self.target_processing_time),
            rs = time(self.response_processing_time),
            status = self.elb_status_code,
            tstatus = target_status.as_deref().unwrap_or("-"),
        );
        let url = match &self.host {
            Some(h) => format!("https://{h}{}", self.path),
            None => self.path.clone(),
        };
        let request = format!("{} {url} {}", self.method, self.http_version);
        quoted(&mut s, Some(&request));
        quoted(&mut s, self.user_agent.as_deref());
        let _ = write!(
            s,
            "{} {} {} ",
            self.ssl_cipher.unwrap_or("-"),
            self.ssl_protocol.unwrap_or("-"),
            self.target_group.as_deref().map_or("-".into(), field),
        );
        quoted(&mut s, None); // trace_id
        quoted(&mut s, self.domain_name.as_deref());
        quoted(&mut s, None); // chosen_cert_arn
                              // ALB: 0 for the default action, else the rule's priority (here its position, from 1).
        let _ = write!(s, "{} {} ", self.rule.map_or(0, |r| r + 1), self.timestamp);
        let action = if self.target.is_some() {
            Some("forward")
        } else if self.error_reason.is_none() {
            Some("fixed-response")
        } else {
            None
        };
        quoted(&mut s, action);
        quoted(&mut s, None); // redirect_url
                              // ALB's error_reason is one word (a code): certgate's reason has its spaces encoded.
        quoted(&mut s, self.error_reason.as_deref().map(field).as_deref());
        quoted(&mut s, (target != "-").then_some(target));
        quoted(&mut s, target_status.as_deref());
        quoted(&mut s, None); // classification
        quoted(&mut s, None); // classification_reason
        s.push_str(if self.conn_trace_id.is_empty() {
            "-"
        } else {
            &self.conn_trace_id
        });
        s
    }
}

/// A bare field of ALB's line: no spaces, quotes or control characters (percent-encoded).
fn field(v: &str) -> String {
    escape(v, true)
}

/// `"value" ` with quotes, backslashes and control characters percent-encoded; `"-" ` when
/// absent or empty.
fn quoted(out: &mut String, v: Option<&str>) {
    let v = v.filter(|v| !v.is_empty()).unwrap_or("-");
    out.push('"');
    out.push_str(&escape(v, false));
    out.push_str("\" ");
}

fn escape(v: &str, bare: bool) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if c == '"' || c == '\\' || c.is_control() || (bare && c == ' ') {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Longest value, in bytes, of a field a client chooses (request line, method, path, host,
/// user agent, error reason). A longer value keeps its first `MAX_FIELD_BYTES` (cut at a
/// character boundary) followed by `…[truncated N bytes]`, N being the bytes left out: a 60 KB
/// path costs a log line of a few KB, and the record says that it was cut.
pub const MAX_FIELD_BYTES: usize = 4096;

/// `value`, cut to [`MAX_FIELD_BYTES`] with the truncation marker when longer.
pub fn clip(value: &str) -> String {
    if value.len() <= MAX_FIELD_BYTES {
        return value.to_string();
    }
    let mut end = MAX_FIELD_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated {} bytes]", &value[..end], value.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord {
        AccessRecord {
            timestamp: "2026-11-22T10:00:00.123456Z".into(),
            conn_trace_id: "TID_0123456789abcdef0123456789abcdef".into(),
            listener: "web".into(),
            client_ip: "203.0.113.9".into(),
            client_port: 50123,
            method: "GET".into(),
            path: "/a?b=1".into(),
            http_version: "HTTP/1.1",
            host: Some("api.example.com".into()),
            user_agent: Some("curl/8.5 \"x\"".into()),
            elb_status_code: 200,
            rule: Some(1),
            target: Some("http://10.0.0.5:8080".into()),
            target_group: Some("api".into()),
            target_status_code: Some(200),
            request_processing_time: 0.000105,
            target_processing_time: 0.002,
            response_processing_time: 0.00001,
            ssl_protocol: Some("TLSv1.3"),
            ssl_cipher: Some("TLS_AES_128_GCM_SHA256"),
            domain_name: Some("api.example.com".into()),
            ..AccessRecord::default()
        }
    }

    #[test]
    fn alb_line_has_albs_fields_in_order() {
        assert_eq!(
            record().to_alb(),
            "https 2026-11-22T10:00:00.123456Z web 203.0.113.9:50123 10.0.0.5:8080 0.000105 \
             0.002000 0.000010 200 200 - - \"GET https://api.example.com/a?b=1 HTTP/1.1\" \
             \"curl/8.5 %22x%22\" TLS_AES_128_GCM_SHA256 TLSv1.3 api \"-\" \"api.example.com\" \"-\" \
             2 2026-11-22T10:00:00.123456Z \"forward\" \"-\" \"-\" \"10.0.0.5:8080\" \"200\" \"-\" \"-\" \
             TID_0123456789abcdef0123456789abcdef"
        );
        let mut r = record();
        r.target = None;
        r.target_status_code = None;
        r.target_processing_time = -1.0;
        r.error_reason = Some("no target answered".into());
        let line = r.to_alb();
        assert!(!line.contains(" 10.0.0.5"), "{line}");
        assert!(line.contains(" - 0.000105 -1 0.000010 200 - "), "{line}");
        assert!(
            line.contains("\"-\" \"-\" \"no%20target%20answered\" \"-\" \"-\""),
            "{line}"
        );
    }

    #[test]
    fn short_values_are_kept_whole() {
        let v = "a".repeat(MAX_FIELD_BYTES);
        assert_eq!(clip(&v), v);
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary_and_say_so() {
        let v = format!("{}é{}", "a".repeat(MAX_FIELD_BYTES - 1), "b".repeat(5000));
        let cut = clip(&v);
        let kept = "a".repeat(MAX_FIELD_BYTES - 1);
        assert_eq!(cut, format!("{kept}…[truncated {} bytes]", 2 + 5000));
    }
}
