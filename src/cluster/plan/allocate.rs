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
    if wanted.iter().all(|p| p.port.is_some()) {
        // Nothing to pick: the fixed ports, checked above.
        return Ok(wanted.to_vec());
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

/// The managed network's default subnet (Rancher's).
pub const DEFAULT_SUBNET: &str = "10.42.0.0/16";

/// An IPv4 subnet (`10.42.0.0/16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    /// Network address (host bits zero).
    pub base: u32,
    /// Prefix length.
    pub prefix: u8,
}

impl Subnet {
    /// Parse `A.B.C.D/N`; the network must be 8 ≤ N ≤ 28 with no host
    /// bits set. The message says what is wrong.
    pub fn parse(text: &str) -> Result<Subnet, String> {
        let bad =
            |why: &str| format!("{text:?} is not a subnet: {why} (expected e.g. 10.42.0.0/16)");
        let (ip, len) = text.split_once('/').ok_or_else(|| bad("no /prefix"))?;
        let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| bad("bad IPv4 address"))?;
        let prefix: u8 = len.parse().map_err(|_| bad("bad prefix length"))?;
        if !(8..=28).contains(&prefix) {
            return Err(bad("prefix length must be 8..=28"));
        }
        let base = u32::from(ip);
        let s = Subnet { base, prefix };
        if base & !s.mask() != 0 {
            return Err(bad("host bits set"));
        }
        Ok(s)
    }

    /// The netmask.
    pub fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// True when `ip` is inside.
    pub fn contains(&self, ip: u32) -> bool {
        ip & self.mask() == self.base
    }

    /// True when the two share an address.
    pub fn overlaps(&self, o: &Subnet) -> bool {
        let m = self.mask() & o.mask();
        self.base & m == o.base & m
    }

    /// The gateway (first address), held by every host's bridge.
    pub fn gateway(&self) -> u32 {
        self.base + 1
    }

    /// The broadcast (last) address.
    pub fn broadcast(&self) -> u32 {
        self.base | !self.mask()
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", std::net::Ipv4Addr::from(self.base), self.prefix)
    }
}

/// A container address on `subnet` where `used` are taken: `retained`
/// (its predecessor's, `retainIp`) when it is inside and free, else the
/// lowest free one after the gateway; or why not (a full subnet). Never an
/// address in `used`, the network, gateway or broadcast address.
pub fn address(
    subnet: &Subnet,
    used: &BTreeSet<u32>,
    retained: Option<u32>,
) -> Result<u32, String> {
    let usable = |ip: u32| {
        subnet.contains(ip)
            && ip != subnet.base
            && ip != subnet.gateway()
            && ip != subnet.broadcast()
            && !used.contains(&ip)
    };
    if let Some(ip) = retained.filter(|ip| usable(*ip)) {
        return Ok(ip);
    }
    address_from(subnet, used, subnet.gateway() + 1)
}

/// The lowest free address of `subnet` not below `from`: a caller that
/// hands out many in a row passes the one after the last (every address
/// below it is taken), so each costs the used ones above it, not all of
/// them — placing 65,000 containers in a /16 stays linear.
pub fn address_from(subnet: &Subnet, used: &BTreeSet<u32>, from: u32) -> Result<u32, String> {
    let usable = |ip: u32| {
        subnet.contains(ip)
            && ip != subnet.base
            && ip != subnet.gateway()
            && ip != subnet.broadcast()
            && !used.contains(&ip)
    };
    // Lowest free: walk the used ones in order (O(used), not O(subnet)).
    let mut next = from.max(subnet.gateway() + 1);
    for &u in used.range(next..) {
        if u > next {
            break;
        }
        next = u + 1;
    }
    if next < subnet.broadcast() && usable(next) {
        return Ok(next);
    }
    Err(format!(
        "no free address in the environment's subnet {subnet} ({} in use)",
        used.iter().filter(|ip| subnet.contains(**ip)).count()
    ))
}

/// The VXLAN network identifier of an environment: its numeric id (unique,
/// so two environments never share a segment).
pub fn vni(project: u64) -> u32 {
    u32::try_from(project).unwrap_or(u32::MAX) & 0x00ff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    #[test]
    fn subnets_parse_and_refuse() {
        let s = Subnet::parse("10.42.0.0/16").unwrap();
        assert_eq!(s.to_string(), "10.42.0.0/16");
        assert_eq!(s.gateway(), ip("10.42.0.1"));
        assert_eq!(s.broadcast(), ip("10.42.255.255"));
        for (bad, why) in [
            ("10.42.0.0", "no /prefix"),
            ("10.42.0.1/16", "host bits set"),
            ("10.42.0.0/30", "8..=28"),
            ("10.42.0.0/x", "bad prefix"),
            ("10.420.0.0/16", "bad IPv4"),
        ] {
            let e = Subnet::parse(bad).unwrap_err();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn overlap() {
        let p = |t| Subnet::parse(t).unwrap();
        for (a, b, want) in [
            ("10.42.0.0/16", "10.42.3.0/24", true),
            ("10.42.0.0/16", "10.43.0.0/16", false),
            ("10.0.0.0/8", "10.231.7.0/24", true),
            ("192.168.0.0/24", "192.168.1.0/24", false),
        ] {
            assert_eq!(p(a).overlaps(&p(b)), want, "{a} {b}");
            assert_eq!(p(b).overlaps(&p(a)), want, "{b} {a}");
        }
    }

    #[test]
    fn allocate_release_retain_full() {
        let s = Subnet::parse("10.42.0.0/28").unwrap();
        let mut used = BTreeSet::new();
        // Allocate: lowest free after the gateway.
        let a = address(&s, &used, None).unwrap();
        assert_eq!(a, ip("10.42.0.2"));
        used.insert(a);
        let b = address(&s, &used, None).unwrap();
        assert_eq!(b, ip("10.42.0.3"));
        used.insert(b);
        // Release: the freed address is handed out again.
        used.remove(&a);
        assert_eq!(address(&s, &used, None).unwrap(), a);
        used.insert(a);
        // Retain: a free retained address is kept even if lower ones are free.
        assert_eq!(
            address(&s, &used, Some(ip("10.42.0.9"))).unwrap(),
            ip("10.42.0.9")
        );
        // A retained one in use or outside the subnet is not duplicated.
        assert_eq!(address(&s, &used, Some(b)).unwrap(), ip("10.42.0.4"));
        assert_eq!(
            address(&s, &used, Some(ip("10.43.0.9"))).unwrap(),
            ip("10.42.0.4")
        );
        // Full: .2 to .14 (13 addresses) then an error naming the subnet.
        for n in 2..=14 {
            used.insert(s.base + n);
        }
        let e = address(&s, &used, None).unwrap_err();
        assert!(
            e.contains("no free address") && e.contains("10.42.0.0/28"),
            "{e}"
        );
        // Network, gateway and broadcast are never handed out.
        let e = address(&s, &used, Some(s.broadcast())).unwrap_err();
        assert!(e.contains("13 in use"), "{e}");
    }
}
