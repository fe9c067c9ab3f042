//! `[connection_log]` and `[access_log]`: the local destination, the line format, and the
//! optional delivery to S3 in ALB's layout (which needs ALB's lines and `[s3] region`).

use std::path::Path;

use super::problems::{bounded, resolve, secs, Problems};
use crate::config::file::{LogFile, LogFormatFile};
use crate::config::model::{
    LogConfig, LogDelivery, LogDestination, LogFormat, S3Settings, DEFAULT_LOG_INTERVAL,
    DEFAULT_SPOOL_MAX_BYTES,
};

/// Smallest spool cap: room for a few compressed files.
const MIN_SPOOL_BYTES: u64 = 64 * 1024;

/// `[connection_log]`: stdout in JSON when absent.
pub(super) fn connection_log(
    c: Option<&LogFile>,
    s3: &S3Settings,
    base: &Path,
    p: &mut Problems,
) -> LogConfig {
    let default = LogFile::default();
    let c = c.unwrap_or(&default);
    log(c, "connection_log", "connection", Some("-"), s3, base, p).unwrap_or(LogConfig {
        destination: Some(LogDestination::Stdout),
        format: LogFormat::Json,
        s3: None,
    })
}

/// `[access_log]`: none unless it has a `path` or an `s3`.
pub(super) fn access_log(
    a: Option<&LogFile>,
    s3: &S3Settings,
    base: &Path,
    p: &mut Problems,
) -> Option<LogConfig> {
    log(a?, "access_log", "access", None, s3, base, p)
}

fn log(
    f: &LogFile,
    key: &str,
    spool_sub: &str,
    default_path: Option<&str>,
    s3: &S3Settings,
    base: &Path,
    p: &mut Problems,
) -> Option<LogConfig> {
    let delivery =
        f.s3.as_deref()
            .and_then(|url| delivery(f, url, key, spool_sub, s3, base, p));
    // With S3 delivery the local copy is optional; without it, the log needs a path.
    let path = match (&f.path, &f.s3) {
        (Some(path), _) => Some(path.as_str()),
        (None, Some(_)) => None,
        (None, None) => Some(default_path?),
    };
    let format = match (f.format, &f.s3) {
        (Some(LogFormatFile::Json), Some(_)) => {
            p.push(
                &format!("{key}.format"),
                "S3 delivery writes ALB's lines (for ALB's Athena tables): use format = \"alb\"",
            );
            LogFormat::Alb
        }
        (Some(LogFormatFile::Json), None) | (None, None) => LogFormat::Json,
        (Some(LogFormatFile::Alb), _) | (None, Some(_)) => LogFormat::Alb,
    };
    Some(LogConfig {
        destination: path.map(|path| destination(base, path)),
        format,
        s3: delivery,
    })
}

fn delivery(
    f: &LogFile,
    url: &str,
    key: &str,
    spool_sub: &str,
    s3: &S3Settings,
    base: &Path,
    p: &mut Problems,
) -> Option<LogDelivery> {
    let k = |name: &str| format!("{key}.{name}");
    let interval = secs(
        &k("s3_interval_secs"),
        f.s3_interval_secs,
        DEFAULT_LOG_INTERVAL,
        p,
    );
    let spool_max_bytes = bounded(
        &k("s3_spool_max_bytes"),
        f.s3_spool_max_bytes,
        DEFAULT_SPOOL_MAX_BYTES,
        MIN_SPOOL_BYTES..=u64::MAX,
        p,
    );
    let Some(rest) = url.strip_prefix("s3://") else {
        p.push(&k("s3"), format!("{url:?} is not s3://bucket[/prefix]"));
        return None;
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || bucket.contains('?') || prefix.contains('?') {
        p.push(&k("s3"), format!("{url:?} is not s3://bucket[/prefix]"));
        return None;
    }
    let account_id = match f.account_id.as_deref() {
        Some(a) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => a.to_string(),
        Some(a) => {
            p.push(
                &k("account_id"),
                format!("{a:?} is not a 12-digit AWS account id"),
            );
            return None;
        }
        None => {
            p.push(
                &k("account_id"),
                "is required with s3 (ALB's keys name the account)",
            );
            return None;
        }
    };
    let load_balancer_name = f.load_balancer_name.as_deref().unwrap_or("certgate");
    if load_balancer_name.is_empty()
        || !load_balancer_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        p.push(
            &k("load_balancer_name"),
            format!("{load_balancer_name:?}: letters, digits and '-' only, as ALB's names"),
        );
        return None;
    }
    let Some(region) = s3.region.clone() else {
        p.push(&k("s3"), "needs [s3] region (ALB's keys name the region)");
        return None;
    };
    let spool = f.s3_spool_dir.as_deref().unwrap_or("certgate-spool");
    Some(LogDelivery {
        bucket: bucket.to_string(),
        prefix: prefix.trim_matches('/').to_string(),
        interval,
        account_id,
        load_balancer_name: load_balancer_name.to_string(),
        region,
        spool_dir: resolve(base, spool).join(spool_sub),
        spool_max_bytes,
    })
}

/// `-` is stdout; anything else a file, relative to the config file's directory.
fn destination(base: &Path, path: &str) -> LogDestination {
    if path == "-" {
        LogDestination::Stdout
    } else {
        LogDestination::File(resolve(base, path))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{LogDestination, LogFormat};

    const S3: &str = "[s3]\nregion = \"eu-west-1\"\n";
    const LISTENER: &str = "[[listener]]\nname = \"web\"\nbind = \"0.0.0.0:8443\"\n\
        certificate_chain = \"c.pem\"\nprivate_key = \"c.pem\"\nbackend = \"http://127.0.0.1:1\"\n";

    /// Loads `toml` (after one listener) from a directory standing for /etc/certgate.
    fn load(toml: &str) -> Result<(crate::config::Config, tempfile::TempDir), String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), "").unwrap();
        crate::config::from_str(
            &format!("{LISTENER}{toml}"),
            Path::new("t.toml"),
            dir.path(),
        )
        .map(|c| (c, dir))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn s3_delivery_takes_albs_key_parts_and_defaults() {
        let (cfg, dir) = load(&format!(
            "{S3}[connection_log]\ns3 = \"s3://logs/lb/\"\naccount_id = \"123456789012\"\n\
             [access_log]\npath = \"a.log\"\nformat = \"alb\"\ns3 = \"s3://logs\"\n\
             account_id = \"123456789012\"\nload_balancer_name = \"edge-1\"\n"
        ))
        .unwrap();
        let c = &cfg.connection_log;
        assert_eq!(c.destination, None);
        assert_eq!(c.format, LogFormat::Alb);
        let d = c.s3.as_ref().unwrap();
        assert_eq!((d.bucket.as_str(), d.prefix.as_str()), ("logs", "lb"));
        assert_eq!(d.interval.as_secs(), 300);
        assert_eq!(d.region, "eu-west-1");
        assert_eq!(d.load_balancer_name, "certgate");
        assert_eq!(d.spool_dir, dir.path().join("certgate-spool/connection"));
        let a = cfg.access_log.unwrap();
        assert_eq!(
            a.destination,
            Some(LogDestination::File(dir.path().join("a.log")))
        );
        let d = a.s3.unwrap();
        assert_eq!(
            (d.prefix.as_str(), d.load_balancer_name.as_str()),
            ("", "edge-1")
        );
        assert_eq!(d.spool_dir, dir.path().join("certgate-spool/access"));
    }

    #[test]
    fn bad_delivery_settings_are_named() {
        let err = load(
            "[connection_log]\ns3 = \"s3://logs\"\nformat = \"json\"\naccount_id = \"12\"\n\
             s3_interval_secs = 0\n[access_log]\ns3 = \"http://x\"\n",
        )
        .unwrap_err();
        for want in [
            "connection_log.format",
            "connection_log.account_id: \"12\" is not a 12-digit",
            "connection_log.s3_interval_secs",
            "access_log.s3: \"http://x\" is not s3://bucket[/prefix]",
        ] {
            assert!(err.contains(want), "{want} missing in {err}");
        }
        let err = load("[connection_log]\ns3 = \"s3://logs\"\naccount_id = \"123456789012\"\n")
            .unwrap_err();
        assert!(err.contains("needs [s3] region"), "{err}");
    }
}
