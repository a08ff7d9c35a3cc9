//! `ros cluster agent`: registers this host with a registration URL,
//! persists its identity under the state directory (so a restart is the
//! same host), then long-polls the server (see [`crate::cluster::protocol`])
//! and converges the user docker to the instances assigned to it. Docker
//! events on managed containers (a plain `docker stop`/`rm`) trigger an
//! immediate converge pass, which reports what changed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::client::{Client, ClientError};
use super::model::LABEL_INSTANCE;
use super::protocol::{
    AgentReply, AgentRequest, DesiredInstance, PullResult, RegisterRequest, RegisterResponse,
    Report, SyncRequest, SyncResponse,
};

mod converge;
mod decide;
pub mod docker;
pub mod facts;
#[cfg(test)]
mod fake;
pub mod health;
mod runtime;

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
}

/// What the agent persists: who it is and how to authenticate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Server root URL.
    pub server: String,
    /// The agent's own key (sent at registration; same key → same host).
    pub key: String,
    /// Registration answer, once registered.
    pub registration: Option<RegisterResponse>,
}

/// The CA pin carried in a token (`<secret>.<sha256-hex>`), if any.
pub fn token_pin(token: &str) -> Option<&str> {
    token
        .rsplit_once('.')
        .map(|(_, h)| h)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A client of `server`, pinned to the CA when the token carries a pin.
fn client(
    server: &str,
    creds: Option<(&str, &str)>,
    pin: Option<&str>,
) -> Result<Client, AgentError> {
    Ok(match pin {
        Some(p) => Client::pinned(server, creds, p)?,
        None => Client::new(server, creds),
    })
}

/// `(server root, token)` from a registration URL.
pub fn parse_registration_url(url: &str) -> Result<(String, String), AgentError> {
    let bad = || AgentError::BadUrl(url.to_string());
    let (server, token) = url
        .trim_end_matches('/')
        .rsplit_once("/scripts/")
        .ok_or_else(bad)?;
    let server = server.trim_end_matches("/v1").trim_end_matches("/v2-beta");
    let server = match server.find("/projects/") {
        Some(i) => server[..i]
            .trim_end_matches("/v1")
            .trim_end_matches("/v2-beta"),
        None => server,
    };
    if token.is_empty()
        || token.contains('/')
        || !(server.starts_with("http://") || server.starts_with("https://"))
    {
        return Err(bad());
    }
    Ok((server.to_string(), token.to_string()))
}

fn identity_path(cfg: &AgentConfig) -> PathBuf {
    cfg.state_dir.join("cluster").join("agent.json")
}

fn save(cfg: &AgentConfig, id: &Identity) -> Result<(), AgentError> {
    let path = identity_path(cfg);
    let err = |source| AgentError::Identity {
        path: path.display().to_string(),
        source,
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(id).unwrap_or_default();
    // It holds the agent's secret: owner-only, written whole or not at all.
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?
    };
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

/// The saved identity, or a new one for `server`.
pub fn load_identity(cfg: &AgentConfig, server: &str) -> Identity {
    std::fs::read_to_string(identity_path(cfg))
        .ok()
        .and_then(|s| serde_json::from_str::<Identity>(&s).ok())
        .filter(|i| i.server == server)
        .unwrap_or_else(|| Identity {
            server: server.to_string(),
            key: super::auth::random_token(64),
            registration: None,
        })
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
    let (server, token) = parse_registration_url(&cfg.url)?;
    let pin = token_pin(&token).map(str::to_string);
    if server.starts_with("https://") && pin.is_none() {
        tracing::warn!("https registration URL without a CA pin: trusting the system roots");
    }
    let docker = docker::connect(&cfg.docker_socket)?;
    let host_part = server
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("");
    let ip = cfg
        .ip
        .clone()
        .or_else(|| facts::local_ip_towards(host_part))
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
    let mut identity = load_identity(&cfg, &server);
    let notify = Arc::new(Notify::new());
    tokio::spawn(watch_events(docker.clone(), notify.clone()));
    let mut sampler = facts::Sampler::default();
    let mut send_facts = true;
    let mut generation = 0;
    let mut desired: Vec<DesiredInstance> = Vec::new();
    let mut checker = health::Checker::default();
    let mut pending: Vec<Report> = Vec::new();
    // Usage sampling runs beside the sync loop: dockerd answers a one-shot
    // stats request at its collector's next 1 s tick, so sampling N
    // containers one after another took ~N seconds — in the loop, that
    // stalled heartbeats until the server saw a live host as
    // `reconnecting` or even `disconnected` (and moved its health-checked
    // containers away).
    let (desired_tx, desired_rx) = tokio::sync::watch::channel::<Vec<DesiredInstance>>(Vec::new());
    let (usage_tx, mut usage_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Report>>();
    let host_id = Arc::new(std::sync::Mutex::new(String::new()));
    tokio::spawn(sample_usage(
        docker.clone(),
        host_id.clone(),
        desired_rx,
        usage_tx,
        cfg.usage_interval,
    ));
    // Liveness is reported by its own task too, so a long converge (an
    // image pull, a slow stop) does not read as a dead host.
    let heartbeat: Arc<std::sync::Mutex<Option<(Client, std::time::Instant)>>> =
        Arc::new(std::sync::Mutex::new(None));
    tokio::spawn(send_heartbeats(heartbeat.clone(), cfg.interval));
    let mut local = converge::Local::default();
    loop {
        let reg = match identity.registration.clone() {
            Some(r) => r,
            None => {
                let req = RegisterRequest {
                    token: token.clone(),
                    key: identity.key.clone(),
                    facts: host_facts.clone(),
                };
                let anon = client(&server, None, pin.as_deref())?;
                match blocking(move || {
                    anon.call::<RegisterResponse>("POST", "/v1/agent/register", Some(&req))
                })
                .await
                {
                    Ok(r) => {
                        tracing::info!(host = %r.host_id, project = %r.project_id, "registered");
                        identity.registration = Some(r.clone());
                        save(&cfg, &identity)?;
                        send_facts = true;
                        r
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "registration failed; retrying");
                        tokio::time::sleep(cfg.interval).await;
                        continue;
                    }
                }
            }
        };
        let client = client(
            &server,
            Some((&reg.access_key, &reg.secret_key)),
            pin.as_deref(),
        )?;
        let req = SyncRequest {
            facts: send_facts.then(|| host_facts.clone()),
            usage: Some(sampler.sample(&cfg.state_dir)),
            reports: std::mem::take(&mut pending),
            generation,
            wait_ms: u64::try_from(cfg.interval.as_millis()).unwrap_or(2000),
        };
        let sent = req.reports.clone();
        if let Ok(mut h) = host_id.lock() {
            h.clone_from(&reg.host_id);
        }
        if let Ok(mut h) = heartbeat.lock() {
            *h = Some((client.clone(), std::time::Instant::now()));
        }
        let c = client.clone();
        let mut poll = tokio::spawn(async move {
            blocking(move || c.call::<SyncResponse>("POST", "/v1/agent/sync", Some(&req))).await
        });
        let res = loop {
            tokio::select! {
                r = &mut poll => break r.map_err(|_| AgentError::Task).and_then(|r| r),
                _ = notify.notified() => {
                    // A managed container changed behind our back: look now.
                    let r = converge_once(&docker, &client, &reg.host_id, &desired, &mut local).await;
                    note_reports(&mut desired, &r);
                    pending.extend(r);
                }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    pending.extend(checker.run(&docker, &desired).await);
                }
                Some(r) = usage_rx.recv() => pending.extend(r),
            }
        };
        match res {
            Ok(resp) => {
                send_facts = false;
                generation = resp.generation;
                desired = resp.instances;
                for r in resp.requests {
                    tokio::spawn(answer(
                        docker.clone(),
                        client.clone(),
                        reg.host_id.clone(),
                        r,
                    ));
                }
                desired_tx.send_replace(desired.clone());
                let r = converge_once(&docker, &client, &reg.host_id, &desired, &mut local).await;
                note_reports(&mut desired, &r);
                pending.extend(r);
                pending.extend(checker.run(&docker, &desired).await);
            }
            Err(AgentError::Client(e)) if e.status() == Some(401) => {
                tracing::warn!("server rejected our credentials; registering again");
                identity.registration = None;
                pending.clear();
                if let Ok(mut h) = heartbeat.lock() {
                    *h = None;
                }
            }
            Err(e) => {
                tracing::warn!(error = ?e, "sync failed; retrying");
                let mut back = sent;
                back.append(&mut pending);
                pending = back;
                tokio::time::sleep(cfg.interval).await;
            }
        }
    }
}

/// Fold the states just reported into the local copy of the desired
/// instances, so a converge pass that runs before the next sync answer
/// (on a docker event) does not act on the old state again — e.g. restart
/// a container once more because it still reads `restarting`.
pub fn note_reports(desired: &mut [DesiredInstance], reports: &[Report]) {
    for r in reports.iter().filter(|r| !r.state.is_empty()) {
        if let Some(d) = desired.iter_mut().find(|d| d.id == r.instance_id) {
            d.state.clone_from(&r.state);
            if r.external_id.is_some() {
                d.external_id.clone_from(&r.external_id);
            }
        }
    }
}

/// Sample per-container usage every `every` for the instances last
/// assigned, handing the reports to the sync loop.
async fn sample_usage(
    docker: bollard::Docker,
    host: Arc<std::sync::Mutex<String>>,
    desired: tokio::sync::watch::Receiver<Vec<DesiredInstance>>,
    out: tokio::sync::mpsc::UnboundedSender<Vec<Report>>,
    every: Duration,
) {
    let mut cpu = docker::CpuSamples::new();
    loop {
        tokio::time::sleep(every).await;
        let host = host.lock().map(|h| h.clone()).unwrap_or_default();
        let list = desired.borrow().clone();
        if host.is_empty() || list.is_empty() {
            continue;
        }
        match docker::usage(&docker, &host, &list, &mut cpu).await {
            Ok(r) if r.is_empty() => {}
            Ok(r) => {
                if out.send(r).is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "container usage"),
        }
    }
}

/// Heartbeat: when the sync loop has not reached the server for two
/// `every`s (busy converging), a short sync with no reports and no wait
/// tells the server this host is alive.
async fn send_heartbeats(
    state: Arc<std::sync::Mutex<Option<(Client, std::time::Instant)>>>,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let due = state
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .filter(|(_, last)| last.elapsed() >= every * 2);
        let Some((client, _)) = due else { continue };
        let req = SyncRequest {
            wait_ms: 0,
            ..SyncRequest::default()
        };
        let sent = tokio::task::spawn_blocking(move || {
            client.call::<SyncResponse>("POST", "/v1/agent/sync", Some(&req))
        })
        .await;
        match sent {
            Ok(Ok(_)) => {
                if let Ok(mut s) = state.lock() {
                    if let Some((_, last)) = s.as_mut() {
                        *last = std::time::Instant::now();
                    }
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "heartbeat failed"),
            Err(_) => {}
        }
    }
}

/// Carry out one relayed request and post the answer.
async fn answer(docker: bollard::Docker, client: Client, host: String, req: AgentRequest) {
    let mut reply = AgentReply {
        request_id: req.request_id.clone(),
        ..AgentReply::default()
    };
    match req.kind.as_str() {
        "logs" => match docker::managed(&docker, &host).await {
            Ok(m) => match m.get(&req.instance_id) {
                Some(a) => match docker::logs(&docker, &a.id, req.tail, req.since_nanos).await {
                    Ok((lines, truncated)) => {
                        reply.lines = lines;
                        reply.truncated = truncated;
                    }
                    Err(e) => reply.error = Some(format!("logs of {}: {e}", req.instance_id)),
                },
                None => {
                    reply.error = Some(format!(
                        "container {} has no docker container on this host",
                        req.instance_id
                    ))
                }
            },
            Err(e) => reply.error = Some(e.to_string()),
        },
        "pull" => {
            for image in &req.images {
                let r = docker::pull(&docker, image).await;
                tracing::info!(%image, ok = r.is_ok(), "pull requested by the server");
                reply.pulls.push(PullResult {
                    image: image.clone(),
                    ok: r.is_ok(),
                    message: r.err(),
                });
            }
        }
        k => reply.error = Some(format!("this agent does not know requests of kind {k:?}")),
    }
    if let Err(e) =
        blocking(move || client.call::<serde_json::Value>("POST", "/v1/agent/reply", Some(&reply)))
            .await
    {
        tracing::warn!(error = ?e, "cannot post a reply");
    }
}

async fn converge_once(
    docker: &bollard::Docker,
    client: &Client,
    host: &str,
    desired: &[DesiredInstance],
    local: &mut converge::Local,
) -> Vec<Report> {
    let c = client.clone();
    let send = move |reports: Vec<Report>| {
        let req = SyncRequest {
            reports,
            ..SyncRequest::default()
        };
        if let Err(e) = c.call::<SyncResponse>("POST", "/v1/agent/sync", Some(&req)) {
            tracing::debug!(error = %e, "transition report failed");
        }
    };
    // Intermediate transition reports are rare and short: sending them
    // inline keeps their order relative to the final report.
    let send_blocking = |r: Vec<Report>| tokio::task::block_in_place(|| send(r));
    let rt = runtime::DockerRuntime::new(docker.clone());
    match converge::converge(&rt, host, desired, local, &send_blocking).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "converge failed");
            Vec::new()
        }
    }
}

async fn watch_events(docker: bollard::Docker, notify: Arc<Notify>) {
    use std::collections::HashMap;
    loop {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![LABEL_INSTANCE.to_string()]),
        ]);
        let opts = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let mut events = docker.events(Some(opts));
        while let Some(ev) = events.next().await {
            match ev {
                Ok(e) => {
                    let action = e.action.unwrap_or_default();
                    if matches!(
                        action.as_str(),
                        "die" | "stop" | "destroy" | "kill" | "start"
                    ) {
                        tracing::debug!(%action, "docker event");
                        notify.notify_one();
                    }
                }
                Err(_) => break,
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
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

    #[test]
    fn registration_urls() {
        assert_eq!(
            parse_registration_url("http://10.0.0.1:8080/v1/scripts/abc").unwrap(),
            ("http://10.0.0.1:8080".to_string(), "abc".to_string())
        );
        assert_eq!(
            parse_registration_url("http://s:8080/v1/projects/1a5/scripts/T/").unwrap(),
            ("http://s:8080".to_string(), "T".to_string())
        );
        assert!(parse_registration_url("http://s:8080/v1/hosts").is_err());
        assert!(parse_registration_url("s:8080/v1/scripts/x").is_err());
        let pin = "ab".repeat(32);
        assert_eq!(token_pin(&format!("secret.{pin}")), Some(pin.as_str()));
        assert_eq!(token_pin("secret"), None);
        assert_eq!(token_pin("a.b"), None);
    }
}
