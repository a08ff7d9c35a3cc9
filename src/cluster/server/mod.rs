//! The cluster server: shared state ([`App`]), the write path
//! ([`App::commit`], which derives every wake-up from what changed), the
//! heartbeat monitor, and the reconcile driver ([`driver`]) that snapshots
//! the store, runs the pure plan ([`crate::cluster::plan::reconcile`]) and
//! commits its changes once. The HTTP side ([`crate::cluster::api`]) only
//! decodes, calls in here and renders.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::model::{Kind, Resource, ADMIN_ACCOUNT, DEFAULT_PROJECT};
use super::store::{Scope, Store, StoreError};

pub mod actions;
pub mod driver;
pub mod envview;
pub mod ipam;
pub mod wake;

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
    /// [`crate::cluster::tls::ca_proof`] of the join token and the CA, sent
    /// with `GET /v1/cacert` to agents that have the token but no pin.
    pub ca_proof: Option<String>,
    /// `--insecure-open-api` (tests only): every request acts as the admin
    /// until local auth is enabled, and every response says so
    /// (`X-Ros-Insecure: open-api`). Off, a request without credentials
    /// is refused even before an admin exists.
    pub open_api: bool,
    /// The pre-shared join token (`ros.cluster.token`, `--token`): accepted
    /// as a registration token of the Default environment, k3s-style.
    pub join_token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            reconnecting_after: Duration::from_secs(30),
            disconnected_after: Duration::from_secs(180),
            max_wait: Duration::from_secs(5),
            advertise_url: None,
            tls_ca: None,
            ca_proof: None,
            open_api: false,
            join_token: None,
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
    /// Per-host generations that answer agents' long-polls.
    pub wake: wake::Wakeups,
    /// Verified credentials: key → (secret, principal, expiry in ms since
    /// the epoch, `i64::MAX` for none).
    pub creds: Mutex<HashMap<String, (String, Principal, i64)>>,
    /// When this server started (heartbeat grace after a restart).
    pub started: Instant,
    /// Wakes the service reconciler.
    pub kick: tokio::sync::Notify,
    /// Requests to agents and their waiting callers.
    pub relay: crate::cluster::api::relay::Relay,
    /// The reconciler's snapshot and the store revision it is current
    /// to, kept between passes ([`driver::pass`] reads only what changed).
    pub(crate) snapshot: Mutex<Option<(u64, crate::cluster::plan::reconcile::Snapshot)>>,
    /// The environment views agents keep for DNS and metadata.
    pub views: envview::EnvViews,
    /// Failed logins per client address (brute-force brake).
    pub throttle: crate::cluster::api::access::Throttle,
    /// Mutating requests: who, what, when, from where.
    pub audit: crate::cluster::api::audit::AuditLog,
    /// The live subscription's change feed (poked on every commit).
    pub feed: crate::cluster::api::subscribe::Feed,
}

impl App {
    /// Server state over `store`, seeding the admin account and the Default
    /// project on first start.
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> Result<Arc<App>, StoreError> {
        seed(store.as_ref())?;
        Ok(Arc::new(App {
            store,
            config,
            write: tokio::sync::Mutex::new(()),
            seen: Mutex::new(HashMap::new()),
            wake: wake::Wakeups::new(),
            creds: Mutex::new(HashMap::new()),
            started: Instant::now(),
            kick: tokio::sync::Notify::new(),
            relay: crate::cluster::api::relay::Relay::default(),
            snapshot: Mutex::new(None),
            views: envview::EnvViews::new(),
            throttle: Default::default(),
            audit: Default::default(),
            feed: crate::cluster::api::subscribe::Feed::new(),
        }))
    }

    /// Commit `rows` and tell whoever must act on them: the agents of the
    /// hosts whose containers (or host row) changed, and the reconciler
    /// when services, stacks, hosts or containers changed. Every write of
    /// the API goes through here, so no handler decides wake-ups itself.
    pub fn commit(&self, rows: &[Resource]) -> Result<(), StoreError> {
        self.store.commit(rows)?;
        self.note_view(rows);
        self.wake.hosts(rows.iter().filter_map(|r| match r.kind {
            Kind::Container => Some(r.host),
            Kind::Host => Some(r.id),
            _ => None,
        }));
        if rows.iter().any(|r| {
            matches!(
                r.kind,
                Kind::Service | Kind::Stack | Kind::Host | Kind::Container
            )
        }) {
            self.kick.notify_one();
        }
        Ok(())
    }

    /// Fold committed rows into the environment views; when a view
    /// changed, every agent's long-poll looks again (those behind answer).
    /// Call after every commit that bypasses [`App::commit`].
    pub fn note_view(&self, rows: &[Resource]) {
        self.feed.poke();
        if !self.views.note(rows).is_empty() {
            self.wake.poke();
        }
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
    project.set(
        "servicesPortRange",
        crate::cluster::plan::launch::default_port_range(),
    );
    store.commit(&[admin, project])
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
        // A host that went away (or came back) changes what the service
        // reconciler must do: health-checked containers move.
        app.commit(&changed)?;
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
/// heartbeat monitor and the reconcile driver.
pub async fn serve(app: Arc<App>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    spawn_monitor(app.clone());
    driver::spawn(app.clone(), Duration::from_millis(500));
    tokio::task::spawn_blocking(crate::cluster::ui::warm);
    let svc = crate::cluster::api::router(app)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, svc).await
}

/// Serve on `listener` (HTTPS, and plain HTTP as its policy allows) until
/// the process ends, running the heartbeat monitor and the reconcile
/// driver.
pub async fn serve_listener(
    app: Arc<App>,
    listener: crate::cluster::tls::listener::Listener,
) -> std::io::Result<()> {
    spawn_monitor(app.clone());
    driver::spawn(app.clone(), Duration::from_millis(500));
    crate::cluster::api::serve_on(app, listener).await
}
