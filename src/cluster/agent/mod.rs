//! `ros cluster agent`: registers this host with a registration URL,
//! persists its identity under the state directory (so a restart is the
//! same host), then long-polls the server (see [`crate::cluster::protocol`])
//! and converges the user docker to the instances assigned to it. Docker
//! events on managed containers (a plain `docker stop`/`rm`) trigger an
//! immediate converge pass, which reports what changed.
//!
//! The parts, as [`run`] wires them:
//! - `identity`: the registration URL, the saved identity, registering;
//! - `sync`: the long-poll loop — send reports, take the answer, converge;
//! - `converge`, `decide`, `runtime`: one converge pass — a pure
//!   `decide` of one step per instance, carried out through the `Runtime`
//!   seam (bollard in production, a recording fake in tests);
//! - `heartbeat`: liveness while a long converge holds the loop;
//! - `events`: docker events that call for a converge pass now;
//! - `relay`: requests the server relays (logs, pulls), answered aside;
//!   `exec`: a shell in a container, piped over a websocket to the server;
//! - `features`: what runs beside the loop on every host — health checks
//!   ([`health`]) and usage sampling today; a new host feature is one more
//!   entry in its list, not another task in `run`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::client::ClientError;
use super::protocol::{DesiredInstance, HostFacts, Report};

mod converge;
mod decide;
#[cfg(test)]
mod discovery_tests;
pub mod dns;
pub mod docker;
pub mod envview;
mod events;
mod exec;
pub mod facts;
#[cfg(test)]
mod fake;
mod features;
pub(crate) mod health;
mod heartbeat;
mod identity;
pub mod lb;
pub mod lb_config;
mod linkaddr;
pub(crate) mod metadata;
pub mod names;
pub mod overlay;
mod relay;
mod runtime;
pub mod status;
mod sync;

use identity::load_identity;
pub use identity::{parse_registration_url, token_pin};

/// Agent failures.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The registration URL is not `…/v1/scripts/<token>`.
    #[error("{0} is not a registration URL (…/v1/scripts/<token>)")]
    BadUrl(String),
    /// Talking to the server failed.
    #[error("server")]
    Client(#[from] ClientError),
    /// Docker failed.
    #[error("docker")]
    Docker(#[from] docker::DockerError),
    /// The identity file could not be written.
    #[error("cannot write {path}")]
    Identity {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error("tls")]
    Tls(#[from] crate::cluster::tls::TlsError),
    /// A blocking task died.
    #[error("agent task failed")]
    Task,
}

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Registration URL (`http://server:8080/v1/scripts/<token>`).
    pub url: String,
    /// The root prefix (for os-release).
    pub root: PathBuf,
    /// Where the identity is kept.
    pub state_dir: PathBuf,
    /// The user docker's socket.
    pub docker_socket: String,
    /// The IP other hosts reach this one on (detected when unset).
    pub ip: Option<String>,
    /// Hostname override.
    pub hostname: Option<String>,
    /// Host labels.
    pub labels: BTreeMap<String, String>,
    /// Heartbeat/poll interval.
    pub interval: Duration,
    /// How often per-container usage is reported.
    pub usage_interval: Duration,
    /// Where the DNS server listens (`None` = off; Rancher's
    /// `169.254.169.250:53`).
    pub dns_listen: Option<std::net::SocketAddr>,
    /// Where the DNS server forwards other names (empty = the host's
    /// `/etc/resolv.conf`).
    pub dns_upstreams: Vec<std::net::SocketAddr>,
    /// Where the metadata service listens (`None` = off;
    /// `169.254.169.250:80`).
    pub metadata_listen: Option<std::net::SocketAddr>,
    /// UDP port of the overlay's VXLAN tunnels.
    pub vxlan_port: u16,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ClientError> + Send + 'static,
) -> Result<T, AgentError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| AgentError::Task)?
        .map_err(AgentError::from)
}

/// Run the agent until the process ends.
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    let server = identity::Server::from_url(&cfg.url)?;
    let docker = docker::connect(&cfg.docker_socket)?;
    let facts = host_facts(&cfg, &server, &docker).await;
    let identity = load_identity(&cfg, &server);
    let converge_now = events::watch(docker.clone());
    let (assigned, assigned_rx) = tokio::sync::watch::channel(features::Assigned::default());
    let (reports, feature_reports) = tokio::sync::mpsc::unbounded_channel();
    let (view, view_rx) =
        tokio::sync::watch::channel(std::sync::Arc::new(envview::View::default()));
    for f in features::features(cfg.usage_interval, cfg.vxlan_port, discovery(&cfg)) {
        tracing::debug!(feature = f.name(), "starting host feature");
        f.start(features::FeatureContext {
            docker: docker.clone(),
            assigned: assigned_rx.clone(),
            reports: reports.clone(),
            view: view_rx.clone(),
        });
    }
    let heartbeat = heartbeat::Heartbeat::start(cfg.interval);
    let status = status::StatusFile::new(&cfg.state_dir, &server.root);
    sync::SyncLoop {
        cfg,
        server,
        docker,
        facts,
        identity,
        converge_now,
        assigned,
        feature_reports,
        view,
        heartbeat,
        status,
    }
    .run()
    .await
}

/// The discovery feature's settings from the agent's.
fn discovery(cfg: &AgentConfig) -> features::Discovery {
    let dns = cfg.dns_listen.map(|listen| {
        let upstreams = if cfg.dns_upstreams.is_empty() {
            let text = std::fs::read_to_string(cfg.root.join("etc/resolv.conf"))
                .or_else(|_| std::fs::read_to_string("/etc/resolv.conf"))
                .unwrap_or_default();
            dns::resolv_conf_upstreams(&text, &[listen.ip(), features::DISCOVERY_IP.into()])
        } else {
            cfg.dns_upstreams.clone()
        };
        dns::DnsConfig {
            listen,
            upstreams,
            timeout: Duration::from_secs(2),
        }
    });
    features::Discovery {
        dns,
        metadata: cfg.metadata_listen,
    }
}

/// Facts of this host, with its IP towards `server` unless configured, and
/// the docker version.
async fn host_facts(
    cfg: &AgentConfig,
    server: &identity::Server,
    docker: &bollard::Docker,
) -> HostFacts {
    let ip = cfg
        .ip
        .clone()
        .or_else(|| {
            // The source address towards the servers, the first that is
            // not loopback (a server of the list on this machine says
            // nothing about how other hosts reach this one), else the
            // default route's: a `both` node's agent talks to 127.0.0.1,
            // and with that as its address no other host reached its
            // containers over the overlay.
            facts::pick_agent_ip(
                server.host_parts().map(facts::local_ip_towards),
                facts::default_route_ip,
            )
        })
        .unwrap_or_default();
    let mut host_facts = facts::collect(
        &cfg.root,
        &cfg.state_dir,
        cfg.hostname.as_deref(),
        ip,
        cfg.labels.clone(),
    );
    host_facts.docker_version = docker
        .version()
        .await
        .ok()
        .and_then(|v| v.version)
        .unwrap_or_default();
    host_facts
}

/// Fold the states just reported into the local copy of the desired
/// instances, so a converge pass that runs before the next sync answer
/// (on a docker event) does not act on the old state again — e.g. restart
/// a container once more because it still reads `restarting`.
pub(crate) fn note_reports(desired: &mut [DesiredInstance], reports: &[Report]) {
    for r in reports.iter().filter(|r| !r.state.is_empty()) {
        if let Some(d) = desired.iter_mut().find(|d| d.id == r.instance_id) {
            d.state.clone_from(&r.state);
            if r.external_id.is_some() {
                d.external_id.clone_from(&r.external_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_states_update_the_local_view() {
        let d = |id: &str, state: &str| DesiredInstance {
            id: id.into(),
            state: state.into(),
            desired_state: "running".into(),
            ..DesiredInstance::default()
        };
        let mut desired = vec![d("1i1", "restarting"), d("1i2", "requested")];
        let rep = |id: &str, state: &str, ext: Option<&str>| Report {
            instance_id: id.into(),
            state: state.into(),
            external_id: ext.map(str::to_string),
            ..Report::default()
        };
        note_reports(
            &mut desired,
            &[
                rep("1i1", "running", None),
                rep("1i2", "running", Some("abc")),
                rep("1i2", "", None),
                rep("1i9", "running", None),
            ],
        );
        assert_eq!(desired[0].state, "running");
        assert_eq!(desired[0].external_id, None);
        assert_eq!(desired[1].state, "running");
        assert_eq!(desired[1].external_id.as_deref(), Some("abc"));
    }
}
