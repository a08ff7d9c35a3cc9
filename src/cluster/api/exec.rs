//! A shell in a container from the browser (Rancher's `execute` action):
//!
//! 1. `POST …/containers/{id}/exec` (`{"command": [...]}` optional) under
//!    the caller's usual credentials and scope — the same as for the
//!    container's logs — answers Rancher's `hostAccess` shape: a websocket
//!    `url` and a one-time `token` valid for [`CLAIM_WITHIN`].
//! 2. The browser opens `GET /v1/exec/?token=T` as a websocket (a browser
//!    websocket cannot send an `Authorization` header: the token is the
//!    credential). The server relays an `exec` request to the agent of the
//!    container's host through the sync answer, as for logs.
//! 3. The agent opens `GET /v1/agent/exec/T` as a websocket with its own
//!    credentials; only the agent of the container's host is accepted.
//!    The server then pipes frames between the two sockets until either
//!    side closes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::ctx::Ctx;
use super::{access, ApiError, App, Principal};
use crate::cluster::auth;
use crate::cluster::model::{Kind, Resource};
use crate::cluster::protocol::AgentRequest;

/// How long a token waits for its browser websocket.
pub const CLAIM_WITHIN: Duration = Duration::from_secs(30);
/// How long the browser waits for the agent to connect back.
const AGENT_WITHIN: Duration = Duration::from_secs(15);

/// A session minted by `POST …/exec` and not yet claimed.
struct Minted {
    host: u64,
    instance: String,
    command: Vec<String>,
    at: Instant,
}

/// Exec sessions: minted tokens, and claimed ones waiting for their agent.
#[derive(Default)]
pub struct Sessions {
    minted: Mutex<HashMap<String, Minted>>,
    waiting: Mutex<HashMap<String, (u64, oneshot::Sender<WebSocket>)>>,
}

/// `POST …/containers/{id}/exec`.
pub fn create(cx: &Ctx<'_>, c: &Resource) -> Result<Response, ApiError> {
    let body: Value = if cx.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&cx.body)
            .map_err(|e| ApiError::new(422, "InvalidBodyContent", format!("invalid body: {e}")))?
    };
    let command: Vec<String> = match body.get("command") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::field(
                    "InvalidFormat",
                    "command",
                    "command must be a list of strings",
                )
            })?,
        Some(_) => {
            return Err(ApiError::field(
                "InvalidFormat",
                "command",
                "command must be a list of strings",
            ))
        }
    };
    if c.is_removed() || c.host == 0 {
        return Err(ApiError::new(
            422,
            "InvalidState",
            format!("container {} is not on a host", c.api_id()),
        ));
    }
    if c.state != "running" {
        return Err(ApiError::new(
            422,
            "InvalidState",
            format!("container {} is {}, not running", c.api_id(), c.state),
        ));
    }
    let host = cx
        .app
        .store
        .get(Kind::Host, c.host)?
        .ok_or_else(ApiError::not_found)?;
    super::relay::reachable(&host)?;
    let token = auth::random_token(24);
    if let Ok(mut m) = cx.app.relay.exec.minted.lock() {
        m.retain(|_, s| s.at.elapsed() < CLAIM_WITHIN);
        m.insert(
            token.clone(),
            Minted {
                host: c.host,
                instance: c.api_id(),
                command,
                at: Instant::now(),
            },
        );
    }
    // `http://host/v2-beta` → `ws://host/v1/exec/`.
    let root = cx.base.trim_end_matches("/v2-beta").trim_end_matches("/v1");
    let url = format!(
        "{}/v1/exec/",
        root.replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1)
    );
    Ok((
        axum::http::StatusCode::CREATED,
        axum::Json(json!({
            "type": "hostAccess", "url": url, "token": token,
            "containerId": c.api_id(), "links": {}, "actions": {},
        })),
    )
        .into_response())
}

/// `GET /v1/exec/?token=T`: the browser's websocket.
pub async fn browser(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let token = q.get("token").cloned().unwrap_or_default();
    let minted = app
        .relay
        .exec
        .minted
        .lock()
        .ok()
        .and_then(|mut m| m.remove(&token))
        .filter(|s| s.at.elapsed() < CLAIM_WITHIN);
    let Some(s) = minted else {
        return ApiError::new(
            401,
            "Unauthorized",
            "no such exec token (each is used once, within 30 s)",
        )
        .into_response();
    };
    ws.on_upgrade(move |socket| run(app, token, s, socket))
}

async fn run(app: Arc<App>, token: String, s: Minted, mut browser: WebSocket) {
    let (tx, rx) = oneshot::channel();
    if let Ok(mut w) = app.relay.exec.waiting.lock() {
        w.insert(token.clone(), (s.host, tx));
    }
    super::relay::queue(
        &app,
        s.host,
        AgentRequest {
            request_id: token.clone(),
            kind: "exec".into(),
            instance_id: s.instance.clone(),
            command: s.command,
            ..AgentRequest::default()
        },
    );
    let agent = tokio::time::timeout(AGENT_WITHIN, rx).await;
    if let Ok(mut w) = app.relay.exec.waiting.lock() {
        w.remove(&token);
    }
    let Ok(Ok(mut agent)) = agent else {
        let _ = browser
            .send(Message::Text(
                format!(
                    "exec: the agent of the container's host did not connect within {} s",
                    AGENT_WITHIN.as_secs()
                )
                .into(),
            ))
            .await;
        let _ = browser.send(Message::Close(None)).await;
        return;
    };
    tracing::info!(instance = %s.instance, "exec session open");
    pipe(&mut browser, &mut agent).await;
    let _ = browser.send(Message::Close(None)).await;
    let _ = agent.send(Message::Close(None)).await;
    tracing::info!(instance = %s.instance, "exec session closed");
}

/// Forward frames both ways until one side closes.
async fn pipe(a: &mut WebSocket, b: &mut WebSocket) {
    loop {
        let (m, to_b) = tokio::select! {
            m = a.recv() => (m, true),
            m = b.recv() => (m, false),
        };
        let m = match m {
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
            Some(Ok(m @ (Message::Binary(_) | Message::Text(_)))) => m,
            Some(Ok(_)) => continue,
        };
        let sent = if to_b {
            b.send(m).await
        } else {
            a.send(m).await
        };
        if sent.is_err() {
            return;
        }
    }
}

/// `GET /v1/agent/exec/{token}`: the agent's websocket.
pub async fn agent(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let host = match access::resolve_from(&app, auth, true, None).await {
        Ok(Principal::Agent { host, .. }) => host,
        Ok(_) => return ApiError::forbidden().into_response(),
        Err(e) => return e.into_response(),
    };
    // Only the agent of the container's host may take the session.
    let tx = app
        .relay
        .exec
        .waiting
        .lock()
        .ok()
        .and_then(|mut w| match w.get(&token) {
            Some((h, _)) if *h == host => w.remove(&token).map(|(_, tx)| tx),
            _ => None,
        });
    let Some(tx) = tx else {
        return ApiError::new(
            404,
            "NotFound",
            format!("no exec session {token} waits for this host"),
        )
        .into_response();
    };
    ws.on_upgrade(move |socket| async move {
        let _ = tx.send(socket);
    })
}
