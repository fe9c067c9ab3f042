//! Mutual TLS: what a listener demands of client certificates (its [`Policy`]), the rustls
//! verifier that enforces it, the chain checks, and ALB's `tls_verify_status` codes.

pub mod chain;
pub mod handoff;
mod limits;
pub mod online;
pub mod schemes;
pub mod status;
pub mod verifier;

use std::sync::Arc;

use crate::config::ChainLimits;
use crate::truststore::TrustStore;
pub use chain::verify_chain;
pub use status::{Failure, VerifyCode};

/// What a listener checks; shared by all its connections.
#[derive(Debug)]
pub enum Policy {
    /// Any chain is accepted; only possession of the key is proven.
    Passthrough { limits: ChainLimits },
    /// The chain must verify against `store`.
    Verify {
        store: Arc<TrustStore>,
        ignore_expiry: bool,
        advertise_ca_names: bool,
        /// False: a client may send no certificate at all (`fail_if_no_peer_cert = false`);
        /// one it does send must still verify.
        require_certificate: bool,
    },
}
