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
    Ok(Snapshot::new(
        live(store, Kind::Project)?,
        store.list(Kind::Host, Scope::All)?,
        live(store, Kind::Stack)?,
        live(store, Kind::Service)?,
        live(store, Kind::Container)?,
        store.next_id(Kind::Container)?,
    ))
}

/// The snapshot a pass plans on: the one kept from the last pass brought
/// up to date with the rows committed since (only those are read and
/// decoded), or a full read the first time and after a failed pass. The
/// revision is read before the rows, so a commit racing the read is
/// applied again next time (applying a row is idempotent), never missed.
fn current(
    store: &dyn Store,
    kept: Option<(u64, Snapshot)>,
) -> Result<(u64, Snapshot), StoreError> {
    let (rev, mut snap) = match kept {
        Some((rev, mut snap)) => {
            let (at, rows) = store.changed_since(rev)?;
            snap.apply(rows);
            (at, snap)
        }
        None => {
            let rev = store.revision()?;
            (rev, snapshot(store)?)
        }
    };
    snap.next_container_id = store.next_id(Kind::Container)?;
    Ok((rev, snap))
}

/// One pass: true when it changed desired state. Hold `app.write`.
pub fn pass(app: &App) -> Result<bool, StoreError> {
    let mut kept = app.snapshot.lock().map_err(|_| StoreError::Poisoned)?;
    let (rev, snap) = current(app.store.as_ref(), kept.take())?;
    let changes: Changes = if snap.services.is_empty() && snap.stacks.is_empty() {
        Changes::default()
    } else {
        reconcile(&snap, now_ms())
    };
    // The pass's own rows come back through `changed_since` next time.
    *kept = Some((rev, snap));
    if changes.is_empty() {
        return Ok(false);
    }
    app.store.commit(&changes.rows)?;
    app.note_view(&changes.rows);
    app.wake.hosts(changes.hosts.iter().copied());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::store::SqliteStore;

    fn ct(id: u64, state: &str) -> Resource {
        let mut c = Resource::new(Kind::Container, id, 5, state);
        c.host = 1;
        c.set("serviceId", "1s1");
        c.set("dockerName", format!("r-c{id}"));
        c
    }

    /// The kept snapshot, brought up to date, is exactly a fresh read —
    /// through updates, removals, rows arriving out of id order, and
    /// several commits between passes.
    #[test]
    fn kept_snapshot_matches_a_full_read() {
        let store = SqliteStore::memory().unwrap();
        let mut svc = Resource::new(Kind::Service, 1, 5, "active");
        svc.set("name", "web");
        store
            .commit(&[
                Resource::new(Kind::Project, 5, 0, "active"),
                Resource::new(Kind::Host, 1, 5, "active"),
                svc.clone(),
                ct(1, "running"),
                ct(2, "running"),
                ct(4, "starting"),
            ])
            .unwrap();
        let kept = current(&store, None).unwrap();
        assert_eq!(kept.1, snapshot(&store).unwrap());
        let mut c2 = ct(2, "running");
        c2.set("healthState", "unhealthy");
        let mut c4 = ct(4, "removed");
        c4.set("desiredState", "removed");
        let mut host = Resource::new(Kind::Host, 1, 5, "active");
        host.set("agentState", "disconnected");
        svc.state = "upgrading".into();
        store.commit(&[c2, ct(5, "requested")]).unwrap();
        store.commit(&[c4, ct(3, "requested"), host, svc]).unwrap();
        let (rev, snap) = current(&store, Some(kept)).unwrap();
        assert_eq!(rev, store.revision().unwrap());
        assert_eq!(snap, snapshot(&store).unwrap());
        let ids: Vec<u64> = snap.containers().iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 5]);
        // Nothing committed since: the same snapshot, nothing read.
        let again = current(&store, Some((rev, snap.clone()))).unwrap();
        assert_eq!(again, (rev, snap));
    }
}
