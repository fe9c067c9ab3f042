//! HTTP/2 and gRPC to targets (SPEC §14): a real HTTP/2 server (hyper, h2c prior knowledge)
//! as target, an HTTP/2 client over mTLS in front. Covers gRPC calls with their trailers relayed,
//! a target that cannot be reached answered as gRPC status 14 (trailers-only), HTTP/2 towards an
//! HTTP2 group from an HTTP/1.1 client, the gRPC health check, and an h2 target that answers
//! with GOAWAY (idempotent requests retried on another target, a POST with a body not), and
//! trailers with odd or malformed values from a raw h2 target.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::pki::*;
use support::*;

/// What the target saw of one request.
#[derive(Debug, Clone)]
struct H2Seen {
    version: http::Version,
    path: String,
    subject: Option<String>,
    te: Option<String>,
}

/// An h2c target: `/grpc.health.v1.Health/Check` answers SERVING (or NOT_SERVING once
/// `serving` is false); any other gRPC call echoes its message with `grpc-status: 0` in the
/// trailers; a plain request gets 200 "h2 target".
struct H2Target {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<H2Seen>>>,
    serving: Arc<AtomicBool>,
}

type Reply = http::Response<StreamBody<futures_stream::Frames>>;

mod futures_stream {
    use super::*;
    pub type Frames = futures_util::stream::Iter<
        std::vec::IntoIter<Result<Frame<Bytes>, std::convert::Infallible>>,
    >;

    pub fn of(frames: Vec<Frame<Bytes>>) -> StreamBody<Frames> {
        StreamBody::new(futures_util::stream::iter(
            frames.into_iter().map(Ok).collect::<Vec<_>>(),
        ))
    }
}

fn grpc_reply(message: Bytes, status: &str) -> Reply {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", status.parse().unwrap());
    trailers.insert("grpc-message", "ok".parse().unwrap());
    http::Response::builder()
        .header("content-type", "application/grpc")
        .body(futures_stream::of(vec![
            Frame::data(message),
            Frame::trailers(trailers),
        ]))
        .unwrap()
}

impl H2Target {
    async fn start() -> H2Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<H2Seen>>> = Arc::default();
        let serving = Arc::new(AtomicBool::new(true));
        let (record, state) = (seen.clone(), serving.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (record, state) = (record.clone(), state.clone());
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (record, state) = (record.clone(), state.clone());
                    async move {
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string)
                        };
                        record.lock().unwrap().push(H2Seen {
                            version: req.version(),
                            path: req.uri().path().to_string(),
                            subject: header("x-amzn-mtls-clientcert-subject"),
                            te: header("te"),
                        });
                        let path = req.uri().path().to_string();
                        let grpc = header("content-type")
                            .is_some_and(|c| c.starts_with("application/grpc"));
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let reply = if path == "/grpc.health.v1.Health/Check" {
                            let status = if state.load(Ordering::SeqCst) { 1 } else { 2 };
                            grpc_reply(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]), "0")
                        } else if grpc {
                            grpc_reply(body, "0")
                        } else {
                            http::Response::new(futures_stream::of(vec![Frame::data(
                                Bytes::from_static(b"h2 target"),
                            )]))
                        };
                        Ok::<_, std::convert::Infallible>(reply)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        H2Target {
            addr,
            seen,
            serving,
        }
    }

    fn last(&self) -> H2Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
}

/// A verify listener whose default group is `group` with `protocol_version = version`.
async fn proxy_to(pki: &Pki, targets: &[SocketAddr], version: &str) -> Proxy {
    let list: Vec<String> = targets.iter().map(|a| format!("\"http://{a}\"")).collect();
    let section = format!(
        "[target_group.api]\ntargets = [{}]\nprotocol_version = \"{version}\"\n\
         [target_group.api.health_check]\nenabled = false\n",
        list.join(", ")
    );
    Proxy::start_edited(
        pki,
        targets[0],
        "mode = \"verify\"\ntrust_store = \"corp\"",
        &section,
        |t| {
            let start = t.find("backend =").unwrap();
            let end = start + t[start..].find('\n').unwrap();
            format!("{}default_target_group = \"api\"{}", &t[..start], &t[end..])
        },
    )
    .await
}

/// A gRPC call over HTTP/2 and mTLS: status, headers, data, trailers.
async fn grpc_call(
    proxy: &Proxy,
    pki: &Pki,
    path: &str,
    message: &[u8],
) -> (u16, http::HeaderMap, Bytes, Option<http::HeaderMap>) {
    let cfg = client_config(pki, Some((&pki.good, &[&pki.inter])), &[b"h2"]);
    let tls = connect(proxy.addr, cfg).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut frame = vec![0u8];
    frame.extend((message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    let req = hyper::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(frame)))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (status, headers, collected.to_bytes(), trailers)
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_calls_reach_an_h2c_target_with_their_trailers() {
    let pki = Pki::new();
    let target = H2Target::start().await;
    let proxy = proxy_to(&pki, &[target.addr], "GRPC").await;
    let (status, headers, data, trailers) =
        grpc_call(&proxy, &pki, "/echo.Echo/Say", b"hello").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(&data[5..], b"hello");
    let trailers = trailers.expect("trailers relayed");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "ok");
    let seen = target.last();
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!(seen.path, "/echo.Echo/Say");
    assert_eq!(seen.subject.as_deref(), Some("CN=client"));
    assert_eq!(seen.te.as_deref(), Some("trailers"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_cannot_be_reached_is_grpc_status_14_trailers_only() {
    let pki = Pki::new();
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let proxy = proxy_to(&pki, &[dead], "GRPC").await;
    let (status, headers, data, trailers) =
        grpc_call(&proxy, &pki, "/echo.Echo/Say", b"hello").await;
    assert_eq!(status, 200, "gRPC errors travel as HTTP 200");
    assert_eq!(headers["grpc-status"], "14", "{headers:?}");
    assert!(
        headers["grpc-message"]
            .to_str()
            .unwrap()
            .contains("cannot connect"),
        "{headers:?}"
    );
    assert!(data.is_empty() && trailers.is_none(), "trailers-only");
    let acc = proxy.access_records(1).pop().unwrap();
    assert!(
        acc["error_reason"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{acc}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http2_group_gets_http2_from_an_http1_client() {
    let pki = Pki::new();
    let target = H2Target::start().await;
    let proxy = proxy_to(&pki, &[target.addr], "HTTP2").await;
    let cfg = client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);
    let resp = raw_http1(
        proxy.addr,
        cfg,
        "GET /page HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(status_of(&resp), Some(200), "{resp}");
    assert!(resp.contains("h2 target"), "{resp}");
    assert_eq!(target.last().version, http::Version::HTTP_2);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_health_checks_ask_the_grpc_health_service() {
    let target = H2Target::start().await;
    let cfg_dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[[listener]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\ncertificate_chain = \"s.pem\"\n\
         private_key = \"s.key\"\ndefault_target_group = \"api\"\n\
         [target_group.api]\ntargets = [\"http://{}\"]\nprotocol_version = \"GRPC\"\n",
        target.addr
    );
    let pki = Pki::new();
    write_pem(cfg_dir.path(), "s.pem", &pki.server.cert_pem);
    write_pem(cfg_dir.path(), "s.key", &pki.server.key_pem);
    let path = cfg_dir.path().join("certgate.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = certgate::config::load(&path).unwrap();
    let group_cfg = cfg.target_groups["api"].clone();
    assert_eq!(group_cfg.health_check.path, "/grpc.health.v1.Health/Check");
    let client =
        certgate::upstream::client::client(&group_cfg, std::time::Duration::from_secs(2)).unwrap();
    let group = certgate::upstream::TargetGroup::new(group_cfg);
    let t = group.targets[0].clone();
    let passed = certgate::upstream::health::check(&group, &t, &client).await;
    assert!(
        matches!(passed, certgate::upstream::HealthEvent::CheckPassed),
        "{passed:?}"
    );
    assert_eq!(target.last().version, http::Version::HTTP_2);
    target.serving.store(false, Ordering::SeqCst);
    let failed = certgate::upstream::health::check(&group, &t, &client).await;
    match failed {
        certgate::upstream::HealthEvent::CheckFailed(why) => {
            assert!(why.contains("SERVING"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

/// An h2c target that answers every request stream with GOAWAY (last stream 0: nothing was
/// processed) and closes; counts the requests it saw.
async fn goaway_target() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut preface = [0u8; 24];
                if tcp.read_exact(&mut preface).await.is_err() {
                    return;
                }
                let _ = tcp
                    .write_all(&support::h2wire::frame(
                        support::h2wire::SETTINGS,
                        0,
                        0,
                        &[],
                    ))
                    .await;
                loop {
                    let mut head = [0u8; 9];
                    if tcp.read_exact(&mut head).await.is_err() {
                        return;
                    }
                    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                    let mut payload = vec![0u8; len];
                    if tcp.read_exact(&mut payload).await.is_err() {
                        return;
                    }
                    if head[3] == support::h2wire::HEADERS {
                        count.fetch_add(1, Ordering::SeqCst);
                        // GOAWAY: last stream id 0, NO_ERROR.
                        let goaway = support::h2wire::frame(support::h2wire::GOAWAY, 0, 0, &[0; 8]);
                        let _ = tcp.write_all(&goaway).await;
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_h2_target_sending_goaway_is_retried_for_idempotent_requests_only() {
    let pki = Pki::new();
    let good = H2Target::start().await;
    let (bad, bad_seen) = goaway_target().await;
    let proxy = proxy_to(&pki, &[bad, good.addr], "HTTP2").await;
    let cfg = || client_config(&pki, Some((&pki.good, &[&pki.inter])), &[b"http/1.1"]);
    for _ in 0..6 {
        assert_eq!(get(proxy.addr, cfg(), "/x").await.unwrap(), 200);
    }
    assert!(
        bad_seen.load(Ordering::SeqCst) > 0,
        "the GOAWAY target was tried"
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let resp = raw_http1(
            proxy.addr,
            cfg(),
            "POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody",
        )
        .await
        .unwrap();
        statuses.push(status_of(&resp).unwrap_or(0));
    }
    assert!(
        statuses.contains(&502),
        "a POST the target refused is not repeated: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 502),
        "{statuses:?}"
    );
}

/// An h2c target answering every call with one empty gRPC message and the trailer
/// `grpc-status: <status>`, written raw (the http crate cannot make a bad value).
async fn raw_trailer_target(status: &'static [u8]) -> SocketAddr {
    use support::h2wire::{frame, header_block, DATA, END_HEADERS, END_STREAM, HEADERS, SETTINGS};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut preface = [0u8; 24];
                if tcp.read_exact(&mut preface).await.is_err() {
                    return;
                }
                let _ = tcp.write_all(&frame(SETTINGS, 0, 0, &[])).await;
                loop {
                    let mut head = [0u8; 9];
                    if tcp.read_exact(&mut head).await.is_err() {
                        return;
                    }
                    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                    let stream =
                        u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                    let mut payload = vec![0u8; len];
                    if tcp.read_exact(&mut payload).await.is_err() {
                        return;
                    }
                    match head[3] {
                        SETTINGS if head[4] & 1 == 0 => {
                            let _ = tcp.write_all(&frame(SETTINGS, 1, 0, &[])).await;
                        }
                        HEADERS => {
                            let response = header_block(&[
                                (":status", b"200"),
                                ("content-type", b"application/grpc"),
                            ]);
                            let trailers = header_block(&[("grpc-status", status)]);
                            let mut out = frame(HEADERS, END_HEADERS, stream, &response);
                            out.extend(frame(DATA, 0, stream, &[0, 0, 0, 0, 0]));
                            out.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &trailers));
                            let _ = tcp.write_all(&out).await;
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    addr
}

/// A gRPC call whose body may fail: the trailers' grpc-status, or the error.
async fn grpc_status_of(proxy: &Proxy, pki: &Pki) -> Result<String, String> {
    let cfg = client_config(pki, Some((&pki.good, &[&pki.inter])), &[b"h2"]);
    let tls = connect(proxy.addr, cfg).await.map_err(|e| e.to_string())?;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::post("https://localhost/svc.S/M")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .unwrap();
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let trailers = body.trailers().ok_or("no trailers")?;
    Ok(trailers["grpc-status"].to_str().unwrap_or("?").to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn trailers_with_invalid_values_never_break_the_proxy() {
    let pki = Pki::new();
    // Not a number: the target's own answer, relayed for the client's gRPC library to judge.
    let odd = raw_trailer_target(b"abc").await;
    let proxy = proxy_to(&pki, &[odd], "GRPC").await;
    assert_eq!(grpc_status_of(&proxy, &pki).await.as_deref(), Ok("abc"));
    // A value HTTP forbids (CR LF): the target broke the protocol; the client's stream ends
    // with an error rather than a forged trailer, and the proxy keeps serving.
    let broken = raw_trailer_target(b"0\r\nx-injected: 1").await;
    let proxy = proxy_to(&pki, &[broken], "GRPC").await;
    for _ in 0..2 {
        let got = grpc_status_of(&proxy, &pki).await;
        assert!(
            got.as_deref() != Ok("0"),
            "a malformed trailer was relayed: {got:?}"
        );
    }
    let good = H2Target::start().await;
    let again = proxy_to(&pki, &[good.addr], "GRPC").await;
    assert_eq!(grpc_status_of(&again, &pki).await.as_deref(), Ok("0"));
}
