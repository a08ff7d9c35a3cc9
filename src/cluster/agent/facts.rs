//! Host facts (hostname, IP, CPUs, memory, disk, kernel, OS) and resource
//! usage, read from /proc, statvfs and uname.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::Path;

use crate::cluster::protocol::{HostFacts, Usage};

fn meminfo(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

/// `(total, used)` MiB of the filesystem holding `path`.
fn disk(path: &Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => {
            let f = s.fragment_size();
            let total = s.blocks().saturating_mul(f) / (1024 * 1024);
            let free = s.blocks_free().saturating_mul(f) / (1024 * 1024);
            (total, total.saturating_sub(free))
        }
        Err(_) => (0, 0),
    }
}

/// The local IP the kernel would use to reach `server_host` (no packet is
/// sent: connecting a UDP socket only picks a route).
pub fn local_ip_towards(server_host: &str) -> Option<String> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    let target = if server_host.contains(':') {
        server_host.to_string()
    } else {
        format!("{server_host}:80")
    };
    sock.connect(target).ok()?;
    sock.local_addr().ok().map(|a| a.ip().to_string())
}

/// This host's address on its default route (no packet is sent), for an
/// agent whose servers are all on this machine: a `both` node's agent talks
/// to `127.0.0.1`, which says nothing about how other hosts reach it.
pub fn default_route_ip() -> Option<String> {
    local_ip_towards("192.0.2.1:9")
        .or_else(|| local_ip_towards("8.8.8.8:53"))
        .filter(|ip| !ip.starts_with("127."))
}

/// The agent's address: the first non-loopback source address towards a
/// server (`towards`, in the servers' order), else the default route's,
/// else whatever the first server gave (loopback: a one-host cluster).
pub fn pick_agent_ip(
    towards: impl IntoIterator<Item = Option<String>>,
    default_route: impl FnOnce() -> Option<String>,
) -> Option<String> {
    let all: Vec<String> = towards.into_iter().flatten().collect();
    all.iter()
        .find(|ip| !ip.starts_with("127.") && ip.as_str() != "::1")
        .cloned()
        .or_else(default_route)
        .or_else(|| all.first().cloned())
}

fn os_name(root: &Path) -> String {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    read(&root.join("etc/os-release"))
        .or_else(|| read(Path::new("/etc/os-release")))
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Facts of this host; `docker_version` is filled by the caller.
pub fn collect(
    root: &Path,
    state_dir: &Path,
    hostname: Option<&str>,
    ip: String,
    labels: BTreeMap<String, String>,
) -> HostFacts {
    let hostname = hostname.map(str::to_string).unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    });
    HostFacts {
        hostname,
        agent_ip: ip,
        labels,
        cpu_count: std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1),
        memory_mb: meminfo("MemTotal:"),
        disk_mb: disk(state_dir).0,
        docker_version: String::new(),
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        os: os_name(root),
    }
}

/// CPU time counters `(busy, total)` from /proc/stat.
fn cpu_times() -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let nums: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let total: u64 = nums.iter().sum();
    let idle = nums.get(3).copied().unwrap_or(0) + nums.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Usage sampler: CPU percent since the previous sample.
#[derive(Debug, Default)]
pub struct Sampler {
    last: (u64, u64),
}

impl Sampler {
    /// Current usage of the host.
    pub fn sample(&mut self, state_dir: &Path) -> Usage {
        let now = cpu_times();
        let busy = now.0.saturating_sub(self.last.0) as f64;
        let total = now.1.saturating_sub(self.last.1) as f64;
        self.last = now;
        let cpu = if total > 0.0 {
            (busy / total * 1000.0).round() / 10.0
        } else {
            0.0
        };
        Usage {
            cpu_percent: cpu,
            memory_used_mb: meminfo("MemTotal:").saturating_sub(meminfo("MemAvailable:")),
            disk_used_mb: disk(state_dir).1,
        }
    }
}

/// Parse `a=b,c=d` (or Rancher's `a=b&c=d`) into labels.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split([',', '&']).map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("label {part:?} is not key=value"))?;
        if k.is_empty() {
            return Err(format!("label {part:?} has an empty key"));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ip_is_never_loopback_when_the_node_has_another() {
        let some = |s: &str| Some(s.to_string());
        // a `both` node: its agent reaches the server on 127.0.0.1
        assert_eq!(
            pick_agent_ip([some("127.0.0.1")], || some("192.168.77.11")),
            some("192.168.77.11")
        );
        assert_eq!(
            pick_agent_ip([some("127.0.0.1"), some("10.0.0.5")], || some(
                "192.168.1.9"
            )),
            some("10.0.0.5")
        );
        assert_eq!(pick_agent_ip([some("10.0.0.5")], || None), some("10.0.0.5"));
        assert_eq!(
            pick_agent_ip([some("127.0.0.1")], || None),
            some("127.0.0.1")
        );
        assert_eq!(pick_agent_ip([None], || None), None);
    }

    #[test]
    fn labels_and_facts() {
        let l = parse_labels("a=b, c=d&e=").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l["e"], "");
        assert!(parse_labels("x").is_err());
        let f = collect(
            Path::new("/"),
            Path::new("/"),
            Some("h1"),
            "10.0.0.1".into(),
            l,
        );
        assert_eq!(f.hostname, "h1");
        assert!(f.cpu_count >= 1);
        assert!(f.memory_mb > 0);
        let mut s = Sampler::default();
        let u = s.sample(Path::new("/"));
        assert!(u.memory_used_mb > 0);
    }
}
