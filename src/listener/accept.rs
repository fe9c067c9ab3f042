//! The accept loop of a listener: one task per connection within `max_connections`, an
//! immediate logged close past it, and the listener's TLS state following published trust
//! stores.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::connection::{accepted, connection, record_failure, ConnLog};
use super::{plain, Listener};
use crate::config::ListenerProtocol;
use crate::mtls::{Failure, VerifyCode};
use crate::truststore::Stores;

/// What every listener's accept loop shares with the rest of the proxy.
#[derive(Clone)]
pub struct AcceptContext {
    pub conn_log: ConnLog,
    /// Turns true when the proxy stops accepting (SIGTERM).
    pub stop: watch::Receiver<bool>,
    pub graceful: Arc<GracefulShutdown>,
    /// The trust stores in service, as the reloader publishes them.
    pub stores: watch::Receiver<Stores>,
}

/// Accepts until `stop` turns true; each connection runs in its own task, watched by
/// `graceful`. Published trust stores are applied between accepts.
pub async fn accept_loop(socket: TcpListener, listener: Arc<Listener>, cx: AcceptContext) {
    let AcceptContext {
        conn_log: log,
        mut stop,
        graceful,
        mut stores,
    } = cx;
    let mut following = listener.trust_store().is_some();
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            changed = stores.changed(), if following => {
                match changed {
                    Ok(()) => {
                        let published = stores.borrow_and_update().clone();
                        listener.follow_stores(&published);
                    }
                    // The reloader is gone: nothing more will be published.
                    Err(_) => following = false,
                }
                continue;
            }
            a = socket.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => start(stream, peer, &listener, &log, &graceful, &stop),
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(listener = %listener.name(), error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Starts the task of one accepted connection, or refuses it past `max_connections`.
fn start(
    stream: TcpStream,
    peer: SocketAddr,
    listener: &Arc<Listener>,
    log: &ConnLog,
    graceful: &GracefulShutdown,
    stop: &watch::Receiver<bool>,
) {
    let Ok(slot) = listener.conn_slots.clone().try_acquire_owned() else {
        refuse_over_limit(stream, peer, listener, log);
        return;
    };
    let _ = stream.set_nodelay(true);
    if listener.config.protocol == ListenerProtocol::Http {
        let task = plain::connection(
            stream,
            peer,
            listener.clone(),
            graceful.watcher(),
            stop.clone(),
        );
        tokio::spawn(async move {
            task.await;
            drop(slot);
        });
        return;
    }
    let task = connection(
        stream,
        peer,
        listener.clone(),
        log.clone(),
        graceful.watcher(),
        stop.clone(),
    );
    tokio::spawn(async move {
        task.await;
        drop(slot);
    });
}

/// A connection past `max_connections`: closed at once, before any TLS work, and logged, so an
/// overload costs the proxy as little as possible.
fn refuse_over_limit(stream: TcpStream, peer: SocketAddr, listener: &Listener, log: &ConnLog) {
    drop(stream);
    let tls = listener.tls.load();
    let mut record = accepted(listener, &tls, peer);
    let failure = Failure::new(
        VerifyCode::Unmapped,
        format!(
            "listener has {} open connections (max_connections); connection closed",
            listener.config.max_connections
        ),
    );
    record_failure(&mut record, &failure);
    log.write(&record);
    let no_handshake = std::time::Duration::ZERO;
    listener
        .metrics
        .handshake(&record.tls_verify_status, no_handshake);
}
