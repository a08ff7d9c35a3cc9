//! In-service upgrade, rollback and finish as level-triggered plans
//! (reference §4, "In-service upgrade algorithm").
//!
//! The service keeps two sets of containers while `upgrading`: the old ones
//! (previous launch config) and the new ones. A new container takes the
//! index — so the name, the host and the volumes — of the old one it
//! replaces: Rancher users lost data when upgrades made fresh anonymous
//! volumes, so here anonymous volumes are named per service index
//! ([`anonymous_volume_name`]) and a replacement goes to its predecessor's
//! host (the reconciler asks the scheduler for it).
//!
//! [`next_step`] looks only at the current containers (and the time since
//! the last batch began), so the reconciler
//! ([`super::reconcile`], `upgrade_pass`) calls it on every pass, also
//! after any restart: a batch half done is finished, never started twice.
//! Stop-first stops a batch's old containers and makes their replacements
//! (a new generation, so a new docker name) at once; start-first makes the
//! replacements and stops the old ones once they are ready. A failed
//! replacement is taken out by the reconciler before it asks (its index is
//! batched again, after the interval). [`rollback`] and [`finish`] name the
//! containers the reconciler removes and starts again.

use super::compose::model::UpgradeStrategy;
use super::lifecycle::ContainerState;

/// One container of an upgrading service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Service index.
    pub index: u32,
    /// The container's key in the plans' answers (the reconciler uses its
    /// id: names repeat across generations).
    pub name: String,
    /// State.
    pub state: ContainerState,
    /// Running and healthy (or running without a health check).
    pub ready: bool,
}

impl Unit {
    fn live(&self) -> bool {
        self.state.is_live()
    }
}

/// The next thing an upgrading service needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpgradeStep {
    /// Begin a batch (record its time): make new containers for the
    /// indexes `start` and, stop-first, stop the old containers `stop` at
    /// the same time (start-first stops them once the new ones are ready).
    Begin {
        /// Indexes to make new containers for.
        start: Vec<u32>,
        /// Old containers to stop.
        stop: Vec<String>,
    },
    /// Start-first: these old containers' replacements are ready; stop
    /// them (kept, stopped, until `finishupgrade` or `rollback`).
    StopOld(Vec<String>),
    /// Nothing to do yet.
    Wait(String),
    /// A new container failed: the caller takes failed replacements out
    /// (their indexes are batched again) before it asks.
    Blocked(String),
    /// Every old container is replaced and stopped: `upgraded`.
    Done,
}

fn running(u: &Unit) -> bool {
    matches!(
        u.state,
        ContainerState::Running | ContainerState::Starting | ContainerState::Creating
    )
}

/// Plan the next step of an in-service upgrade. `since_last_batch_ms` is
/// the time since the last [`UpgradeStep::Begin`], `None` before the first.
pub fn next_step(
    strategy: &UpgradeStrategy,
    old: &[Unit],
    new: &[Unit],
    since_last_batch_ms: Option<u64>,
) -> UpgradeStep {
    let new_live: Vec<&Unit> = new.iter().filter(|u| u.live()).collect();
    if let Some(u) = new.iter().find(|u| u.state == ContainerState::Error) {
        return UpgradeStep::Blocked(format!("new container {} failed", u.name));
    }
    // A ready replacement retires its old container.
    let stop: Vec<String> = old
        .iter()
        .filter(|u| running(u))
        .filter(|u| new_live.iter().any(|n| n.index == u.index && n.ready))
        .map(|u| u.name.clone())
        .collect();
    if !stop.is_empty() {
        return UpgradeStep::StopOld(stop);
    }
    if let Some(u) = new_live.iter().find(|u| !u.ready) {
        return UpgradeStep::Wait(format!("waiting for {} to be running and healthy", u.name));
    }
    let has_new = |i: u32| new_live.iter().any(|u| u.index == i);
    let mut todo: Vec<&Unit> = old
        .iter()
        .filter(|u| !matches!(u.state, ContainerState::Removing | ContainerState::Removed))
        .filter(|u| !has_new(u.index))
        .collect();
    if todo.is_empty() {
        let settled = |u: &&Unit| {
            matches!(
                u.state,
                ContainerState::Stopped
                    | ContainerState::Removing
                    | ContainerState::Removed
                    | ContainerState::Error
            )
        };
        return match old.iter().find(|u| !settled(u)) {
            None => UpgradeStep::Done,
            Some(u) => UpgradeStep::Wait(format!("waiting for {} to stop", u.name)),
        };
    }
    if let Some(t) = since_last_batch_ms {
        if t < strategy.interval_millis {
            return UpgradeStep::Wait(format!("next batch in {} ms", strategy.interval_millis - t));
        }
    }
    todo.sort_by_key(|u| u.index);
    todo.truncate(usize::try_from(strategy.batch_size.max(1)).unwrap_or(usize::MAX));
    UpgradeStep::Begin {
        start: todo.iter().map(|u| u.index).collect(),
        stop: if strategy.start_first {
            Vec::new()
        } else {
            todo.iter()
                .filter(|u| running(u))
                .map(|u| u.name.clone())
                .collect()
        },
    }
}

/// What a rollback still has to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollbackPlan {
    /// New containers to remove.
    pub remove_new: Vec<String>,
    /// Old containers to start again.
    pub start_old: Vec<String>,
}

/// Plan a rollback: remove the new containers, start the old ones again
/// (no health waits, as in Rancher). The launch config is restored by the caller.
pub fn rollback(old: &[Unit], new: &[Unit]) -> RollbackPlan {
    RollbackPlan {
        remove_new: new
            .iter()
            .filter(|u| u.live())
            .map(|u| u.name.clone())
            .collect(),
        start_old: old
            .iter()
            .filter(|u| u.state == ContainerState::Stopped)
            .map(|u| u.name.clone())
            .collect(),
    }
}

/// Plan `finishupgrade`: the old containers to remove (empty = done, `active`).
pub fn finish(old: &[Unit]) -> Vec<String> {
    old.iter()
        .filter(|u| u.live())
        .map(|u| u.name.clone())
        .collect()
}

/// One container of a service under a rolling `restart`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restarting {
    /// Container name.
    pub name: String,
    /// Restarted since the action began (`startCount` grew).
    pub restarted: bool,
    /// Running and healthy (or running without a health check).
    pub ready: bool,
}

/// The next step of a rolling restart (`rollingRestartStrategy{batchSize,
/// intervalMillis}`): restart `batch_size` containers at a time, lowest
/// name first, waiting for each batch to be ready and the interval to pass.
/// `Begin.stop` lists the containers to restart; `Done` when all were.
pub fn restart_step(
    batch_size: u32,
    interval_millis: u64,
    members: &[Restarting],
    since_last_batch_ms: Option<u64>,
) -> UpgradeStep {
    if let Some(m) = members.iter().find(|m| m.restarted && !m.ready) {
        return UpgradeStep::Wait(format!("waiting for {} to be running and healthy", m.name));
    }
    let mut todo: Vec<&Restarting> = members.iter().filter(|m| !m.restarted).collect();
    if todo.is_empty() {
        return UpgradeStep::Done;
    }
    if let Some(t) = since_last_batch_ms {
        if t < interval_millis {
            return UpgradeStep::Wait(format!("next batch in {} ms", interval_millis - t));
        }
    }
    todo.sort_by(|a, b| a.name.cmp(&b.name));
    todo.truncate(usize::try_from(batch_size.max(1)).unwrap_or(usize::MAX));
    UpgradeStep::Begin {
        start: Vec::new(),
        stop: todo.iter().map(|m| m.name.clone()).collect(),
    }
}

/// The next scales of a to-service upgrade (`upgrade A B`): while A and B
/// together run more than `final_scale` A shrinks, otherwise B grows, each
/// by at most `batch_size` per step, so the service never drops below what
/// it serves. `None` when done (A at 0, B at `final_scale`); the caller
/// waits for B to be healthy and the interval between steps. Rancher's docs table for A=2, final 5, batch 2:
/// 2/0 → 2/2 → 2/4 → 1/4 → 1/5 → 0/5.
pub fn to_service_step(a: u32, b: u32, final_scale: u32, batch_size: u32) -> Option<(u32, u32)> {
    let batch = batch_size.max(1);
    if a == 0 && b == final_scale {
        return None;
    }
    let total = a.saturating_add(b);
    if b > final_scale {
        return Some((a, final_scale));
    }
    if total > final_scale || b == final_scale {
        let shrink = batch.min(a).min(if b == final_scale {
            a
        } else {
            total - final_scale
        });
        return Some((a - shrink, b));
    }
    Some((a, b + batch.min(final_scale - b)))
}

/// The docker volume name for an anonymous volume (`- /data`) of one
/// service index, so a replacement container mounts the same data.
pub fn anonymous_volume_name(stack: &str, service: &str, index: u32, target: &str) -> String {
    // FNV-1a: a stable short tag that keeps `/a/b` and `/a-b` apart.
    let hash = target.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let slug: String = target
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{stack}-{service}-{index}-{slug}-{:08x}", hash as u32)
}

#[cfg(test)]
#[path = "upgrade_tests.rs"]
mod tests;
