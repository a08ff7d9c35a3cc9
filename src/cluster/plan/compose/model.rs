//! The typed stack model a compose pair parses into: what the server stores
//! as a service's `launchConfig`, scale, health check and upgrade strategy.
//! Serialized field names follow Rancher's API (camelCase).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fields::{Link, NetworkMode, PortSpec, RestartPolicy, VolumeSpec};
use crate::cluster::plan::scheduler::{system_labels, Request};

/// Default `upgrade_strategy.batch_size` (API default; `ros compose up
/// --upgrade` passes its own).
pub const DEFAULT_BATCH_SIZE: u32 = 1;
/// Default `upgrade_strategy.interval_millis`.
pub const DEFAULT_INTERVAL_MILLIS: u64 = 2000;
/// Smallest interval Rancher accepts.
pub const MIN_INTERVAL_MILLIS: u64 = 100;
/// Port reserved for the load balancer's own health check.
pub const LB_RESERVED_PORT: u16 = 42;
/// The image every load balancer container runs, whatever tag the compose
/// file wrote (`rancher/lb-service-haproxy:…` only names the kind); built
/// by `images/haproxy.sh`.
pub const LB_IMAGE: &str = concat!("ros/lb-haproxy:", env!("CARGO_PKG_VERSION"));
/// Where a load balancer container sees its directory (config, sockets):
/// the docker volume `ros-lb-<instance id>`, written by the agent.
pub const LB_RUN_DIR: &str = "/run/lb";
/// The label the agent finds its load balancer containers by.
pub const LB_LABEL: &str = "io.ros.lb";

/// Which compose format the docker-compose file used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComposeVersion {
    /// Services at the top level.
    #[default]
    V1,
    /// `version: "2"` with `services:`.
    V2,
}

/// A parsed stack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackSpec {
    /// Stack name.
    pub name: String,
    /// Format of the docker-compose file.
    pub version: ComposeVersion,
    /// Services, sorted by name.
    pub services: Vec<ServiceSpec>,
    /// Top-level named volumes (v2) and their drivers.
    pub volumes: BTreeMap<String, Option<String>>,
    /// Top-level networks (v2), accepted by name.
    pub networks: Vec<String>,
}

impl ServiceSpec {
    /// The scheduler's request for container `index` of this service in
    /// `stack`: its labels plus the system labels, host ports and reservations.
    pub fn schedule_request(&self, stack: &str, index: u32) -> Request {
        let lc = &self.launch_config;
        let mut labels = lc.labels.clone();
        labels.extend(system_labels(stack, &self.name));
        Request {
            name: format!("{stack}-{}-{index}", self.name),
            stack: stack.to_string(),
            service: self.name.clone(),
            labels,
            ports: lc.ports.iter().map(|p| p.host_port()).collect(),
            memory_reservation: lc.run.memory_reservation.unwrap_or(0),
            milli_cpu_reservation: lc.milli_cpu_reservation.unwrap_or(0),
            ..Request::default()
        }
    }
}

impl LaunchConfig {
    /// A stable digest of the launch config (Rancher's
    /// `io.rancher.service.hash`): `ros compose up --upgrade` upgrades only
    /// services whose digest changed.
    pub fn digest(&self) -> String {
        // Maps are BTreeMaps, so the JSON text is canonical.
        let text = serde_json::to_string(self).unwrap_or_default();
        let h = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{h:016x}")
    }
}

impl StackSpec {
    /// A service by name.
    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// What kind of service (Rancher's `FindServiceType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ServiceKind {
    /// Containers from a launch config.
    #[default]
    Service,
    /// HAProxy load balancer (`lb_config.port_rules`).
    LoadBalancerService,
    /// DNS alias of other services (`rancher/dns-service`).
    DnsService,
    /// External IPs or hostname.
    ExternalService,
}

/// One service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service name.
    pub name: String,
    /// Kind.
    pub kind: ServiceKind,
    /// How its containers are made.
    pub launch_config: LaunchConfig,
    /// Containers wanted (ignored for global services).
    pub scale: u32,
    /// Scale bounds.
    pub scale_policy: Option<ScalePolicy>,
    /// Activate right after create.
    pub start_on_create: bool,
    /// Replacements keep the IP.
    pub retain_ip: bool,
    /// One container per eligible host (`io.rancher.scheduler.global`).
    pub global: bool,
    /// In-service upgrade settings.
    pub upgrade_strategy: UpgradeStrategy,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Load balancer configuration.
    pub lb_config: Option<LbConfig>,
    /// Links to services of this stack.
    pub links: Vec<Link>,
    /// Links to services of other stacks.
    pub external_links: Vec<Link>,
    /// External service IPs.
    pub external_ips: Vec<String>,
    /// External service hostname.
    pub external_hostname: Option<String>,
    /// `depends_on` (accepted and checked; the orchestrator does not order starts).
    pub depends_on: Vec<String>,
    /// LB drain timeout, milliseconds.
    pub drain_timeout_ms: Option<u64>,
    /// Written as `name:` with nothing under it (e.g. the target of `upgrade A B`).
    pub placeholder: bool,
}

/// A container template (Rancher's `launchConfig`): the fields whose shape
/// changes on the way to docker (ports get host ports, `volumes_from` and
/// `service:` network sources become docker names, volumes become binds),
/// plus the [`RunOptions`] that pass through unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LaunchConfig {
    /// Image reference.
    pub image: String,
    /// Command words.
    pub command: Vec<String>,
    /// Environment.
    pub environment: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Published ports.
    pub ports: Vec<PortSpec>,
    /// Container-only ports.
    pub expose: Vec<PortSpec>,
    /// Volumes.
    pub data_volumes: Vec<VolumeSpec>,
    /// Volumes from services or containers.
    pub data_volumes_from: Vec<String>,
    /// Volume driver.
    pub volume_driver: Option<String>,
    /// Network mode.
    pub network_mode: NetworkMode,
    /// milli-CPU reserved by the scheduler.
    pub milli_cpu_reservation: Option<u64>,
    /// Everything that reaches docker as written. Flattened: the JSON keys
    /// (`launchConfig`, the stored `_spec`) are the same as before the split.
    #[serde(flatten)]
    pub run: RunOptions,
    /// Health check.
    pub health_check: Option<HealthCheck>,
    /// Milliseconds a container keeps serving after it is told to stop or
    /// go (Rancher 1.6 `drainTimeoutMs`; rancher-compose `drain_timeout_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout_ms: Option<u64>,
    /// Rancher's `launchConfig.version`: `"0"` when the service is created,
    /// a new UUID with each in-service upgrade (set by the API, not compose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The launch-config fields that travel unchanged from the compose file to
/// docker's create body: one type in the compose model ([`LaunchConfig`]),
/// the container row (`plan::launch::apply` writes its keys), the agent
/// protocol (`protocol::LaunchFields`) and the agent's `create_body`.
/// Always `#[serde(flatten)]`-ed, so its camelCase keys sit beside the
/// other fields (Rancher's names: `entryPoint`, `capAdd`, `shmSize` …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RunOptions {
    /// Entrypoint words.
    pub entry_point: Vec<String>,
    /// Restart policy as written (the orchestrator restarts containers
    /// itself; docker gets it too).
    pub restart_policy: Option<RestartPolicy>,
    /// `mem_limit`, bytes.
    pub memory: Option<u64>,
    /// `memswap_limit`, bytes.
    pub memory_swap: Option<u64>,
    /// `mem_reservation`, bytes (reserved by the scheduler too).
    pub memory_reservation: Option<u64>,
    /// CPU shares.
    pub cpu_shares: Option<u64>,
    /// CPU set (`0-1`).
    pub cpu_set: Option<String>,
    /// Privileged.
    pub privileged: bool,
    /// Capabilities to add.
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    pub cap_drop: Vec<String>,
    /// Devices (`/dev/x[:/dev/y[:rwm]]`).
    pub devices: Vec<String>,
    /// DNS servers.
    pub dns: Vec<String>,
    /// DNS search domains.
    pub dns_search: Vec<String>,
    /// Hostname.
    pub hostname: Option<String>,
    /// Domain name.
    pub domain_name: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Log driver and options.
    pub log_config: Option<LogConfig>,
    /// TTY.
    pub tty: bool,
    /// Keep stdin open.
    pub stdin_open: bool,
    /// Read-only root filesystem.
    pub read_only: bool,
    /// Extra /etc/hosts entries (`host:ip`).
    pub extra_hosts: Vec<String>,
    /// Security options.
    pub security_opt: Vec<String>,
    /// PID namespace.
    pub pid_mode: Option<String>,
    /// IPC namespace.
    pub ipc_mode: Option<String>,
    /// ulimits by name: (soft, hard).
    pub ulimits: BTreeMap<String, (i64, i64)>,
    /// tmpfs mounts (`/path[:opts]`).
    pub tmpfs: Vec<String>,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// /dev/shm size, bytes.
    pub shm_size: Option<u64>,
}

/// Log driver settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogConfig {
    /// Driver (`json-file`, `syslog` …); `None` = the engine's default.
    pub driver: Option<String>,
    /// Options.
    pub config: BTreeMap<String, String>,
}

/// What happens to an unhealthy container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HealthStrategy {
    /// Remove it; reconcile makes a replacement.
    #[default]
    Recreate,
    /// Keep it, marked unhealthy (out of DNS and LB).
    None,
    /// Recreate only while at least `quorum` containers are healthy.
    RecreateOnQuorum {
        /// Healthy containers needed.
        quorum: u32,
    },
}

/// A health check (Rancher's `instanceHealthCheck`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Port to check.
    pub port: u16,
    /// HTTP request line (`GET /healthz HTTP/1.0`); `None` = TCP connect.
    pub request_line: Option<String>,
    /// Milliseconds between checks.
    pub interval: u64,
    /// Milliseconds before one check fails.
    pub response_timeout: u64,
    /// Successes to become healthy.
    pub healthy_threshold: u32,
    /// Failures to become unhealthy.
    pub unhealthy_threshold: u32,
    /// Milliseconds a new container may stay initializing.
    pub initializing_timeout: Option<u64>,
    /// Milliseconds a restarted container may stay reinitializing.
    pub reinitializing_timeout: Option<u64>,
    /// What to do with unhealthy containers.
    pub strategy: HealthStrategy,
}

impl HealthCheck {
    /// A check of `port` with Rancher's UI defaults.
    pub fn new(port: u16) -> HealthCheck {
        HealthCheck {
            port,
            request_line: None,
            interval: 2000,
            response_timeout: 2000,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            initializing_timeout: None,
            reinitializing_timeout: None,
            strategy: HealthStrategy::Recreate,
        }
    }
}

/// In-service upgrade settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStrategy {
    /// Containers replaced per batch (≥ 1).
    pub batch_size: u32,
    /// Milliseconds between batches (≥ 100).
    pub interval_millis: u64,
    /// Start new containers before stopping old ones.
    pub start_first: bool,
}

impl Default for UpgradeStrategy {
    fn default() -> UpgradeStrategy {
        UpgradeStrategy {
            batch_size: DEFAULT_BATCH_SIZE,
            interval_millis: DEFAULT_INTERVAL_MILLIS,
            start_first: false,
        }
    }
}

/// Scale bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalePolicy {
    /// Start at.
    pub min: u32,
    /// Grow up to.
    pub max: u32,
    /// Step.
    pub increment: u32,
}

/// Load balancer configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LbConfig {
    /// Port rules.
    pub port_rules: Vec<PortRule>,
    /// Certificate names.
    pub certificates: Vec<String>,
    /// Default certificate name.
    pub default_certificate: Option<String>,
    /// Extra haproxy.cfg text.
    pub config: Option<String>,
    /// Cookie stickiness, as written.
    pub stickiness_policy: Option<BTreeMap<String, String>>,
}

/// One load balancer port rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortRule {
    /// Listening port.
    pub source_port: u16,
    /// Target port.
    pub target_port: Option<u16>,
    /// `http` (default), `tcp`, `https`, `tls`, `sni`.
    pub protocol: String,
    /// Host header match.
    pub hostname: Option<String>,
    /// Path prefix match.
    pub path: Option<String>,
    /// Target service (`svc` or `stack/svc`).
    pub service: Option<String>,
    /// Label selector.
    pub selector: Option<String>,
    /// Backend name.
    pub backend_name: Option<String>,
    /// Priority.
    pub priority: Option<i64>,
}
