//! Validation of `[admin]`: its bind address (which no listener may share) and the shutdown
//! delay.

use std::net::SocketAddr;
use std::time::Duration;

use super::problems::Problems;
use crate::config::file::AdminFile;
use crate::config::model::{AdminConfig, ListenerConfig, DEFAULT_SHUTDOWN_DELAY};

/// Longest accepted `shutdown_delay_secs`: a drain that waits longer than this is a mistake.
const MAX_SHUTDOWN_DELAY_SECS: u64 = 600;

pub(super) fn admin(
    f: Option<&AdminFile>,
    listeners: &[ListenerConfig],
    p: &mut Problems,
) -> Option<AdminConfig> {
    let f = f?;
    let delay = match f.shutdown_delay_secs {
        None => DEFAULT_SHUTDOWN_DELAY,
        Some(s) if s <= MAX_SHUTDOWN_DELAY_SECS => Duration::from_secs(s),
        Some(_) => {
            p.push(
                "admin.shutdown_delay_secs",
                format!("must be between 0 and {MAX_SHUTDOWN_DELAY_SECS}"),
            );
            DEFAULT_SHUTDOWN_DELAY
        }
    };
    let b = p.required("admin.bind", f.bind.as_deref())?;
    let Ok(bind) = b.parse::<SocketAddr>() else {
        p.push("admin.bind", format!("{b:?} is not an IP:port address"));
        return None;
    };
    if let Some(l) = listeners.iter().find(|l| overlaps(l.bind, bind)) {
        p.push(
            "admin.bind",
            format!(
                "{bind} conflicts with listener {} (bind {}); the admin endpoint needs a port of its own",
                l.name, l.bind
            ),
        );
    }
    Some(AdminConfig {
        bind,
        shutdown_delay: delay,
    })
}

/// Two binds that cannot both succeed: the same port on the same address, or on any address
/// when either is the unspecified one. Port 0 (the system picks) never conflicts.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn problems(toml: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), "x").unwrap();
        match crate::config::from_str(toml, Path::new("t.toml"), dir.path()) {
            Ok(_) => Vec::new(),
            Err(crate::config::ConfigError::Invalid { problems, .. }) => problems,
            Err(e) => vec![e.to_string()],
        }
    }

    const LISTENER: &str = "[[listener]]\nname = \"web\"\nbind = \"0.0.0.0:8443\"\ncertificate_chain = \"c.pem\"\nprivate_key = \"c.pem\"\nbackend = \"http://127.0.0.1:1\"\n";

    #[test]
    fn admin_bind_conflicting_with_a_listener_is_refused() {
        let p = problems(&format!("{LISTENER}[admin]\nbind = \"127.0.0.1:8443\"\n"));
        assert!(
            p.iter()
                .any(|s| s.starts_with("admin.bind: 127.0.0.1:8443 conflicts with listener web")),
            "{p:?}"
        );
    }

    #[test]
    fn admin_keys_are_checked() {
        let p = problems(&format!(
            "{LISTENER}[admin]\nbind = \"localhost\"\nshutdown_delay_secs = 9999\n"
        ));
        assert!(
            p.iter()
                .any(|s| s.contains("admin.bind: \"localhost\" is not an IP:port")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|s| s.contains("admin.shutdown_delay_secs: must be between 0 and 600")),
            "{p:?}"
        );
        let p = problems(&format!("{LISTENER}[admin]\nshutdown_delay_secs = 1\n"));
        assert!(p.iter().any(|s| s == "admin.bind: is required"), "{p:?}");
        assert!(problems(&format!("{LISTENER}[admin]\nbind = \"127.0.0.1:9901\"\n")).is_empty());
    }
}
