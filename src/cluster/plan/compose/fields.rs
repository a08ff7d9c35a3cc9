//! Parsers for the compose values that are strings with a syntax: ports,
//! memory sizes, volumes, restart policies, network modes and links. Each
//! returns the typed value or the message and code of what is wrong.

use serde::{Deserialize, Serialize};

use super::names::ErrorCode;
use crate::cluster::plan::scheduler::{HostPort, Protocol};

/// A parse failure: the API code and a message naming the value.
pub type FieldError = (ErrorCode, String);

/// One port of a launch config: `[[IP:]PUBLIC:]PRIVATE[/PROTO]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortSpec {
    /// Bind address on the host.
    pub bind_ip: Option<String>,
    /// Public (host) port; `None` = a random port from the range.
    pub public: Option<u16>,
    /// Container port.
    pub private: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl PortSpec {
    /// The host port the scheduler must find free.
    pub fn host_port(&self) -> HostPort {
        HostPort {
            bind_ip: self.bind_ip.clone(),
            port: self.public,
            protocol: self.protocol,
        }
    }
}

impl std::fmt::Display for PortSpec {
    /// Rancher's spelling: `8080:80/tcp`, `127.0.0.1:8080:80/tcp`, `80/tcp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(ip) = &self.bind_ip {
            write!(f, "{ip}:")?;
            if self.public.is_none() {
                write!(f, ":")?;
            }
        }
        if let Some(p) = self.public {
            write!(f, "{p}:")?;
        }
        write!(f, "{}/{}", self.private, self.protocol.as_str())
    }
}

/// Most ports one range may expand to.
const MAX_RANGE: u32 = 1000;

fn bad_port(text: &str, why: &str) -> FieldError {
    (
        ErrorCode::InvalidFormat,
        format!("invalid port {text:?}: {why} (expected [[IP:]PUBLIC:]PRIVATE[/tcp|udp])"),
    )
}

fn port_range(text: &str, part: &str) -> Result<(u16, u16), FieldError> {
    let num = |s: &str| -> Result<u16, FieldError> {
        match s.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad_port(
                text,
                &format!("{s:?} is not a port number (1-65535)"),
            )),
        }
    };
    match part.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a || u32::from(b - a) >= MAX_RANGE {
                return Err(bad_port(text, "bad range"));
            }
            Ok((a, b))
        }
        None => {
            let n = num(part)?;
            Ok((n, n))
        }
    }
}

/// Parse a `ports:` entry (ranges expand to one spec per port).
pub fn parse_port(text: &str) -> Result<Vec<PortSpec>, FieldError> {
    let (rest, protocol) = match text.rsplit_once('/') {
        Some((r, "tcp")) => (r, Protocol::Tcp),
        Some((r, "udp")) => (r, Protocol::Udp),
        Some((_, p)) => return Err(bad_port(text, &format!("unknown protocol {p:?}"))),
        None => (text, Protocol::Tcp),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, public, private) = match parts.as_slice() {
        [private] => (None, None, *private),
        [public, private] => (None, Some(*public), *private),
        [ip, public, private] => (Some(*ip), Some(*public), *private),
        _ => return Err(bad_port(text, "too many ':'")),
    };
    if let Some(ip) = ip {
        if ip.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(bad_port(text, &format!("{ip:?} is not an IPv4 address")));
        }
    }
    let (plo, phi) = port_range(text, private)?;
    let public = match public {
        None | Some("") => None,
        Some(p) => Some(port_range(text, p)?),
    };
    if let Some((lo, hi)) = public {
        if hi - lo != phi - plo {
            return Err(bad_port(text, "public and private ranges differ in size"));
        }
    }
    Ok((plo..=phi)
        .enumerate()
        .map(|(i, private)| PortSpec {
            bind_ip: ip.map(String::from),
            // The range size was checked above, so `i` fits.
            public: public.map(|(lo, _)| lo + i as u16),
            private,
            protocol,
        })
        .collect())
}

/// Parse an `expose:` entry: a container port, never published.
pub fn parse_expose(text: &str) -> Result<Vec<PortSpec>, FieldError> {
    let specs = parse_port(text)?;
    if specs
        .iter()
        .any(|s| s.public.is_some() || s.bind_ip.is_some())
    {
        return Err((
            ErrorCode::InvalidFormat,
            format!("invalid expose {text:?}: only a container port (and /proto) is allowed"),
        ));
    }
    Ok(specs)
}

/// Parse a memory size: bytes, or a number with `b`, `k`, `m`, `g` (an
/// optional trailing `b`: `512mb`), as Docker and compose accept.
pub fn parse_memory(text: &str) -> Result<u64, FieldError> {
    let bad = || {
        (
            ErrorCode::InvalidFormat,
            format!("invalid size {text:?}: expected bytes or a number with b, k, m or g (512m)"),
        )
    };
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').filter(|r| !r.is_empty()).unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    let bytes = v * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// What a volume entry refers to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VolumeKind {
    /// `/data`: a fresh anonymous volume (kept across upgrades by service index).
    #[default]
    Anonymous,
    /// `name:/data`: a named volume.
    Named,
    /// `/host/path:/data`: a host directory.
    Bind,
}

/// One `volumes:` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSpec {
    /// Kind.
    pub kind: VolumeKind,
    /// Volume name or host path.
    pub source: Option<String>,
    /// Path in the container.
    pub target: String,
    /// Options (`ro`, `rw`, `z`, `Z`, `nocopy`), comma-separated.
    pub mode: Option<String>,
}

impl std::fmt::Display for VolumeSpec {
    /// Rancher's `dataVolumes` spelling: `[SOURCE:]TARGET[:MODE]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = &self.source {
            write!(f, "{s}:")?;
        }
        f.write_str(&self.target)?;
        if let Some(m) = &self.mode {
            write!(f, ":{m}")?;
        }
        Ok(())
    }
}

/// Parse `[SOURCE:]TARGET[:MODE]`.
pub fn parse_volume(text: &str) -> Result<VolumeSpec, FieldError> {
    let bad = |why: &str| {
        (
            ErrorCode::InvalidFormat,
            format!("invalid volume {text:?}: {why}"),
        )
    };
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] if t.starts_with('/') => (Some(*s), *t, None),
        [t, m] => (None, *t, Some(*m)),
        [s, t, m] => (Some(*s), *t, Some(*m)),
        _ => return Err(bad("expected [SOURCE:]TARGET[:MODE]")),
    };
    if !target.starts_with('/') {
        return Err(bad("the container path must be absolute"));
    }
    if let Some(m) = mode {
        let ok = m
            .split(',')
            .all(|o| matches!(o, "ro" | "rw" | "z" | "Z" | "nocopy"));
        if !ok {
            return Err(bad(&format!("unknown mode {m:?} (ro, rw, z, Z, nocopy)")));
        }
    }
    let kind = match source {
        None => VolumeKind::Anonymous,
        Some(s) if s.starts_with('/') => VolumeKind::Bind,
        Some(s) if s.starts_with('.') || s.starts_with('~') => {
            return Err((
                ErrorCode::InvalidOption,
                format!(
                    "invalid volume {text:?}: relative host path {s:?} has no meaning on a cluster host; use an absolute path"
                ),
            ))
        }
        Some("") => return Err(bad("empty source")),
        Some(_) => VolumeKind::Named,
    };
    Ok(VolumeSpec {
        kind,
        source: source.map(String::from),
        target: target.to_string(),
        mode: mode.map(String::from),
    })
}

/// Docker restart policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartPolicy {
    /// `no`, `always`, `on-failure`, `unless-stopped`.
    pub name: String,
    /// Retries for `on-failure:N`.
    pub maximum_retry_count: Option<u32>,
}

/// Parse `restart:`.
pub fn parse_restart(text: &str) -> Result<RestartPolicy, FieldError> {
    let bad = || {
        (
            ErrorCode::InvalidOption,
            format!(
                "invalid restart policy {text:?}: expected no, always, on-failure[:N] or unless-stopped"
            ),
        )
    };
    let (name, count) = match text.split_once(':') {
        Some(("on-failure", n)) => ("on-failure", Some(n.parse::<u32>().map_err(|_| bad())?)),
        Some(_) => return Err(bad()),
        None => (text, None),
    };
    match name {
        "no" | "always" | "on-failure" | "unless-stopped" => Ok(RestartPolicy {
            name: name.to_string(),
            maximum_retry_count: count,
        }),
        // YAML 1.1 readers turn a plain `no` into false.
        "false" => Ok(RestartPolicy {
            name: "no".to_string(),
            maximum_retry_count: None,
        }),
        _ => Err(bad()),
    }
}

/// Network mode of a service's containers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NetworkMode {
    /// The cluster overlay (Rancher's default).
    #[default]
    Managed,
    /// The host's network.
    Host,
    /// The engine's bridge.
    Bridge,
    /// No network.
    None,
    /// Another container's network namespace.
    Container(String),
    /// A service's container's namespace (sidekicks).
    Service(String),
}

/// Parse `net:` / `network_mode:`.
pub fn parse_network_mode(text: &str) -> Result<NetworkMode, FieldError> {
    Ok(match text {
        "managed" | "default" => NetworkMode::Managed,
        "host" => NetworkMode::Host,
        "bridge" => NetworkMode::Bridge,
        "none" => NetworkMode::None,
        t => match t.split_once(':') {
            Some(("container", c)) if !c.is_empty() => NetworkMode::Container(c.to_string()),
            Some(("service", s)) if !s.is_empty() => NetworkMode::Service(s.to_string()),
            _ => {
                return Err((
                    ErrorCode::InvalidOption,
                    format!(
                        "invalid network mode {t:?}: expected managed, host, bridge, none, container:NAME or service:NAME"
                    ),
                ))
            }
        },
    })
}

/// A link to another service: `service[:alias]` or `stack/service[:alias]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// Stack of the target (`None` = this stack).
    pub stack: Option<String>,
    /// Target service.
    pub service: String,
    /// Name it is known by (defaults to the service name).
    pub alias: String,
}

/// Parse a `links:` / `external_links:` entry.
pub fn parse_link(text: &str) -> Result<Link, FieldError> {
    let (target, alias) = match text.split_once(':') {
        Some((t, a)) => (t, Some(a)),
        None => (text, None),
    };
    let (stack, service) = match target.split_once('/') {
        Some((st, sv)) => (Some(st.to_string()), sv),
        None => (None, target),
    };
    if service.is_empty() || alias == Some("") {
        return Err((
            ErrorCode::InvalidFormat,
            format!("invalid link {text:?}: expected [STACK/]SERVICE[:ALIAS]"),
        ));
    }
    Ok(Link {
        stack,
        service: service.to_string(),
        alias: alias.unwrap_or(service).to_string(),
    })
}

#[cfg(test)]
#[path = "fields_tests.rs"]
mod tests;
