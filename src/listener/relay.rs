//! The WebSocket relay of an HTTP/1.1 connection whose target accepted an upgrade: bytes both
//! ways with backpressure (`copy_bidirectional`) until either side closes, no bytes have
//! passed for the idle timeout, the client's certificate is revoked or expires, or the proxy
//! drains. It runs in the connection's own task, so the connection keeps its slot, its
//! registration for re-checks and its place in the drain.

use std::time::Duration;

use hyper_util::rt::TokioIo;

use super::io::Activity;
use super::signals::{close_requested, expired, Signals};
use crate::proxy::websocket::Relay;

/// Why a relay ended, for the debug log.
fn ended(listener: &str, trace_id: &str, why: &str) {
    tracing::debug!(
        listener,
        conn_trace_id = trace_id,
        "WebSocket closed: {why}"
    );
}

/// Relays `relay` until one of the ends above; the client side's bytes run through
/// `activity`, which therefore sees traffic in both directions.
pub(super) async fn run(
    relay: Relay,
    signals: &mut Signals,
    idle: Duration,
    activity: &Activity,
    listener: &str,
    trace_id: &str,
) {
    let (client, target) = match tokio::try_join!(relay.client, relay.target) {
        Ok(both) => both,
        Err(e) => return ended(listener, trace_id, &format!("upgrade failed: {e}")),
    };
    let (mut client, mut target) = (TokioIo::new(client), TokioIo::new(target));
    let copy = tokio::io::copy_bidirectional(&mut client, &mut target);
    tokio::pin!(copy);
    if *signals.stop.borrow() {
        return ended(listener, trace_id, "proxy is draining");
    }
    loop {
        let wait = idle.saturating_sub(activity.quiet_for());
        tokio::select! {
            r = &mut copy => {
                let why = match r {
                    Ok((up, down)) => format!("closed after {up} bytes up, {down} bytes down"),
                    Err(e) => format!("relay failed: {e}"),
                };
                return ended(listener, trace_id, &why);
            }
            _ = signals.stop.changed() => return ended(listener, trace_id, "proxy is draining"),
            _ = close_requested(&mut signals.revoked) => {
                tracing::warn!(listener, conn_trace_id = trace_id, "closing WebSocket: client certificate revoked");
                return;
            }
            _ = expired(signals.expires) => {
                tracing::warn!(listener, conn_trace_id = trace_id, "closing WebSocket: client certificate expired");
                return;
            }
            _ = tokio::time::sleep(wait) => {
                if activity.quiet_for() >= idle {
                    return ended(listener, trace_id, "idle timeout");
                }
            }
        }
    }
}
