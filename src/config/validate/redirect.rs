//! Validation of a redirect action (SPEC §14, ALB's `redirect-config`): each URL part a template
//! of ALB's placeholders, defaults that keep the request's own part, and the redirects ALB
//! refuses (HTTPS to HTTP, to the very same URL).

use super::problems::Problems;
use crate::config::file::RedirectFile;
use crate::config::model::Redirect;

/// The placeholders a redirect template may use.
const PLACEHOLDERS: [&str; 5] = ["#{protocol}", "#{host}", "#{port}", "#{path}", "#{query}"];
/// Longest template ALB accepts for one part.
const MAX_PART: usize = 128;

/// The redirect; `None` when a part is wrong (reported). On an HTTPS listener it may not go to
/// HTTP.
pub(super) fn redirect(
    key: &str,
    r: &RedirectFile,
    https_listener: bool,
    p: &mut Problems,
) -> Option<Redirect> {
    let part = |attr: &str, given: &Option<String>, default: &str, p: &mut Problems| {
        let value = given.clone().unwrap_or_else(|| default.to_string());
        template(&format!("{key}.{attr}"), &value, p).then_some(value)
    };
    let protocol = protocol(key, r.protocol.as_deref(), https_listener, p);
    let host = part("host", &r.host, "#{host}", p).filter(|v| host_ok(key, v, p));
    let port = part("port", &r.port, "#{port}", p).filter(|v| port_ok(key, v, p));
    let path = part("path", &r.path, "/#{path}", p).filter(|v| {
        let ok = v.starts_with('/');
        if !ok {
            p.push(&format!("{key}.path"), format!("{v:?} must start with /"));
        }
        ok
    });
    let query = part("query", &r.query, "#{query}", p).filter(|v| {
        let ok = !v.starts_with('?');
        if !ok {
            p.push(&format!("{key}.query"), "is given without its leading ?");
        }
        ok
    });
    let status_code = status(key, r.status_code.as_deref(), p);
    let redirect = Redirect {
        protocol: protocol?,
        host: host?,
        port: port?,
        path: path?,
        query: query?,
        status_code: status_code?,
    };
    if is_identity(&redirect) {
        p.push(
            key,
            "would send the client to the URL it asked for (a redirect loop): change at least one of protocol, host, port, path and query",
        );
        return None;
    }
    Some(redirect)
}

/// `HTTP`, `HTTPS` or `#{protocol}` (the default); never HTTP from an HTTPS listener.
fn protocol(
    key: &str,
    given: Option<&str>,
    https_listener: bool,
    p: &mut Problems,
) -> Option<String> {
    let key = format!("{key}.protocol");
    let value = given.unwrap_or("#{protocol}");
    let upper = value.to_ascii_uppercase();
    match upper.as_str() {
        "HTTPS" => Some(upper),
        "HTTP" if https_listener => {
            p.push(
                &key,
                "an HTTPS listener cannot redirect to HTTP (as on ALB)",
            );
            None
        }
        "HTTP" => Some(upper),
        _ if value == "#{protocol}" => Some(value.to_string()),
        _ => {
            p.push(
                &key,
                format!("{value:?} is not HTTP, HTTPS or #{{protocol}}"),
            );
            None
        }
    }
}

/// A host template: letters, digits, `.`, `-` and placeholders, so that the URL it gives stays
/// absolute with this host (no `/`, `?`, `#`, `@` or `:` smuggling in a path or a user).
fn host_ok(key: &str, v: &str, p: &mut Problems) -> bool {
    let bare = PLACEHOLDERS
        .iter()
        .fold(v.to_string(), |t, ph| t.replace(ph, ""));
    if bare
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return true;
    }
    p.push(
        &format!("{key}.host"),
        format!("{v:?} is not a host name (letters, digits, '.', '-' and placeholders only)"),
    );
    false
}

fn port_ok(key: &str, v: &str, p: &mut Problems) -> bool {
    if v == "#{port}" || v.parse::<u16>().is_ok_and(|n| n > 0) {
        return true;
    }
    p.push(
        &format!("{key}.port"),
        format!("{v:?} is not a port from 1 to 65535 or #{{port}}"),
    );
    false
}

fn status(key: &str, given: Option<&str>, p: &mut Problems) -> Option<u16> {
    let key = format!("{key}.status_code");
    match p.required(&key, given)? {
        "HTTP_301" => Some(301),
        "HTTP_302" => Some(302),
        other => {
            p.push(&key, format!("{other:?} is not HTTP_301 or HTTP_302"));
            None
        }
    }
}

/// A part's template: printable ASCII without spaces, at most 128 characters, placeholders only
/// of ALB's five.
fn template(key: &str, value: &str, p: &mut Problems) -> bool {
    if value.is_empty() || value.len() > MAX_PART {
        p.push(key, format!("must be 1 to {MAX_PART} characters"));
        return false;
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        p.push(
            key,
            format!("{value:?} has a space or a character that is not printable ASCII"),
        );
        return false;
    }
    let mut rest = value;
    while let Some(at) = rest.find("#{") {
        let tail = &rest[at..];
        match PLACEHOLDERS.iter().find(|ph| tail.starts_with(**ph)) {
            Some(ph) => rest = &tail[ph.len()..],
            None => {
                p.push(
                    key,
                    format!(
                        "{value:?}: unknown placeholder (known: {})",
                        PLACEHOLDERS.join(", ")
                    ),
                );
                return false;
            }
        }
    }
    true
}

/// Whether every part keeps the request's own value.
fn is_identity(r: &Redirect) -> bool {
    r.protocol == "#{protocol}"
        && r.host == "#{host}"
        && r.port == "#{port}"
        && r.path == "/#{path}"
        && r.query == "#{query}"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(f: impl FnOnce(&mut RedirectFile)) -> RedirectFile {
        let mut r = RedirectFile {
            protocol: None,
            host: None,
            port: None,
            path: None,
            query: None,
            status_code: Some("HTTP_301".into()),
        };
        f(&mut r);
        r
    }

    fn problems(r: &RedirectFile, https: bool) -> Vec<String> {
        let mut p = Problems::default();
        let _ = redirect("r", r, https, &mut p);
        p.finish(()).err().unwrap_or_default()
    }

    #[test]
    fn http_to_https_with_the_defaults() {
        let r = file(|r| {
            r.protocol = Some("HTTPS".into());
            r.port = Some("443".into());
        });
        let mut p = Problems::default();
        let got = redirect("r", &r, false, &mut p).unwrap();
        assert!(p.finish(()).is_ok());
        assert_eq!(got.template(), "https://#{host}:443/#{path}?#{query}");
        assert_eq!(got.status_code, 301);
    }

    #[test]
    fn refused_forms_name_the_part() {
        let cases: Vec<(RedirectFile, bool, &str)> = vec![
            (file(|_| {}), false, "redirect loop"),
            (
                file(|r| r.protocol = Some("HTTP".into())),
                true,
                "cannot redirect to HTTP",
            ),
            (
                file(|r| r.protocol = Some("FTP".into())),
                false,
                "r.protocol",
            ),
            (file(|r| r.port = Some("0".into())), false, "r.port"),
            (
                file(|r| r.path = Some("x".into())),
                false,
                "must start with /",
            ),
            (file(|r| r.query = Some("?a=1".into())), false, "r.query"),
            (
                file(|r| r.host = Some("#{hots}".into())),
                false,
                "unknown placeholder",
            ),
            (file(|r| r.host = Some("a b".into())), false, "space"),
            (
                file(|r| r.host = Some("evil.example/x".into())),
                false,
                "is not a host name",
            ),
            (
                file(|r| r.host = Some("user@#{host}".into())),
                false,
                "is not a host name",
            ),
            (
                file(|r| r.status_code = Some("HTTP_307".into())),
                false,
                "HTTP_301 or HTTP_302",
            ),
            (
                file(|r| r.status_code = None),
                false,
                "r.status_code: is required",
            ),
        ];
        for (r, https, want) in cases {
            let got = problems(&r, https).join("\n");
            assert!(got.contains(want), "{r:?}: {got}");
        }
    }
}
