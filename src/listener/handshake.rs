//! The TLS handshake of one client connection under one deadline, ending in either an
//! [`Established`] connection or a [`Refused`] one with ALB's failure code and reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::io::close_gently;
use crate::crypto;
use crate::mtls::handoff::{Observed, VerifierReport};
use crate::mtls::status::{self, Failure, VerifyCode};
use crate::tls::hello_tap::{HelloTap, ServerHelloInfo};
use crate::tls::ListenerTls;
use crate::x509::{self, Identity, LeafFacts};

/// A client connection after its TLS handshake.
pub type ClientStream = TlsStream<HelloTap<TcpStream>>;

/// What was negotiated, in the names ALB writes.
#[derive(Debug, Clone, Default)]
pub struct Negotiated {
    pub protocol: Option<&'static str>,
    pub cipher: Option<&'static str>,
    pub group: Option<String>,
}

impl Negotiated {
    /// From certgate's own ServerHello: all that is known of a handshake that failed.
    fn from_hello(h: Option<&ServerHelloInfo>) -> Negotiated {
        h.map(|h| Negotiated {
            protocol: Some(crypto::protocol_name(h.version)),
            cipher: Some(crypto::cipher_name(h.suite)),
            group: h.group.map(crypto::group_name),
        })
        .unwrap_or_default()
    }
}

/// A connection whose handshake completed: the client is admitted.
pub struct Established {
    /// Boxed, and never moved again: a TLS connection's state is large, and every async
    /// function that took it by value would carry it in its own future for the connection's
    /// whole life (and copy it on every move).
    pub stream: Box<ClientStream>,
    pub negotiated: Negotiated,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    /// The client's chain, leaf first (empty in off mode): as presented in passthrough, the
    /// leaf and the intermediates of the verified path in verify mode (see `chain::kept_of`).
    pub chain: Arc<[CertificateDer<'static>]>,
    pub leaf: Option<LeafFacts>,
    /// Who the client is, by the listener's `[listener.client_identity]` (set after the
    /// handshake, see `connection::identify`).
    pub identity: Identity,
    /// The trust store that judged the client, when one did (see `VerifierReport`).
    pub trust_store_version: Option<String>,
    pub latency: Duration,
    /// Why the OCSP step admitted the client without an answer (soft_fail), for the log.
    pub ocsp_note: Option<String>,
}

impl Established {
    /// ALPN chose HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.alpn.as_deref() == Some("h2")
    }

    /// Refuses a client after its handshake (the OCSP step): close_notify, then a refusal like
    /// any other.
    pub async fn refuse(mut self: Box<Self>, failure: Failure) -> Refused {
        use tokio::io::AsyncWriteExt;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
        Refused {
            failure,
            negotiated: self.negotiated.clone(),
            leaf: self.leaf.take(),
            trust_store_version: self.trust_store_version.take(),
            closing: None,
        }
    }
}

/// A connection whose handshake did not complete.
pub struct Refused {
    pub failure: Failure,
    pub negotiated: Negotiated,
    /// The leaf's facts when the client presented one that could be read.
    pub leaf: Option<LeafFacts>,
    /// The trust store that judged the client, when one did.
    pub trust_store_version: Option<String>,
    /// The socket, when the client is still there to read the alert.
    closing: Option<HelloTap<TcpStream>>,
}

impl Refused {
    /// A connection refused before any TLS work.
    pub fn before_tls(failure: Failure) -> Refused {
        Refused {
            failure,
            negotiated: Negotiated::default(),
            leaf: None,
            trust_store_version: None,
            closing: None,
        }
    }

    /// Lets the client read its alert, then closes (bounded in time and bytes).
    pub async fn close(self) {
        if let Some(io) = self.closing {
            // Boxed, like the handshake: only refused connections need this state.
            Box::pin(close_gently(io)).await;
        }
    }
}

/// How a handshake ended. Both outcomes are boxed: only one of them lives on, and the
/// connection task should be no wider than the one it keeps.
pub enum Handshake {
    Established(Box<Established>),
    Refused(Box<Refused>),
}

/// Runs the handshake with `tls` on `stream`, for at most `deadline`.
pub async fn handshake(stream: TcpStream, tls: &ListenerTls, deadline: Duration) -> Handshake {
    let started = Instant::now();
    let (stream, hello) = HelloTap::new(stream);
    let accept = TlsAcceptor::from(tls.server_config())
        .accept(stream)
        .into_fallible();
    let (result, report) = Observed::new(tokio::time::timeout(deadline, accept)).await;
    let refused = |failure: Failure, closing| Refused {
        failure,
        negotiated: Negotiated::from_hello(hello.get()),
        leaf: report.leaf.clone(),
        trust_store_version: report.trust_store_version.clone(),
        closing,
    };
    match result {
        Err(_) => Handshake::Refused(Box::new(refused(
            report
                .failure
                .clone()
                .unwrap_or_else(|| timed_out(deadline)),
            None,
        ))),
        Ok(Err((e, io))) => Handshake::Refused(Box::new(refused(
            report
                .failure
                .clone()
                .unwrap_or_else(|| status::from_handshake_error(&e)),
            Some(io),
        ))),
        Ok(Ok(stream)) => Handshake::Established(Box::new(established(stream, report, started))),
    }
}

fn timed_out(deadline: Duration) -> Failure {
    Failure::new(
        VerifyCode::Unmapped,
        format!("TLS handshake not completed within {}s", deadline.as_secs()),
    )
}

fn established(stream: ClientStream, report: VerifierReport, started: Instant) -> Established {
    let conn = stream.get_ref().1;
    let chain = kept_chain(
        conn.peer_certificates().unwrap_or(&[]),
        report.kept.as_deref(),
    );
    let negotiated = Negotiated {
        protocol: Some(
            conn.protocol_version()
                .map_or("unknown", crypto::protocol_name),
        ),
        cipher: Some(
            conn.negotiated_cipher_suite()
                .map_or("unknown", |s| crypto::cipher_name(s.suite())),
        ),
        group: conn
            .negotiated_key_exchange_group()
            .map(|g| crypto::group_name(g.name())),
    };
    // The verifier saw the leaf; read it here only if it could not (never in practice).
    let leaf = report
        .leaf
        .or_else(|| chain.first().and_then(|c| x509::leaf_facts(c).ok()));
    let trust_store_version = report.trust_store_version;
    Established {
        negotiated,
        sni: conn.server_name().map(str::to_string),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        chain,
        leaf,
        identity: Identity::NotTaken,
        trust_store_version,
        latency: started.elapsed(),
        stream: Box::new(stream),
        ocsp_note: None,
    }
}

/// The leaf and the intermediates at `kept` (indices after the leaf), or the whole chain.
fn kept_chain(
    presented: &[CertificateDer<'static>],
    kept: Option<&[usize]>,
) -> Arc<[CertificateDer<'static>]> {
    let (Some(kept), Some((leaf, intermediates))) = (kept, presented.split_first()) else {
        return presented.into();
    };
    std::iter::once(leaf)
        .chain(kept.iter().filter_map(|&i| intermediates.get(i)))
        .cloned()
        .collect()
}
