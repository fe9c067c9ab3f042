//! Where trust-store bytes come from: local files and S3 objects (aws-sdk-s3 on the standard
//! AWS credential chain). Each source can be probed cheaply for a change (file size and mtime;
//! S3 HEAD: version id and ETag) and fetched with a tag that names the exact content.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use tokio::sync::OnceCell;

use crate::config::{S3Settings, Source};

/// Bytes of one source and the tag that identifies them (the same bytes give the same tag on
/// every host: a content digest for files, version id and ETag for S3 objects).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Arc<Vec<u8>>,
    pub tag: String,
}

/// Reads sources; one S3 client, made on first use, serves every S3 source.
pub struct Sources {
    settings: S3Settings,
    s3: OnceCell<aws_sdk_s3::Client>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("settings", &self.settings)
            .finish()
    }
}

fn digest_tag(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut s = String::with_capacity(23);
    s.push_str("sha256:");
    for b in &d.as_ref()[..8] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn s3_tag(version_id: Option<&str>, etag: Option<&str>) -> String {
    let etag = etag.unwrap_or("-").trim_matches('"');
    match version_id.filter(|v| *v != "null") {
        Some(v) => format!("version:{v},etag:{etag}"),
        None => format!("etag:{etag}"),
    }
}

impl Sources {
    pub fn new(settings: S3Settings) -> Sources {
        Sources {
            settings,
            s3: OnceCell::new(),
        }
    }

    async fn s3(&self) -> &aws_sdk_s3::Client {
        self.s3.get_or_init(|| client(&self.settings)).await
    }

    fn endpoint(&self) -> String {
        self.settings
            .endpoint_url
            .clone()
            .unwrap_or_else(|| "AWS".to_string())
    }

    /// A cheap value that changes when the source changes.
    pub async fn probe(&self, src: &Source) -> Result<String, String> {
        match src {
            Source::File(path) => {
                let m = tokio::fs::metadata(path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                Ok(format!("len:{},mtime:{mtime}", m.len()))
            }
            Source::S3 {
                bucket,
                key,
                version_id,
            } => {
                let out = self
                    .s3()
                    .await
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .set_version_id(version_id.clone())
                    .send()
                    .await
                    .map_err(|e| self.s3_error(src, "HEAD", &sdk_error(&e)))?;
                Ok(s3_tag(out.version_id(), out.e_tag()))
            }
        }
    }

    /// The whole content, refused beyond `max` bytes.
    pub async fn fetch(&self, src: &Source, max: u64) -> Result<Fetched, String> {
        let too_big =
            |len: u64| format!("{src}: object is {len} bytes, more than the limit of {max}");
        match src {
            Source::File(path) => {
                let m = tokio::fs::metadata(path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if m.len() > max {
                    return Err(too_big(m.len()));
                }
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Ok(Fetched {
                    tag: digest_tag(&bytes),
                    bytes: Arc::new(bytes),
                })
            }
            Source::S3 {
                bucket,
                key,
                version_id,
            } => {
                let out = self
                    .s3()
                    .await
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .set_version_id(version_id.clone())
                    .send()
                    .await
                    .map_err(|e| self.s3_error(src, "GET", &sdk_error(&e)))?;
                if let Some(len) = out.content_length().and_then(|l| u64::try_from(l).ok()) {
                    if len > max {
                        return Err(too_big(len));
                    }
                }
                let tag = s3_tag(out.version_id(), out.e_tag());
                let bytes = read_capped(out.body, max)
                    .await
                    .map_err(|e| match e {
                        Capped::Over => format!(
                            "{src}: object is more than the limit of {max} bytes (stopped reading at {} bytes)",
                            max + 1
                        ),
                        Capped::Read(e) => self.s3_error(src, "GET", &e),
                    })?;
                Ok(Fetched {
                    bytes: Arc::new(bytes),
                    tag,
                })
            }
        }
    }

    fn s3_error(&self, src: &Source, op: &str, detail: &str) -> String {
        let (bucket, key) = match src {
            Source::S3 { bucket, key, .. } => (bucket.as_str(), key.as_str()),
            Source::File(_) => ("", ""),
        };
        let hint = if detail.contains("NotFound")
            || detail.contains("NoSuchKey")
            || detail.contains("404")
        {
            " (no such object or version, or no s3:GetObject/s3:GetObjectVersion permission)"
        } else if detail.contains("dispatch failure")
            || detail.contains("Connect")
            || detail.contains("connection")
        {
            " (S3 endpoint unreachable)"
        } else {
            ""
        };
        format!(
            "S3 {op} of bucket {bucket:?} key {key:?} ({src}) at {} failed{hint}: {detail}",
            self.endpoint()
        )
    }
}

/// An S3 client from `[s3]` and the standard AWS credential chain, with bounded timeouts.
/// Shared by trust-store sources and log delivery.
pub async fn client(settings: &S3Settings) -> aws_sdk_s3::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(60))
            .build(),
    );
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let shared = loader.load().await;
    let mut b =
        aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.force_path_style);
    if let Some(url) = &settings.endpoint_url {
        b = b.endpoint_url(url);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

/// One line for an SDK error: the service's code and message with the HTTP status, or the
/// transport failure with its causes — not the raw response the SDK's own formatting appends.
/// Why an object's body was not read whole.
enum Capped {
    /// More than the limit arrived: reading stopped there.
    Over,
    Read(String),
}

/// Reads a body chunk by chunk and stops as soon as it passes `max` bytes, whatever the object
/// claimed (or did not claim) as its length: a response without Content-Length must not be
/// read whole before the limit applies.
async fn read_capped(
    mut body: aws_sdk_s3::primitives::ByteStream,
    max: u64,
) -> Result<Vec<u8>, Capped> {
    let mut bytes = Vec::new();
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| Capped::Read(e.to_string()))?
    {
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(Capped::Over);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

pub fn sdk_error<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let status = se.raw().status().as_u16();
            let code = err.code().unwrap_or(match status {
                404 => "NotFound",
                403 => "AccessDenied",
                _ => "error",
            });
            match err.message() {
                Some(m) => format!("{code} (HTTP {status}): {m}"),
                None => format!("{code} (HTTP {status})"),
            }
        }
        SdkError::TimeoutError(_) => "request timed out".to_string(),
        SdkError::DispatchFailure(_) => match std::error::Error::source(e) {
            Some(cause) => format!("connection failed: {}", crate::error_chain(cause)),
            None => "connection failed".to_string(),
        },
        other => DisplayErrorContext(other).to_string(),
    }
}

/// Content tag of bytes already in hand (used when building a store from memory).
pub fn content_tag(bytes: &[u8]) -> String {
    digest_tag(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_tags_use_version_and_etag_without_quotes() {
        assert_eq!(s3_tag(Some("v1"), Some("\"abc\"")), "version:v1,etag:abc");
        assert_eq!(s3_tag(Some("null"), Some("\"abc\"")), "etag:abc");
        assert_eq!(s3_tag(None, None), "etag:-");
    }
}
