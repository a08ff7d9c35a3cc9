//! Placement: hosts + the containers already on them + the container to
//! place → a host (and its host ports), or the reasons nothing fits.
//!
//! The algorithm follows Cattle's allocator (reference §3.2):
//! 1. candidates are the active hosts, ordered to spread the service: fewest
//!    containers of this service first, then fewest containers overall, then
//!    host id (deterministic, so a re-run of a reconcile step agrees);
//! 2. a host must pass every hard check — `require_any`, memory and milli-CPU
//!    reservations against capacity minus what is reserved, free host ports
//!    per protocol and bind IP, hard affinity rules — and every soft rule
//!    still in force;
//! 3. when no host passes, one failing soft rule is dropped (the last one in
//!    label-key, then value, order first) and the walk repeats; when only hard checks fail the
//!    result is [`NoPlacement`] with each host's reason, never a silent wait.
//!
//! Global services ([`global_hosts`]) run one container on every active host
//! that satisfies the hard `host_label` rules, as in Rancher.

pub mod index;
pub mod rules;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use rules::{Field, Rule};

/// Rancher's default range for random public ports (`servicesPortRange`).
pub const DEFAULT_PORT_RANGE: (u16, u16) = (49153, 65535);

/// A host as the scheduler sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostView {
    /// Host id.
    pub id: String,
    /// Host labels (`io.rancher.host.*` included).
    pub labels: BTreeMap<String, String>,
    /// Memory that may be reserved, bytes; `None` = not limited.
    pub memory: Option<u64>,
    /// CPU that may be reserved, milli-CPU; `None` = not limited.
    pub milli_cpu: Option<u64>,
    /// False for hosts that are inactive, reconnecting or disconnected.
    pub active: bool,
}

/// Transport protocol of a port.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` / `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A port published on a host.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HostPort {
    /// Bind address; `None` = all addresses.
    pub bind_ip: Option<String>,
    /// Public port; `None` in a request = pick a free one from the range.
    pub port: Option<u16>,
    /// Protocol.
    pub protocol: Protocol,
}

impl HostPort {
    pub(crate) fn clashes(&self, other: &HostPort) -> bool {
        self.port.is_some()
            && self.port == other.port
            && self.protocol == other.protocol
            && match (&self.bind_ip, &other.bind_ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = &self.bind_ip {
            write!(f, "{ip}:")?;
        }
        match self.port {
            Some(p) => write!(f, "{p}/{}", self.protocol.as_str()),
            None => write!(f, "random/{}", self.protocol.as_str()),
        }
    }
}

/// A container already placed (any live state).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceView {
    /// Container name (`stack-service-1`).
    pub name: String,
    /// Container uuid.
    pub uuid: String,
    /// Host it is on.
    pub host_id: String,
    /// Labels, system labels ([`system_labels`]) included.
    pub labels: BTreeMap<String, String>,
    /// Host ports it holds (all resolved).
    pub ports: Vec<HostPort>,
    /// Reserved memory, bytes.
    pub memory_reservation: u64,
    /// Reserved CPU, milli-CPU.
    pub milli_cpu_reservation: u64,
}

/// The container to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Its name, for messages.
    pub name: String,
    /// Stack name (for macros and spreading).
    pub stack: String,
    /// Service name.
    pub service: String,
    /// Its labels, affinity labels included (macros unexpanded).
    pub labels: BTreeMap<String, String>,
    /// Host ports wanted.
    pub ports: Vec<HostPort>,
    /// Memory to reserve, bytes.
    pub memory_reservation: u64,
    /// CPU to reserve, milli-CPU.
    pub milli_cpu_reservation: u64,
    /// Pinned host (`requestedHostId`): only that host is considered.
    pub requested_host: Option<String>,
    /// Range for random public ports.
    pub port_range: (u16, u16),
}

impl Default for Request {
    fn default() -> Request {
        Request {
            name: String::new(),
            stack: String::new(),
            service: String::new(),
            labels: BTreeMap::new(),
            ports: Vec::new(),
            memory_reservation: 0,
            milli_cpu_reservation: 0,
            requested_host: None,
            port_range: DEFAULT_PORT_RANGE,
        }
    }
}

/// The system labels every service container carries.
pub fn system_labels(stack: &str, service: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (rules::LABEL_STACK.to_string(), stack.to_string()),
        (
            rules::LABEL_STACK_SERVICE.to_string(),
            format!("{stack}/{service}"),
        ),
    ])
}

/// Where to run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The chosen host.
    pub host_id: String,
    /// The request's ports with random ones resolved.
    pub ports: Vec<HostPort>,
    /// Soft rules given up to find a host.
    pub dropped: Vec<Rule>,
}

/// Why a container cannot be placed (the container goes to `error` with this).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoPlacement {
    /// The request is wrong whatever the hosts.
    #[error("{0}")]
    Invalid(String),
    /// No host is active.
    #[error("no active hosts to run {name}")]
    NoHosts {
        /// The container.
        name: String,
    },
    /// Every host failed a hard check.
    #[error("no host can run {name}: {}", render(.reasons))]
    NothingFits {
        /// The container.
        name: String,
        /// (host id, first failed check) per host, in candidate order.
        reasons: Vec<(String, String)>,
    },
}

fn render(reasons: &[(String, String)]) -> String {
    reasons
        .iter()
        .map(|(h, r)| format!("{h}: {r}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Place `req` given `hosts` and the live `instances`.
pub fn place(
    hosts: &[HostView],
    instances: &[InstanceView],
    req: &Request,
) -> Result<Placement, NoPlacement> {
    duplicate_ports(req)?;
    let (rules, bad) = rules::parse_rules(&req.labels, &req.stack, &req.service);
    if let Some(key) = bad.first() {
        return Err(NoPlacement::Invalid(format!(
            "unknown scheduling label {key}"
        )));
    }
    let candidates = order(hosts, instances, req);
    if candidates.is_empty() {
        return Err(NoPlacement::NoHosts {
            name: req.name.clone(),
        });
    }
    // Hard checks first; hosts that fail them are out whatever soft rules say.
    let mut reasons = Vec::new();
    let mut fit = Vec::new();
    for host in &candidates {
        let on_host: Vec<&InstanceView> =
            instances.iter().filter(|i| i.host_id == host.id).collect();
        match hard_check(host, &on_host, req, &rules) {
            Ok(ports) => fit.push((*host, on_host, ports)),
            Err(why) => reasons.push((host.id.clone(), why)),
        }
    }
    if fit.is_empty() {
        return Err(NoPlacement::NothingFits {
            name: req.name.clone(),
            reasons,
        });
    }
    let mut soft: Vec<Rule> = rules.into_iter().filter(|r| r.soft).collect();
    let mut dropped = Vec::new();
    loop {
        if let Some((host, _, ports)) = fit
            .iter()
            .find(|(h, on, _)| soft.iter().all(|r| rules::satisfied(r, h, on)))
        {
            return Ok(Placement {
                host_id: host.id.clone(),
                ports: ports.clone(),
                dropped,
            });
        }
        // Some host passed every hard check, so some soft rule fails: drop
        // the last declared one that fails somewhere.
        let Some(i) = soft
            .iter()
            .rposition(|r| fit.iter().any(|(h, on, _)| !rules::satisfied(r, h, on)))
        else {
            return Err(NoPlacement::NothingFits {
                name: req.name.clone(),
                reasons,
            });
        };
        dropped.push(soft.remove(i));
    }
}

/// The hosts that should each run one container of a global service: active
/// hosts satisfying the hard `host_label` rules (other rules are ignored for
/// global services, as in Rancher), sorted by id.
pub fn global_hosts(hosts: &[HostView], req: &Request) -> Vec<String> {
    let (rules, _) = rules::parse_rules(&req.labels, &req.stack, &req.service);
    let mut ids: Vec<String> = hosts
        .iter()
        .filter(|h| h.active)
        .filter(|h| {
            rules
                .iter()
                .filter(|r| r.field == Field::HostLabel && !r.soft)
                .all(|r| rules::satisfied(r, h, &[]))
        })
        .map(|h| h.id.clone())
        .collect();
    ids.sort();
    ids
}

/// True when the labels ask for a global service.
pub fn is_global(labels: &BTreeMap<String, String>) -> bool {
    labels
        .get(rules::LABEL_GLOBAL)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn duplicate_ports(req: &Request) -> Result<(), NoPlacement> {
    for (i, p) in req.ports.iter().enumerate() {
        if req.ports[..i].iter().any(|q| p.clashes(q)) {
            let port = p.port.unwrap_or_default();
            return Err(NoPlacement::Invalid(format!(
                "Port {port}/{} requested more than once.",
                p.protocol.as_str()
            )));
        }
    }
    Ok(())
}

fn order<'a>(
    hosts: &'a [HostView],
    instances: &[InstanceView],
    req: &Request,
) -> Vec<&'a HostView> {
    let me = format!("{}/{}", req.stack, req.service);
    let mut v: Vec<(usize, usize, &HostView)> = hosts
        .iter()
        .filter(|h| h.active)
        .filter(|h| match &req.requested_host {
            None => true,
            Some(id) => *id == h.id,
        })
        .map(|h| {
            let on: Vec<&InstanceView> = instances.iter().filter(|i| i.host_id == h.id).collect();
            let same = on
                .iter()
                .filter(|i| i.labels.get(rules::LABEL_STACK_SERVICE) == Some(&me))
                .count();
            (same, on.len(), h)
        })
        .collect();
    v.sort_by(|a, b| (a.0, a.1, &a.2.id).cmp(&(b.0, b.1, &b.2.id)));
    v.into_iter().map(|(_, _, h)| h).collect()
}

/// False when [`hard_check`] surely fails on `host`: the same checks
/// without the reasons, the ports only for clashes (random ones are
/// resolved by [`hard_check`]). Allocates nothing on ASCII labels.
fn may_fit(host: &HostView, on_host: &[&InstanceView], req: &Request, rules: &[Rule]) -> bool {
    if !rules::admits(host, &req.labels) {
        return false;
    }
    let reserved = |f: fn(&InstanceView) -> u64| on_host.iter().map(|i| f(i)).sum::<u64>();
    if let Some(cap) = host.memory {
        if req.memory_reservation > cap.saturating_sub(reserved(|i| i.memory_reservation)) {
            return false;
        }
    }
    if let Some(cap) = host.milli_cpu {
        if req.milli_cpu_reservation > cap.saturating_sub(reserved(|i| i.milli_cpu_reservation)) {
            return false;
        }
    }
    let clash = req.ports.iter().any(|p| {
        on_host
            .iter()
            .flat_map(|i| i.ports.iter())
            .any(|u| p.clashes(u))
    });
    !clash
        && rules
            .iter()
            .filter(|r| !r.soft)
            .all(|r| rules::satisfied(r, host, on_host))
}

/// Every hard check for one host; Ok carries the resolved ports.
fn hard_check(
    host: &HostView,
    on_host: &[&InstanceView],
    req: &Request,
    rules: &[Rule],
) -> Result<Vec<HostPort>, String> {
    rules::host_admits(host, &req.labels)?;
    let reserved_mem: u64 = on_host.iter().map(|i| i.memory_reservation).sum();
    if let Some(cap) = host.memory {
        let free = cap.saturating_sub(reserved_mem);
        if req.memory_reservation > free {
            return Err(format!(
                "not enough memory (needs {} bytes, {free} of {cap} free)",
                req.memory_reservation
            ));
        }
    }
    let reserved_cpu: u64 = on_host.iter().map(|i| i.milli_cpu_reservation).sum();
    if let Some(cap) = host.milli_cpu {
        let free = cap.saturating_sub(reserved_cpu);
        if req.milli_cpu_reservation > free {
            return Err(format!(
                "not enough CPU (needs {} milli-CPU, {free} of {cap} free)",
                req.milli_cpu_reservation
            ));
        }
    }
    let used: Vec<&HostPort> = on_host.iter().flat_map(|i| i.ports.iter()).collect();
    let ports = super::allocate::host_ports(&used, &req.ports, req.port_range)?;
    if let Some(r) = rules
        .iter()
        .find(|r| !r.soft && !rules::satisfied(r, host, on_host))
    {
        return Err(rules::explain(r));
    }
    Ok(ports)
}

#[cfg(test)]
mod tests;
