//! Liveness, reported by its own task: when the sync loop has not reached
//! the server for two intervals (busy converging: an image pull, a slow
//! stop), a short sync with no reports and no wait tells the server this
//! host is alive, so a long converge does not read as a dead host.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::client::Client;
use crate::cluster::protocol::{SyncRequest, SyncResponse};

/// The client of the last sync and when it reached the server.
type Last = Arc<Mutex<Option<(Client, Instant)>>>;

/// The handle the sync loop keeps on the heartbeat task.
#[derive(Clone, Default)]
pub(crate) struct Heartbeat {
    last: Last,
}

impl Heartbeat {
    /// Start beating every `every` (nothing is sent before the first
    /// [`Heartbeat::synced`]).
    pub(crate) fn start(every: Duration) -> Heartbeat {
        let h = Heartbeat::default();
        tokio::spawn(beat(h.last.clone(), every));
        h
    }

    /// The sync loop reaches the server now, through `client`.
    pub(crate) fn synced(&self, client: &Client) {
        if let Ok(mut h) = self.last.lock() {
            *h = Some((client.clone(), Instant::now()));
        }
    }

    /// The credentials were rejected: beat no more until the next sync.
    pub(crate) fn stop(&self) {
        if let Ok(mut h) = self.last.lock() {
            *h = None;
        }
    }
}

async fn beat(state: Last, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let due = state
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .filter(|(_, last)| last.elapsed() >= every * 2);
        let Some((client, _)) = due else { continue };
        let req = SyncRequest {
            wait_ms: 0,
            ..SyncRequest::default()
        };
        let sent = tokio::task::spawn_blocking(move || {
            client.call::<SyncResponse>("POST", "/v1/agent/sync", Some(&req))
        })
        .await;
        match sent {
            Ok(Ok(_)) => {
                if let Ok(mut s) = state.lock() {
                    if let Some((_, last)) = s.as_mut() {
                        *last = Instant::now();
                    }
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "heartbeat failed"),
            Err(_) => {}
        }
    }
}
