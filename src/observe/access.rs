//! One access-log record per request, as a JSON line, linked to the connection log by
//! `conn_trace_id`. Field names follow ALB's access log where ALB has one. Values a client
//! chooses are cut to [`MAX_FIELD_BYTES`], saying so.

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
}

impl AccessRecord {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialise access record: {e}\"}}"))
    }
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
