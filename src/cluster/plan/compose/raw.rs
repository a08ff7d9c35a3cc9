//! The two files as written: serde structs whose declared fields are the
//! supported keys, so [`crate::config::de::from_node`] reports every other
//! key by name. Conversion to the typed model is in `convert`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::values::{Command, KeyValues, StringList, Text, Ulimit};

/// A docker-compose v2 file (`version: "2"`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DockerFileV2 {
    /// `2`, `2.0`, `2.1` …
    pub version: Text,
    /// Services by name (null = a placeholder with no keys).
    pub services: BTreeMap<String, Option<DockerService>>,
    /// Named volumes.
    pub volumes: BTreeMap<String, Option<VolumeDef>>,
    /// Networks (accepted; the cluster overlay is used).
    pub networks: BTreeMap<String, Option<NetworkDef>>,
}

/// A top-level named volume.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct VolumeDef {
    /// Volume driver.
    pub driver: Option<String>,
    /// Driver options.
    pub driver_opts: KeyValues,
    /// Created outside the stack.
    pub external: Option<serde_json::Value>,
}

/// A top-level network.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct NetworkDef {
    /// Network driver.
    pub driver: Option<String>,
    /// Driver options.
    pub driver_opts: KeyValues,
    /// Created outside the stack.
    pub external: Option<serde_json::Value>,
}

/// v2 `logging:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Logging {
    /// Log driver.
    pub driver: Option<String>,
    /// Driver options.
    pub options: KeyValues,
}

/// One docker-compose service: every key ros supports.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DockerService {
    /// Image.
    pub image: Option<String>,
    /// Command.
    pub command: Option<Command>,
    /// Entrypoint.
    pub entrypoint: Option<Command>,
    /// Environment.
    pub environment: KeyValues,
    /// Labels (scheduling labels included).
    pub labels: KeyValues,
    /// Published ports.
    pub ports: Vec<Text>,
    /// Container-only ports.
    pub expose: Vec<Text>,
    /// Volumes.
    pub volumes: Vec<Text>,
    /// Volumes from services or containers.
    pub volumes_from: Vec<Text>,
    /// Volume driver.
    pub volume_driver: Option<String>,
    /// v1 network mode.
    pub net: Option<String>,
    /// v2 network mode.
    pub network_mode: Option<String>,
    /// v2 networks (names; the cluster overlay is used).
    pub networks: Option<serde_json::Value>,
    /// Restart policy.
    pub restart: Option<Text>,
    /// Memory limit.
    pub mem_limit: Option<Text>,
    /// Memory + swap limit.
    pub memswap_limit: Option<Text>,
    /// Memory reservation (also reserved by the scheduler).
    pub mem_reservation: Option<Text>,
    /// CPU reservation in milli-CPU (Rancher extension, also in rancher-compose).
    pub milli_cpu_reservation: Option<u64>,
    /// CPU shares.
    pub cpu_shares: Option<u64>,
    /// CPU set.
    pub cpuset: Option<Text>,
    /// Privileged.
    pub privileged: bool,
    /// Capabilities to add.
    pub cap_add: Vec<Text>,
    /// Capabilities to drop.
    pub cap_drop: Vec<Text>,
    /// Devices.
    pub devices: Vec<Text>,
    /// DNS servers.
    pub dns: StringList,
    /// DNS search domains.
    pub dns_search: StringList,
    /// Hostname.
    pub hostname: Option<String>,
    /// Domain name.
    pub domainname: Option<String>,
    /// User.
    pub user: Option<Text>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// v1 log driver.
    pub log_driver: Option<String>,
    /// v1 log options.
    pub log_opt: KeyValues,
    /// v2 logging.
    pub logging: Option<Logging>,
    /// TTY.
    pub tty: bool,
    /// Keep stdin open.
    pub stdin_open: bool,
    /// Read-only root filesystem.
    pub read_only: bool,
    /// Links to services of this stack.
    pub links: Vec<Text>,
    /// Links to services of other stacks.
    pub external_links: Vec<Text>,
    /// Extra /etc/hosts entries `HOST:IP`.
    pub extra_hosts: Vec<Text>,
    /// Security options.
    pub security_opt: Vec<Text>,
    /// PID namespace.
    pub pid: Option<String>,
    /// IPC namespace.
    pub ipc: Option<String>,
    /// ulimits.
    pub ulimits: BTreeMap<String, Ulimit>,
    /// tmpfs mounts.
    pub tmpfs: StringList,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// /dev/shm size.
    pub shm_size: Option<Text>,
    /// Start order hints (v2).
    pub depends_on: Vec<Text>,
}

/// Compose keys ros knows but does not support, with what to do instead.
/// They are reported by name (and removed before deserializing, so they
/// are not also reported as unknown).
pub const UNSUPPORTED_SERVICE_KEYS: &[(&str, &str)] = &[
    (
        "build",
        "building images is not supported; build and push the image, then use image:",
    ),
    (
        "extends",
        "extends is not supported; write the service out in full",
    ),
    (
        "env_file",
        "env_file is not supported; list the variables under environment:",
    ),
    (
        "container_name",
        "a service's containers are named <stack>-<service>-<n>; container_name is not supported",
    ),
    (
        "cgroup_parent",
        "cgroup_parent is not supported on cluster hosts",
    ),
];

/// A rancher-compose v2 file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RancherFileV2 {
    /// `2` …
    pub version: Text,
    /// Services by name.
    pub services: BTreeMap<String, Option<RancherService>>,
}

/// One rancher-compose service.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RancherService {
    /// Containers wanted.
    pub scale: Option<u32>,
    /// Scale bounds.
    pub scale_policy: Option<ScalePolicyRaw>,
    /// Activate on create.
    pub start_on_create: Option<bool>,
    /// Keep a replaced container's IP.
    pub retain_ip: Option<bool>,
    /// Health check.
    pub health_check: Option<HealthCheckRaw>,
    /// Upgrade strategy.
    pub upgrade_strategy: Option<UpgradeStrategyRaw>,
    /// Free-form metadata (served by the metadata service).
    pub metadata: Option<serde_json::Value>,
    /// Load balancer configuration.
    pub lb_config: Option<LbConfigRaw>,
    /// CPU reservation in milli-CPU.
    pub milli_cpu_reservation: Option<u64>,
    /// LB drain timeout.
    pub drain_timeout_ms: Option<u64>,
    /// External service IPs.
    pub external_ips: Vec<Text>,
    /// External service hostname.
    pub hostname: Option<String>,
}

/// rancher-compose keys ros knows but does not support.
pub const UNSUPPORTED_RANCHER_KEYS: &[(&str, &str)] = &[
    (
        "load_balancer_config",
        "the v1 load balancer is not supported; use lb_config with port_rules",
    ),
    (
        "default_cert",
        "certificates on the v1 load balancer are not supported; use lb_config",
    ),
    (
        "certs",
        "certificates on the v1 load balancer are not supported; use lb_config",
    ),
    ("service_schemas", "service_schemas is not supported"),
    ("storage_driver", "storage drivers are not supported"),
    ("network_driver", "network drivers are not supported"),
    ("type", "virtual machine services are not supported"),
    ("vcpu", "virtual machine services are not supported"),
    ("memory", "virtual machine services are not supported"),
    ("disks", "virtual machine services are not supported"),
    ("userdata", "virtual machine services are not supported"),
];

/// `scale_policy`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScalePolicyRaw {
    /// Start at.
    pub min: Option<u32>,
    /// Grow up to.
    pub max: Option<u32>,
    /// Step.
    pub increment: Option<u32>,
}

/// `health_check`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct HealthCheckRaw {
    /// Port to check.
    pub port: Option<i64>,
    /// HTTP request line; empty = TCP connect.
    pub request_line: Option<String>,
    /// Milliseconds between checks.
    pub interval: Option<u64>,
    /// Milliseconds before a check fails.
    pub response_timeout: Option<u64>,
    /// Successes to become healthy.
    pub healthy_threshold: Option<u32>,
    /// Failures to become unhealthy.
    pub unhealthy_threshold: Option<u32>,
    /// Milliseconds a new container may stay initializing.
    pub initializing_timeout: Option<u64>,
    /// Milliseconds a restarted container may stay reinitializing.
    pub reinitializing_timeout: Option<u64>,
    /// `recreate`, `none`, `recreateOnQuorum`.
    pub strategy: Option<StrategyName>,
    /// Quorum for `recreateOnQuorum` (flat spelling).
    pub quorum: Option<u32>,
    /// Quorum for `recreateOnQuorum` (Rancher's spelling).
    pub recreate_on_quorum_strategy_config: Option<QuorumRaw>,
}

/// `recreate_on_quorum_strategy_config`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct QuorumRaw {
    /// Healthy containers needed before unhealthy ones are recreated.
    pub quorum: Option<u32>,
}

/// Health strategy names as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum StrategyName {
    /// Replace unhealthy containers.
    #[serde(rename = "recreate")]
    Recreate,
    /// Only mark them.
    #[serde(rename = "none")]
    None,
    /// Replace only while enough are healthy.
    #[serde(rename = "recreateOnQuorum")]
    RecreateOnQuorum,
}

/// `upgrade_strategy`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct UpgradeStrategyRaw {
    /// Start the new container before stopping the old one.
    pub start_first: Option<bool>,
    /// Containers per batch.
    pub batch_size: Option<i64>,
    /// Milliseconds between batches.
    pub interval_millis: Option<i64>,
}

/// `lb_config`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct LbConfigRaw {
    /// Port rules.
    pub port_rules: Vec<PortRuleRaw>,
    /// Certificate names (`certificates` is accepted too).
    #[serde(alias = "certificates")]
    pub certs: Vec<Text>,
    /// Default certificate name.
    pub default_cert: Option<String>,
    /// Extra haproxy.cfg text.
    pub config: Option<String>,
    /// Cookie stickiness.
    pub stickiness_policy: Option<StickinessRaw>,
}

/// One `port_rules` entry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PortRuleRaw {
    /// Listening port.
    pub source_port: Option<i64>,
    /// Target container port.
    pub target_port: Option<i64>,
    /// `http`, `tcp`, `https`, `tls`, `sni`, `udp`.
    pub protocol: Option<String>,
    /// Host header match.
    pub hostname: Option<String>,
    /// Path prefix match.
    pub path: Option<String>,
    /// Target service (`svc` or `stack/svc`).
    pub service: Option<String>,
    /// Label selector for targets.
    pub selector: Option<String>,
    /// Backend name.
    pub backend_name: Option<String>,
    /// Rule priority.
    pub priority: Option<i64>,
}

/// `stickiness_policy`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct StickinessRaw {
    /// Policy name.
    pub name: Option<String>,
    /// Cookie name.
    pub cookie: Option<String>,
    /// Cookie domain.
    pub domain: Option<String>,
    /// Indirect cookie.
    pub indirect: Option<bool>,
    /// nocache.
    pub nocache: Option<bool>,
    /// postonly.
    pub postonly: Option<bool>,
    /// `rewrite`, `insert`, `prefix`.
    pub mode: Option<String>,
}
