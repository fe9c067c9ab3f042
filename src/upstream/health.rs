//! Active health checks: every `interval` each target of a group gets `GET path`; a response
//! within `timeout` whose status the matcher accepts passes. A GRPC group's targets get a
//! gRPC call instead (`grpc.health.v1.Health/Check` by default), judged by its `grpc-status`.
//! Runs in its own task, off the data path; results go through [`TargetGroup::observe`],
//! which logs each change once.

use std::sync::Arc;

use http::{header, Request, Uri};
use http_body_util::BodyExt;
use tokio::sync::watch;

use super::client::TargetClient;
use super::{HealthEvent, Target, TargetGroup};
use crate::config::{HealthCheckConfig, ProtocolVersion, GRPC_HEALTH_PATH};

/// Checks `group`'s targets until `stop` turns true.
pub async fn run(group: Arc<TargetGroup>, client: TargetClient, mut stop: watch::Receiver<bool>) {
    let hc = group.config.health_check.clone();
    let mut tick = tokio::time::interval(hc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let mut checks = tokio::task::JoinSet::new();
        for t in &group.targets {
            let client = client.clone();
            let group = group.clone();
            let target = t.clone();
            checks.spawn(async move {
                let event = check(&group, &target, &client).await;
                group.observe(&target, &event);
            });
        }
        while checks.join_next().await.is_some() {}
    }
}

/// One check of one target.
pub async fn check(group: &TargetGroup, target: &Target, client: &TargetClient) -> HealthEvent {
    let hc = &group.config.health_check;
    let scheme = if target.url.https { "https" } else { "http" };
    let uri = match Uri::builder()
        .scheme(scheme)
        .authority(target.url.authority.clone())
        .path_and_query(hc.path.as_str())
        .build()
    {
        Ok(u) => u,
        Err(e) => return HealthEvent::CheckFailed(format!("cannot build the check request: {e}")),
    };
    if group.config.protocol_version == ProtocolVersion::Grpc {
        return grpc_check(hc, uri, client).await;
    }
    let req = Request::get(uri)
        .header(header::HOST, target.url.authority.as_str())
        .header(
            header::USER_AGENT,
            concat!("certgate-health-check/", env!("CARGO_PKG_VERSION")),
        )
        .body(crate::http::empty_body());
    let req = match req {
        Ok(r) => r,
        Err(e) => return HealthEvent::CheckFailed(format!("cannot build the check request: {e}")),
    };
    match tokio::time::timeout(hc.timeout, client.request(req)).await {
        Err(_) => HealthEvent::CheckFailed(format!(
            "no response to GET {} within {}s",
            hc.path,
            hc.timeout.as_secs()
        )),
        Ok(Err(e)) => {
            HealthEvent::CheckFailed(format!("GET {}: {}", hc.path, crate::error_chain(&e)))
        }
        Ok(Ok(resp)) => {
            let status = resp.status().as_u16();
            // Read the body (within the timeout) so the connection can go back to the pool.
            let _ = tokio::time::timeout(hc.timeout, resp.into_body().collect()).await;
            if hc.matcher.accepts(status) {
                HealthEvent::CheckPassed
            } else {
                HealthEvent::CheckFailed(format!(
                    "GET {} answered {status}, expected {}",
                    hc.path, hc.matcher
                ))
            }
        }
    }
}

/// One gRPC health call: an empty `HealthCheckRequest` (all services), passed when its
/// `grpc-status` is one the matcher accepts and, for the standard health service, the answer
/// says `SERVING`.
async fn grpc_check(hc: &HealthCheckConfig, uri: Uri, client: &TargetClient) -> HealthEvent {
    let failed = |why: String| HealthEvent::CheckFailed(format!("gRPC {}: {why}", hc.path));
    // A gRPC message frame: not compressed, zero-length (an empty request message).
    let frame = bytes::Bytes::from_static(&[0, 0, 0, 0, 0]);
    let req = Request::post(uri)
        .version(http::Version::HTTP_2)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .body(
            http_body_util::Full::new(frame)
                .map_err(|never| match never {})
                .boxed(),
        );
    let req = match req {
        Ok(r) => r,
        Err(e) => return failed(format!("cannot build the request: {e}")),
    };
    let answer = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| crate::error_chain(&e))?;
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok::<_, String>((headers, body))
    };
    let (headers, body) = match tokio::time::timeout(hc.timeout, answer).await {
        Err(_) => return failed(format!("no answer within {}s", hc.timeout.as_secs())),
        Ok(Err(why)) => return failed(why),
        Ok(Ok(a)) => a,
    };
    let status = body
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u16>().ok());
    let Some(status) = status else {
        return failed("the answer has no grpc-status".into());
    };
    if !hc.matcher.accepts(status) {
        return failed(format!("grpc-status {status}, expected {}", hc.matcher));
    }
    if status == 0 && hc.path == GRPC_HEALTH_PATH && !serving(&body.to_bytes()) {
        return failed("the health service does not say SERVING".into());
    }
    HealthEvent::CheckPassed
}

/// Whether a `HealthCheckResponse` frame says `status = SERVING` (field 1, varint 1).
fn serving(frame: &[u8]) -> bool {
    matches!(frame, [0, _, _, _, _, message @ ..] if message.windows(2).any(|w| w == [0x08, 0x01]))
}
