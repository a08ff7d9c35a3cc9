//! Service, stack and container state machines with Rancher's exact state
//! and action names (reference §1.4).
//!
//! Every action moves an object into a transitional state at once
//! ([`Transition::transitioning`]); the reconciler finishes the work and
//! then stores [`Transition::done`]. [`actions`] is what the API lists under
//! `actions` for an object in a state; [`apply`] refuses everything else with
//! an `InvalidState` error, so a client can never drive an object into a
//! state the reconciler does not know how to leave.

use crate::cluster::model::Transition as ModelTransition;
use std::fmt;
use std::str::FromStr;

/// The state of a service or a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Just created, nothing done yet.
    Requested,
    /// Being registered (services).
    Registering,
    /// Created, not running.
    Inactive,
    /// Starting its containers.
    Activating,
    /// Running at its scale.
    Active,
    /// Stopping its containers.
    Deactivating,
    /// Replacing containers with the new launch config.
    Upgrading,
    /// All containers replaced; old ones kept stopped until finish or rollback.
    Upgraded,
    /// Removing the old containers.
    FinishingUpgrade,
    /// Stopping an upgrade in progress.
    CancelingUpgrade,
    /// An upgrade stopped half way; continue or roll back.
    CanceledUpgrade,
    /// Bringing the old containers back.
    RollingBack,
    /// Rolling restart.
    Restarting,
    /// Stack only: failing.
    Erroring,
    /// Stack only: failed.
    Error,
    /// Being removed.
    Removing,
    /// Gone (kept until purged).
    Removed,
}

/// Every service/stack state, in declaration order.
pub const ALL_STATES: &[State] = &[
    State::Requested,
    State::Registering,
    State::Inactive,
    State::Activating,
    State::Active,
    State::Deactivating,
    State::Upgrading,
    State::Upgraded,
    State::FinishingUpgrade,
    State::CancelingUpgrade,
    State::CanceledUpgrade,
    State::RollingBack,
    State::Restarting,
    State::Erroring,
    State::Error,
    State::Removing,
    State::Removed,
];

impl State {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Requested => "requested",
            State::Registering => "registering",
            State::Inactive => "inactive",
            State::Activating => "activating",
            State::Active => "active",
            State::Deactivating => "deactivating",
            State::Upgrading => "upgrading",
            State::Upgraded => "upgraded",
            State::FinishingUpgrade => "finishing-upgrade",
            State::CancelingUpgrade => "canceling-upgrade",
            State::CanceledUpgrade => "canceled-upgrade",
            State::RollingBack => "rolling-back",
            State::Restarting => "restarting",
            State::Erroring => "erroring",
            State::Error => "error",
            State::Removing => "removing",
            State::Removed => "removed",
        }
    }

    /// True while a process is running on the object (`transitioning: yes`).
    pub fn is_transitioning(self) -> bool {
        complete(self).is_some()
    }
}

/// Where a transitional state ends when its process succeeds.
pub fn complete(state: State) -> Option<State> {
    Some(match state {
        State::Requested | State::Registering => State::Inactive,
        State::Activating | State::FinishingUpgrade | State::RollingBack | State::Restarting => {
            State::Active
        }
        State::Deactivating => State::Inactive,
        State::Upgrading => State::Upgraded,
        State::CancelingUpgrade => State::CanceledUpgrade,
        State::Erroring => State::Error,
        State::Removing => State::Removed,
        State::Inactive
        | State::Active
        | State::Upgraded
        | State::CanceledUpgrade
        | State::Error
        | State::Removed => return None,
    })
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<State, UnknownName> {
        ALL_STATES
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

/// An action on a service or a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Start the service's containers.
    Activate,
    /// Stop them.
    Deactivate,
    /// Start an in-service upgrade.
    Upgrade,
    /// Remove the old containers of an upgrade.
    FinishUpgrade,
    /// Stop an upgrade half way.
    CancelUpgrade,
    /// Resume a canceled upgrade.
    ContinueUpgrade,
    /// Bring the old containers back.
    Rollback,
    /// Rolling restart.
    Restart,
    /// Remove the service and its containers.
    Remove,
    /// Stack: activate every service.
    ActivateServices,
    /// Stack: deactivate every service.
    DeactivateServices,
}

/// Every action, in the order the API lists them.
pub const ALL_ACTIONS: &[Action] = &[
    Action::Activate,
    Action::Deactivate,
    Action::Upgrade,
    Action::FinishUpgrade,
    Action::CancelUpgrade,
    Action::ContinueUpgrade,
    Action::Rollback,
    Action::Restart,
    Action::Remove,
    Action::ActivateServices,
    Action::DeactivateServices,
];

impl Action {
    /// The API spelling (`?action=finishupgrade`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Activate => "activate",
            Action::Deactivate => "deactivate",
            Action::Upgrade => "upgrade",
            Action::FinishUpgrade => "finishupgrade",
            Action::CancelUpgrade => "cancelupgrade",
            Action::ContinueUpgrade => "continueupgrade",
            Action::Rollback => "rollback",
            Action::Restart => "restart",
            Action::Remove => "remove",
            Action::ActivateServices => "activateservices",
            Action::DeactivateServices => "deactivateservices",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Action, UnknownName> {
        ALL_ACTIONS
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

/// Which state machine: services and stacks share states, not rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A service (also load balancer, dns and external services).
    Service,
    /// A stack.
    Stack,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Stack => "stack",
        }
    }
}

/// A state or action name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

/// Errors of the state machines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// The action is not valid in the object's state (API code `InvalidState`).
    #[error("{kind} in state {state} cannot {action}")]
    InvalidState {
        /// `service` or `stack`.
        kind: &'static str,
        /// The current state.
        state: State,
        /// The refused action.
        action: Action,
    },
}

/// The result of an accepted action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state stored at once.
    pub transitioning: State,
    /// The state stored when the reconciler finished the work.
    pub done: State,
}

use Action as A;
use State as S;

/// The transition table: (action, from states, transitioning, done).
const SERVICE_RULES: &[(Action, &[State], State, State)] = &[
    (A::Activate, &[S::Inactive], S::Activating, S::Active),
    (
        A::Deactivate,
        &[S::Active, S::Activating, S::Restarting],
        S::Deactivating,
        S::Inactive,
    ),
    (
        A::Upgrade,
        &[S::Active, S::Activating, S::Inactive],
        S::Upgrading,
        S::Upgraded,
    ),
    (
        A::FinishUpgrade,
        &[S::Upgraded],
        S::FinishingUpgrade,
        S::Active,
    ),
    (
        A::CancelUpgrade,
        &[S::Upgrading, S::FinishingUpgrade],
        S::CancelingUpgrade,
        S::CanceledUpgrade,
    ),
    (
        A::ContinueUpgrade,
        &[S::CanceledUpgrade],
        S::Upgrading,
        S::Upgraded,
    ),
    (
        A::Rollback,
        &[S::Upgrading, S::Upgraded, S::CanceledUpgrade],
        S::RollingBack,
        S::Active,
    ),
    (A::Restart, &[S::Active], S::Restarting, S::Active),
];

const STACK_RULES: &[(Action, &[State], State, State)] = &[
    (A::ActivateServices, &[S::Active], S::Active, S::Active),
    (A::DeactivateServices, &[S::Active], S::Active, S::Active),
    (
        A::Upgrade,
        &[S::Active, S::CanceledUpgrade],
        S::Upgrading,
        S::Upgraded,
    ),
    (
        A::FinishUpgrade,
        &[S::Upgraded],
        S::FinishingUpgrade,
        S::Active,
    ),
    (
        A::CancelUpgrade,
        &[S::Upgrading, S::FinishingUpgrade],
        S::CancelingUpgrade,
        S::CanceledUpgrade,
    ),
    (
        A::Rollback,
        &[S::Upgrading, S::Upgraded, S::CanceledUpgrade],
        S::RollingBack,
        S::Active,
    ),
];

fn rules(kind: Kind) -> &'static [(Action, &'static [State], State, State)] {
    match kind {
        Kind::Service => SERVICE_RULES,
        Kind::Stack => STACK_RULES,
    }
}

/// `remove` works from every state but the removal states themselves: every
/// transitional state needs an exit (Rancher's stuck upgrades, #4240).
fn removable(state: State) -> bool {
    !matches!(state, S::Removing | S::Removed)
}

/// The actions valid in `state`, in API order (the resource's `actions` map).
pub fn actions(kind: Kind, state: State) -> Vec<Action> {
    ALL_ACTIONS
        .iter()
        .copied()
        .filter(|a| apply(kind, state, *a).is_ok())
        .collect()
}

/// Apply `action` to an object in `state`.
pub fn apply(kind: Kind, state: State, action: Action) -> Result<Transition, LifecycleError> {
    if action == Action::Remove && removable(state) {
        return Ok(Transition {
            transitioning: S::Removing,
            done: S::Removed,
        });
    }
    rules(kind)
        .iter()
        .find(|(a, from, _, _)| *a == action && from.contains(&state))
        .map(|(_, _, transitioning, done)| Transition {
            transitioning: *transitioning,
            done: *done,
        })
        .ok_or(LifecycleError::InvalidState {
            kind: kind.name(),
            state,
            action,
        })
}

/// The state a new service is created in, and where it ends up: with
/// `start_on_create` it is `activating` and goes on to `active`; without,
/// it rests `inactive`.
pub fn on_create(start_on_create: bool) -> Transition {
    if start_on_create {
        Transition {
            transitioning: S::Activating,
            done: S::Active,
        }
    } else {
        Transition {
            transitioning: S::Inactive,
            done: S::Inactive,
        }
    }
}

/// The state of one container (instance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContainerState {
    /// Planned, not yet on a host.
    Requested,
    /// Being created by the agent.
    Creating,
    /// Being started.
    Starting,
    /// Running.
    Running,
    /// Being stopped.
    Stopping,
    /// Stopped.
    Stopped,
    /// Being removed.
    Removing,
    /// Gone.
    Removed,
    /// Failed (scheduling or creation); `transitioningMessage` says why.
    Error,
}

/// Every container state.
pub const ALL_CONTAINER_STATES: &[ContainerState] = &[
    ContainerState::Requested,
    ContainerState::Creating,
    ContainerState::Starting,
    ContainerState::Running,
    ContainerState::Stopping,
    ContainerState::Stopped,
    ContainerState::Removing,
    ContainerState::Removed,
    ContainerState::Error,
];

impl ContainerState {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Requested => "requested",
            ContainerState::Creating => "creating",
            ContainerState::Starting => "starting",
            ContainerState::Running => "running",
            ContainerState::Stopping => "stopping",
            ContainerState::Stopped => "stopped",
            ContainerState::Removing => "removing",
            ContainerState::Removed => "removed",
            ContainerState::Error => "error",
        }
    }

    /// True for states the agent is still working on.
    pub fn is_transitioning(self) -> bool {
        matches!(
            self,
            ContainerState::Requested
                | ContainerState::Creating
                | ContainerState::Starting
                | ContainerState::Stopping
                | ContainerState::Removing
        )
    }

    /// True when the container counts against its service's scale.
    pub fn is_live(self) -> bool {
        !matches!(
            self,
            ContainerState::Removing | ContainerState::Removed | ContainerState::Error
        )
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContainerState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<ContainerState, UnknownName> {
        ALL_CONTAINER_STATES
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

/// The actions the API offers on a container, the states each is offered
/// in and the state it enters at once (`restarting` is the `restart`
/// action's transitional state; the agent reports `running` after it).
/// The one container action table: the API serves it
/// ([`crate::cluster::model::actions_in`]) and checks actions against it.
pub const CONTAINER_ACTIONS: &[ModelTransition] = &[
    ModelTransition {
        action: "stop",
        from: &["running", "starting", "creating", "requested", "error"],
        to: "stopping",
    },
    ModelTransition {
        action: "start",
        from: &["stopped"],
        to: "starting",
    },
    ModelTransition {
        action: "restart",
        from: &["running"],
        to: "restarting",
    },
    ModelTransition {
        action: "remove",
        from: &[
            "requested",
            "creating",
            "starting",
            "running",
            "restarting",
            "stopping",
            "stopped",
            "error",
        ],
        to: "removing",
    },
];

/// The actions offered on a container in `state` (an API spelling).
pub fn container_actions(state: &str) -> Vec<&'static str> {
    CONTAINER_ACTIONS
        .iter()
        .filter(|t| t.from.contains(&state))
        .map(|t| t.action)
        .collect()
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
