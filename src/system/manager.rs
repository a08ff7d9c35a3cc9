//! The service manager: bring services up in dependency order (independent
//! ones in parallel), respawn long-running ones that die, and stop them in
//! reverse order.
//!
//! Generic over [`Engine`]: the unit tests below use the recording fake,
//! `tests/system_services.rs` the real dockerd. Futures run concurrently
//! inside one task (`FuturesUnordered`), so nothing here needs `spawn`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tracing::{debug, info, warn};

use super::engine::{ContainerInfo, Engine, EngineError};
use super::order::{plan, OrderError, Plan};
use super::spec::{container_name, container_spec, Privilege, SpecError};
use crate::config::service::ServiceConfig;
use crate::paths::Paths;

/// Errors bringing one service up or down.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The definition could not be translated.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The engine refused an operation.
    #[error("service {service}")]
    Engine {
        /// The service.
        service: String,
        /// Why.
        #[source]
        source: EngineError,
    },
    /// A one-shot service exited non-zero.
    #[error("service {service}: one-shot exited with code {code}")]
    OneshotFailed {
        /// The service.
        service: String,
        /// Its exit code.
        code: i64,
    },
    /// A file of the manager's own could not be handled.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The name is not a defined service.
    #[error("no service named {0}")]
    Unknown(String),
    /// Creating the container ahead of its start failed (the message of
    /// the error, which the creation shared with the start).
    #[error("service {service}: {message}")]
    Create {
        /// The service.
        service: String,
        /// Why.
        message: String,
    },
}

/// A container's creation, done once: ahead of the service's turn while
/// the services before it start, or at its turn (whichever comes first).
type Created = tokio::sync::OnceCell<Result<Option<ContainerInfo>, String>>;

/// What happened to a service during `up`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A long-running service is running.
    Running,
    /// A one-shot service ran and exited 0.
    Completed,
    /// A create-only service (volume holder) exists.
    Created,
    /// It failed (the message says why).
    Failed(String),
    /// Not started because a dependency failed.
    Blocked(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Running => f.write_str("running"),
            Outcome::Completed => f.write_str("completed"),
            Outcome::Created => f.write_str("created"),
            Outcome::Failed(m) => write!(f, "failed\t{m}"),
            Outcome::Blocked(d) => write!(f, "blocked\tdependency {d} failed"),
        }
    }
}

impl Outcome {
    fn ok(&self) -> bool {
        matches!(
            self,
            Outcome::Running | Outcome::Completed | Outcome::Created
        )
    }
}

/// Kinds of service.
fn is_long_running(svc: &ServiceConfig) -> bool {
    !svc.is_oneshot() && !svc.is_create_only()
}

/// True when the engine's own restart policy supervises the service.
fn engine_restarts(svc: &ServiceConfig) -> bool {
    svc.restart
        .as_ref()
        .is_some_and(|r| !r.0.is_empty() && r.0 != "no")
}

/// The user engine's service: at shutdown it and what comes after it stop
/// first.
pub const USER_ENGINE: &str = "docker";

/// Per-service respawn state: exponential backoff, 1 s doubling to 30 s.
#[derive(Debug, Default)]
pub struct Respawner {
    state: BTreeMap<String, (u32, Instant)>,
}

impl Respawner {
    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);

    /// The delay before restart attempt `n` (0-based).
    pub fn delay(n: u32) -> Duration {
        Self::BASE.saturating_mul(1u32 << n.min(5)).min(Self::MAX)
    }
}

/// How long a service's ready socket ([`ServiceConfig::ready_socket`]) is
/// waited for before what comes after it starts anyway.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The name a container from an earlier boot is moved to (see
/// [`Manager::set_fresh`]): `<name>.retired-<first 12 of its id>` (a dot:
/// no service's own container name has one).
pub fn retired_name(name: &str, id: &str) -> String {
    format!("{name}.retired-{}", &id[..id.len().min(12)])
}

/// Is `name` one [`retired_name`] made?
pub fn is_retired(name: &str) -> bool {
    name.rsplit_once(".retired-").is_some_and(|(base, id)| {
        !base.is_empty()
            && id.len() == 12
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Remove every retired service container (this boot's, and any an
/// earlier boot did not get to), one at a time: run once the boot's
/// services are up, so the removals stay off the way to `login:`.
/// Returns how many were removed; failures are logged.
pub async fn remove_retired<E: Engine>(engine: &E) -> usize {
    let list = match engine.list_managed().await {
        Ok(l) => l,
        Err(e) => {
            warn!("cannot list the old containers: {e}");
            return 0;
        }
    };
    let t = Instant::now();
    let mut n = 0;
    for c in list.iter().filter(|c| is_retired(&c.name)) {
        match engine.remove(&c.name).await {
            Ok(()) => n += 1,
            Err(e) => warn!(container = %c.name, "cannot remove an old container: {e}"),
        }
    }
    if n > 0 {
        info!(
            removed = n,
            ms = t.elapsed().as_millis() as u64,
            "old containers removed"
        );
    }
    n
}

/// The manager of one set of services on one engine.
pub struct Manager<E: Engine> {
    engine: E,
    paths: Paths,
    services: BTreeMap<String, ServiceConfig>,
    plan: Plan,
    privilege: Privilege,
    env: BTreeMap<String, String>,
    containers: BTreeMap<String, String>,
    stop_timeout: Duration,
    fresh: bool,
}

impl<E: Engine> Manager<E> {
    /// A manager for `services`; fails on a dependency cycle or a missing
    /// dependency.
    pub fn new(
        engine: E,
        paths: Paths,
        services: BTreeMap<String, ServiceConfig>,
        privilege: Privilege,
        env: BTreeMap<String, String>,
        stop_timeout: Duration,
    ) -> Result<Self, OrderError> {
        let plan = plan(&services)?;
        let containers = services
            .iter()
            .map(|(n, s)| (n.clone(), container_name(n, s)))
            .collect();
        Ok(Manager {
            engine,
            paths,
            services,
            plan,
            privilege,
            env,
            containers,
            stop_timeout,
            fresh: false,
        })
    }

    /// At boot (`on`): a service whose container is there but not running
    /// — left by an earlier boot on the state disk — gets a new container
    /// instead of a restart of the old one (the old one is renamed, see
    /// [`retired_name`], and removed by [`remove_retired`] once the boot is
    /// done), so nothing in a container's
    /// writable layer outlives a boot. (chrony's pid file did: on every
    /// second boot ntp found `/run/chrony/chronyd.pid` naming its own pid 1
    /// and exited, restarting forever.) What a service keeps goes in its
    /// volumes; volume holders (create-only) are never replaced.
    pub fn set_fresh(&mut self, on: bool) {
        self.fresh = on;
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The checked plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The container name of a service.
    pub fn container(&self, service: &str) -> Result<&str, ManagerError> {
        self.containers
            .get(service)
            .map(String::as_str)
            .ok_or_else(|| ManagerError::Unknown(service.to_string()))
    }

    fn engine_err(service: &str) -> impl FnOnce(EngineError) -> ManagerError {
        let service = service.to_string();
        move |source| ManagerError::Engine { service, source }
    }

    /// Bring up `only` (or every service), dependencies first; services
    /// whose dependencies are all done start in parallel. A dependency
    /// outside `only` counts as done.
    pub async fn up(&self, only: Option<&BTreeSet<String>>) -> BTreeMap<String, Outcome> {
        let selected: BTreeSet<String> = match only {
            Some(o) => o.clone(),
            None => self.plan.order.iter().cloned().collect(),
        };
        let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
        for name in &selected {
            if !self.services.contains_key(name) {
                outcomes.insert(
                    name.clone(),
                    Outcome::Failed(format!("no service named {name}")),
                );
            }
        }
        let pending: BTreeSet<String> = selected
            .iter()
            .filter(|n| self.services.contains_key(*n))
            .cloned()
            .collect();
        // At boot every container is new (set_fresh): create them ahead,
        // one at a time in the plan's order (a volume holder before its
        // users), while the first services start, so a service's turn is
        // only its start (~0.5-1 s per creation under TCG, on the way to
        // `login:`). Not on a reload: a changed definition replaces a
        // running container, which waits for its turn.
        let created: BTreeMap<String, Created> = pending
            .iter()
            .filter(|_| self.fresh)
            .map(|n| (n.clone(), Created::new()))
            .collect();
        // The way in first: the services on the way to a console or to an
        // engine's socket (and all they depend on) are created ahead; the
        // others only once the consoles have started (or at their own
        // turn, if that comes first). All at once, ~3 s of creations under
        // TCG slowed every start on the way to `login:` (network's
        // start took 2.9-3.6 s with them, 1.7-2.3 s without).
        let way_in = self.way_in(&selected);
        let consoles: BTreeSet<String> = way_in
            .iter()
            .filter(|n| self.services.get(*n).is_some_and(ServiceConfig::is_console))
            .cloned()
            .collect();
        let (consoles_up, mut after_consoles) = tokio::sync::watch::channel(consoles.is_empty());
        let ahead = async {
            let (first, rest): (Vec<&String>, Vec<&String>) =
                self.plan.order.iter().partition(|n| way_in.contains(*n));
            for name in first {
                if let Some(cell) = created.get(name) {
                    self.create_once(name, cell).await;
                }
            }
            // (an Err: the sender is gone, every service has its outcome)
            let _ = after_consoles.wait_for(|up| *up).await;
            for name in rest {
                if let Some(cell) = created.get(name) {
                    self.create_once(name, cell).await;
                }
            }
        };
        debug!(
            services = pending.len(),
            ahead = created.len(),
            "bringing services up"
        );
        let in_turn = async {
            let outcomes = self
                .up_in_turn(
                    &selected,
                    pending,
                    outcomes,
                    &created,
                    &consoles,
                    &consoles_up,
                )
                .await;
            let _ = consoles_up.send(true);
            outcomes
        };
        let outcomes = futures_util::future::join(in_turn, ahead).await.0;
        // A service blocked by a failed dependency never starts: the
        // container made ahead for it goes again (as if never made).
        for (name, o) in &outcomes {
            let made_here = created
                .get(name)
                .and_then(|c| c.get())
                .is_some_and(|r| matches!(r, Ok(None)));
            if matches!(o, Outcome::Blocked(_)) && made_here {
                if let Ok(cname) = self.container(name) {
                    if let Err(e) = self.engine.remove(cname).await {
                        warn!(service = %name, "cannot remove the container made ahead: {e}");
                    }
                }
            }
        }
        outcomes
    }

    /// Create `name`'s container unless that is done or under way.
    async fn create_once<'a>(
        &self,
        name: &str,
        cell: &'a Created,
    ) -> &'a Result<Option<ContainerInfo>, String> {
        cell.get_or_init(|| async {
            self.ensure_container(name)
                .await
                .map_err(|e| super::chain(&e))
        })
        .await
    }

    /// `up`'s loop: start what is ready, in dependency order.
    async fn up_in_turn(
        &self,
        selected: &BTreeSet<String>,
        mut pending: BTreeSet<String>,
        mut outcomes: BTreeMap<String, Outcome>,
        created: &BTreeMap<String, Created>,
        consoles: &BTreeSet<String>,
        consoles_up: &tokio::sync::watch::Sender<bool>,
    ) -> BTreeMap<String, Outcome> {
        let mut running = FuturesUnordered::new();
        // Consoles whose start is under way: nothing off their way starts
        // beside them (the user engine became ready with the console, and
        // the two starts at once slowed the console's ~1.5x under TCG,
        // on the way to `login:`); they start once its start is done.
        let mut consoles_starting: BTreeSet<String> = BTreeSet::new();
        loop {
            // Block the dependents of failures, start whatever is ready.
            let mut changed = true;
            while changed {
                changed = false;
                // the consoles first (see consoles_starting)
                let mut order: Vec<String> = pending.iter().cloned().collect();
                order.sort_by_key(|n| !self.services[n].is_console());
                for name in order {
                    let deps = &self.plan.deps[&name];
                    let in_scope: Vec<&String> =
                        deps.iter().filter(|d| selected.contains(*d)).collect();
                    let failed = in_scope
                        .iter()
                        .find(|d| outcomes.get(**d).is_some_and(|o| !o.ok()));
                    let console = self.services[&name].is_console();
                    if let (Some(bad), false) = (failed, console) {
                        warn!(service = %name, dependency = %bad, "not started: a dependency failed");
                        outcomes.insert(name.clone(), Outcome::Blocked((*bad).clone()));
                        pending.remove(&name);
                        changed = true;
                    } else if !console && !consoles_starting.is_empty() {
                        // its turn comes when the console's start is done
                    } else if in_scope.iter().all(|d| outcomes.contains_key(*d)) {
                        // all ended; for the console (the way in to mend
                        // the node) a failed one too, said in the log
                        if let Some(bad) = failed {
                            warn!(service = %name, dependency = %bad, "a dependency failed: starting the console all the same");
                        }
                        pending.remove(&name);
                        if console {
                            consoles_starting.insert(name.clone());
                        }
                        let cell = created.get(&name);
                        running.push(async move {
                            let t = Instant::now();
                            let r = self.bring_up_with(&name, cell).await;
                            (name, r, t.elapsed())
                        });
                    }
                }
            }
            let Some((name, result, took)) = running.next().await else {
                break;
            };
            let outcome = match result {
                Ok(o) => {
                    info!(service = %name, ms = took.as_millis() as u64, "{o}");
                    o
                }
                Err(e) => {
                    let msg = super::chain(&e);
                    warn!(service = %name, "failed: {msg}");
                    Outcome::Failed(msg)
                }
            };
            consoles_starting.remove(&name);
            outcomes.insert(name, outcome);
            if !*consoles_up.borrow() && consoles.iter().all(|c| outcomes.contains_key(c)) {
                let _ = consoles_up.send(true);
            }
        }
        outcomes
    }

    /// The selected services on the way to a console or to an engine's
    /// ready socket, with everything they depend on.
    fn way_in(&self, selected: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<&String> = selected
            .iter()
            .filter(|n| {
                self.services
                    .get(*n)
                    .is_some_and(|s| s.is_console() || s.ready_socket().is_some())
            })
            .collect();
        while let Some(n) = todo.pop() {
            if out.insert(n.clone()) {
                todo.extend(self.plan.deps.get(n).into_iter().flatten());
            }
        }
        out
    }

    /// Create (or recreate, when the definition changed) the container.
    async fn ensure_container(&self, name: &str) -> Result<Option<ContainerInfo>, ManagerError> {
        let svc = &self.services[name];
        let spec = container_spec(
            name,
            svc,
            &self.privilege,
            &self.paths,
            &self.env,
            &self.containers,
        )?;
        let existing = self
            .engine
            .inspect(&spec.name)
            .await
            .map_err(Self::engine_err(name))?;
        match existing {
            Some(c)
                if c.hash.as_deref() == Some(spec.hash.as_str())
                    && (c.running || !self.fresh || svc.is_create_only()) =>
            {
                return Ok(Some(c))
            }
            Some(c) if c.hash.as_deref() == Some(spec.hash.as_str()) => {
                // Out of the way by a rename (metadata only), removed once
                // the boot is done (remove_retired): a removal here cost
                // ~2 s per service on the way to login: under TCG.
                let old = retired_name(&spec.name, &c.id);
                info!(service = %name, retired = %old, "container from an earlier boot: creating it afresh");
                if let Err(e) = self.engine.rename(&spec.name, &old).await {
                    warn!(service = %name, "cannot rename the old container ({e}); removing it");
                    self.engine
                        .remove(&spec.name)
                        .await
                        .map_err(Self::engine_err(name))?;
                }
            }
            Some(_) => {
                info!(service = %name, "definition changed: recreating");
                self.engine
                    .remove(&spec.name)
                    .await
                    .map_err(Self::engine_err(name))?;
            }
            None => {}
        }
        let t = Instant::now();
        self.engine
            .create(&spec)
            .await
            .map_err(Self::engine_err(name))?;
        debug!(service = %name, ms = t.elapsed().as_millis() as u64, "container created");
        Ok(None)
    }

    /// Bring one service up.
    pub async fn bring_up(&self, name: &str) -> Result<Outcome, ManagerError> {
        self.bring_up_with(name, None).await
    }

    /// Bring one service up, its container from `created` when given.
    async fn bring_up_with(
        &self,
        name: &str,
        created: Option<&Created>,
    ) -> Result<Outcome, ManagerError> {
        let svc = self
            .services
            .get(name)
            .ok_or_else(|| ManagerError::Unknown(name.to_string()))?;
        let _ = std::fs::remove_file(self.paths.service_stopped_marker(name));
        // a one-shot's word on its exit is for this run only
        let exit_file = self.paths.oneshot_exit(name);
        if svc.is_oneshot() {
            if let Err(e) = std::fs::remove_file(&exit_file) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(ManagerError::Io {
                        path: exit_file,
                        source: e,
                    });
                }
            }
        }
        let existing = match created {
            Some(cell) => self
                .create_once(name, cell)
                .await
                .clone()
                .map_err(|message| ManagerError::Create {
                    service: name.to_string(),
                    message,
                })?,
            None => self.ensure_container(name).await?,
        };
        let cname = self.container(name)?;
        if svc.is_create_only() {
            return Ok(Outcome::Created);
        }
        if existing.as_ref().is_some_and(|c| c.running) && !svc.is_oneshot() {
            return Ok(Outcome::Running);
        }
        if !existing.as_ref().is_some_and(|c| c.running) {
            self.engine
                .start(cname)
                .await
                .map_err(Self::engine_err(name))?;
        }
        if let Some(sock) = svc.ready_socket() {
            self.wait_ready(name, &self.paths.at(sock)).await;
        }
        if svc.is_oneshot() {
            let code = self.oneshot_code(name, cname, &exit_file).await?;
            if code != 0 {
                return Err(ManagerError::OneshotFailed {
                    service: name.to_string(),
                    code,
                });
            }
            return Ok(Outcome::Completed);
        }
        Ok(Outcome::Running)
    }

    /// A one-shot's exit code: from the engine once the container has
    /// stopped, or sooner from the file its process writes as its last act
    /// ([`Paths::oneshot_exit`]); the container's teardown goes on in the
    /// engine meanwhile.
    async fn oneshot_code(
        &self,
        name: &str,
        cname: &str,
        exit_file: &std::path::Path,
    ) -> Result<i64, ManagerError> {
        let said = async {
            loop {
                if let Ok(text) = tokio::fs::read_to_string(exit_file).await {
                    match text.trim().parse::<i64>() {
                        Ok(code) => return code,
                        Err(_) => {
                            warn!(service = %name, file = %exit_file.display(), "not an exit code: {text:?}; waiting for the engine");
                            return std::future::pending().await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            code = self.engine.wait(cname) => code.map_err(Self::engine_err(name)),
            code = said => {
                debug!(service = %name, code, "exit said by the service");
                Ok(code)
            }
        }
    }

    /// Wait (up to [`READY_TIMEOUT`]) for the Docker API a service serves
    /// to answer. A service that does not answer in time still counts as
    /// up (its container runs and restarts on its own): its dependents are
    /// started late, with a warning, rather than never.
    async fn wait_ready(&self, name: &str, sock: &std::path::Path) {
        let t = Instant::now();
        loop {
            let s = sock.to_path_buf();
            let answers =
                tokio::task::spawn_blocking(move || crate::init::stages::docker_answers(&s))
                    .await
                    .unwrap_or(false);
            if answers {
                info!(service = %name, socket = %sock.display(), ms = t.elapsed().as_millis() as u64, "ready");
                return;
            }
            if t.elapsed() >= READY_TIMEOUT {
                warn!(service = %name, socket = %sock.display(), "not answering after {}s; starting what comes after it anyway", READY_TIMEOUT.as_secs());
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stop one service (and mark it so it is not respawned).
    pub async fn stop(&self, name: &str) -> Result<(), ManagerError> {
        let cname = self.container(name)?;
        self.mark_stopped(name);
        self.engine
            .stop(cname, self.stop_timeout)
            .await
            .map_err(Self::engine_err(name))
    }

    /// Mark `name` stopped by the operator (or the shutdown), so the
    /// respawner leaves it alone.
    fn mark_stopped(&self, name: &str) {
        let marker = self.paths.service_stopped_marker(name);
        if let Some(dir) = marker.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&marker, b"");
    }

    /// Remove one service's container (stopping it first).
    pub async fn remove(&self, name: &str) -> Result<(), ManagerError> {
        self.stop(name).await?;
        let cname = self.container(name)?;
        self.engine
            .remove(cname)
            .await
            .map_err(Self::engine_err(name))
    }

    /// Stop every service at shutdown, in two waves, each wave in
    /// parallel: first the user engine (`docker`) and every service that
    /// waits for it (the workloads and what serves them), then the
    /// foundation (udev, network, ntp, syslog, console, …); each wave by
    /// `stop_by_signal`. `after` orders starts — a
    /// service needs its dependencies to come up — but at poweroff nothing
    /// starts again, and stopping one level at a time cost about a second
    /// of `docker stop` per level (9.6 s over nine levels, issue 16). The
    /// workloads still stop while the network and logging are up. Errors
    /// are logged, never fatal.
    pub async fn shutdown(&self) {
        self.shutdown_leaving(false).await;
    }

    /// [`Manager::shutdown`]; with `leave_foundation` (a node's poweroff,
    /// `ros sysinit --leave-foundation`) only the first wave — the user
    /// engine and what waits for it — is stopped through the engine. The
    /// foundation (udev, network, console, …) is left to PID 1: it kills
    /// system-dockerd and sends every process SIGTERM directly, which
    /// ends them at once, where three signals through the engine (each an
    /// engine → containerd → shim → `runc kill` round trip) took ~1.8 s
    /// under TCG (issue 16's shutdown). system-dockerd runs with
    /// `--restart=false`, so the next boot's engine does not start them
    /// itself, and they get new containers then ([`Manager::set_fresh`]).
    pub async fn shutdown_leaving(&self, leave_foundation: bool) {
        let user = self.plan.level.contains_key(USER_ENGINE);
        // the user engine and whatever waits for it, directly or not
        let mut needs_user: BTreeSet<&str> = BTreeSet::new();
        if user {
            needs_user.insert(USER_ENGINE);
        }
        for n in &self.plan.order {
            if self.plan.deps[n]
                .iter()
                .any(|d| needs_user.contains(d.as_str()))
            {
                needs_user.insert(n);
            }
        }
        let stoppable = |n: &String| !self.services[n].is_create_only();
        let mut waves: [Vec<&String>; 2] = [Vec::new(), Vec::new()];
        for n in self.plan.level.keys() {
            if stoppable(n) {
                waves[usize::from(!needs_user.contains(n.as_str()))].push(n);
            }
        }
        let [first, foundation] = waves;
        if user {
            self.stop_by_signal(first).await;
            if leave_foundation {
                info!(
                    services = foundation.len(),
                    "the foundation is left to PID 1's SIGTERM"
                );
                return;
            }
            self.stop_by_signal(foundation).await;
        } else if leave_foundation {
            info!(
                services = first.len() + foundation.len(),
                "no user engine: every service is left to PID 1's SIGTERM"
            );
        } else {
            // no user engine: nothing to stop before the rest
            self.stop_by_signal(first.into_iter().chain(foundation).collect())
                .await;
        }
    }

    /// One wave at shutdown: SIGTERM to every one at once through the
    /// engine (which then does not restart them), then wait for their
    /// processes to end (the user engine's ends once it has stopped the
    /// workloads) — not for the engine's per-container bookkeeping
    /// (runc delete, unmounts, state writes: ~1 s of CPU each under TCG,
    /// serialized on two vCPUs), which system-dockerd's own shutdown
    /// finishes or, at poweroff, needs not. A service without a known
    /// process, or still running after the stop timeout, is stopped the
    /// usual way.
    async fn stop_by_signal(&self, names: Vec<&String>) {
        let t = Instant::now();
        let mut waiting: Vec<(&String, i32)> = Vec::new();
        let mut rest: Vec<&String> = Vec::new();
        // all at once: each signal is an engine round trip and a `runc kill`
        let mut signals: FuturesUnordered<_> = names
            .into_iter()
            .filter_map(|n| self.container(n).ok().map(|c| (n, c)))
            .map(|(n, cname)| async move {
                self.mark_stopped(n);
                let pid = match self.engine.inspect(cname).await {
                    Ok(Some(i)) if !i.running => return (n, Some(0)),
                    Ok(Some(i)) if i.pid > 0 => i32::try_from(i.pid).unwrap_or(0),
                    _ => return (n, None),
                };
                match self.engine.signal(cname, "TERM").await {
                    Ok(()) => (n, Some(pid)),
                    Err(_) => (n, None),
                }
            })
            .collect();
        while let Some((n, pid)) = signals.next().await {
            match pid {
                Some(0) => info!(service = %n, ms = 0, by = "having ended already", "stopped"),
                Some(pid) => waiting.push((n, pid)),
                None => rest.push(n),
            }
        }
        while !waiting.is_empty() && t.elapsed() < self.stop_timeout {
            tokio::time::sleep(Duration::from_millis(50)).await;
            waiting.retain(|(n, pid)| {
                let alive = process_alive(*pid);
                if !alive {
                    info!(service = %n, ms = t.elapsed().as_millis(), by = "its process ending", "stopped");
                }
                alive
            });
        }
        rest.extend(waiting.into_iter().map(|(n, _)| n));
        let mut stops: FuturesUnordered<_> = rest
            .into_iter()
            .map(|n| async move { (n, self.stop(n).await) })
            .collect();
        while let Some((n, r)) = stops.next().await {
            match r {
                Ok(()) => info!(service = %n, ms = t.elapsed().as_millis(), "stopped"),
                Err(e) => warn!(service = %n, "stop failed: {}", super::chain(&e)),
            }
        }
    }

    /// One respawn pass: start every long-running service that the engine
    /// does not supervise, that died, and that the operator did not stop —
    /// each no sooner than its backoff allows. Returns the services started.
    pub async fn respawn_pass(&self, r: &mut Respawner) -> Vec<String> {
        let mut started = Vec::new();
        for (name, svc) in &self.services {
            if !is_long_running(svc)
                || engine_restarts(svc)
                || self.paths.service_stopped_marker(name).exists()
            {
                continue;
            }
            let Ok(Some(info)) = self.engine.inspect(&self.containers[name]).await else {
                continue;
            };
            let now = Instant::now();
            if info.running {
                if r.state
                    .get(name)
                    .is_some_and(|(_, at)| now.duration_since(*at) > Respawner::MAX * 2)
                {
                    r.state.remove(name);
                }
                continue;
            }
            let (attempts, last) = r
                .state
                .get(name)
                .copied()
                .unwrap_or((0, now - Respawner::MAX));
            if now.duration_since(last) < Respawner::delay(attempts.saturating_sub(1))
                && attempts > 0
            {
                continue;
            }
            warn!(service = %name, exit_code = info.exit_code, attempt = attempts + 1, "died: respawning");
            match self.engine.start(&info.name).await {
                Ok(()) => started.push(name.clone()),
                Err(e) => warn!(service = %name, "respawn failed: {}", super::chain(&e)),
            }
            r.state.insert(name.clone(), (attempts + 1, now));
        }
        started
    }

    /// The current container of every service (None when absent).
    pub async fn status(&self) -> BTreeMap<String, Option<ContainerInfo>> {
        let mut out = BTreeMap::new();
        for (name, cname) in &self.containers {
            out.insert(
                name.clone(),
                self.engine.inspect(cname).await.ok().flatten(),
            );
        }
        out
    }
}

/// True while `pid` runs (a zombie, ended but not yet reaped by its
/// parent, counts as ended).
fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S …`: the state follows the last `)`
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}
