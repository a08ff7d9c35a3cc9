//! The agent side of the API: the registration script
//! (`GET /v1/scripts/<token>`), registration (`POST /v1/agent/register`)
//! and the sync long-poll (`POST /v1/agent/sync`, see
//! [`crate::cluster::protocol`] for why long-poll).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::ctx::Ctx;
use super::{render, ApiError, Principal};
use crate::cluster::auth;
use crate::cluster::model::{self, format_id, now_ms, parse_id, Kind, Resource, DEFAULT_PROJECT};
use crate::cluster::plan::reconcile::PRIMARY_IP;
use crate::cluster::protocol::{
    AttachedContainer, DesiredInstance, HostFacts, ManagedNetwork, OverlayPeer, OverlayView,
    RegisterRequest, RegisterResponse, Report, SyncRequest, SyncResponse,
};
use crate::cluster::store::{Scope, Store};

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(422, "InvalidBodyContent", format!("invalid body: {e}")))
}

/// The pre-shared join token (`ros.cluster.token`), as a registration
/// token of the Default environment. It is written `<secret>` or, with
/// TLS, `<secret>.<ca-sha256>` as the tokens the API makes: the pin part
/// must then be this server's CA (the agent checked the certificate
/// against it already; a token pinned to another CA is refused).
fn preshared(cx: &Ctx<'_>, value: &str) -> Option<Resource> {
    let want = cx.app.config.join_token.as_deref()?;
    let secret = match (
        crate::cluster::agent::token_pin(value),
        &cx.app.config.tls_ca,
    ) {
        (Some(pin), Some((_, hash))) if pin.eq_ignore_ascii_case(hash) => {
            &value[..value.len() - pin.len() - 1]
        }
        (Some(_), _) => return None,
        (None, _) => value,
    };
    let want = crate::cluster::agent::token_pin(want)
        .map_or(want, |pin| &want[..want.len() - pin.len() - 1]);
    if want.is_empty() || !auth::same_secret(secret, want) {
        return None;
    }
    let mut t = Resource::new(Kind::RegistrationToken, 0, DEFAULT_PROJECT, "active");
    let public = cx.app.config.advertise_url.clone().unwrap_or_else(|| {
        cx.base
            .trim_end_matches("/v1")
            .trim_end_matches("/v2-beta")
            .to_string()
    });
    t.set(
        "registrationUrl",
        format!("{}/v1/scripts/{value}", public.trim_end_matches('/')),
    );
    Some(t)
}

/// A live, unexpired registration token.
fn token(cx: &Ctx<'_>, value: &str) -> Result<Resource, ApiError> {
    let bad = || ApiError::new(401, "Unauthorized", "registration token is not valid");
    if value.is_empty() || value.len() > 128 {
        return Err(bad());
    }
    if let Some(t) = preshared(cx, value) {
        return Ok(t);
    }
    let t = cx
        .app
        .store
        .list(Kind::RegistrationToken, Scope::All)?
        .into_iter()
        .find(|t| t.str("token") == Some(value))
        .ok_or_else(bad)?;
    if t.state != "active" {
        return Err(bad());
    }
    if let Some(exp) = t.data.get("expiresAt").and_then(Value::as_i64) {
        if now_ms() > exp {
            return Err(ApiError::new(
                401,
                "Unauthorized",
                "registration token expired",
            ));
        }
    }
    Ok(t)
}

/// `GET /v1/scripts/<token>`: the Add Host script. Run as root on any Linux
/// machine with Docker (`curl -fsSL URL | sudo sh`), it fetches this server's
/// own `ros` binary (`…/scripts/<token>/ros`, checked against the SHA-256
/// written into the script), installs it and starts the agent in the
/// background — as a systemd service where systemd runs, otherwise as a
/// detached process with a pid file — so the machine needs nothing but
/// Docker: no registry, no internet.
pub fn script(cx: &Ctx<'_>, value: &str) -> Result<Response, ApiError> {
    let t = token(cx, value)?;
    let url = t.str("registrationUrl").unwrap_or_default().to_string();
    let server = url.split("/v1/scripts/").next().unwrap_or_default();
    let sum = own_binary()
        .map(|b| b.sha256.clone())
        .map_err(|e| ApiError::new(500, "ServerError", e))?;
    let ca = cx
        .app
        .config
        .tls_ca
        .as_ref()
        .filter(|_| url.starts_with("https://"))
        .map(|(pem, pin)| (pem.as_str(), pin.as_str()));
    let body = add_host_script(&url, server, &format_id(Kind::Project, t.project), &sum, ca);
    Ok(([(header::CONTENT_TYPE, "text/x-shellscript")], body).into_response())
}

/// Rancher's Add Host line for registration URL `url`. Over HTTPS the
/// server's certificate comes from the cluster CA, which curl does not
/// know: the line fetches the CA certificate first (`-k`: nothing is
/// trusted yet), checks the SHA-256 of its DER against the pin in the
/// token, and only then fetches the script with `--cacert` — so a man in
/// the middle can neither serve another script nor read the token (the
/// script URL is requested over the verified connection only).
pub fn add_host_command(url: &str, pin: Option<&str>) -> String {
    let (Some(pin), true) = (pin, url.starts_with("https://")) else {
        return format!("curl -fsSL {url} | sudo sh");
    };
    let server = url.split("/v1/scripts/").next().unwrap_or_default();
    format!(
        "f=$(mktemp) && curl -fsSLk -o $f {server}/v1/cacert && \
         {{ sed /-----/d $f | base64 -d | sha256sum | grep -q ^{pin} || \
         {{ echo 'ros: {server} does not serve the cluster CA {pin}: not joining' >&2; false; }}; }} && \
         curl -fsSL --cacert $f {url} | sudo sh"
    )
}

/// The text of the Add Host script (see [`script`]); `ca` is the cluster
/// CA (PEM, SHA-256) when the script is served over HTTPS.
fn add_host_script(
    url: &str,
    server: &str,
    project: &str,
    sum: &str,
    ca: Option<(&str, &str)>,
) -> String {
    // The script arrived over a connection verified against the CA (see
    // [`add_host_command`]): it carries the CA, so fetching the binary is
    // verified the same way (and checked by its SHA-256 besides).
    let (ca_setup, curl_ca, wget_ca) = match ca {
        Some((pem, _)) => (
            format!(
                "ca=\"${{root%/}}/var/lib/ros/cluster/ca.pem\"\nmkdir -p \"$(dirname \"$ca\")\"\n\
                 cat >\"$ca\" <<'ROS_CA'\n{}\nROS_CA\n",
                pem.trim_end()
            ),
            " --cacert \"$ca\"",
            " --ca-certificate=\"$ca\"",
        ),
        None => (String::new(), "", ""),
    };
    let how = add_host_command(url, ca.map(|(_, pin)| pin));
    format!(
        r#"#!/bin/sh
# Adds this machine to the ros cluster at {server} as a host of project {project}.
#   {how}
#   (add `-s -- --labels zone=a --ip 192.0.2.7` after `sh` for agent options)
# Options after `--` go to `ros cluster agent` (see `ros cluster agent --help`).
# Environment: ROS_BIN (default /usr/local/bin/ros), ROS_ROOT (state root,
# default /), ROS_LOG (default /var/log/ros-agent.log).
set -eu
url='{url}'
sum='{sum}'
bin="${{ROS_BIN:-/usr/local/bin/ros}}"
root="${{ROS_ROOT:-/}}"
log="${{ROS_LOG:-/var/log/ros-agent.log}}"
pidf="${{root%/}}/var/run/ros-agent.pid"
say() {{ echo "ros: $*" >&2; }}
if [ ! -S "${{root%/}}/var/run/docker.sock" ]; then
    say "no Docker here: ${{root%/}}/var/run/docker.sock is not a socket (install and start Docker first)"
    exit 1
fi
{ca_setup}mkdir -p "$(dirname "$bin")"
tmp="$bin.new.$$"
trap 'rm -f "$tmp"' EXIT
if command -v curl >/dev/null 2>&1; then
    curl -fsSL{curl_ca} -o "$tmp" "$url/ros"
elif command -v wget >/dev/null 2>&1; then
    wget -q{wget_ca} -O "$tmp" "$url/ros"
else
    say "needs curl or wget to fetch the ros binary"
    exit 1
fi
if command -v sha256sum >/dev/null 2>&1; then
    if ! echo "$sum  $tmp" | sha256sum -c - >/dev/null 2>&1; then
        say "the binary fetched from $url/ros is not the one the server announced (sha256 $sum)"
        exit 1
    fi
else
    say "no sha256sum here: the binary is not checked"
fi
chmod 0755 "$tmp"
mv -f "$tmp" "$bin"
if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    say "stopping the agent started before (pid $(cat "$pidf"))"
    kill "$(cat "$pidf")" || true
fi
if [ "$root" = / ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    args=""
    for a in "$@"; do args="$args "$a""; done
    cat >/etc/systemd/system/ros-agent.service <<UNIT
[Unit]
Description=ros cluster agent ({server})
After=docker.service
Wants=docker.service

[Service]
ExecStart=$bin cluster agent --url $url$args
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable ros-agent.service >/dev/null 2>&1 || true
    systemctl restart ros-agent.service
    say "the agent runs as the systemd service ros-agent (journalctl -u ros-agent)"
else
    mkdir -p "$(dirname "$pidf")" "$(dirname "$log")"
    detach=""
    if command -v setsid >/dev/null 2>&1; then detach=setsid; fi
    nohup $detach "$bin" --root "$root" cluster agent --url "$url" "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$pidf"
    say "the agent runs as pid $! (log $log, pid file $pidf)"
fi
"#
    )
}

/// This server's own executable, for the Add Host script.
struct OwnBinary {
    path: std::path::PathBuf,
    sha256: String,
}

/// The running executable and its SHA-256, hashed once per process (the
/// file does not change under a running server; an upgrade restarts it).
fn own_binary() -> Result<&'static OwnBinary, String> {
    static BIN: std::sync::OnceLock<Result<OwnBinary, String>> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let path = std::fs::read_link("/proc/self/exe")
            .or_else(|_| std::env::current_exe())
            .map_err(|e| format!("cannot find the server's own binary: {e}"))?;
        let mut f = std::fs::File::open(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            use std::io::Read;
            let n = f
                .read(&mut buf)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        Ok(OwnBinary {
            path,
            sha256: hex::encode(ctx.finish().as_ref()),
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// `GET /v1/scripts/<token>/ros`: the server's own `ros` binary (the token
/// must be a live registration token), streamed from disk.
pub async fn binary(cx: &Ctx<'_>, value: &str) -> Result<Response, ApiError> {
    token(cx, value)?;
    let bin = tokio::task::spawn_blocking(own_binary)
        .await
        .map_err(|e| ApiError::new(500, "ServerError", e.to_string()))?
        .map_err(|e| ApiError::new(500, "ServerError", e))?;
    let file = tokio::fs::File::open(&bin.path).await.map_err(|e| {
        ApiError::new(
            500,
            "ServerError",
            format!("cannot read {}: {e}", bin.path.display()),
        )
    })?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::HeaderName::from_static("x-ros-sha256"),
                bin.sha256.clone(),
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

fn apply_facts(h: &mut Resource, f: &HostFacts) {
    h.set("hostname", f.hostname.clone());
    if h.str("name").is_none() {
        h.set("name", f.hostname.clone());
    }
    h.set("agentIpAddress", f.agent_ip.clone());
    h.set("labels", json!(f.labels));
    h.set("memory", f.memory_mb);
    h.set("milliCpu", f.cpu_count * 1000);
    h.set("localStorageMb", f.disk_mb);
    h.set(
        "info",
        json!({
            "cpuInfo": {"count": f.cpu_count},
            "memoryInfo": {"memTotal": f.memory_mb},
            "diskInfo": {"totalMb": f.disk_mb},
            "osInfo": {"dockerVersion": f.docker_version, "kernelVersion": f.kernel,
                       "operatingSystem": f.os},
        }),
    );
}

/// `POST /v1/agent/register`: token + agent key → host + agent credentials.
/// The same key again returns the same host with fresh credentials.
pub async fn register(cx: &Ctx<'_>) -> Result<Response, ApiError> {
    let req: RegisterRequest = decode(&cx.body)?;
    if req.key.len() < 16
        || req.key.len() > 128
        || !req.key.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(ApiError::field(
            "InvalidCharacters",
            "key",
            "key must be 16-128 letters or digits",
        ));
    }
    let _g = cx.app.write.lock().await;
    let t = token(cx, &req.token)?;
    let store = &cx.app.store;
    let existing = store
        .list(Kind::Host, Scope::All)?
        .into_iter()
        .find(|h| !h.is_removed() && h.str("_key") == Some(req.key.as_str()));
    if existing.as_ref().is_some_and(|h| h.project != t.project) {
        return Err(ApiError::field(
            "NotUnique",
            "key",
            "this agent key belongs to a host of another project",
        ));
    }
    let mut rows = Vec::new();
    let mut host = match existing {
        Some(h) => {
            for k in store.list(Kind::AgentKey, Scope::Host(h.id))? {
                let mut k = k;
                k.state = "removed".into();
                rows.push(k);
            }
            h
        }
        None => {
            let mut h = Resource::new(Kind::Host, store.allocate(Kind::Host)?, t.project, "active");
            h.set("_key", req.key.clone());
            h.set("kind", "docker");
            h
        }
    };
    apply_facts(&mut host, &req.facts);
    host.set("agentState", "active");
    let secret = auth::random_token(40);
    let mut key = Resource::new(
        Kind::AgentKey,
        store.allocate(Kind::AgentKey)?,
        t.project,
        "active",
    );
    key.host = host.id;
    key.set("publicValue", auth::access_key());
    key.set(
        "_secretHash",
        auth::hash_secret(&secret)
            .map_err(|_| ApiError::new(503, "HashFailed", "cannot hash secret"))?,
    );
    rows.push(key.clone());
    rows.push(host.clone());
    store.commit(&rows)?;
    cx.app.note_view(&rows);
    cx.app.forget_creds();
    if let Ok(mut s) = cx.app.seen.lock() {
        s.insert(host.id, Instant::now());
    }
    tracing::info!(host = %host.api_id(), hostname = %req.facts.hostname, "host registered");
    let resp = RegisterResponse {
        host_id: host.api_id(),
        project_id: format_id(Kind::Project, t.project),
        access_key: key.str("publicValue").unwrap_or_default().to_string(),
        secret_key: secret,
    };
    Ok((StatusCode::CREATED, axum::Json(resp)).into_response())
}

/// How long a removed container stays `removed` before it is `purged`
/// (Rancher: a random 0–600 s, `object.remove.time.delay.seconds`).
pub const PURGE_AFTER_MS: i64 = 60_000;
/// Hidden field: when the container was seen removed (ms since the epoch).
pub const PURGE_CLOCK: &str = "_removedMs";

/// The host's removed containers whose purge delay has passed, moved to
/// `purged` (their docker container is gone; nothing else holds them).
/// A removed row without a clock starts it now.
fn purge_due(
    store: &dyn crate::cluster::store::Store,
    host: u64,
) -> Result<Vec<Resource>, ApiError> {
    let now = now_ms();
    let mut out = Vec::new();
    for mut c in store.list(Kind::Container, Scope::Host(host))? {
        if c.state != "removed" {
            continue;
        }
        match c.data.get(PURGE_CLOCK).and_then(Value::as_i64) {
            Some(t) if now - t >= PURGE_AFTER_MS => {
                c.state = "purged".into();
                c.set("purged", render::rfc3339(now));
                out.push(c);
            }
            Some(_) => {}
            None => {
                c.set(PURGE_CLOCK, now);
                out.push(c);
            }
        }
    }
    Ok(out)
}

fn apply_report(c: &mut Resource, r: &Report) -> bool {
    if let Some(cpu) = r.cpu_percent {
        c.set("cpuPercent", cpu);
    }
    if let Some(m) = r.memory_mb {
        c.set("memoryMb", m);
    }
    if let Some(h) = &r.health_state {
        c.set("healthState", h.clone());
    }
    if r.state.is_empty() {
        return false;
    }
    let mut desired_changed = false;
    let desired = c.str("desiredState").unwrap_or("running").to_string();
    match r.state.as_str() {
        "removed" => {
            c.set("removed", render::rfc3339(now_ms()));
            if desired != "removed" {
                c.set("desiredState", "removed");
                desired_changed = true;
            }
        }
        // Stopped while it should run and nobody was starting it: a plain
        // `docker stop` behind our back. Respect it, as Rancher did.
        "stopped" if desired == "running" && matches!(c.state.as_str(), "running" | "stopped") => {
            c.set("desiredState", "stopped");
            desired_changed = true;
        }
        _ => {}
    }
    if r.state == "running" && c.data.get("startCount").map_or(true, Value::is_null) {
        // Rancher counts the first start too (restarts add one each).
        c.set("startCount", 1);
    }
    if r.state == "removed" && c.state != "removed" {
        c.set(PURGE_CLOCK, now_ms());
    }
    c.state = r.state.clone();
    if let Some(id) = &r.external_id {
        c.set("externalId", id.clone());
    }
    // A container removed without a word keeps its last message (the
    // error that got it replaced, say).
    let keep = r.message.is_none() && r.state == "removed";
    if !keep {
        c.set(
            "transitioningMessage",
            r.message.clone().map_or(Value::Null, Value::from),
        );
    }
    desired_changed
}

/// `POST /v1/agent/sync`: heartbeat + reports in, desired state out.
pub async fn sync(cx: &Ctx<'_>, p: Principal) -> Result<Response, ApiError> {
    let Principal::Agent {
        host: host_id,
        project,
    } = p
    else {
        return Err(ApiError::unauthorized());
    };
    let req: SyncRequest = decode(&cx.body)?;
    if let Ok(mut s) = cx.app.seen.lock() {
        s.insert(host_id, Instant::now());
    }
    let store = &cx.app.store;
    {
        let _g = cx.app.write.lock().await;
        let mut host = store
            .get(Kind::Host, host_id)?
            .filter(|h| !h.is_removed())
            .ok_or_else(ApiError::unauthorized)?;
        let before = host.clone();
        host.set("agentState", "active");
        if let Some(f) = &req.facts {
            apply_facts(&mut host, f);
        }
        if let Some(u) = &req.usage {
            host.set("usage", json!(u));
        }
        let mut rows = Vec::new();
        let mut bump = false;
        let mut attached = false;
        let project_id = host.project;
        for r in req.reports.iter().filter(|r| r.state == "attach") {
            if let Some(row) = attach(store.as_ref(), &host, r, &rows)? {
                rows.push(row);
                attached = true;
            }
        }
        for r in req.reports.iter().filter(|r| r.state != "attach") {
            // A host feature's word on the host itself (the overlay could
            // not be set up): the host's transitioningMessage.
            if parse_id(Kind::Host, &r.instance_id) == Some(host_id) {
                match r.message.as_deref().filter(|m| !m.is_empty()) {
                    Some(m) => {
                        host.set("transitioning", "error");
                        host.set("transitioningMessage", m);
                    }
                    None => {
                        host.data.remove("transitioning");
                        host.data.remove("transitioningMessage");
                    }
                }
                continue;
            }
            let Some(n) = parse_id(Kind::Container, &r.instance_id) else {
                continue;
            };
            // Several reports for one container in a batch (a health
            // change, then a usage sample, …) build on each other: starting
            // each from the stored row would drop the earlier ones.
            let current = match rows
                .iter()
                .position(|x: &Resource| x.kind == Kind::Container && x.id == n)
            {
                Some(i) => Some(rows.remove(i)),
                None => store.get(Kind::Container, n)?,
            };
            if let Some(mut c) = current.filter(|c| c.host == host_id) {
                bump |= apply_report(&mut c, r);
                rows.push(c);
            }
        }
        if req.wait_ms > 0 {
            // Heartbeats only: the short transition reports stay cheap.
            for c in purge_due(store.as_ref(), host_id)? {
                if !rows
                    .iter()
                    .any(|x| x.kind == Kind::Container && x.id == c.id)
                {
                    rows.push(c);
                }
            }
        }
        if host != before {
            rows.push(host);
        }
        if !rows.is_empty() {
            // The agent's own reports: the reconciler looks; the agent
            // is woken only when its desired state changed with them.
            store.commit(&rows)?;
            cx.app.note_view(&rows);
            cx.app.kick.notify_one();
        }
        if bump {
            cx.app.wake.hosts([host_id]);
        }
        if attached {
            // A new address: every host's overlay entries change.
            let all: Vec<u64> = store
                .list(Kind::Host, Scope::Project(project_id))?
                .iter()
                .filter(|h| !h.is_removed())
                .map(|h| h.id)
                .collect();
            cx.app.wake.hosts(all);
        }
    }
    let wait = Duration::from_millis(req.wait_ms).min(cx.app.config.max_wait);
    // A long-poll also answers when the environment view moved past the
    // agent's revision (a container elsewhere started, turned unhealthy,
    // went): that is how DNS and metadata on every host follow within
    // one round trip, with only the changed entries.
    let views = &cx.app.views;
    let long = req.wait_ms > 0;
    if long {
        views.ensure(store.as_ref(), project)?;
    }
    let behind = || long && views.behind(project, req.view_epoch, req.view_revision);
    let generation = cx
        .app
        .wake
        .wait_or(host_id, req.generation, wait, behind)
        .await;
    let view = if long {
        views.since(project, req.view_epoch, req.view_revision)
    } else {
        None
    };
    let overlay = overlay_view(store.as_ref(), host_id)?;
    let net = overlay.as_ref().map(|o| &o.network);
    let rows: Vec<Resource> = store
        .list(Kind::Container, Scope::Host(host_id))?
        .into_iter()
        .filter(|c| !c.is_removed() && !is_attached(c))
        .collect();
    let mut instances: Vec<DesiredInstance> = rows.iter().map(|c| desired(c, net)).collect();
    super::certificates::attach(store.as_ref(), project, &rows, &mut instances)?;
    // Requests ride only on long-polls: the agent's short transition
    // reports (`waitMs` 0) drop the answer.
    let requests = if req.wait_ms > 0 {
        super::relay::take(cx.app, host_id)
    } else {
        Vec::new()
    };
    Ok(axum::Json(SyncResponse {
        generation,
        instances,
        requests,
        view,
        overlay,
    })
    .into_response())
}

fn str_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The managed network of `host_id`'s environment and where the other
/// hosts' containers on it live (level-triggered like the instances: the
/// whole view on every answer). `None` for a host without an environment
/// or one whose subnet does not parse.
fn overlay_view(store: &dyn Store, host_id: u64) -> Result<Option<OverlayView>, ApiError> {
    let Some(host) = store.get(Kind::Host, host_id)? else {
        return Ok(None);
    };
    let project = store.get(Kind::Project, host.project)?;
    let Ok(subnet) = crate::cluster::plan::reconcile::project_subnet(project.as_ref()) else {
        return Ok(None);
    };
    let mtu = project
        .as_ref()
        .and_then(|p| p.data.get("networkMtu"))
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    let network = ManagedNetwork {
        project_id: format_id(Kind::Project, host.project),
        subnet: subnet.to_string(),
        vni: crate::cluster::plan::allocate::vni(host.project),
        mtu,
    };
    let hosts: BTreeMap<u64, Resource> = store
        .list(Kind::Host, Scope::Project(host.project))?
        .into_iter()
        .filter(|h| !h.is_removed() && h.id != host_id)
        .map(|h| (h.id, h))
        .collect();
    let mut by_host: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for c in store.list(Kind::Container, Scope::Project(host.project))? {
        if c.is_removed() || c.str("desiredState") != Some("running") {
            continue;
        }
        if let (Some(ip), true) = (c.str(PRIMARY_IP), hosts.contains_key(&c.host)) {
            by_host.entry(c.host).or_default().push(ip.to_string());
        }
    }
    let attached = store
        .list(Kind::Container, Scope::Host(host_id))?
        .into_iter()
        .filter(|c| !c.is_removed() && is_attached(c))
        .filter_map(|c| {
            Some(AttachedContainer {
                instance_id: c.api_id(),
                docker_id: c.str("externalId")?.to_string(),
                address: c.str(PRIMARY_IP)?.to_string(),
            })
        })
        .collect();
    let peers = hosts
        .values()
        .filter_map(|h| {
            Some(OverlayPeer {
                host_id: h.api_id(),
                agent_ip: h
                    .str("agentIpAddress")
                    .filter(|s| !s.is_empty())?
                    .to_string(),
                addresses: by_host.remove(&h.id).unwrap_or_default(),
            })
        })
        .collect();
    Ok(Some(OverlayView {
        network,
        local_ip: host.str("agentIpAddress").unwrap_or_default().to_string(),
        peers,
        attached,
    }))
}

/// Row field marking a plain docker container the agent attached to the
/// managed network (not created by ros: never in the desired instances).
const ATTACHED: &str = "_attached";

fn is_attached(c: &Resource) -> bool {
    c.data.get(ATTACHED) == Some(&Value::Bool(true))
}

/// A plain container labelled `io.rancher.container.network=true` asks
/// for an address: its row (once per docker id), with the lowest free
/// address of the environment's subnet; `None` when it has one already or
/// the subnet is full (logged: the container keeps running unattached).
fn attach(
    store: &dyn Store,
    host: &Resource,
    r: &Report,
    pending: &[Resource],
) -> Result<Option<Resource>, ApiError> {
    let Some(docker_id) = r.external_id.as_deref().filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let taken = store
        .list(Kind::Container, Scope::Host(host.id))?
        .iter()
        .chain(pending)
        .any(|c| !c.is_removed() && c.str("externalId") == Some(docker_id));
    if taken {
        return Ok(None);
    }
    let ip = match crate::cluster::server::ipam::free_address(store, host.project, pending)? {
        Ok(ip) => ip,
        Err(e) => {
            tracing::warn!(error = %e, container = docker_id, "cannot attach a plain container");
            return Ok(None);
        }
    };
    let name = r
        .message
        .as_deref()
        .unwrap_or(docker_id)
        .trim_start_matches('/')
        .to_string();
    let mut c = Resource::new(
        Kind::Container,
        store.allocate(Kind::Container)?,
        host.project,
        "running",
    );
    c.host = host.id;
    c.set("kind", "container");
    c.set("name", name);
    c.set("hostId", host.api_id());
    c.set("accountId", format_id(Kind::Project, host.project));
    c.set("externalId", docker_id);
    c.set("desiredState", "running");
    c.set("networkMode", "managed");
    c.set(PRIMARY_IP, ip.to_string());
    c.set(ATTACHED, true);
    Ok(Some(c))
}

fn desired(c: &Resource, net: Option<&ManagedNetwork>) -> DesiredInstance {
    let mut d = desired_as_written(c, net);
    if c.data.get("_lb").and_then(Value::as_bool) == Some(true) {
        crate::cluster::agent::lb::as_load_balancer(&mut d);
    }
    d
}

fn desired_as_written(c: &Resource, net: Option<&ManagedNetwork>) -> DesiredInstance {
    let mut labels = str_map(c.data.get("labels"));
    labels.insert(model::LABEL_INSTANCE.into(), c.api_id());
    labels.insert(
        model::LABEL_PROJECT.into(),
        format_id(Kind::Project, c.project),
    );
    labels.insert(model::LABEL_HOST.into(), format_id(Kind::Host, c.host));
    DesiredInstance {
        id: c.api_id(),
        docker_name: c.str("dockerName").unwrap_or_default().to_string(),
        image: c
            .str("imageUuid")
            .unwrap_or_default()
            .trim_start_matches("docker:")
            .to_string(),
        command: c
            .data
            .get("command")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        environment: str_map(c.data.get("environment")),
        labels,
        network_mode: c
            .str("networkMode")
            .filter(|m| *m != "managed")
            .map(str::to_string),
        volumes: c
            .data
            .get("dataVolumes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        health_check: c
            .data
            .get("healthCheck")
            .and_then(|h| serde_json::from_value(h.clone()).ok()),
        desired_state: c.str("desiredState").unwrap_or("running").to_string(),
        state: c.state.clone(),
        external_id: c.str("externalId").map(str::to_string),
        config: crate::cluster::plan::launch::fields_of(c),
        drain_timeout_ms: c
            .data
            .get("drainTimeoutMs")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        primary_ip_address: c.str(PRIMARY_IP).map(str::to_string),
        network: net.filter(|_| c.str(PRIMARY_IP).is_some()).cloned(),
        lb_certificates: Vec::new(),
    }
}
