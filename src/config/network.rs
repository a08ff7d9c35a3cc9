//! `ros.network`: interfaces (by name, glob or `mac=`), DHCP or static
//! addresses, DNS, VLANs, bonds and bridges, and the commands run around them.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::values::{BoolOrName, KeyValues, StringList, Text};

/// `ros.network`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct NetworkConfig {
    /// Commands run before any interface is configured.
    pub pre_cmds: Vec<String>,
    /// Commands run after all interfaces are configured.
    pub post_cmds: Vec<String>,
    /// Seconds to wait for a DHCP lease.
    pub dhcp_timeout: Option<u32>,
    /// Resolver settings.
    pub dns: DnsConfig,
    /// Proxy for HTTP.
    pub http_proxy: Option<String>,
    /// Proxy for HTTPS.
    pub https_proxy: Option<String>,
    /// Hosts that bypass the proxy.
    pub no_proxy: Option<String>,
    /// Interfaces by match: a name (`eth0`), a glob (`eth*`) or `mac=aa:bb:…`.
    pub interfaces: BTreeMap<String, InterfaceConfig>,
    /// Wi-Fi networks by name.
    pub wifi_networks: BTreeMap<String, WifiNetwork>,
    /// Modem networks by name.
    pub modem_networks: BTreeMap<String, KeyValues>,
}

/// `ros.network.dns`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct DnsConfig {
    /// Nameservers, in order.
    pub nameservers: StringList,
    /// Search domains.
    pub search: StringList,
}

/// One interface entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct InterfaceConfig {
    /// Match expression when it differs from the key.
    #[serde(rename = "match")]
    pub match_: Option<String>,
    /// Use DHCP.
    pub dhcp: Option<bool>,
    /// Extra DHCP client arguments.
    pub dhcp_args: Option<String>,
    /// One static address in CIDR form.
    pub address: Option<String>,
    /// More static addresses.
    pub addresses: StringList,
    /// Link-local IPv4.
    pub ipv4ll: Option<bool>,
    /// IPv4 default gateway.
    pub gateway: Option<String>,
    /// IPv6 default gateway.
    pub gateway_ipv6: Option<String>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Make this a bridge (`true`) or enslave it to the named bridge.
    pub bridge: Option<BoolOrName>,
    /// Enslave to this bond.
    pub bond: Option<String>,
    /// Bond options (`mode: 1`, `miimon: 100` …) when this is a bond.
    pub bond_opts: KeyValues,
    /// VLANs on this link: `"100,200:name"`.
    pub vlans: Option<Text>,
    /// Commands run before the link is configured (`$iface` is substituted).
    pub pre_up: Vec<String>,
    /// Commands run after the link is configured.
    pub post_up: Vec<String>,
    /// Wi-Fi network to join.
    pub wifi_network: Option<String>,
}

/// A Wi-Fi network.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct WifiNetwork {
    /// SSID.
    pub ssid: Option<String>,
    /// Pre-shared key (hidden on export).
    pub psk: Option<String>,
    /// Scan for a hidden SSID.
    pub scan_ssid: Option<u32>,
    /// Priority.
    pub priority: Option<i32>,
    /// Key management.
    pub key_mgmt: Option<String>,
    /// EAP method.
    pub eap: Option<String>,
    /// EAP identity.
    pub identity: Option<String>,
    /// EAP password (hidden on export).
    pub password: Option<String>,
    /// Static address.
    pub address: Option<String>,
    /// Static gateway.
    pub gateway: Option<String>,
}

/// How an interface key matches a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterfaceMatch {
    /// Exact link name.
    Name(String),
    /// Shell-style glob on the link name (`eth*`).
    Glob(String),
    /// MAC address, possibly a glob (`mac=aa:bb:*`).
    Mac(String),
}

impl InterfaceMatch {
    /// Parse an interface key or `match:` value.
    pub fn parse(key: &str) -> InterfaceMatch {
        if let Some(mac) = key.strip_prefix("mac=") {
            InterfaceMatch::Mac(mac.to_ascii_lowercase())
        } else if key.contains(['*', '?', '[']) {
            InterfaceMatch::Glob(key.to_string())
        } else {
            InterfaceMatch::Name(key.to_string())
        }
    }

    /// Does a link with this name and MAC match?
    pub fn matches(&self, name: &str, mac: &str) -> bool {
        match self {
            InterfaceMatch::Name(n) => n == name,
            InterfaceMatch::Glob(g) => glob_match(g, name),
            InterfaceMatch::Mac(m) => glob_match(m, &mac.to_ascii_lowercase()),
        }
    }

    /// Rank for choosing among several matches: MAC beats name beats glob.
    pub fn rank(&self) -> u8 {
        match self {
            InterfaceMatch::Mac(_) => 3,
            InterfaceMatch::Name(_) => 2,
            InterfaceMatch::Glob(_) => 1,
        }
    }
}

/// A VLAN parsed from `vlans: "100,200:name"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vlan {
    /// VLAN id.
    pub id: u16,
    /// Link name (default `PARENT.ID`).
    pub name: Option<String>,
}

/// Parse a `vlans` value; errors name the bad item.
pub fn parse_vlans(s: &str) -> Result<Vec<Vlan>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (id, name) = match p.split_once(':') {
                Some((i, n)) => (i, Some(n.to_string())),
                None => (p, None),
            };
            match id.parse::<u16>() {
                Ok(id) if (1..=4094).contains(&id) => Ok(Vlan { id, name }),
                _ => Err(format!("bad VLAN {p:?}: the id must be 1 to 4094")),
            }
        })
        .collect()
}

/// Shell-style glob: `*`, `?` and `[…]` classes.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_at(&p, &t)
}

fn glob_at(p: &[char], t: &[char]) -> bool {
    // Iterative with one backtrack point for `*`, so no pattern explodes.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, len)) = class_match(&p[pi..], t[ti]) {
                        if ok {
                            pi += len;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn class_match(p: &[char], c: char) -> Option<(bool, usize)> {
    let end = p.iter().skip(1).position(|x| *x == ']')? + 1;
    let body = &p[1..end];
    let (neg, body) = match body.first() {
        Some('!') | Some('^') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut i = 0;
    let mut hit = false;
    while i < body.len() {
        if i + 2 < body.len() && body[i + 1] == '-' {
            hit |= body[i] <= c && c <= body[i + 2];
            i += 3;
        } else {
            hit |= body[i] == c;
            i += 1;
        }
    }
    Some((hit != neg, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let rows = [
            ("eth*", "eth0", true),
            ("eth*", "eth", true),
            ("eth*", "wlan0", false),
            ("e?h0", "eth0", true),
            ("eth[0-2]", "eth1", true),
            ("eth[0-2]", "eth3", false),
            ("eth[!0]", "eth0", false),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("[", "[", true),
        ];
        for (p, t, want) in rows {
            assert_eq!(glob_match(p, t), want, "{p} vs {t}");
        }
    }

    #[test]
    fn interface_match_ranks() {
        let m = InterfaceMatch::parse("mac=AA:BB:*");
        assert!(m.matches("eth9", "aa:bb:cc:dd:ee:ff"));
        assert!(!m.matches("eth9", "ab:bb:cc:dd:ee:ff"));
        assert!(m.rank() > InterfaceMatch::parse("eth0").rank());
        assert!(InterfaceMatch::parse("eth0").rank() > InterfaceMatch::parse("eth*").rank());
    }

    #[test]
    fn vlans_parse() {
        assert_eq!(
            parse_vlans("100,200:foobar").unwrap(),
            vec![
                Vlan {
                    id: 100,
                    name: None
                },
                Vlan {
                    id: 200,
                    name: Some("foobar".into())
                }
            ]
        );
        assert!(parse_vlans("0").is_err());
        assert!(parse_vlans("x").unwrap_err().contains("\"x\""));
    }
}
