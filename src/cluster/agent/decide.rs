//! What to do with one instance in a converge pass, decided without
//! touching docker or the clock: [`decide`] takes the instance the server
//! wants, the container docker shows for it, what the agent remembers of
//! it (a drain under way, a pull before create) and *now*, and returns one
//! [`Step`]. [`super::converge`] carries the step out through a
//! [`super::runtime::Runtime`] and keeps the memory.
//!
//! The rules, in the order they apply:
//! 1. A container told to stop or go while running first drains when the
//!    instance has a `drainTimeoutMs`: the first look sets the deadline,
//!    later looks wait until it has passed. Never blocking: the next pass
//!    looks again.
//! 2. A create for an instance labelled `io.rancher.container.pull_image:
//!    always` waits for a fresh pull of its image (started in the
//!    background, so other instances are not held up); a failed pull
//!    leaves the instance in `error` with docker's message.
//! 3. Then by wanted state and container:
//!    - `removed`: remove the container, if any, and report `removed`;
//!    - `running`/`stopped` with no container: create (and start) when the
//!      instance is new (no docker id yet, or `requested`/`creating`),
//!      else report it `removed` outside ros;
//!    - `running` with a stopped container: start it while the instance is
//!      on its way up (`requested`…`restarting`), else report it `stopped`
//!      outside ros;
//!    - `running` with a running container: restart it for `restarting`,
//!      else report `running` if the instance says otherwise;
//!    - `stopped` with a running container: stop it; with a stopped one,
//!      report `stopped` if the instance says otherwise.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cluster::protocol::DesiredInstance;

/// Rancher's label asking for a fresh pull before each create.
pub(crate) const LABEL_PULL_IMAGE: &str = "io.rancher.container.pull_image";

/// A managed container as docker shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Actual {
    /// Docker id.
    pub id: String,
    /// True when running.
    pub running: bool,
}

/// Where the pull before an instance's create stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum PullStatus {
    /// No pull begun (or the last one was used up).
    #[default]
    NotStarted,
    /// Pulling in the background.
    Pulling,
    /// Pulled: the create may go ahead.
    Pulled,
    /// The pull failed with this message.
    Failed(String),
}

/// What the agent remembers of one instance between converge passes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// When its container may be stopped, once a drain has begun.
    pub drain_until: Option<Instant>,
    /// The pull before its create.
    pub pull: PullStatus,
}

/// The one thing to do for an instance in this pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing to change, nothing to report.
    #[default]
    Nothing,
    /// Report a state without touching docker.
    Report {
        /// The state reported.
        state: &'static str,
        /// The docker id reported with it.
        external_id: Option<String>,
        /// Why, when docker changed behind ros's back.
        message: Option<&'static str>,
    },
    /// Create and start a container: `creating`, `starting`, `running`.
    CreateAndStart,
    /// Create a container without starting it: `stopped`.
    Create,
    /// Start the existing, stopped container: `starting`, `running`.
    Start {
        /// Docker id.
        id: String,
    },
    /// Restart the running container: `running`.
    Restart {
        /// Docker id.
        id: String,
    },
    /// Stop the running container: `stopping`, `stopped`.
    Stop {
        /// Docker id.
        id: String,
        /// A drain ended here: forget its deadline.
        ends_drain: bool,
    },
    /// Remove the container: `removed`.
    Remove {
        /// Docker id.
        id: String,
        /// A drain ended here: forget its deadline.
        ends_drain: bool,
    },
    /// Begin draining the running container: stop it no earlier than
    /// `until`.
    StartDrain {
        /// The drain deadline.
        until: Instant,
    },
    /// Still draining.
    Draining,
    /// Begin the pull before the create, in the background.
    StartPull,
    /// The pull before the create is still running.
    Pulling,
    /// The pull before the create failed: `error` with this message.
    PullFailed(String),
}

fn report(state: &'static str, id: Option<&str>, message: Option<&'static str>) -> Step {
    Step::Report {
        state,
        external_id: id.map(str::to_string),
        message,
    }
}

/// The step for instance `d` given its container `a`, what the agent
/// remembers of it, and `now`.
pub(crate) fn decide(
    d: &DesiredInstance,
    a: Option<&Actual>,
    progress: &Progress,
    now: Instant,
) -> Step {
    let fresh = d.external_id.is_none() || matches!(d.state.as_str(), "requested" | "creating");
    let stopping = matches!(d.desired_state.as_str(), "removed" | "stopped");
    let mut ends_drain = false;
    if stopping && a.is_some_and(|a| a.running) && d.drain_timeout_ms != 0 {
        match progress.drain_until {
            None => {
                return Step::StartDrain {
                    until: now + Duration::from_millis(d.drain_timeout_ms),
                }
            }
            Some(t) if now < t => return Step::Draining,
            Some(_) => ends_drain = true,
        }
    }
    let creates = a.is_none() && fresh && matches!(d.desired_state.as_str(), "running" | "stopped");
    if creates
        && d.labels
            .get(LABEL_PULL_IMAGE)
            .is_some_and(|v| v == "always")
    {
        match &progress.pull {
            PullStatus::NotStarted => return Step::StartPull,
            PullStatus::Pulling => return Step::Pulling,
            PullStatus::Failed(e) => return Step::PullFailed(e.clone()),
            PullStatus::Pulled => {}
        }
    }
    let pending = matches!(
        d.state.as_str(),
        "requested" | "creating" | "starting" | "restarting"
    );
    match (d.desired_state.as_str(), a) {
        ("removed", Some(a)) => Step::Remove {
            id: a.id.clone(),
            ends_drain,
        },
        ("removed", None) => report("removed", None, None),
        ("running", None) if fresh => Step::CreateAndStart,
        ("stopped", None) if fresh => Step::Create,
        ("running" | "stopped", None) => {
            report("removed", None, Some("container removed outside ros"))
        }
        ("running", Some(a)) if !a.running && pending => Step::Start { id: a.id.clone() },
        ("running", Some(a)) if !a.running && d.state != "stopped" => report(
            "stopped",
            Some(&a.id),
            Some("container stopped outside ros"),
        ),
        ("running", Some(a)) => {
            if d.state == "restarting" {
                Step::Restart { id: a.id.clone() }
            } else if d.state != "running" {
                report("running", Some(&a.id), None)
            } else {
                Step::Nothing
            }
        }
        ("stopped", Some(a)) if a.running => Step::Stop {
            id: a.id.clone(),
            ends_drain,
        },
        ("stopped", Some(a)) if !a.running && d.state != "stopped" => {
            report("stopped", Some(&a.id), None)
        }
        _ => Step::Nothing,
    }
}

/// Labelled containers of this host that no instance wants any more:
/// `(instance id, container)`.
pub(crate) fn orphans<'a>(
    desired: &[DesiredInstance],
    actual: &'a HashMap<String, Actual>,
) -> Vec<(&'a str, &'a Actual)> {
    actual
        .iter()
        .filter(|(inst, _)| !desired.iter().any(|d| &d.id == *inst))
        .map(|(inst, a)| (inst.as_str(), a))
        .collect()
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
