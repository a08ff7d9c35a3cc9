//! The agent ⇄ server protocol: plain JSON over HTTP(S), agent-initiated.
//!
//! Transport choice: HTTP long-poll, not WebSocket or gRPC. The agent
//! `POST`s `/v1/agent/sync` with its reports (heartbeat, facts, usage,
//! container state transitions) and the server answers with the complete
//! desired state of the instances assigned to that host, holding the answer
//! up to `waitMs` until something for the host changes. Why:
//! - level-triggered by construction: every answer is the whole desired
//!   state, so a lost message, a restarted agent or a restarted server
//!   needs no replay or resync protocol — the next poll converges;
//! - agent-initiated plain HTTP crosses NAT and proxies like Rancher's
//!   websocket did, and reuses the API's listener, auth and TLS;
//! - stateless on the server side (no per-connection session), which keeps
//!   the "several servers on one database" HA plan open;
//! - each poll is the heartbeat: no second channel to keep alive.
//!
//! The environment view (for each host's DNS and metadata) rides on the
//! same long-poll but is edge-triggered with a cursor: the agent sends the
//! `(viewEpoch, viewRevision)` it holds, the poll also answers as soon as
//! the view moved past it, and the answer carries only the entries changed
//! since ([`EnvDelta`]); a full copy only for a new agent, a restarted
//! server or an agent behind the forgotten removals. So a container
//! turning unhealthy costs every agent one small answer, not a full copy.
//!
//! The cost is one request per interval per host (100 hosts at 2 s is 50
//! requests/s, far below what the server answers; see the benchmarks).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cluster::plan::compose::RunOptions;

/// Facts a host reports at registration and on change.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct HostFacts {
    /// Hostname.
    pub hostname: String,
    /// The IP other hosts reach this one on.
    pub agent_ip: String,
    /// Host labels.
    pub labels: BTreeMap<String, String>,
    /// Logical CPUs.
    pub cpu_count: u64,
    /// Total memory, MiB.
    pub memory_mb: u64,
    /// Total disk of the state filesystem, MiB.
    pub disk_mb: u64,
    /// The user docker's version.
    pub docker_version: String,
    /// Kernel release.
    pub kernel: String,
    /// Operating system name.
    pub os: String,
}

/// Body of `POST /v1/agent/register`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// The registration token.
    pub token: String,
    /// The agent's own random identity key, persisted on the host.
    pub key: String,
    /// Host facts.
    pub facts: HostFacts,
}

/// Answer to a registration.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// The host id (`1h3`).
    pub host_id: String,
    /// The project id (`1a5`).
    pub project_id: String,
    /// Agent access key.
    pub access_key: String,
    /// Agent secret key (shown once).
    pub secret_key: String,
}

/// Resource usage of the host.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Usage {
    /// CPU busy since the last report, percent of all CPUs.
    pub cpu_percent: f64,
    /// Memory in use, MiB.
    pub memory_used_mb: u64,
    /// Disk in use, MiB.
    pub disk_used_mb: u64,
}

/// One container state transition or observation.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Report {
    /// Instance id (`1i7`); the host's own id (`1h3`) for a host
    /// feature's word on the host (state `overlay`: `message` becomes the
    /// host's `transitioningMessage`, none clears it); empty with state
    /// `attach` for a plain docker container (`externalId`, its name in
    /// `message`) that asks for a managed-network address.
    pub instance_id: String,
    /// New state (`creating`, `running`, `stopped`, `removed`, `error` …);
    /// empty for a usage-only sample.
    pub state: String,
    /// Docker container id.
    pub external_id: Option<String>,
    /// Error or detail message.
    pub message: Option<String>,
    /// New `healthState` (`initializing`, `healthy`, `unhealthy` …).
    pub health_state: Option<String>,
    /// CPU percent of the container.
    pub cpu_percent: Option<f64>,
    /// Memory of the container, MiB.
    pub memory_mb: Option<u64>,
}

/// Body of `POST /v1/agent/sync`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SyncRequest {
    /// Facts, when they changed (or on the first sync).
    pub facts: Option<HostFacts>,
    /// Host usage.
    pub usage: Option<Usage>,
    /// Container reports, in order.
    pub reports: Vec<Report>,
    /// The generation the agent last saw; the server waits while it is
    /// current.
    pub generation: u64,
    /// How long the server may hold the answer, ms (capped by the server).
    pub wait_ms: u64,
    /// The environment view the agent holds: the server's epoch it came
    /// from (0 = none yet) …
    pub view_epoch: u64,
    /// … and its revision. A long-poll also answers when the view moved
    /// past it, with only the entries changed since (see [`EnvDelta`]).
    pub view_revision: u64,
}

/// Desired state of one instance on the host.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct DesiredInstance {
    /// Instance id.
    pub id: String,
    /// Docker container name (`r-…`).
    pub docker_name: String,
    /// Image (`busybox`, from `imageUuid` `docker:busybox`).
    pub image: String,
    /// Command.
    pub command: Vec<String>,
    /// Environment.
    pub environment: BTreeMap<String, String>,
    /// Labels (the identity labels included).
    pub labels: BTreeMap<String, String>,
    /// Network mode.
    pub network_mode: Option<String>,
    /// Volumes as docker binds (`name:/path[:mode]`).
    pub volumes: Vec<String>,
    /// Health check the agent runs while the container runs.
    pub health_check: Option<crate::cluster::plan::compose::HealthCheck>,
    /// `running`, `stopped` or `removed`.
    pub desired_state: String,
    /// Last reported state.
    pub state: String,
    /// Docker id once created.
    pub external_id: Option<String>,
    /// The rest of the launch config (absent from old servers: defaults).
    pub config: LaunchFields,
    /// Milliseconds a running container keeps serving after it is told to
    /// stop or go (Rancher 1.6 `drainTimeoutMs`); 0 = at once.
    pub drain_timeout_ms: u64,
    /// Its address on the environment's managed network (the container
    /// row's `primaryIpAddress`); `None` when it is not on it.
    pub primary_ip_address: Option<String>,
    /// The managed network it is attached to (with `primary_ip_address`).
    pub network: Option<ManagedNetwork>,
    /// For a load balancer container: the certificates (with their keys)
    /// its `https`/`tls` rules terminate with; only its own host gets them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lb_certificates: Vec<LbCertificate>,
}

/// A certificate a load balancer container terminates TLS with (its
/// `Debug` leaves the PEM out: it holds the private key).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct LbCertificate {
    /// The certificate resource's name.
    pub name: String,
    /// Certificate, chain and private key, PEM, in that order.
    pub pem: String,
    /// Served to clients that name no known host (SNI).
    pub default: bool,
}

impl std::fmt::Debug for LbCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LbCertificate")
            .field("name", &self.name)
            .field("pem", &format_args!("<{} bytes>", self.pem.len()))
            .field("default", &self.default)
            .finish()
    }
}

/// An environment's managed network (the overlay) as an agent needs it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ManagedNetwork {
    /// The environment (`1a5`).
    pub project_id: String,
    /// Its subnet (`10.42.0.0/16`).
    pub subnet: String,
    /// VXLAN network identifier (one per environment: isolation).
    pub vni: u32,
    /// MTU of container interfaces; 0 = the underlay's MTU − 50.
    pub mtu: u32,
}

/// The addresses on a managed network that live on one other host: the
/// overlay's forwarding entries towards that host.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct OverlayPeer {
    /// The host (`1h2`).
    pub host_id: String,
    /// Its agent address: the VXLAN tunnel endpoint.
    pub agent_ip: String,
    /// Container addresses on that host.
    pub addresses: Vec<String>,
}

/// What the overlay of this host needs beyond its own instances.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct OverlayView {
    /// This host's environment network.
    pub network: ManagedNetwork,
    /// This host's agent address as the server knows it (the local
    /// tunnel endpoint).
    pub local_ip: String,
    /// The other hosts of the environment with their addresses.
    pub peers: Vec<OverlayPeer>,
    /// Plain `docker run` containers of this host labelled
    /// `io.rancher.container.network=true` and the addresses they got.
    pub attached: Vec<AttachedContainer>,
}

/// A plain docker container on the managed network (not created by ros):
/// its row and address.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct AttachedContainer {
    /// Its container row (`1i9`).
    pub instance_id: String,
    /// Docker id.
    pub docker_id: String,
    /// Its address.
    pub address: String,
}

/// One port published on the host: `[IP:]PUBLIC:PRIVATE/PROTO`, resolved.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct PublishedPort {
    /// Host address; `None` = all.
    pub bind_ip: Option<String>,
    /// Host port.
    pub public: u16,
    /// Container port.
    pub private: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// Launch-config fields of an instance beyond image/command/env/labels/
/// volumes, as the container resource names them (Rancher's camelCase): the
/// ones resolved for this container, and the compose model's own
/// [`RunOptions`] flattened beside them (the wire keys are the same as the
/// container row's).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct LaunchFields {
    /// Published ports (host ports resolved by the scheduler).
    pub published: Vec<PublishedPort>,
    /// Container-only ports (`80/tcp`).
    pub expose: Vec<String>,
    /// Docker names of the containers whose volumes are mounted.
    pub data_volumes_from: Vec<String>,
    /// Everything that passes from the launch config to docker unchanged.
    #[serde(flatten)]
    pub run: RunOptions,
}

/// Something the server asks of an agent beyond converging (the server
/// never connects to agents, so requests ride on sync answers).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentRequest {
    /// Id the answer quotes.
    pub request_id: String,
    /// `logs`, `pull`, `exec` or `lbStats`.
    pub kind: String,
    /// For `logs` and `lbStats`: the instance.
    pub instance_id: String,
    /// For `logs`: last N lines (`None` = all).
    pub tail: Option<u64>,
    /// For `logs`: only lines after this time (ns since the epoch).
    pub since_nanos: u64,
    /// For `pull`: the images.
    pub images: Vec<String>,
    /// For `exec`: the command (empty = the container's shell).
    pub command: Vec<String>,
}

/// One log line.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct LogLine {
    /// Time docker recorded, ns since the epoch.
    pub time_nanos: u64,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text, without the newline.
    pub text: String,
}

/// The outcome of pulling one image.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PullResult {
    /// Image.
    pub image: String,
    /// True when pulled.
    pub ok: bool,
    /// Docker's error.
    pub message: Option<String>,
}

/// Body of `POST /v1/agent/reply`: the answer to an [`AgentRequest`].
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentReply {
    /// The request answered.
    pub request_id: String,
    /// Failure of the whole request (unknown instance, docker down).
    pub error: Option<String>,
    /// Log lines, oldest first.
    pub lines: Vec<LogLine>,
    /// True when older lines were left out to fit the answer.
    pub truncated: bool,
    /// Pull results.
    pub pulls: Vec<PullResult>,
    /// For `lbStats`: HAProxy's `show stat` answer (CSV).
    pub text: Option<String>,
}

/// Answer to a sync.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SyncResponse {
    /// Generation of this answer.
    pub generation: u64,
    /// Every instance assigned to the host that is not removed yet.
    pub instances: Vec<DesiredInstance>,
    /// Pending requests (only on long-polls, `waitMs` > 0).
    pub requests: Vec<AgentRequest>,
    /// What changed in the environment view since the agent's
    /// `viewRevision` (only on long-polls; `None` when nothing did).
    pub view: Option<EnvDelta>,
    /// The managed network of the host's environment and its peers
    /// (absent from old servers).
    pub overlay: Option<OverlayView>,
}

/// The environment as the agents' DNS and metadata see it, sent as
/// changes: the server numbers every change of an entry with the view's
/// next revision and answers "changes since N" with the entries whose
/// revision is above N, plus the ids removed since. An agent that is too
/// far behind (the removals it missed were forgotten), or whose epoch is
/// not the server's (the server restarted), gets a full copy (`full`).
///
/// Entries carry ids, not copies of their parents (a container names its
/// service and stack by id), so a renamed stack is one changed entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvDelta {
    /// The server's view epoch (changes when the server restarts).
    pub epoch: u64,
    /// The revision this delta brings the agent to.
    pub revision: u64,
    /// True when this is a full copy: entries not in it are gone.
    pub full: bool,
    /// The environment (project) id and name.
    pub environment: EnvInfo,
    /// Changed or new hosts.
    pub hosts: Vec<EnvHost>,
    /// Changed or new stacks.
    pub stacks: Vec<EnvStack>,
    /// Changed or new services.
    pub services: Vec<EnvService>,
    /// Changed or new containers.
    pub containers: Vec<EnvContainer>,
    /// Ids of entries removed (any kind).
    pub removed: Vec<String>,
}

/// The environment itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvInfo {
    /// Project id (`1a5`).
    pub id: String,
    /// Its name (`Default`).
    pub name: String,
}

/// A host of the environment.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvHost {
    /// Host id (`1h3`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Hostname.
    pub hostname: String,
    /// The address other hosts reach it on.
    pub agent_ip: String,
    /// `active`, `reconnecting`, `disconnected`.
    pub agent_state: String,
    /// Host state.
    pub state: String,
    /// Host labels.
    pub labels: BTreeMap<String, String>,
    /// Memory, MiB.
    pub memory: u64,
    /// CPU, thousandths.
    pub milli_cpu: u64,
    /// Local storage, MiB.
    pub local_storage_mb: u64,
}

/// A stack.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvStack {
    /// Stack id.
    pub id: String,
    /// Name.
    pub name: String,
    /// State.
    pub state: String,
}

/// A link of a service: `alias` names `service` of `stack` (`None` = the
/// linking service's stack).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvLink {
    /// Target stack name.
    pub stack: Option<String>,
    /// Target service name.
    pub service: String,
    /// Alias.
    pub alias: String,
}

/// A service.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvService {
    /// Service id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Its stack's id.
    pub stack_id: String,
    /// `service`, `loadBalancerService`, `dnsService`, `externalService`.
    pub kind: String,
    /// State.
    pub state: String,
    /// Health state.
    pub health_state: String,
    /// Scale.
    pub scale: u64,
    /// Links and external links (a DNS alias service's targets).
    pub links: Vec<EnvLink>,
    /// The rancher-compose `metadata:` block.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Launch config labels.
    pub labels: BTreeMap<String, String>,
    /// Published ports as Rancher wrote them (`8080:80/tcp`).
    pub ports: Vec<String>,
    /// External service: its addresses.
    pub external_ips: Vec<String>,
    /// External service: its hostname (a CNAME).
    pub hostname: Option<String>,
    /// For a sidekick: its primary service's name.
    pub primary_service: Option<String>,
    /// A load balancer's port rules and settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lb_config: Option<Box<crate::cluster::plan::compose::LbConfig>>,
    /// Its containers' health check (the load balancer checks the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<Box<crate::cluster::plan::compose::HealthCheck>>,
    /// Milliseconds its containers drain before they stop (0 = at once).
    pub drain_timeout_ms: u64,
}

/// A container.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvContainer {
    /// Instance id (`1i7`).
    pub id: String,
    /// Name (`app-web-1`).
    pub name: String,
    /// Its service's id, if any.
    pub service_id: Option<String>,
    /// Its stack's id, if any.
    pub stack_id: Option<String>,
    /// Its host's id.
    pub host_id: String,
    /// State (`running` …).
    pub state: String,
    /// Health state (`None` = no health check).
    pub health_state: Option<String>,
    /// Its address on the environment's network (`primaryIpAddress`).
    pub primary_ip: Option<String>,
    /// Service index.
    pub service_index: u64,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Docker network mode when not the managed network (`host` …).
    pub network_mode: Option<String>,
    /// Docker container id.
    pub external_id: Option<String>,
    /// Times started.
    pub start_count: u64,
    /// Creation time, ms since the epoch (the create index's order).
    pub created_ms: i64,
}
