//! Validation of `[listener.response_headers]`, ALB's header modification attributes: each
//! value must be a valid header value and, where ALB fixes the form, of that form
//! (`nosniff`, `DENY`/`SAMEORIGIN`, `true`, a number of seconds).

use http::{HeaderName, HeaderValue};

use super::problems::Problems;
use crate::config::file::ResponseHeadersFile;
use crate::config::model::ResponseHeaders;

/// The headers to set, in ALB's attribute order, or the problems found.
pub(super) fn response_headers(
    key: &str,
    f: Option<&ResponseHeadersFile>,
    p: &mut Problems,
) -> ResponseHeaders {
    let Some(f) = f else {
        return ResponseHeaders::default();
    };
    let key = format!("{key}.response_headers");
    let fields: [(&str, &Option<String>, &'static str); 10] = [
        (
            "strict_transport_security",
            &f.strict_transport_security,
            "strict-transport-security",
        ),
        (
            "content_security_policy",
            &f.content_security_policy,
            "content-security-policy",
        ),
        (
            "x_content_type_options",
            &f.x_content_type_options,
            "x-content-type-options",
        ),
        ("x_frame_options", &f.x_frame_options, "x-frame-options"),
        (
            "access_control_allow_origin",
            &f.access_control_allow_origin,
            "access-control-allow-origin",
        ),
        (
            "access_control_allow_methods",
            &f.access_control_allow_methods,
            "access-control-allow-methods",
        ),
        (
            "access_control_allow_headers",
            &f.access_control_allow_headers,
            "access-control-allow-headers",
        ),
        (
            "access_control_allow_credentials",
            &f.access_control_allow_credentials,
            "access-control-allow-credentials",
        ),
        (
            "access_control_expose_headers",
            &f.access_control_expose_headers,
            "access-control-expose-headers",
        ),
        (
            "access_control_max_age",
            &f.access_control_max_age,
            "access-control-max-age",
        ),
    ];
    let mut set = Vec::new();
    for (attr, value, header) in fields {
        let Some(value) = value else { continue };
        let k = format!("{key}.{attr}");
        if let Err(why) = form(attr, value) {
            p.push(&k, why);
            continue;
        }
        match HeaderValue::from_str(value) {
            Ok(v) if !value.is_empty() => set.push((HeaderName::from_static(header), v)),
            _ => p.push(&k, format!("{value:?} is not a valid header value")),
        }
    }
    ResponseHeaders {
        set,
        remove_server: f.server_enabled == Some(false),
    }
}

/// ALB's constraints on the attributes that have a fixed form.
fn form(attr: &str, value: &str) -> Result<(), String> {
    let ok = match attr {
        "x_content_type_options" => value == "nosniff",
        "x_frame_options" => {
            matches!(value, "DENY" | "SAMEORIGIN") || value.starts_with("ALLOW-FROM ")
        }
        "access_control_allow_credentials" => value == "true",
        "access_control_max_age" => value.parse::<u64>().is_ok(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not allowed here ({})",
            match attr {
                "x_content_type_options" => "\"nosniff\"",
                "x_frame_options" => "\"DENY\", \"SAMEORIGIN\" or \"ALLOW-FROM <uri>\"",
                "access_control_allow_credentials" => "\"true\"",
                _ => "a number of seconds",
            }
        ))
    }
}
