//! The reconcile driver: under the write lock, snapshot the store, run the
//! pure plan ([`reconcile`]) with the clock's time, commit its changes in
//! one transaction and wake the agents of the hosts they touch. Runs on
//! every kick (an API write, an agent report, a host state change) and at
//! least every tick.

use std::sync::Arc;
use std::time::Duration;

use super::App;
use crate::cluster::model::{now_ms, Kind, Resource};
use crate::cluster::plan::reconcile::{reconcile, Changes, Snapshot};
use crate::cluster::store::{Scope, Store, StoreError};

/// Run passes forever: on every kick and at least every `tick`.
pub fn spawn(app: Arc<App>, tick: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = app.kick.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
            let _g = app.write.lock().await;
            if let Err(e) = pass(&app) {
                tracing::warn!(error = %e, "reconcile pass");
            }
        }
    });
}

fn live(store: &dyn Store, kind: Kind) -> Result<Vec<Resource>, StoreError> {
    Ok(store
        .list(kind, Scope::All)?
        .into_iter()
        .filter(|r| !r.is_removed())
        .collect())
}

/// Read what a pass needs. Call under the write lock (new containers are
/// numbered from the container sequence read here).
pub fn snapshot(store: &dyn Store) -> Result<Snapshot, StoreError> {
    Ok(Snapshot {
        projects: live(store, Kind::Project)?,
        hosts: store.list(Kind::Host, Scope::All)?,
        stacks: live(store, Kind::Stack)?,
        services: live(store, Kind::Service)?,
        containers: live(store, Kind::Container)?,
        next_container_id: store.next_id(Kind::Container)?,
    })
}

/// One pass: true when it changed desired state. Hold `app.write`.
pub fn pass(app: &App) -> Result<bool, StoreError> {
    let snap = snapshot(app.store.as_ref())?;
    if snap.services.is_empty() && snap.stacks.is_empty() {
        return Ok(false);
    }
    let changes: Changes = reconcile(&snap, now_ms());
    if changes.is_empty() {
        return Ok(false);
    }
    app.store.commit(&changes.rows)?;
    app.note_view(&changes.rows);
    app.wake.hosts(changes.hosts.iter().copied());
    Ok(true)
}
