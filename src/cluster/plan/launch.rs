//! Launch config → container resource fields, on the server side of
//! container creation ([`super::reconcile`], pure: what it needs to know
//! about the project, services and containers around comes in as
//! [`Around`]): the project's random-port
//! range, sidekick-style placement next to `volumes_from` / `service:`
//! network sources, and the container's Rancher fields (`ports` as
//! `49153:80/tcp`, `publicEndpoints`, `entryPoint`, `restartPolicy` …) that
//! the agent API hands to the agent as a
//! [`crate::cluster::protocol::LaunchFields`].

use std::borrow::{Borrow, Cow};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::cluster::model::{format_id, Kind, Resource};
use crate::cluster::plan::compose::fields::NetworkMode;
use crate::cluster::plan::compose::ServiceSpec;
use crate::cluster::plan::scale;
use crate::cluster::plan::scheduler::{Placement, Request, DEFAULT_PORT_RANGE};
use crate::cluster::protocol::{LaunchFields, PublishedPort};

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

/// What container creation reads about its surroundings: the project (its
/// port range), the project's services and the live containers (rows as a
/// reconcile pass holds them: borrowed from its snapshot until changed).
#[derive(Clone, Copy, Debug)]
pub struct Around<'a> {
    /// The service's project.
    pub project: Option<&'a Resource>,
    /// Services (of any project: filtered by the caller's).
    pub services: &'a [Cow<'a, Resource>],
    /// Containers.
    pub containers: &'a [Cow<'a, Resource>],
}

/// The live container `<stack>-<service>-<idx>` of this stack (the newest
/// when an upgrade left two).
fn sibling<'a>(
    containers: &'a [Cow<'a, Resource>],
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
        .map(|c| &**c)
}

/// A container a `volumes_from` / `service:` source refers to: a service of
/// the stack (its container with the same index, like Rancher sidekicks:
/// `Ok(Some)`), or a plain container name (`Ok(None)`).
fn source<'a>(
    around: Around<'a>,
    s: &Resource,
    stack: &str,
    idx: u32,
    what: &str,
    name: &str,
) -> Result<Option<&'a Resource>, String> {
    let is_service = around.services.iter().any(|o| {
        o.project == s.project
            && !o.is_removed()
            && o.str("stackId") == s.str("stackId")
            && o.str("name") == Some(name)
    });
    if !is_service {
        return Ok(None);
    }
    sibling(around.containers, s, stack, name, idx)
        .map(Some)
        .ok_or_else(|| {
            format!(
                "{WAITING}{what} {name}: its container {} does not exist yet",
                scale::container_name(stack, name, idx)
            )
        })
}

/// How a reason not to create starts when it is a wait, not a failure.
pub const WAITING: &str = "waiting: ";

/// The service's `transitioning` for a reason not to create a container:
/// `yes` while waiting for a sibling, `error` otherwise.
pub fn transitioning(why: &str) -> &'static str {
    if why.starts_with(WAITING) {
        "yes"
    } else {
        "error"
    }
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

/// The sources a stored service row names (`volumes_from`, `service:`
/// network), read without decoding the whole spec.
fn row_sources(s: &Resource) -> Vec<String> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Lc {
        data_volumes_from: Vec<String>,
        network_mode: NetworkMode,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Spec {
        launch_config: Lc,
    }
    let Some(v) = s.data.get("_spec") else {
        return Vec::new();
    };
    let Ok(spec) = <Spec as serde::Deserialize>::deserialize(v) else {
        return Vec::new();
    };
    let mut out = spec.launch_config.data_volumes_from;
    if let NetworkMode::Service(n) = spec.launch_config.network_mode {
        out.push(n);
    }
    out
}

/// Services ordered so that the ones another service of the same stack
/// takes volumes or network from come first (a reconcile pass then creates
/// `data-1` before `web-1` that mounts its volumes), as positions into
/// `services`. Otherwise stable; cycles keep their order.
pub fn sources_order<R: Borrow<Resource>>(services: &[R]) -> Vec<usize> {
    let deps: Vec<Vec<usize>> = services
        .iter()
        .map(|s| {
            let s = s.borrow();
            row_sources(s)
                .iter()
                .filter_map(|name| {
                    services.iter().position(|o| {
                        let o = o.borrow();
                        o.str("stackId") == s.str("stackId") && o.str("name") == Some(name)
                    })
                })
                .collect()
        })
        .collect();
    fn depth(i: usize, deps: &[Vec<usize>], seen: &mut Vec<usize>) -> usize {
        if seen.contains(&i) {
            return 0;
        }
        seen.push(i);
        let d = deps[i]
            .iter()
            .map(|&j| depth(j, deps, seen) + 1)
            .max()
            .unwrap_or(0);
        seen.pop();
        d
    }
    let depths: Vec<usize> = (0..services.len())
        .map(|i| depth(i, &deps, &mut Vec::new()))
        .collect();
    let mut idx: Vec<usize> = (0..services.len()).collect();
    idx.sort_by_key(|&i| depths[i]);
    idx
}

/// Before placement: the project's port range, and the host of the
/// sibling containers this one shares volumes or network with.
pub fn prepare(
    around: Around<'_>,
    s: &Resource,
    spec: &ServiceSpec,
    stack: &str,
    idx: u32,
    req: &mut Request,
) -> Result<(), String> {
    req.port_range = port_range(around.project);
    for (what, name) in sources(spec) {
        if let Some(src) = source(around, s, stack, idx, what, name)? {
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
    around: Around<'_>,
    s: &Resource,
    stack: &str,
    idx: u32,
    what: &str,
    name: &str,
) -> Result<String, String> {
    if let Some(src) = source(around, s, stack, idx, what, name)? {
        return Ok(src.str("dockerName").unwrap_or_default().to_string());
    }
    // A container of the project by name, else a docker name on the host.
    Ok(around
        .containers
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
    around: Around<'_>,
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
        from.push(docker_name_of(around, s, stack, idx, "volumes_from", v)?);
    }
    let network = match &lc.network_mode {
        NetworkMode::Managed => "managed".to_string(),
        NetworkMode::Host => "host".into(),
        NetworkMode::Bridge => "bridge".into(),
        NetworkMode::None => "none".into(),
        NetworkMode::Container(n) => format!(
            "container:{}",
            docker_name_of(around, s, stack, idx, "network_mode container", n)?
        ),
        NetworkMode::Service(n) => format!(
            "container:{}",
            docker_name_of(around, s, stack, idx, "network_mode service", n)?
        ),
    };
    let fields = LaunchFields {
        published: Vec::new(),
        expose: lc
            .expose
            .iter()
            .map(|p| format!("{}/{}", p.private, p.protocol.as_str()))
            .collect(),
        data_volumes_from: from,
        run: lc.run.clone(),
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
    c.set(
        "drainTimeoutMs",
        lc.drain_timeout_ms.or(spec.drain_timeout_ms).unwrap_or(0),
    );
    Ok(())
}

/// The [`LaunchFields`] of a container resource (what [`apply`] set): the
/// row is read as a whole, so a field added to [`LaunchFields`] or
/// [`crate::cluster::plan::compose::RunOptions`] is read back under the key
/// [`apply`] wrote it with. `published` comes from the row's `ports` text.
pub fn fields_of(c: &Resource) -> LaunchFields {
    let mut f = LaunchFields::deserialize(&c.data).unwrap_or_else(|e| {
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

    fn spec_of(dc: &str, rc: Option<&str>) -> crate::cluster::plan::compose::StackSpec {
        use crate::cluster::plan::compose::{parse_stack, Source};
        parse_stack(
            "app",
            Source {
                name: "docker-compose.yml",
                bytes: dc.as_bytes(),
            },
            rc.map(|t| Source {
                name: "rancher-compose.yml",
                bytes: t.as_bytes(),
            }),
        )
        .unwrap()
    }

    /// The services of stack `1st1` and a host.
    fn world(services: &[&str]) -> (Vec<Resource>, Resource) {
        let mut rows = Vec::new();
        for (i, n) in services.iter().enumerate() {
            let mut s = Resource::new(Kind::Service, 10 + i as u64, 5, "active");
            s.set("name", *n);
            s.set("stackId", "1st1");
            rows.push(s);
        }
        let mut h = Resource::new(Kind::Host, 2, 5, "active");
        h.set("agentIpAddress", "10.0.0.12");
        (rows, h)
    }

    fn around<'a>(
        project: Option<&'a Resource>,
        services: &'a [Cow<'a, Resource>],
        containers: &'a [Cow<'a, Resource>],
    ) -> Around<'a> {
        Around {
            project,
            services,
            containers,
        }
    }

    fn cows(rows: &[Resource]) -> Vec<Cow<'_, Resource>> {
        rows.iter().map(Cow::Borrowed).collect()
    }

    fn sibling_row(id: u64, name: &str, host: u64) -> Resource {
        let mut c = Resource::new(Kind::Container, id, 5, "running");
        c.host = host;
        c.set("name", name);
        c.set("stackId", "1st1");
        c.set("desiredState", "running");
        c.set("dockerName", format!("r-{name}"));
        c
    }

    #[test]
    fn launch_config_to_container_fields() {
        let stack = spec_of(
            r#"version: '2'
services:
  web:
    image: busybox
    entrypoint: [/bin/sh, -c]
    ports: ["8080:80", "127.0.0.1::53/udp", "443"]
    expose: ["9000"]
    volumes_from: [data, other-container]
    network_mode: service:data
    restart: on-failure:2
    mem_limit: 64m
    mem_reservation: 32m
    cpu_shares: 512
    cpuset: "0-1"
    privileged: true
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    devices: [/dev/fuse]
    dns: [1.1.1.1]
    dns_search: [example.org]
    extra_hosts: ["db:10.0.0.9"]
    hostname: web
    domainname: example.org
    user: nobody
    working_dir: /srv
    logging: {driver: json-file, options: {max-size: 1m}}
    tty: true
    stdin_open: true
    read_only: true
    security_opt: [no-new-privileges]
    ulimits: {nofile: {soft: 10, hard: 20}}
  data:
    image: busybox
"#,
            Some("version: '2'\nservices:\n  web:\n    drain_timeout_ms: 1500\n"),
        );
        let spec = stack.service("web").unwrap();
        let (services, host) = world(&["web", "data"]);
        let web_svc = services[0].clone();
        let containers = vec![
            sibling_row(7, "app-data-2", 2),
            sibling_row(8, "app-data-1", 3),
            sibling_row(9, "other-container", 4),
        ];
        let mut req = spec.schedule_request("app", 2);
        prepare(
            around(None, &cows(&services), &cows(&containers)),
            &web_svc,
            spec,
            "app",
            2,
            &mut req,
        )
        .unwrap();
        assert_eq!(
            req.requested_host.as_deref(),
            Some("1h2"),
            "next to app-data-2"
        );
        assert_eq!(req.port_range, DEFAULT_PORT_RANGE);
        let placed = crate::cluster::plan::scheduler::Placement {
            host_id: "1h2".into(),
            ports: req
                .ports
                .iter()
                .map(|p| crate::cluster::plan::scheduler::HostPort {
                    port: p.port.or(Some(49153)),
                    ..p.clone()
                })
                .collect(),
            dropped: Vec::new(),
        };
        let mut c = Resource::new(Kind::Container, 20, 5, "requested");
        apply(
            around(None, &cows(&services), &cows(&containers)),
            &mut c,
            &web_svc,
            spec,
            "app",
            2,
            &placed,
            Some(&host),
        )
        .unwrap();
        let rows: Vec<(&str, Value)> = vec![
            ("entryPoint", json!(["/bin/sh", "-c"])),
            (
                "ports",
                json!(["8080:80/tcp", "127.0.0.1:49153:53/udp", "49153:443/tcp"]),
            ),
            ("expose", json!(["9000/tcp"])),
            (
                "dataVolumesFrom",
                json!(["r-app-data-2", "r-other-container"]),
            ),
            ("networkMode", json!("container:r-app-data-2")),
            (
                "restartPolicy",
                json!({"name": "on-failure", "maximumRetryCount": 2}),
            ),
            ("memory", json!(64 << 20)),
            ("memoryReservation", json!(32 << 20)),
            ("cpuShares", json!(512)),
            ("cpuSet", json!("0-1")),
            ("privileged", json!(true)),
            ("capAdd", json!(["NET_ADMIN"])),
            ("capDrop", json!(["MKNOD"])),
            ("devices", json!(["/dev/fuse"])),
            ("dns", json!(["1.1.1.1"])),
            ("dnsSearch", json!(["example.org"])),
            ("extraHosts", json!(["db:10.0.0.9"])),
            ("hostname", json!("web")),
            ("domainName", json!("example.org")),
            ("user", json!("nobody")),
            ("workingDir", json!("/srv")),
            (
                "logConfig",
                json!({"driver": "json-file", "config": {"max-size": "1m"}}),
            ),
            ("tty", json!(true)),
            ("stdinOpen", json!(true)),
            ("readOnly", json!(true)),
            ("securityOpt", json!(["no-new-privileges"])),
            ("ulimits", json!({"nofile": [10, 20]})),
            ("drainTimeoutMs", json!(1500)),
        ];
        for (k, want) in rows {
            assert_eq!(c.data.get(k), Some(&want), "{k}");
        }
        let eps = c.data["publicEndpoints"].as_array().unwrap();
        assert_eq!(eps[0]["ipAddress"], "10.0.0.12");
        assert_eq!(eps[1]["ipAddress"], "127.0.0.1");
        assert_eq!(eps[0]["port"], 8080);
        // What the agent gets back.
        let f = fields_of(&c);
        assert_eq!(f.published.len(), 3);
        assert_eq!(f.published[1].bind_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(f.published[1].protocol, "udp");
        assert_eq!(f.data_volumes_from, ["r-app-data-2", "r-other-container"]);
        assert_eq!(f.run.ulimits.get("nofile"), Some(&(10, 20)));
        assert!(f.run.privileged && f.run.tty && f.run.read_only);
    }

    #[test]
    fn sidekick_sources_must_exist_and_agree() {
        let stack = spec_of(
            "version: '2'\nservices:\n  web:\n    image: busybox\n    volumes_from: [data]\n  data:\n    image: busybox\n",
            None,
        );
        let spec = stack.service("web").unwrap();
        let (services, _h) = world(&["web", "data"]);
        let web_svc = services[0].clone();
        let mut req = spec.schedule_request("app", 1);
        let e = prepare(
            around(None, &cows(&services), &[]),
            &web_svc,
            spec,
            "app",
            1,
            &mut req,
        )
        .unwrap_err();
        assert!(e.contains("app-data-1 does not exist yet"), "{e}");
        assert_eq!(transitioning(&e), "yes", "a wait, not an error: {e}");
        let containers = vec![sibling_row(7, "app-data-1", 3)];
        req.requested_host = Some("1h2".into());
        let e = prepare(
            around(None, &cows(&services), &cows(&containers)),
            &web_svc,
            spec,
            "app",
            1,
            &mut req,
        )
        .unwrap_err();
        assert!(
            e.contains("is on 1h3, but this container must go to 1h2"),
            "{e}"
        );
        let mut p = Resource::new(Kind::Project, 5, 0, "active");
        p.set(
            "servicesPortRange",
            json!({"startPort": 30000, "endPort": 30001}),
        );
        req.requested_host = None;
        prepare(
            around(Some(&p), &cows(&services), &cows(&containers)),
            &web_svc,
            spec,
            "app",
            1,
            &mut req,
        )
        .unwrap();
        assert_eq!(req.requested_host.as_deref(), Some("1h3"));
        assert_eq!(req.port_range, (30000, 30001));
    }

    #[test]
    fn drain_timeout_from_the_api_launch_config() {
        let lc = crate::cluster::api::services::launch_config_from(
            &json!({"imageUuid": "docker:busybox", "drainTimeoutMs": 700}),
        )
        .unwrap();
        assert_eq!(lc.drain_timeout_ms, Some(700));
        let shown = crate::cluster::plan::rows::launch_config_json(&lc);
        assert_eq!(shown["drainTimeoutMs"], 700);
        let without = crate::cluster::plan::rows::launch_config_json(
            &crate::cluster::plan::compose::LaunchConfig::default(),
        );
        assert!(without.get("drainTimeoutMs").is_none());
        let spec = ServiceSpec {
            name: "web".into(),
            launch_config: lc,
            ..ServiceSpec::default()
        };
        let (services, host) = world(&["web"]);
        let svc = services[0].clone();
        let placed = Placement {
            host_id: "1h2".into(),
            ports: Vec::new(),
            dropped: Vec::new(),
        };
        let mut c = Resource::new(Kind::Container, 20, 5, "requested");
        apply(
            around(None, &cows(&services), &[]),
            &mut c,
            &svc,
            &spec,
            "app",
            1,
            &placed,
            Some(&host),
        )
        .unwrap();
        assert_eq!(c.data["drainTimeoutMs"], 700);
        assert_eq!(c.data["networkMode"], "managed");
        assert_eq!(c.data["ports"], json!([]));
    }

    #[test]
    fn volume_sources_are_reconciled_first() {
        let stack = spec_of(
            "version: '2'\nservices:\n  a:\n    image: busybox\n    volumes_from: [b]\n  b:\n    image: busybox\n    network_mode: service:c\n  c:\n    image: busybox\n  d:\n    image: busybox\n",
            None,
        );
        let rows: Vec<Resource> = stack
            .services
            .iter()
            .enumerate()
            .map(|(i, sp)| {
                let mut r = Resource::new(Kind::Service, i as u64 + 1, 5, "active");
                r.set("name", sp.name.clone());
                r.set("stackId", "1st1");
                r.set("_spec", serde_json::to_value(sp).unwrap());
                r
            })
            .collect();
        let names: Vec<String> = sources_order(&rows)
            .into_iter()
            .map(|i| rows[i].str("name").unwrap().to_string())
            .collect();
        assert_eq!(names, ["c", "d", "b", "a"]);
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
