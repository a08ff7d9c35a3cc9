//! The allocation stage, between deciding what to create (the reconciler)
//! and where (the scheduler), in the way of swarmkit's allocator: the
//! scarce resources a container holds are handed out here, one function
//! per resource.
//!
//! - Host ports ([`host_ports`]): a container's fixed public ports must be
//!   free on its host and its random ones (`8080` without a public port)
//!   get the lowest free port of the project's `servicesPortRange`. Host
//!   ports belong to a host, so the scheduler asks for them for each host
//!   it considers, and the placement it returns carries them.
//! - Managed-network addresses (the overlay issue) belong to the
//!   environment, not to a host: they are allocated here before placement,
//!   and `retainIp` keeps one across replacements.

use std::collections::BTreeSet;

use super::scheduler::{HostPort, Protocol};

/// The host ports of `wanted` on a host where `used` are taken: fixed ones
/// checked, random ones (`port: None`) resolved from `range`; or why not.
pub fn host_ports(
    used: &[&HostPort],
    wanted: &[HostPort],
    range: (u16, u16),
) -> Result<Vec<HostPort>, String> {
    let busy: Vec<String> = wanted
        .iter()
        .filter(|p| used.iter().any(|u| p.clashes(u)))
        .map(|p| p.to_string())
        .collect();
    if !busy.is_empty() {
        return Err(format!("host needs ports {} available", busy.join(", ")));
    }
    let mut taken: BTreeSet<(u16, Protocol)> = used
        .iter()
        .chain(wanted.iter().collect::<Vec<_>>().iter())
        .filter_map(|p| p.port.map(|n| (n, p.protocol)))
        .collect();
    let (lo, hi) = range;
    let mut out = Vec::with_capacity(wanted.len());
    for p in wanted {
        let mut p = p.clone();
        if p.port.is_none() {
            let free = (lo..=hi)
                .find(|n| !taken.contains(&(*n, p.protocol)))
                .ok_or_else(|| format!("no free {} port in {lo}-{hi}", p.protocol.as_str()))?;
            taken.insert((free, p.protocol));
            p.port = Some(free);
        }
        out.push(p);
    }
    Ok(out)
}
