//! Between the handshake and admission: the OCSP step of a verify-mode listener whose trust
//! store asks for it (`mtls::online`). A client the responder says is revoked is refused, and
//! every other open connection presenting the same certificate is closed, as a CRL reload
//! closes them.

use super::handshake::Handshake;
use super::Listener;
use crate::config::OcspMode;
use crate::mtls::online::{check_leaf, Online};
use crate::mtls::VerifyCode;
use crate::tls::ListenerTls;

/// The handshake's outcome after the OCSP step.
pub async fn admit(outcome: Handshake, listener: &Listener, tls: &ListenerTls) -> Handshake {
    let Handshake::Established(mut est) = outcome else {
        return outcome;
    };
    let Some(store) = tls.verify_store().filter(|s| s.ocsp != OcspMode::Off) else {
        return Handshake::Established(est);
    };
    match check_leaf(&store, &est.chain, &crate::ocsp::checker()).await {
        Online::Admitted(note) => {
            est.ocsp_note = note;
            Handshake::Established(est)
        }
        Online::Refused(failure) => {
            if failure.code == VerifyCode::CrlHit {
                if let Some(leaf) = est.chain.first() {
                    close_connections_of(listener, leaf.as_ref(), &failure.detail);
                }
            }
            Handshake::Refused(Box::new(est.refuse(failure).await))
        }
    }
}

/// Closes the open connections whose client presented `leaf`.
fn close_connections_of(listener: &Listener, leaf: &[u8], why: &str) {
    for (id, trace_id, chain) in listener.open_conns.snapshot() {
        if chain.first().is_some_and(|c| c.as_ref() == leaf) && listener.open_conns.close(id) {
            tracing::warn!(
                listener = %listener.name(),
                conn_trace_id = %trace_id,
                "closing connection: {why}"
            );
        }
    }
}
