//! S3 test harness: a real S3-compatible server (`moto_server`, from the Python package
//! `moto[server]`) on 127.0.0.1, a small `aws-sdk-s3` client to arrange buckets and objects, and
//! the environment that keeps every AWS SDK (the tests' and certgate's) on loopback.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};

/// Environment for anything that talks to S3 in the tests: static credentials from the
/// environment, a fixed region, no instance-metadata look-ups, no shared config files, no proxy
/// for loopback. Only loopback traffic is allowed where these tests run.
pub const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ("NO_PROXY", "127.0.0.1,localhost"),
    ("no_proxy", "127.0.0.1,localhost"),
];

/// Variables that would send the SDK elsewhere or change its credentials; removed.
pub const AWS_ENV_REMOVED: &[&str] = &[
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
];

/// Applies `AWS_ENV` to a child process.
pub fn aws_env(cmd: &mut Command) -> &mut Command {
    for k in AWS_ENV_REMOVED {
        cmd.env_remove(k);
    }
    cmd.envs(AWS_ENV.iter().copied())
}

/// Applies `AWS_ENV` to this process, once, for proxies started in-process. Call it first
/// thing in every test, before any thread could read the environment.
pub fn aws_env_in_process() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for k in AWS_ENV_REMOVED {
            std::env::remove_var(k);
        }
        for (k, v) in AWS_ENV {
            std::env::set_var(k, v);
        }
    });
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A running `moto_server -H 127.0.0.1 -p PORT`, killed when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
    /// moto's own output, for failure messages.
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts moto on a free port and waits (bounded) until it accepts connections.
    pub fn start() -> Moto {
        Self::start_on(None)
    }

    /// Starts moto on `port` (a free one when None): a server stopped with [`Moto::stop`] can
    /// come back at the same address, empty.
    pub fn start_on(port: Option<u16>) -> Moto {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(port.unwrap_or_else(free_port)) {
                Ok(m) => return m,
                Err(e) => last = e,
            }
        }
        panic!("cannot start moto_server (pip install 'moto[server]'): {last}");
    }

    fn try_start(port: u16) -> Result<Moto, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log = dir.path().join("moto.log");
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = aws_env(&mut cmd)
            .spawn()
            .map_err(|e| format!("moto_server: {e}"))?;
        let mut moto = Moto {
            child,
            port,
            log,
            _dir: dir,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!(
                    "moto_server exited ({status}): {}",
                    moto.log_text()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "moto_server not accepting on {addr} after 30 s: {}",
                    moto.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`, what `[s3] endpoint_url` takes.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A test client for this server.
    pub fn client(&self) -> S3 {
        S3::new(&self.endpoint())
    }

    /// Stops the server now (S3 becomes unreachable).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `[s3]` table pointing certgate at `endpoint`.
pub fn s3_table(endpoint: &str) -> String {
    format!(
        "[s3]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\nforce_path_style = true\n"
    )
}

/// `s3://bucket/key`, optionally pinned to a version.
pub fn s3_url(bucket: &str, key: &str, version: Option<&str>) -> String {
    match version {
        None => format!("s3://{bucket}/{key}"),
        Some(v) => format!("s3://{bucket}/{key}?versionId={v}"),
    }
}

/// What S3 says about one stored object version.
#[derive(Debug, Clone)]
pub struct Put {
    pub version_id: Option<String>,
    pub etag: String,
}

impl Put {
    /// The version id; panics on an unversioned bucket.
    pub fn version(&self) -> &str {
        self.version_id
            .as_deref()
            .expect("object has no version id (bucket not versioned?)")
    }
}

/// A small S3 client with static test credentials and path-style addressing.
#[derive(Clone)]
pub struct S3 {
    pub client: aws_sdk_s3::Client,
}

impl S3 {
    pub fn new(endpoint: &str) -> S3 {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .force_path_style(true)
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .build();
        S3 {
            client: aws_sdk_s3::Client::from_conf(conf),
        }
    }

    pub async fn create_bucket(&self, bucket: &str) {
        self.client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
    }

    /// Creates `bucket` with versioning enabled.
    pub async fn create_versioned_bucket(&self, bucket: &str) {
        self.create_bucket(bucket).await;
        self.client
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("enable versioning on {bucket}: {e:?}"));
    }

    /// Every object under `prefix`: (key, bytes), in key order.
    pub async fn objects(&self, bucket: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap_or_else(|e| panic!("list s3://{bucket}/{prefix}: {e:?}"));
            for o in page.contents() {
                let key = o.key().unwrap_or_default().to_string();
                let body = self.get(bucket, &key).await.unwrap_or_default();
                out.push((key, body));
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        out.sort();
        out
    }

    /// Stores `body` as the new current version of `key`.
    pub async fn put(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) -> Put {
        let out = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.into()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}"));
        Put {
            version_id: out.version_id().map(str::to_string),
            etag: out.e_tag().unwrap_or_default().to_string(),
        }
    }

    /// Deletes `key` (on a versioned bucket: adds a delete marker; older versions stay).
    pub async fn delete(&self, bucket: &str, key: &str) {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete s3://{bucket}/{key}: {e:?}"));
    }

    /// The current object's bytes, or `None` when there is none.
    pub async fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(out.body.collect().await.ok()?.into_bytes().to_vec())
    }
}
