//! Converging the user docker to the desired instances of this host, via
//! bollard. Containers are named `r-<name>` and carry labels tying them to
//! their instance, project and host; only labelled containers are touched.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, HostConfigLogConfig, PortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StatsOptions, StopContainerOptions,
};
use bollard::{ClientVersion, Docker};
use futures_util::StreamExt;

use crate::cluster::model::{LABEL_HOST, LABEL_INSTANCE};
use crate::cluster::protocol::{DesiredInstance, LogLine, Report};

/// Docker failures.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine refused or could not be reached.
    #[error("docker: {}", engine_message(.0))]
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

/// Rancher's label asking for a fresh pull before each create.
pub const LABEL_PULL_IMAGE: &str = "io.rancher.container.pull_image";

fn some_vec(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn bytes(v: Option<u64>) -> Option<i64> {
    v.and_then(|n| i64::try_from(n).ok())
}

/// A `devices:` entry as docker's mapping: `HOST[:CONTAINER[:PERMS]]`.
fn device(text: &str) -> DeviceMapping {
    let mut parts = text.splitn(3, ':');
    let host = parts.next().unwrap_or_default().to_string();
    let inner = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    let perms = parts.next().unwrap_or("rwm").to_string();
    DeviceMapping {
        path_in_container: Some(inner.unwrap_or_else(|| host.clone())),
        path_on_host: Some(host),
        cgroup_permissions: Some(perms),
    }
}

fn restart(p: &crate::cluster::plan::compose::fields::RestartPolicy) -> RestartPolicy {
    let name = match p.name.as_str() {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        _ => RestartPolicyNameEnum::NO,
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: p.maximum_retry_count.map(i64::from),
    }
}

/// The docker create body for an instance: everything of its launch config.
pub fn create_body(d: &DesiredInstance) -> ContainerCreateBody {
    let f = &d.config;
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed: Vec<String> = f.expose.clone();
    for p in &f.published {
        let key = format!("{}/{}", p.private, p.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.bind_ip.clone(),
                host_port: Some(p.public.to_string()),
            });
    }
    exposed.sort();
    let tmpfs: HashMap<String, String> = f
        .tmpfs
        .iter()
        .map(|t| match t.split_once(':') {
            Some((p, o)) => (p.to_string(), o.to_string()),
            None => (t.clone(), String::new()),
        })
        .collect();
    let host_config = HostConfig {
        network_mode: d.network_mode.clone().filter(|m| m != "managed"),
        binds: some_vec(&d.volumes),
        volumes_from: some_vec(&f.data_volumes_from),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        restart_policy: f.restart_policy.as_ref().map(restart),
        memory: bytes(f.memory),
        memory_swap: bytes(f.memory_swap),
        memory_reservation: bytes(f.memory_reservation),
        cpu_shares: f.cpu_shares.and_then(|n| i64::try_from(n).ok()),
        cpuset_cpus: f.cpu_set.clone(),
        privileged: f.privileged.then_some(true),
        cap_add: some_vec(&f.cap_add),
        cap_drop: some_vec(&f.cap_drop),
        devices: (!f.devices.is_empty()).then(|| f.devices.iter().map(|t| device(t)).collect()),
        dns: some_vec(&f.dns),
        dns_search: some_vec(&f.dns_search),
        extra_hosts: some_vec(&f.extra_hosts),
        log_config: f.log_config.as_ref().map(|l| HostConfigLogConfig {
            typ: l.driver.clone(),
            config: (!l.config.is_empty()).then(|| l.config.clone().into_iter().collect()),
        }),
        readonly_rootfs: f.read_only.then_some(true),
        security_opt: some_vec(&f.security_opt),
        pid_mode: f.pid_mode.clone(),
        ipc_mode: f.ipc_mode.clone(),
        ulimits: (!f.ulimits.is_empty()).then(|| {
            f.ulimits
                .iter()
                .map(|(n, (soft, hard))| ResourcesUlimits {
                    name: Some(n.clone()),
                    soft: Some(*soft),
                    hard: Some(*hard),
                })
                .collect()
        }),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        shm_size: bytes(f.shm_size),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(d.image.clone()),
        cmd: some_vec(&d.command),
        entrypoint: some_vec(&f.entry_point),
        env: Some(
            d.environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(d.labels.clone().into_iter().collect()),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        hostname: f.hostname.clone(),
        domainname: f.domain_name.clone(),
        user: f.user.clone(),
        working_dir: f.working_dir.clone(),
        tty: f.tty.then_some(true),
        open_stdin: f.stdin_open.then_some(true),
        stop_signal: f.stop_signal.clone(),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// `(repository, tag)` of an image reference (`latest` when untagged; a
/// digest stays in the name).
pub fn split_image(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_string(), String::new());
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => (
            image[..image.len() - tag.len() - 1].to_string(),
            tag.to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

/// Pull `image` from its registry; docker's message on failure.
pub async fn pull(docker: &Docker, image: &str) -> Result<(), String> {
    let (repo, tag) = split_image(image);
    let opts = CreateImageOptions {
        from_image: Some(repo),
        tag: (!tag.is_empty()).then_some(tag),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(opts), None, None);
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    return Err(format!("pull {image}: {e}"));
                }
            }
            Err(e) => return Err(format!("pull {image}: {}", engine_message(&e))),
        }
    }
    Ok(())
}

/// Docker's own message out of a bollard error.
pub fn engine_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

async fn create(docker: &Docker, d: &DesiredInstance) -> Result<String, DockerError> {
    let opts = CreateContainerOptions {
        name: Some(d.docker_name.clone()),
        ..Default::default()
    };
    Ok(docker
        .create_container(Some(opts), create_body(d))
        .await?
        .id)
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

/// When each draining container may be stopped, by instance id.
pub type Drains = HashMap<String, std::time::Instant>;

/// Pulls in flight or finished for `pull_image: always` creates, by
/// instance id (`None` while running).
pub type Pulls = std::sync::Arc<std::sync::Mutex<HashMap<String, Option<Result<(), String>>>>>;

/// What the agent remembers between converge passes.
#[derive(Default)]
pub struct Local {
    /// Drain deadlines.
    pub drains: Drains,
    /// Image pulls before create.
    pub pulls: Pulls,
}

enum PullStep {
    Wait,
    Ready,
    Failed(String),
}

/// For an instance labelled `io.rancher.container.pull_image: always`:
/// start its pull in the background (never holding up the other
/// containers), then say when it is done.
fn pull_step(docker: &Docker, pulls: &Pulls, d: &DesiredInstance) -> PullStep {
    let Ok(mut m) = pulls.lock() else {
        return PullStep::Failed("agent pull state poisoned".into());
    };
    match m.remove(&d.id) {
        None => {
            m.insert(d.id.clone(), None);
            let (docker, pulls, id, image) =
                (docker.clone(), pulls.clone(), d.id.clone(), d.image.clone());
            tokio::spawn(async move {
                let r = pull(&docker, &image).await;
                if let Ok(mut m) = pulls.lock() {
                    if m.contains_key(&id) {
                        m.insert(id, Some(r));
                    }
                }
            });
            PullStep::Wait
        }
        Some(None) => {
            m.insert(d.id.clone(), None);
            PullStep::Wait
        }
        Some(Some(Ok(()))) => PullStep::Ready,
        Some(Some(Err(e))) => PullStep::Failed(e),
    }
}

/// True when a running container told to stop or go may do so now: at once
/// without `drainTimeoutMs`, else once its drain deadline (set on the first
/// look) has passed. Never blocks: the next converge pass looks again.
fn drained(drains: &mut Drains, d: &DesiredInstance) -> bool {
    if d.drain_timeout_ms == 0 {
        return true;
    }
    let now = std::time::Instant::now();
    match drains.get(&d.id) {
        None => {
            tracing::info!(instance = %d.id, ms = d.drain_timeout_ms, "draining before stop");
            drains.insert(
                d.id.clone(),
                now + std::time::Duration::from_millis(d.drain_timeout_ms),
            );
            false
        }
        Some(t) if now < *t => false,
        Some(_) => {
            drains.remove(&d.id);
            true
        }
    }
}

/// Instances converged at once on one host.
const PARALLEL: usize = 8;

/// The docker work for one instance; its final report, if any.
async fn step(
    docker: &Docker,
    d: &DesiredInstance,
    a: Option<&Actual>,
    send: &(dyn Fn(Vec<Report>) + Sync),
) -> Option<Report> {
    let fresh = d.external_id.is_none() || matches!(d.state.as_str(), "requested" | "creating");
    let pending = matches!(
        d.state.as_str(),
        "requested" | "creating" | "starting" | "restarting"
    );
    let err = |e: DockerError| report(d, "error", None, Some(e.to_string()));
    match (d.desired_state.as_str(), a) {
        ("removed", Some(a)) => Some(match remove(docker, &a.id).await {
            Ok(()) => report(d, "removed", None, None),
            Err(e) => err(e),
        }),
        ("removed", None) => Some(report(d, "removed", None, None)),
        ("running", None) if fresh => Some(match run(docker, d, None, send).await {
            Ok(id) => report(d, "running", Some(&id), None),
            Err(e) => err(e),
        }),
        ("stopped", None) if fresh => Some(match create(docker, d).await {
            Ok(id) => report(d, "stopped", Some(&id), None),
            Err(e) => err(e),
        }),
        ("running" | "stopped", None) => Some(report(
            d,
            "removed",
            None,
            Some("container removed outside ros".into()),
        )),
        ("running", Some(a)) if !a.running && pending => {
            Some(match run(docker, d, Some(a), send).await {
                Ok(id) => report(d, "running", Some(&id), None),
                Err(e) => err(e),
            })
        }
        ("running", Some(a)) if !a.running && d.state != "stopped" => Some(report(
            d,
            "stopped",
            Some(&a.id),
            Some("container stopped outside ros".into()),
        )),
        ("running", Some(a)) => {
            if d.state == "restarting" {
                Some(match docker.restart_container(&a.id, None).await {
                    Ok(()) => report(d, "running", Some(&a.id), None),
                    Err(e) => err(e.into()),
                })
            } else if d.state != "running" {
                Some(report(d, "running", Some(&a.id), None))
            } else {
                None
            }
        }
        ("stopped", Some(a)) if a.running => {
            send(vec![report(d, "stopping", Some(&a.id), None)]);
            Some(match stop(docker, &a.id).await {
                Ok(()) => report(d, "stopped", Some(&a.id), None),
                Err(e) => err(e),
            })
        }
        ("stopped", Some(a)) if !a.running && d.state != "stopped" => {
            Some(report(d, "stopped", Some(&a.id), None))
        }
        _ => None,
    }
}

/// One converge pass: returns the final reports (intermediate ones are
/// already sent through `send`).
pub async fn converge(
    docker: &Docker,
    host: &str,
    desired: &[DesiredInstance],
    local: &mut Local,
    send: &(dyn Fn(Vec<Report>) + Sync),
) -> Result<Vec<Report>, DockerError> {
    let actual = managed(docker, host).await?;
    if let Ok(mut p) = local.pulls.lock() {
        p.retain(|id, _| desired.iter().any(|d| &d.id == id));
    }
    let drains = &mut local.drains;
    // A drain ends early when the instance is wanted running again.
    drains.retain(|id, _| {
        desired
            .iter()
            .any(|d| &d.id == id && d.desired_state != "running")
    });
    let mut out = Vec::new();
    let mut jobs = Vec::new();
    for d in desired {
        let a = actual.get(&d.id);
        let fresh = d.external_id.is_none() || matches!(d.state.as_str(), "requested" | "creating");
        let stopping = matches!(d.desired_state.as_str(), "removed" | "stopped");
        if stopping && a.is_some_and(|a| a.running) && !drained(drains, d) {
            continue;
        }
        let creates =
            a.is_none() && fresh && matches!(d.desired_state.as_str(), "running" | "stopped");
        if creates
            && d.labels
                .get(LABEL_PULL_IMAGE)
                .is_some_and(|v| v == "always")
        {
            match pull_step(docker, &local.pulls, d) {
                PullStep::Wait => continue,
                PullStep::Ready => {}
                PullStep::Failed(e) => {
                    out.push(report(d, "error", None, Some(e)));
                    continue;
                }
            }
        }
        jobs.push((d, a));
    }
    // The docker work of different instances runs side by side (each
    // instance's own steps stay in order): a host converging hundreds of
    // containers is not held to one create/start at a time.
    let done: Vec<Option<Report>> =
        futures_util::stream::iter(jobs.into_iter().map(|(d, a)| step(docker, d, a, send)))
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
    out.extend(done.into_iter().flatten());
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

/// Nanoseconds since the epoch of docker's RFC 3339 UTC timestamp
/// (`2026-11-24T03:34:50.123456789Z`).
pub fn parse_timestamp(t: &str) -> Option<u64> {
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut h = hms.splitn(3, ':').map(|x| x.parse::<i64>().ok());
    let (hh, mi, ss) = (h.next()??, h.next()??, h.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) || frac.len() > 9 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mi * 60 + ss;
    let nanos = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse::<u64>().ok()?
    };
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)
}

/// Most log text one answer carries (the API takes 1 MiB bodies).
const MAX_LOG_BYTES: usize = 768 * 1024;

/// Log lines of container `id` after `since_nanos` (the last `tail`), and
/// whether older lines were cut to fit the answer.
pub async fn logs(
    docker: &Docker,
    id: &str,
    tail: Option<u64>,
    since_nanos: u64,
) -> Result<(Vec<LogLine>, bool), String> {
    use bollard::container::LogOutput;
    let opts = LogsOptions {
        follow: false,
        stdout: true,
        stderr: true,
        since: i32::try_from(since_nanos / 1_000_000_000).unwrap_or(i32::MAX),
        until: 0,
        timestamps: true,
        tail: tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
    };
    let mut stream = docker.logs(id, Some(opts));
    let mut lines = Vec::new();
    while let Some(item) = stream.next().await {
        let (stream_name, bytes) = match item.map_err(|e| engine_message(&e))? {
            LogOutput::StdErr { message } => ("stderr", message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => ("stdout", message),
            LogOutput::StdIn { .. } => continue,
        };
        for l in String::from_utf8_lossy(&bytes).lines() {
            let (ts, text) = l.split_once(' ').unwrap_or((l, ""));
            let Some(n) = parse_timestamp(ts) else {
                continue;
            };
            if n > since_nanos {
                lines.push(LogLine {
                    time_nanos: n,
                    stream: stream_name.to_string(),
                    text: text.trim_end_matches('\r').to_string(),
                });
            }
        }
    }
    let mut size = 0;
    let keep = lines
        .iter()
        .rev()
        .take_while(|l| {
            size += l.text.len() + 64;
            size <= MAX_LOG_BYTES
        })
        .count();
    let cut = lines.len() - keep;
    lines.drain(..cut);
    Ok((lines, cut > 0))
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
    // dockerd answers a one-shot stats request at its collector's next
    // tick (~1 s): asked one after another, N containers took N seconds.
    let wanted: Vec<(String, String)> = desired
        .iter()
        .filter(|d| d.state == "running" && d.desired_state == "running")
        .filter_map(|d| {
            Some((
                d.id.clone(),
                actual.get(&d.id).filter(|a| a.running)?.id.clone(),
            ))
        })
        .collect();
    let jobs = wanted.into_iter().map(|(inst, cid)| {
        let docker = docker.clone();
        async move {
            let opts = StatsOptions {
                stream: false,
                one_shot: true,
            };
            let st = docker.stats(&cid, Some(opts)).next().await;
            (inst, st)
        }
    });
    let samples: Vec<_> = futures_util::stream::iter(jobs)
        .buffer_unordered(32)
        .collect()
        .await;
    let mut out = Vec::new();
    for (inst, st) in samples {
        let Some(Ok(st)) = st else {
            continue;
        };
        let cpu = st.cpu_stats.as_ref();
        let total = cpu
            .and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0);
        let system = cpu.and_then(|c| c.system_cpu_usage).unwrap_or(0);
        let cpus = f64::from(cpu.and_then(|c| c.online_cpus).unwrap_or(1).max(1));
        let percent = match prev.insert(inst.clone(), (total, system)) {
            Some((t0, s0)) if system > s0 => {
                let p = total.saturating_sub(t0) as f64 / (system - s0) as f64 * cpus * 100.0;
                (p * 10.0).round() / 10.0
            }
            _ => 0.0,
        };
        let mem = st.memory_stats.and_then(|m| m.usage).unwrap_or(0) / (1024 * 1024);
        out.push(Report {
            instance_id: inst,
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

#[cfg(test)]
#[path = "docker_tests.rs"]
mod tests;
