//! The cluster server's HTTP API: Rancher-style resources under `/v1` (and
//! `/v2-beta` as an alias), the agent endpoints, and the background monitor
//! that turns missing heartbeats into `reconnecting`/`disconnected`.
//!
//! Request flow: [`handlers::dispatch`] parses the path into a
//! [`handlers::Route`], resolves the caller ([`access`]), decodes the body
//! against the schema ([`schema::decode`]), and calls one handler; every
//! failure is an [`ApiError`] rendered as Rancher's error JSON.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::any;
use axum::Router;
use tokio::sync::watch;

use super::model::{Kind, Resource, ADMIN_ACCOUNT, DEFAULT_PROJECT};
use super::store::{Scope, Store, StoreError};

pub mod access;
mod agent_api;
mod create;
pub mod error;
pub mod handlers;
pub mod launch;
pub mod query;
pub mod reconcile;
pub mod relay;
pub mod render;
pub mod schema;
pub mod services;
#[cfg(test)]
mod tests;

pub use error::ApiError;

/// Server tunables.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// A host whose agent was silent this long becomes `reconnecting`
    /// (Rancher: 6 missed 5 s pings ≈ 30 s).
    pub reconnecting_after: Duration,
    /// … and `disconnected` after this long (Rancher: 180 s).
    pub disconnected_after: Duration,
    /// Longest a sync answer is held (agents poll again at once).
    pub max_wait: Duration,
    /// URL agents reach the server on, for registration URLs; from the
    /// request's `Host` header when unset.
    pub advertise_url: Option<String>,
    /// `(CA PEM, CA SHA-256 hex)` when TLS is on: tokens then carry the pin.
    pub tls_ca: Option<(String, String)>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            reconnecting_after: Duration::from_secs(30),
            disconnected_after: Duration::from_secs(180),
            max_wait: Duration::from_secs(5),
            advertise_url: None,
            tls_ca: None,
        }
    }
}

/// Who a verified credential belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The admin (or anyone while access control is off).
    Admin,
    /// An API key of one project.
    Project(u64),
    /// An agent of one host.
    Agent {
        /// Its host.
        host: u64,
        /// The host's project.
        project: u64,
    },
}

/// Shared server state.
pub struct App {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Tunables.
    pub config: ServerConfig,
    /// Serializes read-modify-write changes.
    pub write: tokio::sync::Mutex<()>,
    /// Last heartbeat per host.
    pub seen: Mutex<HashMap<u64, Instant>>,
    /// Bumped whenever desired state of any instance changes.
    pub generation: watch::Sender<u64>,
    /// Verified credentials: key → (secret, principal).
    pub creds: Mutex<HashMap<String, (String, Principal)>>,
    /// When this server started (heartbeat grace after a restart).
    pub started: Instant,
    /// Wakes the service reconciler.
    pub kick: tokio::sync::Notify,
    /// Requests to agents and their waiting callers.
    pub relay: relay::Relay,
}

impl App {
    /// Server state over `store`, seeding the admin account and the Default
    /// project on first start.
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> Result<Arc<App>, StoreError> {
        seed(store.as_ref())?;
        let (generation, _) = watch::channel(1);
        Ok(Arc::new(App {
            store,
            config,
            write: tokio::sync::Mutex::new(()),
            seen: Mutex::new(HashMap::new()),
            generation,
            creds: Mutex::new(HashMap::new()),
            started: Instant::now(),
            kick: tokio::sync::Notify::new(),
            relay: relay::Relay::default(),
        }))
    }

    /// Wake agents waiting on a sync.
    pub fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Forget cached credentials (after a key changes).
    pub fn forget_creds(&self) {
        if let Ok(mut c) = self.creds.lock() {
            c.clear();
        }
    }
}

fn seed(store: &dyn Store) -> Result<(), StoreError> {
    if store.get(Kind::Project, DEFAULT_PROJECT)?.is_some() {
        return Ok(());
    }
    let mut admin = Resource::new(Kind::Account, ADMIN_ACCOUNT, 0, "active");
    admin.set("name", "admin");
    admin.set("kind", "admin");
    let mut project = Resource::new(Kind::Project, DEFAULT_PROJECT, 0, "active");
    project.set("name", "Default");
    project.set("description", "The default environment");
    project.set("kind", "project");
    project.set("orchestration", "cattle");
    project.set("servicesPortRange", launch::default_port_range());
    store.commit(&[admin, project])
}

/// The router: `/v1/…` and `/v2-beta/…` to the dispatcher, `/ping`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/ping", any(|| async { "pong" }))
        .route("/v1", any(handlers::dispatch))
        .route("/v1/", any(handlers::dispatch))
        .route("/v1/{*rest}", any(handlers::dispatch))
        .route("/v2-beta", any(handlers::dispatch))
        .route("/v2-beta/", any(handlers::dispatch))
        .route("/v2-beta/{*rest}", any(handlers::dispatch))
        .fallback(|| async { ApiError::not_found() })
        .with_state(app)
}

/// The agent state a host should show `elapsed` after its last heartbeat.
pub fn agent_state_after(config: &ServerConfig, elapsed: Duration) -> &'static str {
    if elapsed >= config.disconnected_after {
        "disconnected"
    } else if elapsed >= config.reconnecting_after {
        "reconnecting"
    } else {
        "active"
    }
}

/// One pass of the heartbeat monitor: write changed agent states.
pub fn monitor_pass(app: &App) -> Result<(), StoreError> {
    let now = Instant::now();
    let seen = app.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let mut changed = Vec::new();
    for mut h in app.store.list(Kind::Host, Scope::All)? {
        if h.is_removed() {
            continue;
        }
        let last = seen.get(&h.id).copied().unwrap_or(app.started);
        let want = agent_state_after(&app.config, now.saturating_duration_since(last));
        if h.str("agentState") != Some(want) {
            tracing::info!(host = %h.api_id(), agent_state = want, "agent state");
            h.set("agentState", want);
            changed.push(h);
        }
    }
    if !changed.is_empty() {
        app.store.commit(&changed)?;
        // A host that went away (or came back) changes what the service
        // reconciler must do: health-checked containers move.
        app.kick.notify_one();
    }
    Ok(())
}

/// Run the heartbeat monitor in the background.
pub fn spawn_monitor(app: Arc<App>) {
    let tick = (app.config.reconnecting_after / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(1));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(tick).await;
            let _guard = app.write.lock().await;
            if let Err(e) = monitor_pass(&app) {
                tracing::warn!(error = %e, "heartbeat monitor");
            }
        }
    });
}

/// Serve plain HTTP on `listener` until the process ends, running the
/// monitor.
pub async fn serve(app: Arc<App>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    spawn_monitor(app.clone());
    reconcile::spawn(app.clone(), Duration::from_millis(500));
    axum::serve(listener, router(app)).await
}

/// Marks requests that arrived over TLS (links then say `https://`).
#[derive(Clone, Copy, Debug)]
pub struct Https;

/// Serve HTTPS (the same API) on `listener`; the monitor runs with
/// [`serve`] or [`spawn_monitor`].
pub async fn serve_tls(
    app: Arc<App>,
    listener: crate::cluster::tls::TlsListener,
) -> std::io::Result<()> {
    axum::serve(listener, router(app).layer(axum::Extension(Https))).await
}
