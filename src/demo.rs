//! `certgate demo`: a first run with nothing else installed — the committed demo PKI, an
//! in-process echo backend, and a verify-mode listener, with curl commands to paste.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::config::{self, Config};

/// The demo PKI as committed under `truststores/demo/` (made by `certgate pki demo`), built into
/// the binary so that `certgate demo` works from any directory.
pub const EMBEDDED: [(&str, &str); 14] = [
    (
        "root-ca.pem",
        include_str!("../truststores/demo/root-ca.pem"),
    ),
    (
        "root-ca.key",
        include_str!("../truststores/demo/root-ca.key"),
    ),
    (
        "intermediate-ca.pem",
        include_str!("../truststores/demo/intermediate-ca.pem"),
    ),
    (
        "intermediate-ca.key",
        include_str!("../truststores/demo/intermediate-ca.key"),
    ),
    (
        "ca-bundle.pem",
        include_str!("../truststores/demo/ca-bundle.pem"),
    ),
    (
        "intermediate.crl.pem",
        include_str!("../truststores/demo/intermediate.crl.pem"),
    ),
    ("server.pem", include_str!("../truststores/demo/server.pem")),
    ("server.key", include_str!("../truststores/demo/server.key")),
    (
        "good-client.pem",
        include_str!("../truststores/demo/good-client.pem"),
    ),
    (
        "good-client.key",
        include_str!("../truststores/demo/good-client.key"),
    ),
    (
        "revoked-client.pem",
        include_str!("../truststores/demo/revoked-client.pem"),
    ),
    (
        "revoked-client.key",
        include_str!("../truststores/demo/revoked-client.key"),
    ),
    (
        "expired-client.pem",
        include_str!("../truststores/demo/expired-client.pem"),
    ),
    (
        "expired-client.key",
        include_str!("../truststores/demo/expired-client.key"),
    ),
];

/// The files of one `certgate demo` run.
pub struct DemoFiles {
    /// Where the demo PKI is read from.
    pub pki: PathBuf,
    pub access_log: PathBuf,
    /// This run's own directory, removed when the demo ends.
    _private: tempfile::TempDir,
}

/// Prepares a demo run: a new private directory (mode 0700, random name, under the temp dir)
/// for the access log and, unless run from a checkout with `truststores/demo` (so the printed
/// commands use short paths), the embedded PKI, its keys 0600. A path someone else planted in
/// the shared temp dir (a directory, a symlink) is never used, so nothing is written elsewhere.
pub fn prepare() -> Result<DemoFiles, crate::pki::PkiError> {
    let temp = std::env::temp_dir();
    let mut builder = tempfile::Builder::new();
    builder.prefix("certgate-demo-");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let private = builder
        .tempdir_in(&temp)
        .map_err(|error| crate::pki::PkiError::Write { path: temp, error })?;
    let dir = private.path().to_path_buf();
    let local = Path::new("truststores/demo");
    let pki = if EMBEDDED.iter().all(|(f, _)| local.join(f).is_file()) {
        local.to_path_buf()
    } else {
        for (file, contents) in EMBEDDED {
            let private_key = crate::pki::is_private_key(file);
            crate::pki::write_file(&dir.join(file), contents.as_bytes(), private_key)?;
        }
        dir.clone()
    };
    Ok(DemoFiles {
        pki,
        access_log: dir.join("access.log"),
        _private: private,
    })
}

/// An HTTP backend that answers every request with a JSON echo of what it received, so the
/// ALB headers certgate adds are visible in curl's output.
pub async fn echo_backend(bind: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc =
                    service_fn(
                        |req: Request<Incoming>| async move { Ok::<_, Infallible>(echo(&req)) },
                    );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn echo(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        let v = serde_json::Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::Array(a)) => a.push(v),
            Some(prev) => *prev = serde_json::Value::Array(vec![prev.clone(), v]),
            None => {
                headers.insert(name.as_str().to_string(), v);
            }
        }
    }
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": headers,
    });
    let mut text = serde_json::to_string_pretty(&body).unwrap_or_default();
    text.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The demo's configuration: one verify-mode listener on `bind` in front of `backend`, naming
/// clients by their CN, with `/admin/*` kept for `ops-*` clients.
pub fn config(
    dir: &Path,
    bind: SocketAddr,
    backend: SocketAddr,
    access_log: &Path,
) -> Result<Config, config::ConfigError> {
    let p = |f: &str| dir.join(f).display().to_string().replace('\\', "/");
    let text = format!(
        r#"
[[listener]]
name = "demo"
bind = "{bind}"
certificate_chain = "{server}"
private_key = "{server_key}"
default_target_group = "echo"

[listener.mutual_authentication]
mode = "verify"
trust_store = "demo"

# Who the client is: its certificate's CN, sent to the backend as X-Client-Identity.
[listener.client_identity]
from = "common_name"
header_name = "X-Client-Identity"

# /admin/* only for ops-* clients; every other client gets a fixed 403 there.
[[listener.rule]]
path = "/admin/*"
client_identity = ["ops-*"]
target_group = "echo"

[[listener.rule]]
path = "/admin/*"
fixed_response = {{ status_code = 403, content_type = "text/plain", message_body = "/admin is for ops-* clients\n" }}

[target_group.echo]
targets = ["http://{backend}"]
[target_group.echo.health_check]
enabled = false

[trust_store.demo]
ca_certificates_bundle = "{bundle}"
revocation_lists = ["{crl}"]

[connection_log]
path = "-"

[access_log]
path = "{access}"
"#,
        server = p("server.pem"),
        server_key = p("server.key"),
        bundle = p("ca-bundle.pem"),
        crl = p("intermediate.crl.pem"),
        access = access_log.display(),
    );
    config::from_str(&text, Path::new("(demo config)"), Path::new("."))
}

/// The text `certgate demo` prints once it is listening.
pub fn instructions(
    dir: &Path,
    bind: SocketAddr,
    backend: SocketAddr,
    access_log: &Path,
) -> String {
    let d = dir.display();
    let url = format!("https://{bind}/hello");
    let curl_to = |who: &str, url: &str| {
        format!("curl --cacert {d}/root-ca.pem --cert {d}/{who}-client.pem --key {d}/{who}-client.key {url}")
    };
    let curl = |who: &str| curl_to(who, &url);
    format!(
        "certgate demo: verify-mode mTLS listener on https://{bind} -> echo backend on http://{backend}\n\
         \n\
         Good client (200, the backend echoes the X-Amzn-Mtls-Clientcert-* and X-Client-Identity headers it received):\n  {}\n\
         The same client on /admin/ (403 from a rule: only ops-* identities may reach /admin/*):\n  {}\n\
         Revoked client (refused: Failed:ClientCertCrlHit):\n  {}\n\
         Expired client (refused: Failed:ClientCertExpired):\n  {}\n\
         No client certificate (refused: Failed:UnmappedConnectionError):\n  curl --cacert {d}/root-ca.pem {url}\n\
         \n\
         Connection log: one JSON line per TLS connection on stdout (try: certgate demo | jq).\n\
         Access log: {}\n\
         Stop with Ctrl-C.\n",
        curl("good"),
        curl_to("good", &format!("https://{bind}/admin/")),
        curl("revoked"),
        curl("expired"),
        access_log.display(),
    )
}
