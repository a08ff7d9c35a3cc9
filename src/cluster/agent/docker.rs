//! The user docker through bollard: the create body of an instance, the
//! managed containers of this host, pulls, logs and usage stats.
//! Containers are named `r-<name>` and carry labels tying them to their
//! instance, project and host; only labelled containers are touched. What
//! to do with them is decided in `decide` and carried out in `converge`.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, HostConfigLogConfig, PortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateImageOptions, ListContainersOptions, LogsOptions, StatsOptions,
};
use bollard::{ClientVersion, Docker};
use futures_util::StreamExt;

use super::decide::Actual;
use crate::cluster::model::{LABEL_HOST, LABEL_INSTANCE};
use crate::cluster::protocol::{DesiredInstance, LogLine, Report};

/// Docker failures.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine refused or could not be reached.
    #[error("docker: {}", engine_message(.0))]
    Engine(#[from] bollard::errors::Error),
    /// Something around the engine failed (the managed network).
    #[error("{0}")]
    Other(String),
}

/// API version spoken: Debian 12's docker.io 20.10 tops out at 1.41.
const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// [`API_VERSION`] as the path prefix of raw requests (`v1.41`).
pub(crate) const API_VERSION_PATH: &str = "v1.41";

/// Connect to the engine at `socket` (a path or `unix://` URL).
pub(crate) fn connect(socket: &str) -> Result<Docker, DockerError> {
    let path = socket.trim_start_matches("unix://");
    Ok(Docker::connect_with_unix(path, 120, &API_VERSION)?)
}

/// Managed containers of `host` by instance id.
pub(crate) async fn managed(
    docker: &Docker,
    host: &str,
) -> Result<HashMap<String, Actual>, DockerError> {
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
/// The DNS server and search domains of a container: a service
/// container on a container network also asks the host's discovery DNS,
/// after the user's (Rancher: `Dns = [user…, 169.254.169.250]`,
/// `DnsSearch = [user…, <stack>.rancher.internal,
/// <service>.<stack>.rancher.internal, rancher.internal]`).
pub(crate) fn discovery_dns(d: &DesiredInstance) -> (Vec<String>, Vec<String>) {
    let r = &d.config.run;
    let (mut dns, mut search) = (r.dns.clone(), r.dns_search.clone());
    let own_net = match d.network_mode.as_deref() {
        None | Some("managed" | "bridge" | "default") => true,
        Some(_) => false,
    };
    let service = d
        .labels
        .get("io.rancher.stack_service.name")
        .and_then(|s| s.split_once('/'));
    let add = |v: &mut Vec<String>, s: String| {
        if !v.contains(&s) {
            v.push(s);
        }
    };
    if let (true, Some((stack, service))) = (own_net, service) {
        add(&mut dns, "169.254.169.250".into());
        let (stack, service) = (stack.to_lowercase(), service.to_lowercase());
        add(&mut search, format!("{stack}.rancher.internal"));
        add(&mut search, format!("{service}.{stack}.rancher.internal"));
        add(&mut search, "rancher.internal".into());
    } else if own_net && d.primary_ip_address.is_some() {
        // A standalone container on the managed network: the discovery
        // DNS and the environment's zone.
        add(&mut dns, "169.254.169.250".into());
        add(&mut search, "rancher.internal".into());
    }
    (dns, search)
}

pub(crate) fn create_body(d: &DesiredInstance) -> ContainerCreateBody {
    let f = &d.config;
    let r = &f.run;
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
    let tmpfs: HashMap<String, String> = r
        .tmpfs
        .iter()
        .map(|t| match t.split_once(':') {
            Some((p, o)) => (p.to_string(), o.to_string()),
            None => (t.clone(), String::new()),
        })
        .collect();
    let (dns, dns_search) = discovery_dns(d);
    let host_config = HostConfig {
        network_mode: match (&d.network, &d.primary_ip_address) {
            (Some(n), Some(_)) => Some(super::overlay::network_name(n)),
            _ => d.network_mode.clone().filter(|m| m != "managed"),
        },
        binds: some_vec(&d.volumes),
        volumes_from: some_vec(&f.data_volumes_from),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        restart_policy: r.restart_policy.as_ref().map(restart),
        memory: bytes(r.memory),
        memory_swap: bytes(r.memory_swap),
        memory_reservation: bytes(r.memory_reservation),
        cpu_shares: r.cpu_shares.and_then(|n| i64::try_from(n).ok()),
        cpuset_cpus: r.cpu_set.clone(),
        privileged: r.privileged.then_some(true),
        cap_add: some_vec(&r.cap_add),
        cap_drop: some_vec(&r.cap_drop),
        devices: (!r.devices.is_empty()).then(|| r.devices.iter().map(|t| device(t)).collect()),
        dns: some_vec(&dns),
        dns_search: some_vec(&dns_search),
        extra_hosts: some_vec(&r.extra_hosts),
        log_config: r.log_config.as_ref().map(|l| HostConfigLogConfig {
            typ: l.driver.clone(),
            config: (!l.config.is_empty()).then(|| l.config.clone().into_iter().collect()),
        }),
        readonly_rootfs: r.read_only.then_some(true),
        security_opt: some_vec(&r.security_opt),
        pid_mode: r.pid_mode.clone(),
        ipc_mode: r.ipc_mode.clone(),
        ulimits: (!r.ulimits.is_empty()).then(|| {
            r.ulimits
                .iter()
                .map(|(n, (soft, hard))| ResourcesUlimits {
                    name: Some(n.clone()),
                    soft: Some(*soft),
                    hard: Some(*hard),
                })
                .collect()
        }),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        shm_size: bytes(r.shm_size),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(d.image.clone()),
        cmd: some_vec(&d.command),
        entrypoint: some_vec(&r.entry_point),
        env: Some(
            d.environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(d.labels.clone().into_iter().collect()),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        hostname: r.hostname.clone(),
        domainname: r.domain_name.clone(),
        user: r.user.clone(),
        working_dir: r.working_dir.clone(),
        tty: r.tty.then_some(true),
        open_stdin: r.stdin_open.then_some(true),
        stop_signal: r.stop_signal.clone(),
        host_config: Some(host_config),
        networking_config: match (&d.network, &d.primary_ip_address) {
            (Some(n), Some(ip)) => Some(bollard::models::NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    super::overlay::network_name(n),
                    bollard::models::EndpointSettings {
                        ipam_config: Some(bollard::models::EndpointIpamConfig {
                            ipv4_address: Some(ip.clone()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )])),
            }),
            _ => None,
        },
        ..Default::default()
    }
}

/// `(repository, tag)` of an image reference (`latest` when untagged; a
/// digest stays in the name).
pub(crate) fn split_image(image: &str) -> (String, String) {
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
pub(crate) async fn pull(docker: &Docker, image: &str) -> Result<(), String> {
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
pub(crate) fn engine_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

/// Nanoseconds since the epoch of docker's RFC 3339 UTC timestamp
/// (`2026-11-24T03:34:50.123456789Z`).
pub(crate) fn parse_timestamp(t: &str) -> Option<u64> {
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
pub(crate) async fn logs(
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
pub(crate) type CpuSamples = HashMap<String, (u64, u64)>;

/// Usage reports (CPU percent since the previous sample, memory MiB) for the
/// running instances among `desired`.
pub(crate) async fn usage(
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
