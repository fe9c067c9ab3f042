//! The life of a connection to a plain HTTP listener (`protocol = "HTTP"`): no handshake and no
//! connection-log record (ALB logs TLS connections only); HTTP/1.1 served at once, with no
//! client certificate, no mTLS headers and `X-Forwarded-Proto: http`.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::server::graceful::Watcher;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::serve::{serve_plain, Signals};
use super::Listener;
use crate::proxy::{ClientCert, ConnContext};

/// Runs one accepted plain connection to its end.
pub async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<Listener>,
    watcher: Watcher,
    stop: watch::Receiver<bool>,
) {
    if *stop.borrow() {
        return;
    }
    let settings = listener.serve_settings();
    let context = |framing| {
        let trace_id = crate::observe::new_trace_id();
        let proxy = listener.proxy.clone();
        let cert = ClientCert::default();
        ConnContext::new(proxy, trace_id, peer, Vec::new(), cert, None, framing)
    };
    let signals = Signals {
        stop,
        revoked: None,
        expires: None,
    };
    serve_plain(stream, settings, signals, context).await;
    drop(watcher);
}
