//! The verify-mode connections of a listener that are open now, each with the chain its
//! client presented, so that a trust-store reload can re-check them and close the revoked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::pki_types::CertificateDer;
use tokio::sync::watch;

/// The verify-mode connections of one listener that are open now, with the chain each client
/// presented, so that a trust-store reload can re-check them.
///
/// Every verify-mode handshake registers and every close unregisters, from whichever worker
/// thread runs the connection, so the map is split into shards by id: workers rarely meet on
/// the same lock.
#[derive(Debug, Default)]
pub struct OpenConns {
    next_id: AtomicU64,
    shards: [Mutex<HashMap<u64, OpenConn>>; SHARDS],
}

const SHARDS: usize = 16;

#[derive(Debug)]
struct OpenConn {
    trace_id: String,
    chain: Arc<[CertificateDer<'static>]>,
    close: watch::Sender<bool>,
}

impl OpenConns {
    /// Registers a connection until the returned guard is dropped; the receiver turns true
    /// when the connection should close.
    pub fn register(
        self: &Arc<Self>,
        trace_id: &str,
        chain: Arc<[CertificateDer<'static>]>,
    ) -> (Registration, watch::Receiver<bool>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (close, closing) = watch::channel(false);
        let conn = OpenConn {
            trace_id: trace_id.to_string(),
            chain,
            close,
        };
        self.shard(id).insert(id, conn);
        (
            Registration {
                conns: self.clone(),
                id,
            },
            closing,
        )
    }

    /// The shard holding `id`. A poisoned lock only means a panic elsewhere; the map itself
    /// stays consistent.
    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, HashMap<u64, OpenConn>> {
        self.shards[(id % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The open connections, copied out so that checking them holds no lock.
    pub fn snapshot(&self) -> Vec<(u64, String, Arc<[CertificateDer<'static>]>)> {
        (0..SHARDS as u64)
            .flat_map(|i| {
                self.shard(i)
                    .iter()
                    .map(|(id, c)| (*id, c.trace_id.clone(), c.chain.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Asks connection `id` to close; false if it is gone or was already asked.
    pub fn close(&self, id: u64) -> bool {
        self.shard(id)
            .get(&id)
            .is_some_and(|c| !c.close.send_replace(true))
    }

    /// How many connections are registered now.
    pub fn len(&self) -> usize {
        (0..SHARDS as u64).map(|i| self.shard(i).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps a connection in `OpenConns` for as long as it lives.
pub struct Registration {
    conns: Arc<OpenConns>,
    pub id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.conns.shard(self.id).remove(&self.id);
    }
}
