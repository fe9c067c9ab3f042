//! The helpers every section's validation shares: the problem list (each problem with its key
//! path) and the checks that report into it: ranges, seconds, files, trust-store sources.
//! Nothing here knows a section; the sections build on it.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::model::Source;

/// Collects problems with their key paths so that one run of `check` lists all of them.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<String>);

impl Problems {
    pub(super) fn push(&mut self, key: &str, msg: impl Display) {
        self.0.push(format!("{key}: {msg}"));
    }

    /// `value`; when it is absent, a problem saying `key` is required.
    pub(super) fn required<'a, T: ?Sized>(
        &mut self,
        key: &str,
        value: Option<&'a T>,
    ) -> Option<&'a T> {
        if value.is_none() {
            self.push(key, "is required");
        }
        value
    }

    /// `value` when nothing was found wrong, else every problem in the order found.
    pub(super) fn finish<T>(self, value: T) -> Result<T, Vec<String>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

/// A path from the config file, relative ones taken from the file's directory.
pub(super) fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// The resolved path, and a problem unless it names a regular file that can be looked at.
pub(super) fn existing_file(
    base: &Path,
    key: &str,
    value: &str,
    problems: &mut Problems,
) -> PathBuf {
    let path = resolve(base, value);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => problems.push(key, format!("{} is not a regular file", path.display())),
        Err(e) => problems.push(key, format!("{}: {e}", path.display())),
    }
    path
}

/// A trust-store source: `s3://bucket/key[?versionId=V]`, else an existing file.
pub(super) fn source(base: &Path, key: &str, value: &str, problems: &mut Problems) -> Source {
    match value.strip_prefix("s3://") {
        Some(rest) => match parse_s3(rest) {
            Ok(src) => src,
            Err(why) => {
                problems.push(key, format!("{value:?}: {why}"));
                Source::File(PathBuf::from(value))
            }
        },
        None => Source::File(existing_file(base, key, value, problems)),
    }
}

/// `bucket/key[?versionId=V]` (after `s3://`).
fn parse_s3(rest: &str) -> Result<Source, &'static str> {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let (bucket, key) = path
        .split_once('/')
        .ok_or("an S3 source is s3://bucket/key")?;
    if bucket.is_empty() || key.is_empty() {
        return Err("an S3 source is s3://bucket/key (bucket and key must not be empty)");
    }
    let version_id = match query {
        None => None,
        Some(q) => match q.strip_prefix("versionId=") {
            Some(v) if !v.is_empty() && !v.contains('&') => Some(v.to_string()),
            _ => return Err("the only query an S3 source takes is ?versionId=V"),
        },
    };
    Ok(Source::S3 {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id,
    })
}

/// `v` if it lies in `range`, else the default and a problem saying the range.
pub(super) fn bounded<T: PartialOrd + Copy + Display>(
    key: &str,
    v: Option<T>,
    default: T,
    range: RangeInclusive<T>,
    p: &mut Problems,
) -> T {
    match v {
        None => default,
        Some(v) if range.contains(&v) => v,
        Some(_) => {
            p.push(
                key,
                format!("must be between {} and {}", range.start(), range.end()),
            );
            default
        }
    }
}

/// A duration in whole seconds, at least one; the default when absent or zero.
pub(super) fn secs(
    key: &str,
    v: Option<u64>,
    default: Duration,
    problems: &mut Problems,
) -> Duration {
    match v {
        None => default,
        Some(0) => {
            problems.push(key, "must be at least 1 second");
            default
        }
        Some(s) => Duration::from_secs(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_sources_parse_with_and_without_version() {
        assert_eq!(
            parse_s3("b/k/x.pem?versionId=V1"),
            Ok(Source::S3 {
                bucket: "b".into(),
                key: "k/x.pem".into(),
                version_id: Some("V1".into())
            })
        );
        assert_eq!(
            parse_s3("b/k").map(|s| s.to_string()),
            Ok("s3://b/k".to_string())
        );
        for bad in [
            "b",
            "/k",
            "b/",
            "b/k?version=1",
            "b/k?versionId=",
            "b/k?versionId=1&x=2",
        ] {
            assert!(parse_s3(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn problems_keep_their_order_and_key() {
        let mut p = Problems::default();
        assert_eq!(p.required::<str>("a.b", None), None);
        assert_eq!(bounded("a.c", Some(9), 1, 1..=5, &mut p), 1);
        assert_eq!(
            secs("a.d", Some(0), Duration::from_secs(3), &mut p),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.finish(()),
            Err(vec![
                "a.b: is required".to_string(),
                "a.c: must be between 1 and 5".to_string(),
                "a.d: must be at least 1 second".to_string(),
            ])
        );
        assert_eq!(Problems::default().finish(7), Ok(7));
    }
}
