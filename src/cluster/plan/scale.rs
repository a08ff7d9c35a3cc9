//! Keeping a service at its scale: which containers to create, start and
//! remove, from the containers it has now (reference §4, "reconciliation").
//!
//! Level-triggered and idempotent: the plan depends only on the current
//! members, so re-running it after a crash repeats nothing that was done.
//! Containers are named `<stack>-<service>-<n>`; new ones take the lowest
//! free index, extras are removed highest index first, failed ones are
//! removed and their index reused by the replacement.

use std::collections::BTreeSet;

use super::lifecycle::ContainerState;

/// `<stack>-<service>-<n>`.
pub fn container_name(stack: &str, service: &str, index: u32) -> String {
    format!("{stack}-{service}-{index}")
}

/// The index of a container named by [`container_name`] for this service.
pub fn index_of(stack: &str, service: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(stack)?.strip_prefix('-')?;
    let rest = rest.strip_prefix(service)?.strip_prefix('-')?;
    if rest.starts_with('0') {
        return None;
    }
    rest.parse().ok().filter(|n| *n > 0)
}

/// One managed container of the service (old containers of an upgrade are
/// not members; the upgrade plan handles them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Service index (the `n` of the name).
    pub index: u32,
    /// Container name.
    pub name: String,
    /// Its state.
    pub state: ContainerState,
    /// True when the health policy decided to recreate it.
    pub recreate: bool,
}

/// What to do to bring the service to its scale.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScalePlan {
    /// Indexes to create containers for (names from [`container_name`]).
    pub create: Vec<u32>,
    /// Stopped containers to start again.
    pub start: Vec<String>,
    /// Containers to remove: failed, recreated, then extras highest index first.
    pub remove: Vec<String>,
}

/// Plan one reconcile pass for a service that should run `scale` containers.
/// `start_once` services (label `io.rancher.container.start_once`) are not
/// restarted when they stop.
pub fn plan(scale: u32, members: &[Member], start_once: bool) -> ScalePlan {
    let mut out = ScalePlan::default();
    let mut live: Vec<&Member> = Vec::new();
    for m in members {
        match m.state {
            ContainerState::Removing | ContainerState::Removed => {}
            ContainerState::Error => out.remove.push(m.name.clone()),
            _ if m.recreate => out.remove.push(m.name.clone()),
            _ => live.push(m),
        }
    }
    live.sort_by_key(|m| m.index);
    let keep = usize::try_from(scale).unwrap_or(usize::MAX);
    if live.len() > keep {
        let extra = live.split_off(keep);
        out.remove
            .extend(extra.iter().rev().map(|m| m.name.clone()));
    }
    out.start = live
        .iter()
        .filter(|m| m.state == ContainerState::Stopped && !start_once)
        .map(|m| m.name.clone())
        .collect();
    let used: BTreeSet<u32> = live.iter().map(|m| m.index).collect();
    let missing = keep.saturating_sub(live.len());
    out.create = (1..).filter(|i| !used.contains(i)).take(missing).collect();
    out
}

/// A container of a global service and the host it is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Container name.
    pub name: String,
    /// Host id.
    pub host_id: String,
    /// Its state.
    pub state: ContainerState,
}

/// What a global service needs: hosts lacking a container, and containers
/// on hosts no longer eligible (or duplicates on one host, or failed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobalPlan {
    /// Hosts that need a container.
    pub create_on: Vec<String>,
    /// Containers to remove.
    pub remove: Vec<String>,
}

/// Plan a global service against the hosts from
/// [`super::scheduler::global_hosts`].
pub fn plan_global(eligible: &[String], members: &[Placed]) -> GlobalPlan {
    let mut out = GlobalPlan::default();
    let mut covered = BTreeSet::new();
    let mut sorted: Vec<&Placed> = members.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for m in sorted {
        match m.state {
            ContainerState::Removing | ContainerState::Removed => {}
            ContainerState::Error => out.remove.push(m.name.clone()),
            _ if !eligible.contains(&m.host_id) || covered.contains(&m.host_id) => {
                out.remove.push(m.name.clone())
            }
            _ => {
                covered.insert(m.host_id.clone());
            }
        }
    }
    out.create_on = eligible
        .iter()
        .filter(|h| !covered.contains(*h))
        .cloned()
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContainerState::*;

    fn m(index: u32, state: ContainerState) -> Member {
        Member {
            index,
            name: container_name("app", "web", index),
            state,
            recreate: false,
        }
    }

    #[test]
    fn names_and_indexes() {
        assert_eq!(container_name("app", "web", 3), "app-web-3");
        let rows = [
            ("app-web-3", Some(3)),
            ("app-web-12", Some(12)),
            ("app-web-0", None),
            ("app-web-03", None),
            ("app-web-", None),
            ("app-webx-1", None),
            ("app-web-api-1", None),
            ("other-web-1", None),
        ];
        for (name, want) in rows {
            assert_eq!(index_of("app", "web", name), want, "{name}");
        }
    }

    #[test]
    fn scale_table() {
        let rows: Vec<(&str, u32, Vec<Member>, bool, ScalePlan)> = vec![
            (
                "from nothing",
                3,
                vec![],
                false,
                ScalePlan {
                    create: vec![1, 2, 3],
                    ..Default::default()
                },
            ),
            (
                "steady",
                2,
                vec![m(1, Running), m(2, Running)],
                false,
                ScalePlan::default(),
            ),
            (
                "fill lowest free index",
                3,
                vec![m(2, Running), m(5, Running)],
                false,
                ScalePlan {
                    create: vec![1],
                    ..Default::default()
                },
            ),
            (
                "scale down removes highest first",
                2,
                vec![
                    m(3, Running),
                    m(1, Running),
                    m(5, Running),
                    m(2, Running),
                    m(4, Running),
                ],
                false,
                ScalePlan {
                    remove: vec!["app-web-5".into(), "app-web-4".into(), "app-web-3".into()],
                    ..Default::default()
                },
            ),
            (
                "scale to zero",
                0,
                vec![m(1, Running), m(2, Stopped)],
                false,
                ScalePlan {
                    remove: vec!["app-web-2".into(), "app-web-1".into()],
                    ..Default::default()
                },
            ),
            (
                "deleted behind our back is replaced with the same index",
                3,
                vec![m(1, Running), m(2, Removed), m(3, Running)],
                false,
                ScalePlan {
                    create: vec![2],
                    ..Default::default()
                },
            ),
            (
                "stopped behind our back is started",
                2,
                vec![m(1, Running), m(2, Stopped)],
                false,
                ScalePlan {
                    start: vec!["app-web-2".into()],
                    ..Default::default()
                },
            ),
            (
                "start_once is left stopped",
                2,
                vec![m(1, Running), m(2, Stopped)],
                true,
                ScalePlan::default(),
            ),
            (
                "failed is removed and replaced",
                2,
                vec![m(1, Error), m(2, Running)],
                false,
                ScalePlan {
                    create: vec![1],
                    remove: vec!["app-web-1".into()],
                    ..Default::default()
                },
            ),
            (
                "unhealthy under recreate is removed and replaced",
                2,
                vec![
                    Member {
                        recreate: true,
                        ..m(1, Running)
                    },
                    m(2, Running),
                ],
                false,
                ScalePlan {
                    create: vec![1],
                    remove: vec!["app-web-1".into()],
                    ..Default::default()
                },
            ),
            (
                "in-flight containers count",
                3,
                vec![m(1, Requested), m(2, Creating), m(3, Starting)],
                false,
                ScalePlan::default(),
            ),
            (
                "a removing container frees its index",
                1,
                vec![m(1, Removing)],
                false,
                ScalePlan {
                    create: vec![1],
                    ..Default::default()
                },
            ),
        ];
        for (name, scale, members, once, want) in rows {
            assert_eq!(plan(scale, &members, once), want, "{name}");
        }
        assert_eq!(plan(1, &[m(1, Running)], false), ScalePlan::default());
    }

    #[test]
    fn global_table() {
        let p = |name: &str, host: &str, state| Placed {
            name: name.into(),
            host_id: host.into(),
            state,
        };
        let hosts: Vec<String> = vec!["h1".into(), "h2".into(), "h3".into()];
        let rows: Vec<(&str, Vec<Placed>, GlobalPlan)> = vec![
            (
                "new hosts get one",
                vec![p("g-1", "h1", Running)],
                GlobalPlan {
                    create_on: vec!["h2".into(), "h3".into()],
                    remove: vec![],
                },
            ),
            (
                "host no longer eligible, duplicate, failed",
                vec![
                    p("g-1", "h1", Running),
                    p("g-2", "h1", Running),
                    p("g-3", "h2", Error),
                    p("g-4", "h3", Stopped),
                    p("g-5", "h9", Running),
                ],
                GlobalPlan {
                    create_on: vec!["h2".into()],
                    remove: vec!["g-2".into(), "g-3".into(), "g-5".into()],
                },
            ),
        ];
        for (name, members, want) in rows {
            assert_eq!(plan_global(&hosts, &members), want, "{name}");
        }
    }
}
