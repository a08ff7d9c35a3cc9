//! Launch config → container resource fields, on the server side of
//! container creation ([`super::reconcile`]): the project's random-port
//! range, sidekick-style placement next to `volumes_from` / `service:`
//! network sources, and the container's Rancher fields (`ports` as
//! `49153:80/tcp`, `publicEndpoints`, `entryPoint`, `restartPolicy` …) that
//! [`super::agent_api`] hands to the agent as a
//! [`crate::cluster::protocol::LaunchFields`].

use serde_json::{json, Value};

use crate::cluster::model::{format_id, Kind, Resource};
use crate::cluster::plan::compose::fields::NetworkMode;
use crate::cluster::plan::compose::ServiceSpec;
use crate::cluster::plan::scale;
use crate::cluster::plan::scheduler::{Placement, Request, DEFAULT_PORT_RANGE};
use crate::cluster::protocol::{LaunchFields, PublishedPort};
use crate::cluster::store::{Scope, Store};

/// The project's `servicesPortRange` (`{startPort, endPort}`), or Rancher's
/// default 49153–65535.
pub fn port_range(project: Option<&Resource>) -> (u16, u16) {
    let r = project.and_then(|p| p.data.get("servicesPortRange"));
    let num = |k: &str| {
        r.and_then(|r| r.get(k))
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
    };
    match (num("startPort"), num("endPort")) {
        (Some(a), Some(b)) if a > 0 && a <= b => (a, b),
        _ => DEFAULT_PORT_RANGE,
    }
}

/// Rancher's default `servicesPortRange` as the API shows it.
pub fn default_port_range() -> Value {
    json!({"startPort": DEFAULT_PORT_RANGE.0, "endPort": DEFAULT_PORT_RANGE.1})
}

/// Check a `servicesPortRange` value written through the API.
pub fn check_port_range(v: &Value) -> Result<(), String> {
    let num = |k: &str| v.get(k).and_then(Value::as_u64);
    match (num("startPort"), num("endPort")) {
        (Some(a), Some(b)) if (1..=65535).contains(&a) && (a..=65535).contains(&b) => Ok(()),
        _ => Err(format!(
            "servicesPortRange must be {{\"startPort\": N, \"endPort\": M}} with 1 <= N <= M <= 65535, got {v}"
        )),
    }
}

/// Check the launch-related fields of a project body (`servicesPortRange`).
pub fn check_project_fields(f: &serde_json::Map<String, Value>) -> Result<(), super::ApiError> {
    match f.get("servicesPortRange") {
        Some(v) => check_port_range(v)
            .map_err(|m| super::ApiError::field("InvalidOption", "servicesPortRange", m)),
        None => Ok(()),
    }
}

/// The live container `<stack>-<service>-<idx>` of this stack (the newest
/// when an upgrade left two).
fn sibling<'a>(
    containers: &'a [Resource],
    s: &Resource,
    stack: &str,
    service: &str,
    idx: u32,
) -> Option<&'a Resource> {
    let name = scale::container_name(stack, service, idx);
    containers
        .iter()
        .filter(|c| {
            !c.is_removed()
                && c.str("desiredState") != Some("removed")
                && c.str("stackId") == s.str("stackId")
                && c.str("name") == Some(name.as_str())
        })
        .max_by_key(|c| c.id)
}

/// A container a `volumes_from` / `service:` source refers to: a service of
/// the stack (its container with the same index, like Rancher sidekicks:
/// `Ok(Some)`), or a plain container name (`Ok(None)`).
fn source<'a>(
    store: &dyn Store,
    containers: &'a [Resource],
    s: &Resource,
    stack: &str,
    idx: u32,
    what: &str,
    name: &str,
) -> Result<Option<&'a Resource>, String> {
    let is_service = store
        .list(Kind::Service, Scope::Project(s.project))
        .map_err(|e| e.to_string())?
        .iter()
        .any(|o| {
            !o.is_removed() && o.str("stackId") == s.str("stackId") && o.str("name") == Some(name)
        });
    if !is_service {
        return Ok(None);
    }
    sibling(containers, s, stack, name, idx)
        .map(Some)
        .ok_or_else(|| {
            format!(
                "{what} {name}: its container {} does not exist yet",
                scale::container_name(stack, name, idx)
            )
        })
}

/// Sources of a launch config that must be on the same host.
fn sources(spec: &ServiceSpec) -> Vec<(&'static str, &str)> {
    let lc = &spec.launch_config;
    let mut out: Vec<(&str, &str)> = lc
        .data_volumes_from
        .iter()
        .map(|v| ("volumes_from", v.as_str()))
        .collect();
    if let NetworkMode::Service(n) = &lc.network_mode {
        out.push(("network_mode service", n.as_str()));
    }
    out
}

/// Before placement: the project's port range, and the host of the
/// sibling containers this one shares volumes or network with.
pub fn prepare(
    store: &dyn Store,
    containers: &[Resource],
    s: &Resource,
    spec: &ServiceSpec,
    stack: &str,
    idx: u32,
    req: &mut Request,
) -> Result<(), String> {
    let project = store
        .get(Kind::Project, s.project)
        .map_err(|e| e.to_string())?;
    req.port_range = port_range(project.as_ref());
    for (what, name) in sources(spec) {
        if let Some(src) = source(store, containers, s, stack, idx, what, name)? {
            let h = format_id(Kind::Host, src.host);
            match &req.requested_host {
                Some(r) if *r != h => {
                    return Err(format!(
                        "{what} {name}: {} is on {h}, but this container must go to {r}",
                        src.str("name").unwrap_or_default()
                    ))
                }
                _ => req.requested_host = Some(h),
            }
        }
    }
    Ok(())
}

/// The docker name a source resolves to.
fn docker_name_of(
    store: &dyn Store,
    containers: &[Resource],
    s: &Resource,
    stack: &str,
    idx: u32,
    what: &str,
    name: &str,
) -> Result<String, String> {
    if let Some(src) = source(store, containers, s, stack, idx, what, name)? {
        return Ok(src.str("dockerName").unwrap_or_default().to_string());
    }
    // A container of the project by name, else a docker name on the host.
    Ok(containers
        .iter()
        .filter(|c| c.project == s.project && !c.is_removed() && c.str("name") == Some(name))
        .max_by_key(|c| c.id)
        .and_then(|c| c.str("dockerName"))
        .map_or_else(|| name.to_string(), str::to_string))
}

/// Rancher's spelling of a published port: `[IP:]PUBLIC:PRIVATE/PROTO`.
pub fn port_text(p: &PublishedPort) -> String {
    match &p.bind_ip {
        Some(ip) => format!("{ip}:{}:{}/{}", p.public, p.private, p.protocol),
        None => format!("{}:{}/{}", p.public, p.private, p.protocol),
    }
}

/// Parse [`port_text`]'s spelling back.
pub fn parse_port_text(t: &str) -> Option<PublishedPort> {
    let (rest, proto) = t.rsplit_once('/').unwrap_or((t, "tcp"));
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, public, private) = match parts.as_slice() {
        [a, b] => (None, *a, *b),
        [ip, a, b] => (Some(ip.to_string()), *a, *b),
        _ => return None,
    };
    Some(PublishedPort {
        bind_ip: ip,
        public: public.parse().ok()?,
        private: private.parse().ok()?,
        protocol: proto.to_string(),
    })
}

/// Set the launch-config fields of a new container `c` (index `idx` of
/// service `s`) placed by `placed` on `host`.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    store: &dyn Store,
    containers: &[Resource],
    c: &mut Resource,
    s: &Resource,
    spec: &ServiceSpec,
    stack: &str,
    idx: u32,
    placed: &Placement,
    host: Option<&Resource>,
) -> Result<(), String> {
    let lc = &spec.launch_config;
    // The scheduler answers the request's ports in order.
    let published: Vec<PublishedPort> = lc
        .ports
        .iter()
        .zip(&placed.ports)
        .map(|(p, h)| PublishedPort {
            bind_ip: p.bind_ip.clone(),
            public: h.port.or(p.public).unwrap_or(0),
            private: p.private,
            protocol: p.protocol.as_str().to_string(),
        })
        .collect();
    let mut from = Vec::new();
    for v in &lc.data_volumes_from {
        from.push(docker_name_of(
            store,
            containers,
            s,
            stack,
            idx,
            "volumes_from",
            v,
        )?);
    }
    let network = match &lc.network_mode {
        NetworkMode::Managed => "managed".to_string(),
        NetworkMode::Host => "host".into(),
        NetworkMode::Bridge => "bridge".into(),
        NetworkMode::None => "none".into(),
        NetworkMode::Container(n) => format!(
            "container:{}",
            docker_name_of(
                store,
                containers,
                s,
                stack,
                idx,
                "network_mode container",
                n
            )?
        ),
        NetworkMode::Service(n) => format!(
            "container:{}",
            docker_name_of(store, containers, s, stack, idx, "network_mode service", n)?
        ),
    };
    let fields = LaunchFields {
        entry_point: lc.entry_point.clone(),
        published: Vec::new(),
        expose: lc
            .expose
            .iter()
            .map(|p| format!("{}/{}", p.private, p.protocol.as_str()))
            .collect(),
        data_volumes_from: from,
        restart_policy: lc.restart_policy.clone(),
        memory: lc.memory,
        memory_swap: lc.memory_swap,
        memory_reservation: lc.memory_reservation,
        cpu_shares: lc.cpu_shares,
        cpu_set: lc.cpu_set.clone(),
        privileged: lc.privileged,
        cap_add: lc.cap_add.clone(),
        cap_drop: lc.cap_drop.clone(),
        devices: lc.devices.clone(),
        dns: lc.dns.clone(),
        dns_search: lc.dns_search.clone(),
        extra_hosts: lc.extra_hosts.clone(),
        hostname: lc.hostname.clone(),
        domain_name: lc.domain_name.clone(),
        user: lc.user.clone(),
        working_dir: lc.working_dir.clone(),
        log_config: lc.log_config.clone(),
        tty: lc.tty,
        stdin_open: lc.stdin_open,
        read_only: lc.read_only,
        security_opt: lc.security_opt.clone(),
        pid_mode: lc.pid_mode.clone(),
        ipc_mode: lc.ipc_mode.clone(),
        ulimits: lc.ulimits.clone(),
        tmpfs: lc.tmpfs.clone(),
        stop_signal: lc.stop_signal.clone(),
        shm_size: lc.shm_size,
    };
    if let Value::Object(m) = json!(fields) {
        for (k, v) in m {
            if k != "published" {
                c.data.insert(k, v);
            }
        }
    }
    c.set("networkMode", network);
    c.set(
        "ports",
        json!(published.iter().map(port_text).collect::<Vec<_>>()),
    );
    let host_ip = host.and_then(|h| h.str("agentIpAddress")).unwrap_or("");
    let endpoints: Vec<Value> = published
        .iter()
        .map(|p| {
            json!({"type": "publicEndpoint",
                   "ipAddress": p.bind_ip.as_deref().filter(|ip| *ip != "0.0.0.0").unwrap_or(host_ip),
                   "port": p.public, "protocol": p.protocol,
                   "hostId": placed.host_id, "instanceId": c.api_id(),
                   "serviceId": s.api_id()})
        })
        .collect();
    c.set("publicEndpoints", json!(endpoints));
    c.set("drainTimeoutMs", spec.drain_timeout_ms.unwrap_or(0));
    Ok(())
}

/// The [`LaunchFields`] of a container resource (what [`apply`] set).
pub fn fields_of(c: &Resource) -> LaunchFields {
    let keys = [
        "entryPoint",
        "expose",
        "dataVolumesFrom",
        "restartPolicy",
        "memory",
        "memorySwap",
        "memoryReservation",
        "cpuShares",
        "cpuSet",
        "privileged",
        "capAdd",
        "capDrop",
        "devices",
        "dns",
        "dnsSearch",
        "extraHosts",
        "hostname",
        "domainName",
        "user",
        "workingDir",
        "logConfig",
        "tty",
        "stdinOpen",
        "readOnly",
        "securityOpt",
        "pidMode",
        "ipcMode",
        "ulimits",
        "tmpfs",
        "stopSignal",
        "shmSize",
    ];
    let m: serde_json::Map<String, Value> = keys
        .iter()
        .filter_map(|k| c.data.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect();
    let mut f: LaunchFields = serde_json::from_value(Value::Object(m)).unwrap_or_else(|e| {
        tracing::warn!(container = %c.api_id(), error = %e, "container launch fields unreadable");
        LaunchFields::default()
    });
    f.published = c
        .data
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(parse_port_text)
        .collect();
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_texts_round_trip() {
        for (text, want) in [
            (
                "49153:80/tcp",
                PublishedPort {
                    bind_ip: None,
                    public: 49153,
                    private: 80,
                    protocol: "tcp".into(),
                },
            ),
            (
                "127.0.0.1:53:53/udp",
                PublishedPort {
                    bind_ip: Some("127.0.0.1".into()),
                    public: 53,
                    private: 53,
                    protocol: "udp".into(),
                },
            ),
        ] {
            assert_eq!(parse_port_text(text).as_ref(), Some(&want), "{text}");
            assert_eq!(port_text(&want), text);
        }
        assert_eq!(parse_port_text("80"), None);
        assert_eq!(parse_port_text("x:80/tcp"), None);
    }

    #[test]
    fn port_ranges() {
        let mut p = Resource::new(Kind::Project, 5, 0, "active");
        assert_eq!(port_range(Some(&p)), DEFAULT_PORT_RANGE);
        assert_eq!(port_range(None), DEFAULT_PORT_RANGE);
        p.set(
            "servicesPortRange",
            json!({"startPort": 30000, "endPort": 30010}),
        );
        assert_eq!(port_range(Some(&p)), (30000, 30010));
        p.set(
            "servicesPortRange",
            json!({"startPort": 30010, "endPort": 30000}),
        );
        assert_eq!(port_range(Some(&p)), DEFAULT_PORT_RANGE);
        assert!(check_port_range(&json!({"startPort": 1, "endPort": 2})).is_ok());
        for bad in [
            json!({"startPort": 0, "endPort": 2}),
            json!({"startPort": 5, "endPort": 2}),
            json!({"startPort": 5, "endPort": 70000}),
            json!({"startPort": 5}),
            json!("1-2"),
        ] {
            assert!(check_port_range(&bad).is_err(), "{bad}");
        }
    }
}
