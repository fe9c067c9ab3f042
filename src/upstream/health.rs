//! Active health checks: every `interval` each target of a group gets `GET path`; a response
//! within `timeout` whose status the matcher accepts passes. Runs in its own task, off the
//! data path; results go through [`TargetGroup::observe`], which logs each change once.

use std::sync::Arc;

use http::{header, Request, Uri};
use http_body_util::BodyExt;
use tokio::sync::watch;

use super::client::TargetClient;
use super::{HealthEvent, Target, TargetGroup};

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
