//! `ros netconf`: bring links up, static addresses and routes, DHCP with
//! busybox `udhcpc` (kept running to renew), DNS; then stay up supervising
//! the DHCP clients (the network service restarts on exit).

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::config::network::{InterfaceConfig, InterfaceMatch};
use crate::config::CloudConfig;

use super::{run, GuestError};

/// The udhcpc hook script in the network image.
pub const DHCP_SCRIPT: &str = "/usr/share/udhcpc/default.script";

/// Links netconf leaves alone.
pub fn managed(name: &str) -> bool {
    !(name == "lo"
        || name.starts_with("docker")
        || name.starts_with("veth")
        || name.starts_with("br-"))
}

/// The interface entry for a link: the best-ranked match wins.
pub fn pick<'a>(
    ifaces: &'a BTreeMap<String, InterfaceConfig>,
    name: &str,
    mac: &str,
) -> Option<&'a InterfaceConfig> {
    ifaces
        .iter()
        .filter_map(|(k, v)| {
            let m = InterfaceMatch::parse(v.match_.as_deref().unwrap_or(k));
            m.matches(name, mac).then(|| (m.rank(), v))
        })
        .max_by_key(|(r, _)| *r)
        .map(|(_, v)| v)
}

/// One action netconf takes for a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `ip` with these arguments.
    Ip(Vec<String>),
    /// Start a DHCP client on the link.
    Dhcp(String, Option<String>),
}

/// The steps for one link under `cfg`.
pub fn plan(name: &str, cfg: &InterfaceConfig, hostname: Option<&str>) -> Vec<Step> {
    let ip = |a: &[&str]| Step::Ip(a.iter().map(|s| s.to_string()).collect());
    let mut v = Vec::new();
    if let Some(mtu) = cfg.mtu {
        v.push(ip(&["link", "set", name, "mtu", &mtu.to_string()]));
    }
    v.push(ip(&["link", "set", name, "up"]));
    for a in cfg.address.iter().chain(cfg.addresses.0.iter()) {
        v.push(ip(&["addr", "add", a, "dev", name]));
    }
    if let Some(gw) = &cfg.gateway {
        v.push(ip(&["route", "replace", "default", "via", gw, "dev", name]));
    }
    if cfg.dhcp == Some(true) {
        v.push(Step::Dhcp(name.to_string(), hostname.map(str::to_string)));
    }
    v
}

/// resolv.conf text for the configured DNS.
pub fn resolv_conf(cfg: &CloudConfig) -> String {
    let dns = &cfg.ros.network.dns;
    let mut s: String = dns
        .nameservers
        .0
        .iter()
        .map(|n| format!("nameserver {n}\n"))
        .collect();
    if !dns.search.0.is_empty() {
        s.push_str(&format!("search {}\n", dns.search.0.join(" ")));
    }
    s
}

fn links() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_str()?.to_string();
                    let mac = std::fs::read_to_string(e.path().join("address")).unwrap_or_default();
                    Some((n, mac.trim().to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn dhcp(name: &str, host: Option<&str>) -> std::io::Result<Child> {
    let mut c = Command::new("udhcpc");
    c.args(["-f", "-i", name, "-s", DHCP_SCRIPT, "-t", "20", "-T", "2"]);
    if let Some(h) = host {
        c.args(["-x", &format!("hostname:{h}")]);
    }
    c.spawn()
}

fn ipv4_of(name: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", name])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut words = text.split_whitespace();
    words.find(|w| *w == "inet")?;
    words.next().map(str::to_string)
}

/// `ros netconf`.
pub fn netconf(cfg: &CloudConfig) -> Result<(), GuestError> {
    let net = &cfg.ros.network;
    let _ = run(&["ip", "link", "set", "lo", "up"]);
    if !net.dns.nameservers.0.is_empty() {
        let path = "/etc/resolv.conf";
        // bind-mounted from the host: rewrite in place, never rename
        std::fs::write(path, resolv_conf(cfg)).map_err(|source| GuestError::Write {
            path: path.into(),
            source,
        })?;
    }
    let mut clients: Vec<(String, Option<String>, Child)> = Vec::new();
    for (name, mac) in links().into_iter().filter(|(n, _)| managed(n)) {
        let Some(ic) = pick(&net.interfaces, &name, &mac) else {
            continue;
        };
        for step in plan(&name, ic, cfg.hostname.as_deref()) {
            match step {
                Step::Ip(a) => {
                    let mut argv = vec!["ip"];
                    argv.extend(a.iter().map(String::as_str));
                    if let Err(e) = run(&argv) {
                        eprintln!("netconf: {e}");
                    }
                }
                Step::Dhcp(n, h) => match dhcp(&n, h.as_deref()) {
                    Ok(c) => clients.push((n, h, c)),
                    Err(e) => eprintln!("netconf: udhcpc {n}: {e}"),
                },
            }
        }
    }
    let timeout = Duration::from_secs(u64::from(net.dhcp_timeout.unwrap_or(10)) * 3);
    let t = Instant::now();
    for (n, _, _) in &clients {
        while ipv4_of(n).is_none() && t.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    for (name, _) in links().into_iter().filter(|(n, _)| managed(n)) {
        match ipv4_of(&name) {
            Some(a) => println!("netconf: {name} {a}"),
            None => println!("netconf: {name} no IPv4 address"),
        }
    }
    // Keep the DHCP clients renewing; restart one that exits. Until
    // stopped: then the clients go too (addresses stay, as on a poweroff).
    let stop = super::stop_flag();
    loop {
        if super::sleep_unless(&stop, Duration::from_secs(2)) {
            super::stop_children(clients.iter_mut().map(|(_, _, c)| c));
            println!("netconf: stopped");
            return Ok(());
        }
        for (n, h, c) in clients.iter_mut() {
            if let Ok(Some(_)) = c.try_wait() {
                if let Ok(nc) = dhcp(n, h.as_deref()) {
                    *c = nc;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{node::parse_document, validate};

    #[test]
    fn plans_static_and_dhcp() {
        let doc = "ros:\n  network:\n    interfaces:\n      eth*:\n        dhcp: true\n      eth1:\n        address: 10.0.0.5/24\n        gateway: 10.0.0.1\n        mtu: 1400\n";
        let (cfg, p) = validate(&parse_document("t", doc.as_bytes()).unwrap());
        assert!(p.is_empty(), "{p:?}");
        let ifs = &cfg.ros.network.interfaces;
        let eth0 = plan("eth0", pick(ifs, "eth0", "").unwrap(), Some("h"));
        assert_eq!(
            eth0.last(),
            Some(&Step::Dhcp("eth0".into(), Some("h".into())))
        );
        let eth1 = plan("eth1", pick(ifs, "eth1", "").unwrap(), None);
        let s = |a: &[&str]| Step::Ip(a.iter().map(|x| x.to_string()).collect());
        assert_eq!(
            eth1,
            [
                s(&["link", "set", "eth1", "mtu", "1400"]),
                s(&["link", "set", "eth1", "up"]),
                s(&["addr", "add", "10.0.0.5/24", "dev", "eth1"]),
                s(&["route", "replace", "default", "via", "10.0.0.1", "dev", "eth1"]),
            ]
        );
        assert!(pick(ifs, "wlan0", "").is_none());
        assert!(!managed("docker-sys") && !managed("lo") && managed("eth0"));
    }
}
