//! Health states (reference §4): one check result at a time → a
//! container's `healthState`; containers → a service's; services → a
//! stack's; and which unhealthy containers the strategy replaces.

use std::fmt;

use super::compose::model::{HealthCheck, HealthStrategy};

/// A container's `healthState`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ContainerHealth {
    /// New, not yet passed `healthy_threshold` checks.
    #[default]
    Initializing,
    /// Restarted, not yet passed again.
    Reinitializing,
    /// Passing.
    Healthy,
    /// Failing (or never became healthy within `initializing_timeout`).
    Unhealthy,
}

impl ContainerHealth {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerHealth::Initializing => "initializing",
            ContainerHealth::Reinitializing => "reinitializing",
            ContainerHealth::Healthy => "healthy",
            ContainerHealth::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for ContainerHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The running tally of one container's checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Current state.
    pub health: ContainerHealth,
    /// Consecutive successes.
    pub successes: u32,
    /// Consecutive failures.
    pub failures: u32,
}

impl Tally {
    /// A restarted container starts over as `reinitializing`.
    pub fn restarted() -> Tally {
        Tally {
            health: ContainerHealth::Reinitializing,
            ..Tally::default()
        }
    }
}

/// Record one check result `ok` taken `age_ms` after the container (re)started.
///
/// Failures are ignored while (re)initializing — a slow start is not a
/// failure — until the initializing (or reinitializing) timeout passes,
/// after which the container is unhealthy and can be replaced.
pub fn observe(t: Tally, ok: bool, age_ms: u64, hc: &HealthCheck) -> Tally {
    let mut t = Tally {
        successes: if ok { t.successes.saturating_add(1) } else { 0 },
        failures: if ok { 0 } else { t.failures.saturating_add(1) },
        ..t
    };
    let starting = matches!(
        t.health,
        ContainerHealth::Initializing | ContainerHealth::Reinitializing
    );
    let timeout = match t.health {
        ContainerHealth::Initializing => hc.initializing_timeout,
        ContainerHealth::Reinitializing => hc.reinitializing_timeout,
        _ => None,
    };
    if ok && t.successes >= hc.healthy_threshold.max(1) {
        t.health = ContainerHealth::Healthy;
    } else if !ok && starting {
        if timeout.is_some_and(|limit| age_ms >= limit) {
            t.health = ContainerHealth::Unhealthy;
        }
    } else if !ok && t.failures >= hc.unhealthy_threshold.max(1) {
        t.health = ContainerHealth::Unhealthy;
    }
    t
}

/// A service's or stack's `healthState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceHealth {
    /// Every container healthy, at full scale.
    Healthy,
    /// Some healthy, some not.
    Degraded,
    /// None healthy.
    Unhealthy,
    /// None healthy yet, none failing: starting up.
    Initializing,
    /// A start_once service whose containers ran and exited.
    StartedOnce,
}

impl ServiceHealth {
    /// From the API spelling.
    pub fn parse(s: &str) -> Option<ServiceHealth> {
        [
            ServiceHealth::Healthy,
            ServiceHealth::Degraded,
            ServiceHealth::Unhealthy,
            ServiceHealth::Initializing,
            ServiceHealth::StartedOnce,
        ]
        .into_iter()
        .find(|h| h.as_str() == s)
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceHealth::Healthy => "healthy",
            ServiceHealth::Degraded => "degraded",
            ServiceHealth::Unhealthy => "unhealthy",
            ServiceHealth::Initializing => "initializing",
            ServiceHealth::StartedOnce => "started-once",
        }
    }
}

impl fmt::Display for ServiceHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One managed container as health aggregation sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberHealth {
    /// Running (a stopped container is not healthy).
    pub running: bool,
    /// Its check state; `None` = no health check (running counts as healthy).
    pub health: Option<ContainerHealth>,
}

/// A service's health from its managed containers and wanted scale.
pub fn service_health(members: &[MemberHealth], scale: u32, start_once: bool) -> ServiceHealth {
    if start_once && !members.is_empty() && members.iter().all(|m| !m.running) {
        return ServiceHealth::StartedOnce;
    }
    let healthy = members
        .iter()
        .filter(|m| m.running && matches!(m.health, None | Some(ContainerHealth::Healthy)))
        .count();
    let starting = members
        .iter()
        .filter(|m| {
            m.running
                && matches!(
                    m.health,
                    Some(ContainerHealth::Initializing | ContainerHealth::Reinitializing)
                )
        })
        .count();
    let wanted = usize::try_from(scale).unwrap_or(usize::MAX);
    let failing = members.len() - healthy - starting + wanted.saturating_sub(members.len());
    // Reference §4: healthy when all are, degraded when some are not,
    // unhealthy when none is. A service none of whose containers has
    // passed yet (and none failed) is still initializing; one running
    // below its healthy scale while a replacement initializes is degraded.
    match (healthy, starting, failing) {
        (_, 0, 0) => ServiceHealth::Healthy,
        (0, _, 0) => ServiceHealth::Initializing,
        (0, 0, _) => ServiceHealth::Unhealthy,
        _ => ServiceHealth::Degraded,
    }
}

/// A stack's health from its services'.
pub fn stack_health(services: &[ServiceHealth]) -> ServiceHealth {
    let ok = |s: &ServiceHealth| matches!(s, ServiceHealth::Healthy | ServiceHealth::StartedOnce);
    if services.iter().all(ok) {
        ServiceHealth::Healthy
    } else if services.iter().all(|s| *s == ServiceHealth::Unhealthy) {
        ServiceHealth::Unhealthy
    } else if services
        .iter()
        .all(|s| ok(s) || *s == ServiceHealth::Initializing)
    {
        ServiceHealth::Initializing
    } else {
        ServiceHealth::Degraded
    }
}

/// Which unhealthy containers to replace, by name, under `strategy`:
/// `recreate` replaces every unhealthy one; `none` none;
/// `recreateOnQuorum` only while at least `quorum` others are healthy
/// (so a shared outage does not recreate the whole service).
pub fn to_recreate(strategy: HealthStrategy, members: &[(String, ContainerHealth)]) -> Vec<String> {
    let unhealthy = members
        .iter()
        .filter(|(_, h)| *h == ContainerHealth::Unhealthy)
        .map(|(n, _)| n.clone());
    match strategy {
        HealthStrategy::None => Vec::new(),
        HealthStrategy::Recreate => unhealthy.collect(),
        HealthStrategy::RecreateOnQuorum { quorum } => {
            let healthy = members
                .iter()
                .filter(|(_, h)| *h == ContainerHealth::Healthy)
                .count();
            if healthy >= usize::try_from(quorum).unwrap_or(usize::MAX) {
                unhealthy.collect()
            } else {
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
