//! Compose fields → a container create request (pure).
//!
//! One function, [`container_spec`], turns a service definition into the
//! engine's create body. Two environment facts are passed in, not looked
//! up, so the translation is a table-testable function:
//! - [`Privilege`]: whether plain `--privileged` works here. When the
//!   kernel's capability bounding set is smaller than Docker expects (the
//!   development machines lack CAP_SYS_RESOURCE), runc refuses privileged
//!   containers; the equivalent explicit set is used instead.
//! - the [`Paths`] root: under `--root DIR` the host side of a bind mount
//!   moves below DIR, except kernel interfaces (`/dev`, `/sys`, `/proc`,
//!   `/lib/modules`, `/lib/firmware`), which stay the host's.

use std::collections::{BTreeMap, HashMap};

use blake2::{Blake2s256, Digest};
use bollard::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, HostConfigLogConfig, PortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};

use super::engine::{ContainerSpec, LABEL_HASH, LABEL_SERVICE};
use crate::config::service::ServiceConfig;
use crate::config::values::Text;
use crate::paths::Paths;

/// Host paths that are kernel interfaces: never moved below a `--root`.
pub const KERNEL_PATHS: &[&str] = &["/dev", "/sys", "/proc", "/lib/modules", "/lib/firmware"];

/// Capability names by number (capability.h), for the privileged fallback.
const CAP_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// How `privileged: true` is realised on this machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Privilege {
    /// Plain `--privileged` (a real boot: PID 1 has every capability).
    #[default]
    Full,
    /// The bounding set lacks these capabilities: add ALL, drop them, and
    /// unconfine seccomp, AppArmor, system paths and device cgroups.
    Fallback {
        /// Capability names (without `CAP_`) missing from the bounding set.
        missing: Vec<String>,
    },
}

impl Privilege {
    /// Decide from a `CapBnd` mask and `/proc/sys/kernel/cap_last_cap`.
    pub fn from_bounding_set(capbnd: u64, last_cap: u32) -> Privilege {
        let missing: Vec<String> = (0..=last_cap.min(63))
            .filter(|bit| capbnd & (1u64 << bit) == 0)
            .map(|bit| {
                CAP_NAMES
                    .get(bit as usize)
                    .map_or_else(|| format!("CAP_{bit}"), |n| (*n).to_string())
            })
            .collect();
        if missing.is_empty() {
            Privilege::Full
        } else {
            Privilege::Fallback { missing }
        }
    }

    /// Read this process's bounding set from procfs; `Full` when unreadable.
    pub fn detect() -> Privilege {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let capbnd = status
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
        let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        match (capbnd, last) {
            (Some(c), Some(l)) => Privilege::from_bounding_set(c, l),
            _ => Privilege::Full,
        }
    }
}

/// Errors translating a service definition.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// A field's value could not be understood.
    #[error("service {service}: {field}: {message}")]
    Field {
        /// The service.
        service: String,
        /// The compose field.
        field: &'static str,
        /// What was wrong.
        message: String,
    },
}

/// The container name of a service (`container_name`, else the service name).
pub fn container_name(name: &str, svc: &ServiceConfig) -> String {
    svc.container_name
        .clone()
        .unwrap_or_else(|| name.to_string())
}

/// A stable hash of everything that shapes the container.
pub fn definition_hash(
    name: &str,
    svc: &ServiceConfig,
    privilege: &Privilege,
    paths: &Paths,
) -> String {
    let mut h = Blake2s256::new();
    h.update(format!("{name}\n{svc:?}\n{privilege:?}\n{}", paths.root().display()).as_bytes());
    hex::encode(&h.finalize()[..12])
}

/// The host side of a bind mount below the root (kernel interfaces excepted).
pub fn host_path(paths: &Paths, host: &str) -> String {
    let kernel = KERNEL_PATHS
        .iter()
        .any(|k| host == *k || host.starts_with(&format!("{k}/")));
    if kernel || !paths.is_prefixed() {
        host.to_string()
    } else {
        paths.at(host).display().to_string()
    }
}

/// Parse `512m`, `1g`, `100k` or a byte count.
pub fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1i64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<i64>().ok().map(|n| n * mult)
}

/// The engine's restart policy for a service's `restart:`. `always` is
/// given to the engine as `unless-stopped`: both restart a service that
/// dies, but after a clean shutdown (every service stopped through the
/// engine) an `always` container is started again by the engine itself
/// as it starts, before its API answers and before `ros sysinit` orders
/// anything — on a state disk that made system-dockerd answer 28 s late
/// and started the console before cloud-init. After a power cut both
/// come back the same way.
fn restart_policy(service: &str, r: &str) -> Result<RestartPolicy, SpecError> {
    let (name, count) = r.split_once(':').unwrap_or((r, ""));
    let name = match name {
        "no" | "" => RestartPolicyNameEnum::NO,
        "always" | "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        other => {
            return Err(SpecError::Field {
                service: service.to_string(),
                field: "restart",
                message: format!(
                    "{other:?} is not one of no, always, on-failure[:N], unless-stopped"
                ),
            })
        }
    };
    let maximum_retry_count = if count.is_empty() {
        None
    } else {
        Some(count.parse::<i64>().map_err(|_| SpecError::Field {
            service: service.to_string(),
            field: "restart",
            message: format!("retry count {count:?} is not a number"),
        })?)
    };
    Ok(RestartPolicy {
        name: Some(name),
        maximum_retry_count,
    })
}

fn some<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// Build the create request for service `name`.
///
/// `env` fills environment entries written without a value (`- FOO`) from
/// `ros.environment`; `service_containers` maps service names to container
/// names for `volumes_from`.
pub fn container_spec(
    name: &str,
    svc: &ServiceConfig,
    privilege: &Privilege,
    paths: &Paths,
    env: &BTreeMap<String, String>,
    service_containers: &BTreeMap<String, String>,
) -> Result<ContainerSpec, SpecError> {
    let field = |field: &'static str, message: String| SpecError::Field {
        service: name.to_string(),
        field,
        message,
    };
    let hash = definition_hash(name, svc, privilege, paths);
    let mut labels: HashMap<String, String> = svc.labels.0.clone().into_iter().collect();
    labels.insert(LABEL_SERVICE.to_string(), name.to_string());
    labels.insert(LABEL_HASH.to_string(), hash.clone());

    let environment: Vec<String> = svc
        .environment
        .0
        .iter()
        .map(|(k, v)| match (v.is_empty(), env.get(k)) {
            (true, Some(g)) => format!("{k}={g}"),
            _ => format!("{k}={v}"),
        })
        .collect();

    let mut binds = Vec::new();
    let mut anonymous = Vec::new();
    for Text(v) in &svc.volumes {
        let parts: Vec<&str> = v.splitn(3, ':').collect();
        match parts.as_slice() {
            [container] => anonymous.push((*container).to_string()),
            [host, rest @ ..] if host.starts_with('/') => {
                let mut b = host_path(paths, host);
                for r in rest {
                    b.push(':');
                    b.push_str(r);
                }
                binds.push(b);
            }
            [_volume, ..] => binds.push(v.to_string()),
            [] => return Err(field("volumes", "empty entry".to_string())),
        }
    }

    let mut devices = Vec::new();
    for d in &svc.devices {
        let parts: Vec<&str> = d.0.split(':').collect();
        let (host, cont, perms) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] => (*h, *c, *p),
            _ => {
                return Err(field(
                    "devices",
                    format!("{:?} is not HOST[:CONTAINER[:PERMS]]", d.0),
                ))
            }
        };
        devices.push(DeviceMapping {
            path_on_host: Some(host.to_string()),
            path_in_container: Some(cont.to_string()),
            cgroup_permissions: Some(perms.to_string()),
        });
    }

    let mut tmpfs = HashMap::new();
    for t in &svc.tmpfs.0 {
        let (path, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        tmpfs.insert(path.to_string(), opts.to_string());
    }

    let ulimits: Vec<ResourcesUlimits> = svc
        .ulimits
        .iter()
        .map(|(n, u)| ResourcesUlimits {
            name: Some(n.clone()),
            soft: Some(u.soft),
            hard: Some(u.hard),
        })
        .collect();

    let mut exposed = Vec::new();
    let mut port_bindings = HashMap::new();
    for p in &svc.ports {
        let (spec, proto) = p.0.split_once('/').unwrap_or((p.0.as_str(), "tcp"));
        let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        let (cport, hport, hip) = match parts.as_slice() {
            [c] => (*c, "", ""),
            [c, h] => (*c, *h, ""),
            [c, h, ip] => (*c, *h, *ip),
            _ => {
                return Err(field(
                    "ports",
                    format!("{:?} is not [IP:][HOST:]CONTAINER", p.0),
                ))
            }
        };
        let key = format!("{cport}/{proto}");
        exposed.push(key.clone());
        port_bindings.insert(
            key,
            Some(vec![PortBinding {
                host_ip: (!hip.is_empty()).then(|| hip.to_string()),
                host_port: (!hport.is_empty()).then(|| hport.to_string()),
            }]),
        );
    }
    exposed.extend(svc.expose.iter().map(|e| {
        if e.0.contains('/') {
            e.0.clone()
        } else {
            format!("{}/tcp", e.0)
        }
    }));

    let size = |f: &'static str, v: &Option<Text>| {
        v.as_ref()
            .map(|t| {
                parse_size(&t.0)
                    .ok_or_else(|| field(f, format!("{:?} is not a size like 512m", t.0)))
            })
            .transpose()
    };

    let mut host = HostConfig {
        binds: None,
        network_mode: svc.net.clone(),
        pid_mode: svc.pid.clone(),
        ipc_mode: svc.ipc.clone(),
        uts_mode: svc.uts.clone(),
        volumes_from: some(
            svc.volumes_from
                .iter()
                .map(|v| {
                    let (src, mode) = match v.0.split_once(':') {
                        Some((s, m)) => (s, Some(m)),
                        None => (v.0.as_str(), None),
                    };
                    let c = service_containers.get(src).map_or(src, String::as_str);
                    mode.map_or_else(|| c.to_string(), |m| format!("{c}:{m}"))
                })
                .collect(),
        ),
        devices: some(devices),
        cap_add: some(svc.cap_add.iter().map(|c| c.0.clone()).collect()),
        cap_drop: some(svc.cap_drop.iter().map(|c| c.0.clone()).collect()),
        restart_policy: svc
            .restart
            .as_ref()
            .map(|r| restart_policy(name, &r.0))
            .transpose()?,
        readonly_rootfs: svc.read_only.then_some(true),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        ulimits: some(ulimits),
        log_config: svc.log_driver.as_ref().map(|d| HostConfigLogConfig {
            typ: Some(d.clone()),
            config: Some(svc.log_opt.0.clone().into_iter().collect()),
        }),
        dns: some(svc.dns.0.clone()),
        dns_search: some(svc.dns_search.0.clone()),
        extra_hosts: some(svc.extra_hosts.iter().map(|h| h.0.clone()).collect()),
        security_opt: some(svc.security_opt.iter().map(|s| s.0.clone()).collect()),
        oom_score_adj: svc.oom_score_adj,
        memory: size("mem_limit", &svc.mem_limit)?,
        cpu_shares: svc
            .cpu_shares
            .map(|n| {
                i64::try_from(n)
                    .ok()
                    .filter(|n| *n >= 2)
                    .ok_or_else(|| field("cpu_shares", format!("{n} is not a weight from 2 up")))
            })
            .transpose()?,
        shm_size: size("shm_size", &svc.shm_size)?,
        cgroup_parent: svc.cgroup_parent.clone(),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        ..Default::default()
    };
    if svc.privileged {
        match privilege {
            Privilege::Full => host.privileged = Some(true),
            Privilege::Fallback { missing } => {
                let mut add = vec!["ALL".to_string()];
                add.extend(host.cap_add.take().unwrap_or_default());
                host.cap_add = Some(add);
                let mut drop = host.cap_drop.take().unwrap_or_default();
                drop.extend(missing.iter().cloned());
                host.cap_drop = Some(drop);
                let mut sec = host.security_opt.take().unwrap_or_default();
                sec.extend([
                    "seccomp=unconfined".to_string(),
                    "apparmor=unconfined".to_string(),
                ]);
                host.security_opt = Some(sec);
                host.masked_paths = Some(Vec::new());
                host.readonly_paths = Some(Vec::new());
                host.device_cgroup_rules = Some(vec!["a *:* rwm".to_string()]);
                if !binds.iter().any(|b| b.split(':').nth(1) == Some("/dev")) {
                    binds.push("/dev:/dev".to_string());
                }
            }
        }
    }
    host.binds = some(binds);

    let body = ContainerCreateBody {
        image: Some(svc.image.clone()),
        cmd: svc.command.as_ref().map(|c| c.words()),
        entrypoint: svc.entrypoint.as_ref().map(|c| c.words()),
        env: some(environment),
        labels: Some(labels),
        hostname: svc.hostname.clone(),
        working_dir: svc.working_dir.clone(),
        user: svc.user.as_ref().map(|u| u.0.clone()),
        tty: svc.tty.then_some(true),
        open_stdin: svc.stdin_open.then_some(true),
        stop_signal: svc.stop_signal.clone(),
        volumes: some(anonymous),
        exposed_ports: some(exposed),
        host_config: Some(host),
        ..Default::default()
    };
    Ok(ContainerSpec {
        name: container_name(name, svc),
        hash,
        body,
    })
}
