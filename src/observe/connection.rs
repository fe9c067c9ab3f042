//! One connection-log record per TLS connection, as a JSON line with ALB's field names or as
//! ALB's own space-separated line.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Serialize;

use crate::x509::LeafFacts;

/// What is known about a connection when its handshake ends.
#[derive(Debug, Clone)]
pub struct ConnectionRecord {
    pub timestamp: time::OffsetDateTime,
    pub client: SocketAddr,
    pub local: SocketAddr,
    pub tls_protocol: Option<&'static str>,
    pub tls_cipher: Option<&'static str>,
    /// Only for completed handshakes, as ALB does.
    pub tls_handshake_latency_ms: Option<u64>,
    pub leaf: Option<LeafFacts>,
    pub tls_verify_status: String,
    pub conn_trace_id: String,
    pub tls_keyexchange: Option<String>,
    pub listener: String,
    pub mode: &'static str,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub trust_store_version: Option<String>,
    pub tls_verify_detail: Option<String>,
    /// Who the client is (`[listener.client_identity]`), when known.
    pub client_identity: Option<String>,
}

#[derive(Serialize)]
struct Json<'a> {
    timestamp: String,
    client_ip: String,
    client_port: u16,
    listener_port: u16,
    tls_protocol: Option<&'a str>,
    tls_cipher: Option<&'a str>,
    tls_handshake_latency: Option<f64>,
    leaf_client_cert_subject: Option<&'a str>,
    leaf_client_cert_validity: Option<&'a str>,
    leaf_client_cert_serial_number: Option<&'a str>,
    tls_verify_status: &'a str,
    conn_trace_id: &'a str,
    tls_keyexchange: Option<&'a str>,
    listener: &'a str,
    mode: &'a str,
    sni: Option<&'a str>,
    alpn: Option<&'a str>,
    trust_store_version: Option<&'a str>,
    tls_verify_detail: Option<&'a str>,
    client_identity: Option<&'a str>,
}

impl ConnectionRecord {
    /// A record for a connection just accepted: nothing known about TLS yet.
    pub fn accepted(
        client: SocketAddr,
        local: SocketAddr,
        listener: &str,
        mode: &'static str,
        trust_store_version: Option<String>,
    ) -> ConnectionRecord {
        ConnectionRecord {
            timestamp: time::OffsetDateTime::now_utc(),
            client,
            local,
            tls_protocol: None,
            tls_cipher: None,
            tls_handshake_latency_ms: None,
            leaf: None,
            tls_verify_status: String::new(),
            conn_trace_id: super::new_trace_id(),
            tls_keyexchange: None,
            listener: listener.to_string(),
            mode,
            sni: None,
            alpn: None,
            trust_store_version,
            tls_verify_detail: None,
            client_identity: None,
        }
    }

    /// The JSON line (no newline).
    pub fn to_json(&self) -> String {
        let j = Json {
            timestamp: super::timestamp(self.timestamp),
            client_ip: self.client.ip().to_string(),
            client_port: self.client.port(),
            listener_port: self.local.port(),
            tls_protocol: self.tls_protocol,
            tls_cipher: self.tls_cipher,
            tls_handshake_latency: self.tls_handshake_latency_ms.map(|ms| ms as f64 / 1000.0),
            leaf_client_cert_subject: self.leaf.as_ref().map(|l| l.subject.as_str()),
            leaf_client_cert_validity: self.leaf.as_ref().map(|l| l.validity.as_str()),
            leaf_client_cert_serial_number: self.leaf.as_ref().map(|l| l.serial_hex.as_str()),
            tls_verify_status: &self.tls_verify_status,
            conn_trace_id: &self.conn_trace_id,
            tls_keyexchange: self.tls_keyexchange.as_deref(),
            listener: &self.listener,
            mode: self.mode,
            sni: self.sni.as_deref(),
            alpn: self.alpn.as_deref(),
            trust_store_version: self.trust_store_version.as_deref(),
            tls_verify_detail: self.tls_verify_detail.as_deref(),
            client_identity: self.client_identity.as_deref(),
        };
        serde_json::to_string(&j).unwrap_or_else(|e| {
            format!("{{\"error\":\"cannot serialise connection record: {e}\"}}")
        })
    }

    /// ALB's connection-log line: its fields in its order, `-` for a missing value, the subject
    /// in double quotes; then `elb` (the listener name) and `ip_address` (the local address).
    pub fn to_alb(&self) -> String {
        fn field(out: &mut String, v: Option<&str>) {
            out.push(' ');
            out.push_str(v.filter(|s| !s.is_empty()).unwrap_or("-"));
        }
        let mut s = String::with_capacity(256);
        s.push_str(&super::timestamp(self.timestamp));
        let _ = write!(
            s,
            " {} {} {}",
            self.client.ip(),
            self.client.port(),
            self.local.port()
        );
        field(&mut s, self.tls_protocol);
        field(&mut s, self.tls_cipher);
        let latency = self
            .tls_handshake_latency_ms
            .map(|ms| format!("{:.3}", ms as f64 / 1000.0));
        field(&mut s, latency.as_deref());
        // A quote inside the subject is already backslash-escaped by RFC 2253 formatting.
        let _ = write!(
            s,
            " \"{}\"",
            self.leaf
                .as_ref()
                .map(|l| l.subject.as_str())
                .unwrap_or("-")
        );
        field(&mut s, self.leaf.as_ref().map(|l| l.validity.as_str()));
        field(&mut s, self.leaf.as_ref().map(|l| l.serial_hex.as_str()));
        field(&mut s, Some(&self.tls_verify_status));
        field(&mut s, Some(&self.conn_trace_id));
        field(&mut s, self.tls_keyexchange.as_deref());
        field(&mut s, Some(&self.listener));
        field(&mut s, Some(&self.local.ip().to_string()));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ConnectionRecord {
        ConnectionRecord {
            timestamp: time::macros::datetime!(2023-10-04 17:05:15.514108 UTC),
            client: "203.0.113.1:36280".parse().unwrap(),
            local: "10.0.0.1:443".parse().unwrap(),
            tls_protocol: Some("TLSv1.2"),
            tls_cipher: Some("ECDHE-RSA-AES128-GCM-SHA256"),
            tls_handshake_latency_ms: None,
            leaf: Some(LeafFacts {
                subject: "CN=amazondomains.com,O=endEntity,L=Seattle,ST=Washington,C=US".into(),
                issuer: "CN=x".into(),
                serial_hex: "FEF257372D5C14D4".into(),
                validity: "NotBefore=2023-09-21T22:43:21Z;NotAfter=2026-06-17T22:43:21Z".into(),
                not_before_unix: 0,
                not_after_unix: 0,
                version: 3,
            }),
            tls_verify_status: "Failed:ClientCertUntrusted".into(),
            conn_trace_id: "TID_1c71a68d70587445ad5127ff8b2687d7".into(),
            tls_keyexchange: None,
            listener: "web".into(),
            mode: "verify",
            sni: None,
            alpn: None,
            trust_store_version: None,
            tls_verify_detail: Some("client chain does not lead to a CA of the trust store".into()),
            client_identity: None,
        }
    }

    #[test]
    fn alb_line_matches_albs_layout() {
        assert_eq!(
            record().to_alb(),
            "2023-10-04T17:05:15.514108Z 203.0.113.1 36280 443 TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 - \
             \"CN=amazondomains.com,O=endEntity,L=Seattle,ST=Washington,C=US\" \
             NotBefore=2023-09-21T22:43:21Z;NotAfter=2026-06-17T22:43:21Z FEF257372D5C14D4 \
             Failed:ClientCertUntrusted TID_1c71a68d70587445ad5127ff8b2687d7 - web 10.0.0.1"
        );
    }

    #[test]
    fn json_uses_null_for_absent_values() {
        let mut r = record();
        r.tls_handshake_latency_ms = Some(2);
        r.leaf = None;
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["tls_handshake_latency"], serde_json::json!(0.002));
        assert!(v["leaf_client_cert_subject"].is_null());
        assert!(v["tls_keyexchange"].is_null());
        assert_eq!(v["client_port"], 36280);
        assert_eq!(v["listener_port"], 443);
        assert_eq!(v["timestamp"], "2023-10-04T17:05:15.514108Z");
    }
}
