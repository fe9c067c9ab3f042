//! The human-readable summary printed next to (or instead of) the JSON line.

fn ms(v: &serde_json::Value) -> String {
    format!("{:.3} ms", v.as_f64().unwrap_or(0.0) / 1000.0)
}

fn mib(v: &serde_json::Value) -> String {
    format!("{:.1} MiB", v.as_f64().unwrap_or(0.0) / 1024.0)
}

/// The human-readable summary of a report.
pub fn summary(r: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let proto = if r["http"] == 2 { "HTTP/2" } else { "HTTP/1.1" };
    if let Some(t) = r["tls"].as_object() {
        let _ = writeln!(
            s,
            "tls: {} {} {} alpn={} (server certificate {})",
            t["version"].as_str().unwrap_or("?"),
            t["cipher"].as_str().unwrap_or("?"),
            t["kx"].as_str().unwrap_or("?"),
            t["alpn"].as_str().unwrap_or("?"),
            if r["server_verified"] == true {
                "verified"
            } else {
                "NOT verified"
            },
        );
    }
    if r["mode"] == "idle" {
        let sv = &r["server"];
        let _ = writeln!(
            s,
            "idle connections ({proto}): {} of {} opened in {:.2} s, {} still open after {} s",
            r["ok"],
            r["requested"],
            r["open_s"].as_f64().unwrap_or(0.0),
            r["still_open"],
            r["hold_s"]
        );
        let _ = writeln!(
            s,
            "server RSS: {} -> {}: {} KiB per connection",
            mib(&sv["rss_kib_before"]),
            mib(&sv["rss_kib_after"]),
            sv["rss_kib_per_conn"]
        );
    } else {
        let _ = writeln!(
            s,
            "{} {proto}, concurrency {} over {} connection(s), {:.1} s measured after {:.1} s warm-up",
            r["mode"].as_str().unwrap_or(""),
            r["concurrency"],
            if r["mode"] == "handshake" { r["concurrency"].clone() } else { r["connections"].clone() },
            r["duration_s"].as_f64().unwrap_or(0.0),
            r["warmup_s"].as_f64().unwrap_or(0.0),
        );
        let _ = writeln!(
            s,
            "completed: {} ({:.1}/s); handshakes {}; reconnects {}",
            r["ok"],
            r["rate"].as_f64().unwrap_or(0.0),
            r["handshakes"],
            r["reconnects"]
        );
        let l = &r["latency_us"];
        let _ = writeln!(
            s,
            "latency: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}",
            ms(&l["p50"]),
            ms(&l["p90"]),
            ms(&l["p99"]),
            ms(&l["p999"]),
            ms(&l["max"]),
            ms(&l["mean"])
        );
        if let Some(sv) = r["server"].as_object() {
            let _ = writeln!(
                s,
                "server: CPU {:.0} % of a core, {:.1} µs CPU per request; RSS {} -> {}, max {}, peak since start {} ({} process(es))",
                sv["cpu_util"].as_f64().unwrap_or(0.0) * 100.0,
                sv["cpu_us_per_op"].as_f64().unwrap_or(0.0),
                mib(&sv["rss_kib_start"]),
                mib(&sv["rss_kib_end"]),
                mib(&sv["rss_kib_max"]),
                mib(&sv["hwm_kib"]),
                sv["processes"]
            );
        }
        let _ = writeln!(
            s,
            "client: CPU {:.0} % of a core",
            r["client_cpu_util"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    if r["error_total"] == 0 {
        let _ = writeln!(s, "errors: none");
    } else {
        let _ = writeln!(s, "ERRORS: {} {}", r["error_total"], r["errors"]);
        if let Some(codes) = r["non_2xx"].as_object().filter(|c| !c.is_empty()) {
            let _ = writeln!(
                s,
                "  non-2xx responses: {}",
                serde_json::Value::from(codes.clone())
            );
        }
    }
    if r["warmup_errors"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(
            s,
            "errors during warm-up (not in the figures above): {}",
            r["warmup_errors"]
        );
    }
    for e in r["error_samples"].as_array().into_iter().flatten() {
        let _ = writeln!(s, "  e.g. {}", e.as_str().unwrap_or(""));
    }
    s
}
