//! The service reconciler: level-triggered passes over the store that keep
//! every service at its scale (via [`plan::scale`] and [`plan::scheduler`]),
//! carry out the lifecycle actions (activate, deactivate, remove, in-service
//! upgrade, finish, rollback) and remove stacks.
//!
//! Restart-safe: a pass reads only stored rows and commits its changes in
//! one transaction, so after a crash the next pass recomputes the same plan
//! and never creates a container twice. Containers carry the service
//! generation (`_gen`) they were made for; an upgrade bumps it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::services::spec_of;
use super::{render, App};
use crate::cluster::model::{self, format_id, now_ms, Kind, Resource};
use crate::cluster::plan::compose::fields::VolumeKind;
use crate::cluster::plan::compose::{HealthStrategy, ServiceSpec};
use crate::cluster::plan::health::{self, ContainerHealth, MemberHealth};
use crate::cluster::plan::lifecycle::ContainerState;
use crate::cluster::plan::scheduler::{self, HostPort, HostView, InstanceView};
use crate::cluster::plan::{scale, upgrade};
use crate::cluster::store::{Scope, StoreError};

/// Run passes forever: on every kick and at least every `tick`.
pub fn spawn(app: Arc<App>, tick: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = app.kick.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
            let changed = {
                let _g = app.write.lock().await;
                match pass(&app) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "reconcile pass");
                        false
                    }
                }
            };
            if changed {
                app.bump();
            }
        }
    });
}

fn gen_of(r: &Resource) -> u64 {
    r.data.get("_gen").and_then(Value::as_u64).unwrap_or(0)
}

fn cstate(c: &Resource) -> ContainerState {
    c.state.parse().unwrap_or(ContainerState::Error)
}

fn live(c: &Resource) -> bool {
    !c.is_removed() && c.str("desiredState") != Some("removed")
}

/// Everything one pass needs, read once.
struct World<'a> {
    store: &'a dyn crate::cluster::store::Store,
    hosts: Vec<Resource>,
    containers: Vec<Resource>,
    out: Vec<Resource>,
}

impl World<'_> {
    fn views(&self) -> (Vec<HostView>, Vec<InstanceView>) {
        let hosts = self
            .hosts
            .iter()
            .map(|h| HostView {
                id: h.api_id(),
                labels: h
                    .data
                    .get("labels")
                    .and_then(|l| serde_json::from_value(l.clone()).ok())
                    .unwrap_or_default(),
                memory: None,
                milli_cpu: None,
                active: h.state == "active" && h.str("agentState") == Some("active"),
            })
            .collect();
        let inst = self
            .containers
            .iter()
            .filter(|c| live(c))
            .map(|c| InstanceView {
                name: c.str("name").unwrap_or_default().to_string(),
                uuid: c.api_id(),
                host_id: format_id(Kind::Host, c.host),
                labels: c
                    .data
                    .get("labels")
                    .and_then(|l| serde_json::from_value(l.clone()).ok())
                    .unwrap_or_default(),
                ports: c
                    .data
                    .get("_ports")
                    .and_then(|l| serde_json::from_value::<Vec<HostPort>>(l.clone()).ok())
                    .unwrap_or_default(),
                memory_reservation: 0,
                milli_cpu_reservation: 0,
            })
            .collect();
        (hosts, inst)
    }

    /// Record a changed container (and keep the view current).
    fn put(&mut self, c: Resource) {
        if let Some(x) = self.containers.iter_mut().find(|x| x.id == c.id) {
            *x = c.clone();
        } else {
            self.containers.push(c.clone());
        }
        self.out
            .retain(|x| !(x.kind == Kind::Container && x.id == c.id));
        self.out.push(c);
    }
}

/// One pass over every project's services and stacks; true when it
/// changed desired state.
pub fn pass(app: &App) -> Result<bool, StoreError> {
    let services: Vec<Resource> = app
        .store
        .list(Kind::Service, Scope::All)?
        .into_iter()
        .filter(|s| !s.is_removed())
        .collect();
    let stacks: Vec<Resource> = app
        .store
        .list(Kind::Stack, Scope::All)?
        .into_iter()
        .filter(|s| !s.is_removed())
        .collect();
    if services.is_empty() && stacks.is_empty() {
        return Ok(false);
    }
    let mut w = World {
        store: app.store.as_ref(),
        hosts: app.store.list(Kind::Host, Scope::All)?,
        containers: app
            .store
            .list(Kind::Container, Scope::All)?
            .into_iter()
            .filter(|c| !c.is_removed())
            .collect(),
        out: Vec::new(),
    };
    for mut st in stacks.into_iter().filter(|s| s.state == "removing") {
        let mut left = 0;
        for s in services
            .iter()
            .filter(|s| s.str("stackId") == Some(&st.api_id()))
        {
            left += 1;
            if s.state != "removing" {
                let mut s = s.clone();
                s.state = "removing".into();
                w.out.push(s);
            }
        }
        if left == 0 {
            st.state = "removed".into();
            st.set("removed", render::rfc3339(now_ms()));
            w.out.push(st);
        }
    }
    for s in super::launch::sources_first(services) {
        if w.out
            .iter()
            .any(|x| x.kind == Kind::Service && x.id == s.id)
        {
            continue;
        }
        let mut s2 = s.clone();
        service(&mut w, &mut s2);
        if s2 != s {
            w.out.push(s2);
        }
    }
    if w.out.is_empty() {
        return Ok(false);
    }
    app.store.commit(&w.out)?;
    Ok(true)
}

fn members<'a>(w: &'a World<'_>, s: &Resource) -> Vec<&'a Resource> {
    let id = s.api_id();
    w.containers
        .iter()
        .filter(|c| live(c) && c.str("serviceId") == Some(&id))
        .collect()
}

fn set_desired(w: &mut World, c: &Resource, desired: &str) {
    let mut c = c.clone();
    let cur = cstate(&c);
    match desired {
        "removed" => c.state = "removing".into(),
        "stopped" if cur != ContainerState::Stopped => c.state = "stopping".into(),
        "running" if cur == ContainerState::Stopped => c.state = "starting".into(),
        _ => {}
    }
    c.set("desiredState", desired);
    w.put(c);
}

fn service(w: &mut World, s: &mut Resource) {
    let Some(spec) = spec_of(s, "_spec") else {
        return;
    };
    let gen = s
        .data
        .get("_generation")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let stack = s.str("_stack").unwrap_or_default().to_string();
    match s.state.as_str() {
        "removing" => {
            let all: Vec<Resource> = members(w, s).into_iter().cloned().collect();
            for c in &all {
                set_desired(w, c, "removed");
            }
            if all.is_empty() {
                s.state = "removed".into();
                s.set("removed", render::rfc3339(now_ms()));
            }
        }
        "deactivating" => {
            let all: Vec<Resource> = members(w, s).into_iter().cloned().collect();
            let mut busy = false;
            for c in &all {
                if c.str("desiredState") != Some("stopped") {
                    set_desired(w, c, "stopped");
                }
                busy |= cstate(c) != ContainerState::Stopped;
            }
            if !busy {
                s.state = "inactive".into();
            }
        }
        "activating" | "active" | "restarting" | "error" => {
            // Containers of other generations (after a finish) go.
            let old: Vec<Resource> = members(w, s)
                .into_iter()
                .filter(|c| gen_of(c) != gen)
                .cloned()
                .collect();
            for c in &old {
                set_desired(w, c, "removed");
            }
            let ok = keep_scale(w, s, &spec, &stack, gen);
            let hs: Vec<MemberHealth> = members(w, s)
                .iter()
                .map(|c| MemberHealth {
                    running: cstate(c) == ContainerState::Running,
                    health: c.str("healthState").and_then(|h| match h {
                        "healthy" => Some(ContainerHealth::Healthy),
                        "unhealthy" => Some(ContainerHealth::Unhealthy),
                        "reinitializing" => Some(ContainerHealth::Reinitializing),
                        "initializing" => Some(ContainerHealth::Initializing),
                        _ => None,
                    }),
                })
                .collect();
            let h = health::service_health(&hs, spec.scale, false).as_str();
            if s.str("healthState") != Some(h) {
                s.set("healthState", h);
            }
            let running = members(w, s)
                .iter()
                .filter(|c| cstate(c) == ContainerState::Running)
                .count();
            if ok && running >= spec.scale as usize && s.state != "active" {
                s.state = "active".into();
            }
        }
        "upgrading" => upgrade_pass(w, s, &spec, &stack, gen),
        "finishing-upgrade" => {
            let old: Vec<Resource> = members(w, s)
                .into_iter()
                .filter(|c| gen_of(c) != gen)
                .cloned()
                .collect();
            for c in &old {
                set_desired(w, c, "removed");
            }
            s.state = "active".into();
        }
        "rolling-back" => {
            let prev = s.data.get("_prevGeneration").and_then(Value::as_u64);
            if let (Some(prev), Some(old)) = (prev, spec_of(s, "_prevSpec")) {
                let all: Vec<Resource> = members(w, s).into_iter().cloned().collect();
                for c in &all {
                    if gen_of(c) == gen {
                        set_desired(w, c, "removed");
                    } else if gen_of(c) == prev && c.str("desiredState") != Some("running") {
                        set_desired(w, c, "running");
                    }
                }
                s.set("_generation", prev);
                s.set(
                    "launchConfig",
                    super::services::launch_config_json(&old.launch_config),
                );
                s.set("_spec", serde_json::to_value(&old).unwrap_or(Value::Null));
            }
            s.state = "active".into();
        }
        _ => {}
    }
}

/// Create, start and remove to keep `spec.scale` containers of generation
/// `gen`; false when a container could not be placed (the reason is on the
/// service's `transitioningMessage`).
fn keep_scale(w: &mut World, s: &mut Resource, spec: &ServiceSpec, stack: &str, gen: u64) -> bool {
    let cur: Vec<Resource> = members(w, s)
        .into_iter()
        .filter(|c| gen_of(c) == gen)
        .cloned()
        .collect();
    let ms: Vec<scale::Member> = cur
        .iter()
        .filter_map(|c| {
            let name = c.str("name")?;
            Some(scale::Member {
                index: scale::index_of(stack, &spec.name, name)?,
                name: name.to_string(),
                state: cstate(c),
                recreate: replace(w, c, spec),
            })
        })
        .collect();
    let start_once = spec
        .launch_config
        .labels
        .get("io.rancher.container.start_once")
        .is_some_and(|v| v == "true");
    let plan = scale::plan(spec.scale, &ms, start_once);
    let by_name = |n: &str| cur.iter().find(|c| c.str("name") == Some(n)).cloned();
    for n in &plan.remove {
        if let Some(c) = by_name(n) {
            set_desired(w, &c, "removed");
        }
    }
    for n in &plan.start {
        if let Some(c) = by_name(n) {
            set_desired(w, &c, "running");
        }
    }
    for idx in plan.create {
        if let Err(why) = create(w, s, spec, stack, gen, idx, None) {
            s.set("transitioning", super::launch::transitioning(&why));
            s.set("transitioningMessage", why);
            return false;
        }
    }
    if s.data.contains_key("transitioningMessage") {
        s.data.remove("transitioning");
        s.data.remove("transitioningMessage");
    }
    true
}

/// True when a member must be replaced: unhealthy under a recreating
/// strategy, or health-checked on a host whose agent is gone.
fn replace(w: &World<'_>, c: &Resource, spec: &ServiceSpec) -> bool {
    let Some(hc) = &spec.launch_config.health_check else {
        return false;
    };
    let host_gone = w.hosts.iter().find(|h| h.id == c.host).map_or(true, |h| {
        h.is_removed() || h.str("agentState") == Some("disconnected")
    });
    host_gone || (c.str("healthState") == Some("unhealthy") && hc.strategy != HealthStrategy::None)
}

/// A new container for index `idx`, placed by the scheduler (on `host`
/// when given: an upgrade keeps a container's volumes on its host).
fn create(
    w: &mut World,
    s: &Resource,
    spec: &ServiceSpec,
    stack: &str,
    gen: u64,
    idx: u32,
    host: Option<String>,
) -> Result<(), String> {
    let mut req = spec.schedule_request(stack, idx);
    req.requested_host = host;
    super::launch::prepare(w.store, &w.containers, s, spec, stack, idx, &mut req)?;
    let (hosts, mut inst) = w.views();
    // Containers of this service's other generations are on their way out
    // (an upgrade replaces them): they do not repel their replacements.
    let sid = s.api_id();
    let others: Vec<String> = w
        .containers
        .iter()
        .filter(|c| c.str("serviceId") == Some(&sid) && gen_of(c) != gen)
        .map(|c| c.api_id())
        .collect();
    inst.retain(|i| !others.contains(&i.uuid));
    let placed = if spec.global {
        return Err("global services are not supported yet".into());
    } else {
        scheduler::place(&hosts, &inst, &req).map_err(|e| e.to_string())?
    };
    let hid = w
        .hosts
        .iter()
        .find(|h| h.api_id() == placed.host_id)
        .map(|h| h.id)
        .ok_or("placed on an unknown host")?;
    let lc = &spec.launch_config;
    let name = scale::container_name(stack, &spec.name, idx);
    let id = w
        .store
        .allocate(Kind::Container)
        .map_err(|e| e.to_string())?;
    let mut c = Resource::new(Kind::Container, id, s.project, "requested");
    c.host = hid;
    c.set("name", name.clone());
    c.set("hostId", placed.host_id.clone());
    c.set("desiredState", "running");
    c.set("startOnCreate", true);
    let docker = if gen == 0 {
        model::docker_name(&name)
    } else {
        format!("{}-g{gen}", model::docker_name(&name))
    };
    c.set("dockerName", docker);
    c.set("externalId", Value::Null);
    c.set("accountId", format_id(Kind::Project, s.project));
    c.set("imageUuid", format!("docker:{}", lc.image));
    c.set("command", json!(lc.command));
    c.set("environment", json!(lc.environment));
    c.set("labels", json!(req.labels));
    let vols: Vec<String> = lc
        .data_volumes
        .iter()
        .map(|v| {
            let src = match (v.kind, &v.source) {
                (VolumeKind::Anonymous, _) | (_, None) => {
                    upgrade::anonymous_volume_name(stack, &spec.name, idx, &v.target)
                }
                (_, Some(src)) => src.clone(),
            };
            match &v.mode {
                Some(m) => format!("{src}:{}:{m}", v.target),
                None => format!("{src}:{}", v.target),
            }
        })
        .collect();
    c.set("dataVolumes", json!(vols));
    if let Some(hc) = &lc.health_check {
        c.set("healthCheck", json!(hc));
        c.set("healthState", "initializing");
    }
    c.set("_ports", json!(placed.ports));
    let on = w.hosts.iter().find(|h| h.id == hid);
    super::launch::apply(
        w.store,
        &w.containers,
        &mut c,
        s,
        spec,
        stack,
        idx,
        &placed,
        on,
    )?;
    c.set("serviceId", s.api_id());
    c.set("stackId", s.str("stackId").unwrap_or_default());
    c.set("serviceIndex", idx);
    c.set("_gen", gen);
    w.put(c);
    Ok(())
}

/// One step of an in-service upgrade: wait for the current batch, then
/// replace the next `batchSize` old containers (start-first or stop-first)
/// on their own hosts; `upgraded` when no old container runs.
fn upgrade_pass(w: &mut World, s: &mut Resource, spec: &ServiceSpec, stack: &str, gen: u64) {
    let st = &spec.upgrade_strategy;
    let all: Vec<Resource> = members(w, s).into_iter().cloned().collect();
    let (new, old): (Vec<&Resource>, Vec<&Resource>) = all.iter().partition(|c| gen_of(c) == gen);
    // Start-first: the old container of a running replacement stops now.
    for o in &old {
        let idx = o.data.get("serviceIndex").and_then(Value::as_u64);
        let replaced = new.iter().any(|n| {
            n.data.get("serviceIndex").and_then(Value::as_u64) == idx
                && cstate(n) == ContainerState::Running
        });
        if replaced && o.str("desiredState") == Some("running") {
            set_desired(w, o, "stopped");
        }
    }
    if new.iter().any(|c| cstate(c) != ContainerState::Running) {
        return; // batch in progress
    }
    let last = s
        .data
        .get("_lastBatch")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if now_ms().saturating_sub(last) < i64::try_from(st.interval_millis).unwrap_or(0) {
        return;
    }
    let mut todo: Vec<&Resource> = old
        .iter()
        .copied()
        .filter(|o| {
            let idx = o.data.get("serviceIndex").and_then(Value::as_u64);
            !new.iter()
                .any(|n| n.data.get("serviceIndex").and_then(Value::as_u64) == idx)
        })
        .collect();
    todo.sort_by_key(|o| o.data.get("serviceIndex").and_then(Value::as_u64));
    if todo.is_empty() {
        if old.iter().all(|o| cstate(o) == ContainerState::Stopped) {
            s.state = "upgraded".into();
        }
        return;
    }
    for o in todo.into_iter().take(st.batch_size.max(1) as usize) {
        let idx = o
            .data
            .get("serviceIndex")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1);
        if !st.start_first {
            set_desired(w, o, "stopped");
        }
        let host = Some(format_id(Kind::Host, o.host));
        if let Err(why) = create(w, s, spec, stack, gen, idx, host) {
            s.set("transitioning", "error");
            s.set("transitioningMessage", why);
            return;
        }
    }
    s.set("_lastBatch", now_ms());
}
