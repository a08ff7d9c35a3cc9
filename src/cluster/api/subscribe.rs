//! The live subscription, `/v2-beta/projects/{id}/subscribe` (and `/v1`):
//! Rancher's event stream — `resource.change` events carrying the rendered
//! resource, and `ping` events — over a websocket (what Rancher's clients
//! open) or, for any other request, as Server-Sent Events.
//!
//! SSE is what our own UI uses: it is plain HTTP, so a `fetch` can send the
//! `Authorization` header (a browser's `WebSocket` cannot), and each event
//! carries the store revision as its `id`, so a reconnect with
//! `Last-Event-ID` (or `?since=REV`) replays exactly what was missed.
//!
//! One hub per server turns store commits into batches: every commit path
//! calls [`App::note_view`] (or [`Feed::poke`]), which pokes the hub; the
//! hub reads [`Store::changed_since`] once and broadcasts the rows. Each
//! subscriber only filters the batch by project and renders it, so no
//! client polls the store.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Once};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use super::{access, render, ApiError, App, Principal};
use crate::cluster::model::{parse_id, Kind, Resource};
use crate::cluster::store::Store;

/// How often a subscriber gets a `ping` (Rancher's clients expect one
/// within 30 s; the first comes at once).
pub const PING_EVERY: Duration = Duration::from_secs(5);

/// Rows of one or more commits, up to revision `rev`.
pub struct Batch {
    /// The store revision the rows bring the store to.
    pub rev: u64,
    /// The changed rows, oldest first.
    pub rows: Vec<Resource>,
}

/// The server's change feed (one per [`App`]).
pub struct Feed {
    poke: watch::Sender<u64>,
    tx: broadcast::Sender<Arc<Batch>>,
    hub: Once,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl Feed {
    /// A feed whose hub starts with its first subscriber. The channel
    /// keeps the last 32 batches (memory stays bounded however large a
    /// commit); a subscriber further behind gets `resync` and reloads.
    pub fn new() -> Feed {
        Feed {
            poke: watch::channel(0).0,
            tx: broadcast::channel(32).0,
            hub: Once::new(),
        }
    }

    /// Something was committed: the hub reads what changed.
    pub fn poke(&self) {
        self.poke.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Start the hub (once; needs a tokio runtime) and subscribe.
    fn subscribe(&self, store: Arc<dyn Store>) -> broadcast::Receiver<Arc<Batch>> {
        let rx = self.tx.subscribe();
        self.hub.call_once(|| {
            let mut pokes = self.poke.subscribe();
            let tx = self.tx.clone();
            let mut last = store.revision().unwrap_or(0);
            tokio::spawn(async move {
                // Ends when the feed (and with it the server) is dropped.
                while pokes.changed().await.is_ok() {
                    match store.changed_since(last) {
                        Ok((rev, rows)) => {
                            last = rev;
                            if !rows.is_empty() {
                                let _ = tx.send(Arc::new(Batch { rev, rows }));
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "subscribe: reading changes"),
                    }
                }
            });
        });
        rx
    }
}

/// Whether a subscriber of `project` sees `r`.
fn visible(project: u64, r: &Resource) -> bool {
    match r.kind {
        Kind::AgentKey | Kind::Account => false,
        Kind::Project => r.id == project,
        _ => r.project == project,
    }
}

/// Rancher's `resource.change` event for `r`.
pub fn change_event(base: &str, r: &Resource) -> Value {
    let res = render::resource(base, r);
    json!({
        "name": "resource.change",
        "resourceType": res["type"],
        "resourceId": r.api_id(),
        "data": {"resource": res},
    })
}

/// One subscriber: what it wants and where it is.
struct Sub {
    rx: broadcast::Receiver<Arc<Batch>>,
    project: u64,
    base: String,
    /// Revision already sent (batches at or below it are skipped).
    sent: u64,
    changes: bool,
    pings: bool,
    pending: VecDeque<(Option<u64>, String)>,
    ping: tokio::time::Interval,
}

impl Sub {
    fn push_rows(&mut self, rev: u64, rows: &[Resource]) {
        if rev <= self.sent {
            return;
        }
        self.sent = rev;
        if !self.changes {
            return;
        }
        for r in rows.iter().filter(|r| visible(self.project, r)) {
            let ev = change_event(&self.base, r);
            self.pending.push_back((Some(rev), ev.to_string()));
        }
    }

    /// The next event: `(revision, JSON)`; `None` when the server stops.
    async fn next(&mut self) -> Option<(Option<u64>, String)> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Some(m);
            }
            tokio::select! {
                _ = self.ping.tick() => {
                    if self.pings {
                        self.pending.push_back((None, json!({"name": "ping"}).to_string()));
                    }
                }
                got = self.rx.recv() => match got {
                    Ok(b) => self.push_rows(b.rev, &b.rows),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too far behind to replay from memory: tell the
                        // client to reload (it reconnects with its revision).
                        self.pending.push_back((None, json!({"name": "resync"}).to_string()));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

fn query_pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// The credential of a subscribe request: the `Authorization` header, or
/// the login JWT in a `token` cookie (a browser's websocket sends cookies
/// but no headers; Rancher's UI did the same).
fn credential(headers: &HeaderMap) -> Option<String> {
    if let Some(h) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    {
        return Some(h.to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|c| c.to_str().ok())
        .flat_map(|c| c.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| format!("Bearer {v}"))
}

/// `GET /v1|/v2-beta/projects/{id}/subscribe`.
pub async fn subscribe(
    State(app): State<Arc<App>>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    match open(app, &pid, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn open(app: Arc<App>, pid: &str, req: Request) -> Result<Response, ApiError> {
    let project = parse_id(Kind::Project, pid).ok_or_else(ApiError::not_found)?;
    let (mut parts, _body) = req.into_parts();
    let p = access::resolve(&app, credential(&parts.headers).as_deref(), false)?;
    match p {
        Principal::Admin => {}
        Principal::Project(mine) if mine == project => {}
        Principal::Project(_) => return Err(ApiError::not_found()),
        Principal::Agent { .. } => return Err(ApiError::forbidden()),
    }
    app.store
        .get(Kind::Project, project)?
        .filter(|r| !r.is_removed())
        .ok_or_else(ApiError::not_found)?;
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost")
        .to_string();
    let path = parts.uri.path();
    let prefix = if path.starts_with("/v2-beta") {
        "/v2-beta"
    } else {
        "/v1"
    };
    let scheme = if super::is_https(&parts.extensions) {
        "https"
    } else {
        "http"
    };
    let q = query_pairs(&parts.uri);
    let names: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "eventNames")
        .map(|(_, v)| v.as_str())
        .collect();
    let since = q
        .iter()
        .find(|(k, _)| k == "since")
        .map(|(_, v)| v.as_str())
        .or_else(|| {
            parts
                .headers
                .get("Last-Event-ID")
                .and_then(|v| v.to_str().ok())
        })
        .map(|s| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::new(400, "InvalidFormat", "since must be a store revision"))
        })
        .transpose()?;
    let rx = app.feed.subscribe(app.store.clone());
    let mut sub = Sub {
        rx,
        project,
        base: format!("{scheme}://{host}{prefix}"),
        sent: 0,
        changes: names.is_empty() || names.contains(&"resource.change"),
        pings: names.is_empty() || names.contains(&"ping"),
        pending: VecDeque::new(),
        ping: tokio::time::interval(PING_EVERY),
    };
    // Subscribed first, then read: nothing committed in between is lost
    // (batches the replay already covers are skipped by revision).
    match since {
        Some(rev) => {
            let (now, rows) = app.store.changed_since(rev)?;
            sub.sent = rev;
            sub.push_rows(now, &rows);
            sub.sent = now;
        }
        None => sub.sent = app.store.revision()?,
    }
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &()).await;
    match ws {
        Ok(ws) => Ok(ws.on_upgrade(move |socket| websocket(socket, sub))),
        Err(_) => Ok(sse(sub)),
    }
}

async fn websocket(mut socket: WebSocket, mut sub: Sub) {
    loop {
        tokio::select! {
            ev = sub.next() => {
                let Some((_, text)) = ev else { break };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            got = socket.recv() => match got {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

fn sse(sub: Sub) -> Response {
    let stream = futures_util::stream::unfold(sub, |mut sub| async move {
        let (rev, text) = sub.next().await?;
        let frame = match rev {
            Some(r) => format!("id: {r}\ndata: {text}\n\n"),
            None => format!("data: {text}\n\n"),
        };
        Some((Ok::<_, Infallible>(Bytes::from(frame)), sub))
    })
    .boxed();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
