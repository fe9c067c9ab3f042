//! The files in `deploy/`: the Prometheus alert rules parse (with promtool when installed) and
//! name only metrics certgate exports.

use std::path::Path;
use std::process::Command;

const RULES: &str = "deploy/prometheus/certgate-alerts.yaml";

/// Metric names in certgate's exposition (SPEC §11), as the rules may use them.
const METRICS: &[&str] = &[
    "certgate_truststore_crl_next_update_timestamp_seconds",
    "certgate_server_certificate_not_after_timestamp_seconds",
];

#[test]
fn alert_rules_parse_and_use_exported_metrics() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(RULES);
    let text = std::fs::read_to_string(&path).unwrap();
    let exprs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .collect();
    assert_eq!(exprs.len(), 2, "{text}");
    for expr in &exprs {
        let names: Vec<&str> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("certgate_"))
            .collect();
        assert!(!names.is_empty(), "{expr}");
        for n in names {
            assert!(METRICS.contains(&n), "{n} is not a certgate metric");
        }
    }
    assert!(exprs[0].ends_with("< 24 * 3600"), "{}", exprs[0]);
    assert!(exprs[1].ends_with("< 14 * 86400"), "{}", exprs[1]);
    match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("promtool not installed; rules checked by name only"),
    }
}
