//! One converge pass: list this host's managed containers, [`decide`] a
//! step for every desired instance, carry the steps out through a
//! [`Runtime`] (up to [`PARALLEL`] instances at once), remove orphans, and
//! return the final reports. Intermediate states (`creating`, `starting`,
//! `stopping`) are sent at once through a callback, so the server sees a
//! long pull-and-start as it happens.
//!
//! [`Local`] is what the agent remembers between passes: drain deadlines
//! and pulls in flight. It turns its memory into [`Progress`] for
//! `decide`, and updates itself from the step decided.

use std::collections::HashMap;
use std::time::Instant;

use futures_util::StreamExt;

use super::decide::{decide, orphans, Actual, Progress, PullStatus, Step};
use super::docker::DockerError;
use super::runtime::Runtime;
use crate::cluster::protocol::{DesiredInstance, Report};

/// When each draining container may be stopped, by instance id.
pub(crate) type Drains = HashMap<String, Instant>;

/// Pulls in flight or finished for `pull_image: always` creates, by
/// instance id (`None` while running).
pub(crate) type Pulls =
    std::sync::Arc<std::sync::Mutex<HashMap<String, Option<Result<(), String>>>>>;

/// What the agent remembers between converge passes.
#[derive(Default)]
pub(crate) struct Local {
    /// Drain deadlines.
    pub drains: Drains,
    /// Image pulls before create.
    pub pulls: Pulls,
}

impl Local {
    /// Forget what concerns instances no longer assigned; a drain ends
    /// early when the instance is wanted running again.
    fn prune(&mut self, desired: &[DesiredInstance]) {
        if let Ok(mut p) = self.pulls.lock() {
            p.retain(|id, _| desired.iter().any(|d| &d.id == id));
        }
        self.drains.retain(|id, _| {
            desired
                .iter()
                .any(|d| &d.id == id && d.desired_state != "running")
        });
    }

    /// What is remembered of instance `id`, as `decide` reads it.
    fn progress(&self, id: &str) -> Progress {
        let pull = match self.pulls.lock() {
            Err(_) => PullStatus::Failed("agent pull state poisoned".into()),
            Ok(m) => match m.get(id) {
                None => PullStatus::NotStarted,
                Some(None) => PullStatus::Pulling,
                Some(Some(Ok(()))) => PullStatus::Pulled,
                Some(Some(Err(e))) => PullStatus::Failed(e.clone()),
            },
        };
        Progress {
            drain_until: self.drains.get(id).copied(),
            pull,
        }
    }

    /// Decide the step for `d` at `now`, and remember what it begins or
    /// ends: a drain deadline, a background pull (through `rt`).
    pub(crate) fn plan<R: Runtime>(
        &mut self,
        rt: &R,
        d: &DesiredInstance,
        a: Option<&Actual>,
        now: Instant,
    ) -> Step {
        let step = decide(d, a, &self.progress(&d.id), now);
        match &step {
            Step::StartDrain { until } => {
                tracing::info!(instance = %d.id, ms = d.drain_timeout_ms, "draining before stop");
                self.drains.insert(d.id.clone(), *until);
            }
            Step::Stop {
                ends_drain: true, ..
            }
            | Step::Remove {
                ends_drain: true, ..
            } => {
                self.drains.remove(&d.id);
            }
            Step::StartPull => self.start_pull(rt, d),
            // A pull result is used once: the next create pulls again.
            Step::CreateAndStart | Step::Create | Step::PullFailed(_) => {
                if let Ok(mut m) = self.pulls.lock() {
                    m.remove(&d.id);
                }
            }
            _ => {}
        }
        step
    }

    /// Pull the image of `d` in the background, never holding up the
    /// other containers; the result waits in `pulls` for the next pass.
    fn start_pull<R: Runtime>(&self, rt: &R, d: &DesiredInstance) {
        let Ok(mut m) = self.pulls.lock() else {
            return;
        };
        m.insert(d.id.clone(), None);
        let (rt, pulls, id, image) = (
            rt.clone(),
            self.pulls.clone(),
            d.id.clone(),
            d.image.clone(),
        );
        tokio::spawn(async move {
            let r = rt.pull(&image).await;
            if let Ok(mut m) = pulls.lock() {
                if m.contains_key(&id) {
                    m.insert(id, Some(r));
                }
            }
        });
    }
}

fn report(d: &DesiredInstance, state: &str, id: Option<&str>, message: Option<String>) -> Report {
    Report {
        instance_id: d.id.clone(),
        state: state.into(),
        external_id: id.map(str::to_string),
        message,
        ..Report::default()
    }
}

/// Instances converged at once on one host.
pub(crate) const PARALLEL: usize = 8;

/// Create (if needed) and start; intermediate states go to `send` at once.
async fn run<R: Runtime>(
    rt: &R,
    d: &DesiredInstance,
    existing: Option<&str>,
    send: &(dyn Fn(Vec<Report>) + Sync),
) -> Result<String, DockerError> {
    let id = match existing {
        Some(id) => id.to_string(),
        None => {
            send(vec![report(d, "creating", None, None)]);
            rt.create(d).await?
        }
    };
    send(vec![report(d, "starting", Some(&id), None)]);
    rt.start(&id).await?;
    Ok(id)
}

/// Carry out `step` for `d`; its final report, if any.
async fn execute<R: Runtime>(
    rt: &R,
    d: &DesiredInstance,
    step: Step,
    send: &(dyn Fn(Vec<Report>) + Sync),
) -> Option<Report> {
    let err = |e: DockerError| report(d, "error", None, Some(e.to_string()));
    let done = |r: Result<String, DockerError>, state: &str| match r {
        Ok(id) => report(d, state, Some(&id), None),
        Err(e) => err(e),
    };
    match step {
        Step::Nothing
        | Step::StartDrain { .. }
        | Step::Draining
        | Step::StartPull
        | Step::Pulling => None,
        Step::Report {
            state,
            external_id,
            message,
        } => Some(report(
            d,
            state,
            external_id.as_deref(),
            message.map(str::to_string),
        )),
        Step::PullFailed(e) => Some(report(d, "error", None, Some(e))),
        Step::CreateAndStart => Some(done(run(rt, d, None, send).await, "running")),
        Step::Create => Some(done(rt.create(d).await, "stopped")),
        Step::Start { id } => Some(done(run(rt, d, Some(&id), send).await, "running")),
        Step::Restart { id } => Some(done(rt.restart(&id).await.map(|()| id), "running")),
        Step::Stop { id, .. } => {
            send(vec![report(d, "stopping", Some(&id), None)]);
            Some(done(rt.stop(&id).await.map(|()| id), "stopped"))
        }
        Step::Remove { id, .. } => Some(match rt.remove(&id).await {
            Ok(()) => report(d, "removed", None, None),
            Err(e) => err(e),
        }),
    }
}

/// One converge pass: returns the final reports (intermediate ones are
/// already sent through `send`).
pub(crate) async fn converge<R: Runtime>(
    rt: &R,
    host: &str,
    desired: &[DesiredInstance],
    local: &mut Local,
    send: &(dyn Fn(Vec<Report>) + Sync),
) -> Result<Vec<Report>, DockerError> {
    let actual = rt.managed(host).await?;
    local.prune(desired);
    let now = Instant::now();
    let mut out = Vec::new();
    let mut jobs = Vec::new();
    for d in desired {
        match local.plan(rt, d, actual.get(&d.id), now) {
            // Waiting: nothing to report, the next pass looks again.
            Step::StartDrain { .. } | Step::Draining | Step::StartPull | Step::Pulling => {}
            Step::PullFailed(e) => out.push(report(d, "error", None, Some(e))),
            step => jobs.push((d, step)),
        }
    }
    // The docker work of different instances runs side by side (each
    // instance's own steps stay in order): a host converging hundreds of
    // containers is not held to one create/start at a time.
    let done: Vec<Option<Report>> =
        futures_util::stream::iter(jobs.into_iter().map(|(d, step)| execute(rt, d, step, send)))
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
    out.extend(done.into_iter().flatten());
    for (inst, a) in orphans(desired, &actual) {
        tracing::info!(instance = %inst, "removing orphan container");
        if let Err(e) = rt.remove(&a.id).await {
            tracing::warn!(instance = %inst, error = %e, "cannot remove orphan");
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "converge_tests.rs"]
mod tests;
