//! One access-log record per request, as a JSON line, linked to the connection log by
//! `conn_trace_id`. Field names follow ALB's access log where ALB has one.

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
}

impl AccessRecord {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialise access record: {e}\"}}"))
    }
}
