//! Asking an agent for something beyond convergence (container logs, image
//! pulls). The server never connects to agents, so a request is queued for
//! the host, the host's generation is bumped so its long-poll returns at
//! once carrying it ([`crate::cluster::protocol::SyncResponse::requests`]),
//! and the agent posts the answer to `POST /v1/agent/reply`; the API caller
//! waits for that answer. A disconnected host fails at once; a host whose
//! agent has not synced for [`SILENT`] fails with that reason.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::ctx::Ctx;
use super::{ApiError, App, Principal};
use crate::cluster::auth;
use crate::cluster::model::{format_id, Kind, Resource};
use crate::cluster::protocol::{AgentReply, AgentRequest};

/// A host whose agent was silent this long cannot answer.
pub const SILENT: Duration = Duration::from_secs(15);
/// Longest wait for logs.
const LOGS_LIMIT: Duration = Duration::from_secs(30);
/// Longest wait for pulls (they download).
const PULL_LIMIT: Duration = Duration::from_secs(600);

/// Requests queued per host and callers waiting for answers.
#[derive(Default)]
pub struct Relay {
    pending: Mutex<HashMap<u64, Vec<AgentRequest>>>,
    waiting: Mutex<HashMap<String, (u64, oneshot::Sender<AgentReply>)>>,
    /// Exec sessions (they answer on a websocket, not with a reply).
    pub exec: super::exec::Sessions,
}

/// Queue `req` for the agent of `host` and wake it; nobody waits for a
/// reply (an exec session's agent connects back instead).
pub fn queue(app: &App, host: u64, req: AgentRequest) {
    if let Ok(mut p) = app.relay.pending.lock() {
        p.entry(host).or_default().push(req);
    }
    app.wake.hosts([host]);
}

/// Refuses a host whose agent cannot answer (removed, disconnected).
pub fn reachable(host: &Resource) -> Result<(), ApiError> {
    match host.str("agentState") {
        _ if host.is_removed() => Err(unavailable(host, "is removed")),
        Some(s @ ("disconnected" | "reconnecting")) => Err(unavailable(
            host,
            &format!("is {s}: its agent cannot answer"),
        )),
        _ => Ok(()),
    }
}

/// The requests queued for `host` (handed out once).
pub fn take(app: &App, host: u64) -> Vec<AgentRequest> {
    app.relay
        .pending
        .lock()
        .ok()
        .and_then(|mut p| p.remove(&host))
        .unwrap_or_default()
}

/// Withdraw request `id` if the agent has not picked it up; true if so.
fn withdraw(app: &App, host: u64, id: &str) -> bool {
    let mut was_pending = false;
    if let Ok(mut p) = app.relay.pending.lock() {
        if let Some(v) = p.get_mut(&host) {
            let before = v.len();
            v.retain(|r| r.request_id != id);
            was_pending = v.len() != before;
        }
    }
    was_pending
}

/// Give up on request `id`.
fn forget(app: &App, host: u64, id: &str) {
    withdraw(app, host, id);
    if let Ok(mut w) = app.relay.waiting.lock() {
        w.remove(id);
    }
}

fn unavailable(host: &Resource, why: &str) -> ApiError {
    ApiError::new(
        503,
        "HostUnavailable",
        format!(
            "host {} ({}) {why}",
            host.api_id(),
            host.str("hostname").unwrap_or_default()
        ),
    )
}

/// Send `req` to the agent of `host` and wait for its answer.
pub async fn ask(
    app: &App,
    host: &Resource,
    mut req: AgentRequest,
    limit: Duration,
) -> Result<AgentReply, ApiError> {
    reachable(host)?;
    req.request_id = auth::random_token(20);
    let id = req.request_id.clone();
    let (tx, mut rx) = oneshot::channel();
    if let Ok(mut w) = app.relay.waiting.lock() {
        w.insert(id.clone(), (host.id, tx));
    }
    if let Ok(mut p) = app.relay.pending.lock() {
        p.entry(host.id).or_default().push(req);
    }
    app.wake.hosts([host.id]);
    let start = Instant::now();
    loop {
        tokio::select! {
            r = &mut rx => {
                return r.map_err(|_| ApiError::new(500, "AgentError", "the answer was lost"));
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let last = app
            .seen
            .lock()
            .ok()
            .and_then(|s| s.get(&host.id).copied())
            .unwrap_or(app.started);
        if last.elapsed() >= SILENT {
            forget(app, host.id, &id);
            return Err(unavailable(
                host,
                &format!(
                    "has not synced for {} s: its agent is not answering",
                    SILENT.as_secs()
                ),
            ));
        }
        if start.elapsed() >= SILENT && withdraw(app, host.id, &id) {
            forget(app, host.id, &id);
            return Err(unavailable(
                host,
                &format!("did not pick up the request within {} s", SILENT.as_secs()),
            ));
        }
        if start.elapsed() >= limit {
            forget(app, host.id, &id);
            return Err(ApiError::new(
                504,
                "Timeout",
                format!(
                    "host {} did not answer within {} s",
                    host.api_id(),
                    limit.as_secs()
                ),
            ));
        }
    }
}

/// `POST /v1/agent/reply`: an agent's answer.
pub fn reply(cx: &Ctx<'_>, p: Principal) -> Result<Response, ApiError> {
    let Principal::Agent { host, .. } = p else {
        return Err(ApiError::unauthorized());
    };
    let r: AgentReply = serde_json::from_slice(&cx.body)
        .map_err(|e| ApiError::new(422, "InvalidBodyContent", format!("invalid body: {e}")))?;
    let waiter = cx
        .app
        .relay
        .waiting
        .lock()
        .ok()
        .and_then(|mut w| match w.get(&r.request_id) {
            Some((h, _)) if *h == host => w.remove(&r.request_id),
            _ => None,
        });
    match waiter {
        Some((_, tx)) => {
            let _ = tx.send(r);
            Ok(axum::Json(json!({"ok": true})).into_response())
        }
        None => Err(ApiError::new(
            404,
            "NotFound",
            format!("no request {} waits for this host", r.request_id),
        )),
    }
}

fn param(cx: &Ctx<'_>, name: &str) -> Option<String> {
    cx.query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// `GET …/containers/{id}/logs?tail=N&since=NANOS`.
pub async fn logs(cx: &Ctx<'_>, c: &Resource) -> Result<Response, ApiError> {
    let tail = match param(cx, "tail").as_deref() {
        None | Some("all") | Some("") => None,
        Some(t) => Some(t.parse::<u64>().map_err(|_| {
            ApiError::field(
                "InvalidFormat",
                "tail",
                format!("tail must be a number of lines or \"all\", got {t:?}"),
            )
        })?),
    };
    let since = match param(cx, "since").as_deref() {
        None | Some("") => 0,
        Some(t) => t.parse::<u64>().map_err(|_| {
            ApiError::field(
                "InvalidFormat",
                "since",
                format!("since must be nanoseconds since the epoch, got {t:?}"),
            )
        })?,
    };
    if c.is_removed() || c.host == 0 {
        return Err(ApiError::new(
            422,
            "InvalidState",
            format!("container {} is not on a host", c.api_id()),
        ));
    }
    let host = cx
        .app
        .store
        .get(Kind::Host, c.host)?
        .ok_or_else(ApiError::not_found)?;
    let req = AgentRequest {
        kind: "logs".into(),
        instance_id: c.api_id(),
        tail,
        since_nanos: since,
        ..AgentRequest::default()
    };
    let r = ask(cx.app, &host, req, LOGS_LIMIT).await?;
    if let Some(e) = r.error {
        return Err(ApiError::new(502, "AgentError", e));
    }
    Ok(axum::Json(json!({
        "type": "containerLogs", "containerId": c.api_id(),
        "name": c.str("name").unwrap_or_default(), "hostId": format_id(Kind::Host, c.host),
        "lines": r.lines, "truncated": r.truncated,
    }))
    .into_response())
}

/// `POST …/hosts/{id}/pull` with `{"images": [...]}`.
pub async fn pull(cx: &Ctx<'_>, host: &Resource) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(&cx.body)
        .map_err(|e| ApiError::new(422, "InvalidBodyContent", format!("invalid body: {e}")))?;
    let images: Vec<String> = v
        .get("images")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if images.is_empty() || images.iter().any(|i| i.trim().is_empty() || i.len() > 512) {
        return Err(ApiError::field(
            "MissingRequired",
            "images",
            "images must be a non-empty list of image names",
        ));
    }
    let req = AgentRequest {
        kind: "pull".into(),
        images,
        ..AgentRequest::default()
    };
    let r = ask(cx.app, host, req, PULL_LIMIT).await?;
    if let Some(e) = r.error {
        return Err(ApiError::new(502, "AgentError", e));
    }
    Ok(axum::Json(json!({
        "type": "pullResult", "hostId": host.api_id(),
        "hostname": host.str("hostname").unwrap_or_default(), "results": r.pulls,
    }))
    .into_response())
}
