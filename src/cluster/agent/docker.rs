//! Converging the user docker to the desired instances of this host, via
//! bollard. Containers are named `r-<name>` and carry labels tying them to
//! their instance, project and host; only labelled containers are touched.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StatsOptions,
    StopContainerOptions,
};
use bollard::{ClientVersion, Docker};
use futures_util::StreamExt;

use crate::cluster::model::{LABEL_HOST, LABEL_INSTANCE};
use crate::cluster::protocol::{DesiredInstance, Report};

/// Docker failures.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine refused or could not be reached.
    #[error("docker: {0}")]
    Engine(#[from] bollard::errors::Error),
}

/// API version spoken: Debian 12's docker.io 20.10 tops out at 1.41.
const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// Connect to the engine at `socket` (a path or `unix://` URL).
pub fn connect(socket: &str) -> Result<Docker, DockerError> {
    let path = socket.trim_start_matches("unix://");
    Ok(Docker::connect_with_unix(path, 120, &API_VERSION)?)
}

/// A managed container as docker shows it.
#[derive(Clone, Debug)]
pub struct Actual {
    /// Docker id.
    pub id: String,
    /// True when running.
    pub running: bool,
}

/// Managed containers of `host` by instance id.
pub async fn managed(docker: &Docker, host: &str) -> Result<HashMap<String, Actual>, DockerError> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_HOST}={host}")])]);
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    Ok(list
        .into_iter()
        .filter_map(|c| {
            let inst = c.labels.as_ref()?.get(LABEL_INSTANCE)?.clone();
            let running = c.state.map(|s| s.to_string() == "running").unwrap_or(false);
            Some((inst, Actual { id: c.id?, running }))
        })
        .collect())
}

fn report(d: &DesiredInstance, state: &str, id: Option<&str>, message: Option<String>) -> Report {
    Report {
        instance_id: d.id.clone(),
        state: state.into(),
        external_id: id.map(str::to_string),
        message,
        ..Report::default()
    }
}

async fn create(docker: &Docker, d: &DesiredInstance) -> Result<String, DockerError> {
    let body = ContainerCreateBody {
        image: Some(d.image.clone()),
        cmd: (!d.command.is_empty()).then(|| d.command.clone()),
        env: Some(
            d.environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(d.labels.clone().into_iter().collect()),
        host_config: Some(HostConfig {
            network_mode: d.network_mode.clone(),
            binds: (!d.volumes.is_empty()).then(|| d.volumes.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let opts = CreateContainerOptions {
        name: Some(d.docker_name.clone()),
        ..Default::default()
    };
    Ok(docker.create_container(Some(opts), body).await?.id)
}

async fn stop(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let opts = StopContainerOptions {
        t: Some(5),
        ..Default::default()
    };
    Ok(docker.stop_container(id, Some(opts)).await?)
}

async fn remove(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let opts = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    Ok(docker.remove_container(id, Some(opts)).await?)
}

/// Create (if needed) and start; intermediate states go to `send` at once.
async fn run(
    docker: &Docker,
    d: &DesiredInstance,
    existing: Option<&Actual>,
    send: &(dyn Fn(Vec<Report>) + Sync),
) -> Result<String, DockerError> {
    let id = match existing {
        Some(a) => a.id.clone(),
        None => {
            send(vec![report(d, "creating", None, None)]);
            create(docker, d).await?
        }
    };
    send(vec![report(d, "starting", Some(&id), None)]);
    docker.start_container(&id, None).await?;
    Ok(id)
}

/// One converge pass: returns the final reports (intermediate ones are
/// already sent through `send`).
pub async fn converge(
    docker: &Docker,
    host: &str,
    desired: &[DesiredInstance],
    send: &(dyn Fn(Vec<Report>) + Sync),
) -> Result<Vec<Report>, DockerError> {
    let actual = managed(docker, host).await?;
    let mut out = Vec::new();
    for d in desired {
        let a = actual.get(&d.id);
        let fresh = d.external_id.is_none() || matches!(d.state.as_str(), "requested" | "creating");
        let pending = matches!(
            d.state.as_str(),
            "requested" | "creating" | "starting" | "restarting"
        );
        let err = |e: DockerError| report(d, "error", None, Some(e.to_string()));
        match (d.desired_state.as_str(), a) {
            ("removed", Some(a)) => out.push(match remove(docker, &a.id).await {
                Ok(()) => report(d, "removed", None, None),
                Err(e) => err(e),
            }),
            ("removed", None) => out.push(report(d, "removed", None, None)),
            ("running", None) if fresh => out.push(match run(docker, d, None, send).await {
                Ok(id) => report(d, "running", Some(&id), None),
                Err(e) => err(e),
            }),
            ("stopped", None) if fresh => out.push(match create(docker, d).await {
                Ok(id) => report(d, "stopped", Some(&id), None),
                Err(e) => err(e),
            }),
            ("running" | "stopped", None) => out.push(report(
                d,
                "removed",
                None,
                Some("container removed outside ros".into()),
            )),
            ("running", Some(a)) if !a.running && pending => {
                out.push(match run(docker, d, Some(a), send).await {
                    Ok(id) => report(d, "running", Some(&id), None),
                    Err(e) => err(e),
                })
            }
            ("running", Some(a)) if !a.running && d.state != "stopped" => out.push(report(
                d,
                "stopped",
                Some(&a.id),
                Some("container stopped outside ros".into()),
            )),
            ("running", Some(a)) => {
                if d.state == "restarting" {
                    out.push(match docker.restart_container(&a.id, None).await {
                        Ok(()) => report(d, "running", Some(&a.id), None),
                        Err(e) => err(e.into()),
                    });
                } else if d.state != "running" {
                    out.push(report(d, "running", Some(&a.id), None));
                }
            }
            ("stopped", Some(a)) if a.running => {
                send(vec![report(d, "stopping", Some(&a.id), None)]);
                out.push(match stop(docker, &a.id).await {
                    Ok(()) => report(d, "stopped", Some(&a.id), None),
                    Err(e) => err(e),
                });
            }
            ("stopped", Some(a)) if !a.running && d.state != "stopped" => {
                out.push(report(d, "stopped", Some(&a.id), None))
            }
            _ => {}
        }
    }
    // Labelled containers of this host that no instance wants any more.
    for (inst, a) in &actual {
        if !desired.iter().any(|d| &d.id == inst) {
            tracing::info!(instance = %inst, "removing orphan container");
            if let Err(e) = remove(docker, &a.id).await {
                tracing::warn!(instance = %inst, error = %e, "cannot remove orphan");
            }
        }
    }
    Ok(out)
}

/// Previous CPU counters per instance: `(container total, system total)`.
pub type CpuSamples = HashMap<String, (u64, u64)>;

/// Usage reports (CPU percent since the previous sample, memory MiB) for the
/// running instances among `desired`.
pub async fn usage(
    docker: &Docker,
    host: &str,
    desired: &[DesiredInstance],
    prev: &mut CpuSamples,
) -> Result<Vec<Report>, DockerError> {
    let actual = managed(docker, host).await?;
    let mut out = Vec::new();
    for d in desired
        .iter()
        .filter(|d| d.state == "running" && d.desired_state == "running")
    {
        let Some(a) = actual.get(&d.id).filter(|a| a.running) else {
            continue;
        };
        let opts = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let Some(Ok(st)) = docker.stats(&a.id, Some(opts)).next().await else {
            continue;
        };
        let cpu = st.cpu_stats.as_ref();
        let total = cpu
            .and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0);
        let system = cpu.and_then(|c| c.system_cpu_usage).unwrap_or(0);
        let cpus = f64::from(cpu.and_then(|c| c.online_cpus).unwrap_or(1).max(1));
        let percent = match prev.insert(d.id.clone(), (total, system)) {
            Some((t0, s0)) if system > s0 => {
                let p = total.saturating_sub(t0) as f64 / (system - s0) as f64 * cpus * 100.0;
                (p * 10.0).round() / 10.0
            }
            _ => 0.0,
        };
        let mem = st.memory_stats.and_then(|m| m.usage).unwrap_or(0) / (1024 * 1024);
        out.push(Report {
            instance_id: d.id.clone(),
            // No state: a usage sample never moves the state machine.
            state: String::new(),
            external_id: None,
            cpu_percent: Some(percent),
            memory_mb: Some(mem),
            ..Report::default()
        });
    }
    prev.retain(|id, _| actual.contains_key(id));
    Ok(out)
}
