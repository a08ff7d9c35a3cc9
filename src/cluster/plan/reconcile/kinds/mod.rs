//! Service kinds (Rancher's `FindServiceType`), each with its own rule in
//! the reconciler:
//!
//! - `service` — containers from a launch config: the scale keeper, the
//!   upgrades and the health strategy in the parent module.
//! - `loadBalancerService` — for now containers of its launch config like
//!   any service; the load balancer (HAProxy, port rules onto target
//!   services) takes this room.
//! - `dnsService` (`rancher/dns-service`) — a DNS alias: no containers;
//!   its members are its links, answered by the DNS of the managed network.
//! - `externalService` — IPs or a hostname outside the cluster: no
//!   containers; the service row holds them.
//!
//! A kind without containers still walks the service lifecycle
//! (activating → active, deactivating → inactive, removing → removed) so
//! the API's actions behave the same for every kind.

mod alias;
mod external;

use crate::cluster::model::{rfc3339, Resource};
use crate::cluster::plan::compose::{ServiceKind, ServiceSpec};
use crate::cluster::plan::health::ServiceHealth;
use crate::cluster::plan::lifecycle::State;

/// True for kinds whose service runs containers.
pub fn has_containers(kind: ServiceKind) -> bool {
    matches!(
        kind,
        ServiceKind::Service | ServiceKind::LoadBalancerService
    )
}

/// One pass for a service of a kind without containers: its lifecycle
/// moves on at once (there is nothing to wait for) and it is healthy.
/// Containers a service of this kind owns (made before it had its own
/// rule) go.
pub(super) fn without_containers(w: &mut super::World, s: &mut Resource, spec: &ServiceSpec) {
    let members: Vec<super::Row> = super::members(w, s).into_iter().cloned().collect();
    for c in &members {
        super::set_desired(w, c, "removed");
    }
    let next = match super::state_of(s) {
        Some(
            State::Activating
            | State::Restarting
            | State::Error
            | State::Upgrading
            | State::FinishingUpgrade
            | State::RollingBack
            | State::CancelingUpgrade,
        ) => Some(State::Active),
        Some(State::Deactivating) => Some(State::Inactive),
        Some(State::Removing) if members.is_empty() => Some(State::Removed),
        _ => None,
    };
    if let Some(n) = next {
        super::set_state(s, n);
        if n == State::Removed {
            s.set("removed", rfc3339(w.now));
        }
    }
    let h = ServiceHealth::Healthy.as_str();
    if s.str("healthState") != Some(h) {
        s.set("healthState", h);
    }
    match spec.kind {
        ServiceKind::ExternalService => external::pass(s, spec),
        ServiceKind::DnsService => alias::pass(s, spec),
        ServiceKind::Service | ServiceKind::LoadBalancerService => {}
    }
}
