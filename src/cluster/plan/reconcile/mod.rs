//! The service reconciler, pure: [`reconcile`] takes a [`Snapshot`] of the
//! store and the time, and returns the [`Changes`] — rows to write and the
//! hosts whose agents must look again. No store, no clock, no HTTP: the
//! driver ([`crate::cluster::server::driver`]) reads the snapshot, calls
//! this and commits once.
//!
//! A pass keeps every service at its scale (via [`scale`] and
//! [`scheduler`]; one per eligible host for global services), carries out
//! the lifecycle actions whose rules live in [`super::lifecycle`]
//! (activate, deactivate, remove, in-service and to-service upgrades,
//! cancel, finish, rollback, rolling restart), replaces unhealthy
//! containers as the health strategy says, keeps service and stack
//! `healthState`, and removes stacks. Service kinds other than plain
//! containers have their own modules ([`kinds`]). In-service upgrades,
//! rollback and finish follow [`upgrade::next_step`],
//! [`upgrade::rollback`] and [`upgrade::finish`]; new containers get their
//! host ports from [`super::allocate`] through the scheduler's index
//! ([`scheduler::index`]).
//!
//! Cost: a pass reads the snapshot through an indexed view (containers by
//! service, ids, docker names per host) and borrows its rows until it
//! changes them; a container's state, generation and health are decoded
//! once per row. `cargo bench --bench plan` prints the figures.
//!
//! Restart-safe: a pass reads only stored rows and its changes are
//! committed in one transaction, so after a crash the next pass recomputes
//! the same plan and never creates a container twice. Containers carry the
//! service generation (`_gen`) they were made for; an upgrade bumps it. A
//! rolling restart marks each container it restarted with the restart's id
//! (`_restartId`); a to-service upgrade's progress is the two services'
//! stored scales. New containers are numbered from the snapshot's
//! `next_container_id`.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use super::launch::{self, Around};
use super::rows::spec_of;
use crate::cluster::model::{self, format_id, rfc3339, Kind, Resource};
use crate::cluster::plan::compose::fields::VolumeKind;
use crate::cluster::plan::compose::ServiceSpec;
use crate::cluster::plan::health::{self, ContainerHealth, MemberHealth};
use crate::cluster::plan::lifecycle::{ContainerState, State};
use crate::cluster::plan::scheduler::index::Index;
use crate::cluster::plan::scheduler::{self, HostPort, HostView, InstanceView};
use crate::cluster::plan::{allocate, scale, upgrade};

pub mod kinds;
mod snapshot;
#[cfg(test)]
mod tests;

pub use snapshot::Snapshot;
use snapshot::{cstate, decode, parse_health, Meta, UNPLACED};

/// How a container's name reads as `<stack>-<service>-<n>`.
#[derive(Clone, Copy, Debug)]
enum Split<'a> {
    /// From the snapshot's facts: the prefix (the snapshot's one shared
    /// copy of it) and `n`.
    Shared(&'a str, u32),
    /// The name has no `-<n>` (or no name): a member of no service by name.
    Unnamed,
    /// A row this pass changed or made: read its name.
    Fresh,
}

/// What a pass decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// Rows to write (each at most once, in its final form).
    pub rows: Vec<Resource>,
    /// Hosts whose agents have new desired state.
    pub hosts: BTreeSet<u64>,
}

impl Changes {
    /// True when the pass changed nothing.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// One pass over every project's services and stacks at time `now` (ms
/// since the epoch).
pub fn reconcile(snap: &Snapshot, now: i64) -> Changes {
    let mut w = World::new(snap, now);
    pass(&mut w, &snap.stacks);
    let rows = w.take_out();
    let mut hosts: BTreeSet<u64> = rows
        .iter()
        .filter(|r| r.kind == Kind::Container && r.host != 0)
        .map(|r| r.host)
        .collect();
    // A container on the managed network that came, moved or goes changes
    // every host's overlay entries (its peers): wake the whole project.
    let projects: BTreeSet<u64> = rows
        .iter()
        .filter(|r| r.kind == Kind::Container && r.str(PRIMARY_IP).is_some())
        .map(|r| r.project)
        .collect();
    hosts.extend(
        snap.hosts
            .iter()
            .filter(|h| !h.is_removed() && projects.contains(&h.project))
            .map(|h| h.id),
    );
    Changes { rows, hosts }
}

fn gen_of(r: &Resource) -> u64 {
    r.data.get("_gen").and_then(Value::as_u64).unwrap_or(0)
}

fn live(c: &Resource) -> bool {
    !c.is_removed() && c.str("desiredState") != Some("removed")
}

/// A row of the view: the snapshot's, borrowed, until the pass changes it.
type Row<'a> = Cow<'a, Resource>;

fn meta_of(c: &Resource) -> Meta {
    decode(c).0
}

/// A hasher for row ids (small sequential integers: one multiply) and
/// short keys (FNV-1a); the pass's own maps, never fed by a client.
#[derive(Clone, Copy, Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;
type IdMap<V> = FastMap<u64, V>;

/// One pass's view: the snapshot as changed so far, and what changed,
/// indexed so that a pass over 100,000 containers stays linear.
struct World<'a> {
    now: i64,
    next_id: u64,
    snap: &'a Snapshot,
    projects: &'a [Resource],
    hosts: &'a [Resource],
    /// Host row id → position in `hosts`.
    host_at: IdMap<usize>,
    /// Position for position in `hosts`: removed, or its agent
    /// `disconnected` (see [`host_gone`]).
    host_lost: Vec<bool>,
    /// The hosts as the scheduler sees them, built on first use.
    host_views: Option<Vec<HostView>>,
    /// Every live service as last changed in this pass.
    services: Vec<Row<'a>>,
    /// Service API id → position in `services`.
    service_at: HashMap<String, usize>,
    containers: Vec<Row<'a>>,
    /// Decoded fields of `containers`, position for position.
    meta: Vec<Meta>,
    /// Container id → position in `containers`.
    container_at: IdMap<usize>,
    /// Service API id → positions of its containers.
    by_service: IdMap<Vec<usize>>,
    /// Container names, position for position.
    names: Vec<Option<Cow<'a, str>>>,
    /// How they split, position for position.
    splits: Vec<Split<'a>>,
    /// (host, docker name) held by containers not yet removed, with how many.
    /// Built at the first container creation of the pass (a pass that
    /// creates nothing does not need it).
    docker_names: Option<FastMap<(u64, Cow<'a, str>), usize>>,
    /// Docker names, position for position.
    dockers: Vec<Option<Cow<'a, str>>>,
    /// Placement index, built at the first placement of the pass.
    sched: Option<Index>,
    /// Managed-network addresses held per project (live containers and
    /// services' retained ones), built at the first allocation.
    ips: Option<HashMap<u64, BTreeSet<u32>>>,
    /// Per project, where the next lowest-free search starts (every
    /// address below was taken when this pass last handed one out).
    ip_from: HashMap<u64, u32>,
    /// Services whose retained addresses (`_retainedIps`) changed.
    retained: HashMap<String, serde_json::Map<String, Value>>,
    /// Changed rows in the order first changed; a container's is its row
    /// in `containers` as it stands (one copy, taken at the end).
    out: Vec<Out>,
    /// (kind, id) → position in `out`.
    out_at: HashMap<(Kind, u64), usize>,
}

/// A changed row: its final form, or where the view holds it.
enum Out {
    Row(Resource),
    /// `containers[i]`.
    Container(usize),
}

fn host_view(h: &Resource) -> HostView {
    HostView {
        id: h.api_id(),
        labels: h
            .data
            .get("labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default(),
        memory: None,
        milli_cpu: None,
        active: h.state == "active" && h.str("agentState") == Some("active"),
    }
}

fn instance_view(c: &Resource) -> InstanceView {
    InstanceView {
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
    }
}

impl<'a> World<'a> {
    fn new(snap: &'a Snapshot, now: i64) -> World<'a> {
        let mut w = World {
            now,
            next_id: snap.next_container_id.max(1),
            snap,
            projects: &snap.projects,
            hosts: &snap.hosts,
            host_at: snap
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (h.id, i))
                .collect(),
            host_lost: snap
                .hosts
                .iter()
                .map(|h| h.is_removed() || h.str("agentState") == Some("disconnected"))
                .collect(),
            host_views: None,
            services: snap.services.iter().map(Cow::Borrowed).collect(),
            service_at: snap
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| (s.api_id(), i))
                .collect(),
            containers: Vec::with_capacity(snap.containers().len()),
            meta: Vec::with_capacity(snap.containers().len()),
            container_at: IdMap::with_capacity_and_hasher(
                snap.containers().len(),
                Default::default(),
            ),
            by_service: IdMap::default(),
            names: Vec::with_capacity(snap.containers().len()),
            splits: Vec::with_capacity(snap.containers().len()),
            docker_names: None,
            dockers: Vec::with_capacity(snap.containers().len()),
            sched: None,
            ips: None,
            ip_from: HashMap::new(),
            retained: HashMap::new(),
            out: Vec::new(),
            out_at: HashMap::new(),
        };
        w.by_service.reserve(snap.services.len());
        for (c, f) in snap.containers().iter().zip(snap.facts()) {
            w.index(
                Cow::Borrowed(c),
                f.meta,
                f.docker.as_deref().map(Cow::Borrowed),
                f.name.as_deref().map(Cow::Borrowed),
                f.split
                    .as_ref()
                    .map_or(Split::Unnamed, |(p, n)| Split::Shared(p, *n)),
                None,
            );
        }
        w
    }

    /// Add a container row to the view and its indexes.
    fn insert(&mut self, c: Row<'a>) {
        self.insert_with(c, None);
    }

    /// [`World::insert`], with the row's scheduler view when the caller
    /// has it already (a container just placed).
    fn insert_with(&mut self, c: Row<'a>, view: Option<InstanceView>) {
        let (meta, docker, name): (Meta, Option<Cow<'a, str>>, Option<Cow<'a, str>>) = match &c {
            Cow::Borrowed(r) => {
                let (m, d, n) = decode(r);
                (m, d.map(Cow::Borrowed), n.map(Cow::Borrowed))
            }
            Cow::Owned(r) => {
                let (m, d, n) = decode(r);
                let own = |x: &str| Cow::Owned(x.to_string());
                (m, d.map(own), n.map(own))
            }
        };
        self.index(c, meta, docker, name, Split::Fresh, view);
    }

    /// Add a container row with its decoded facts to the view's indexes.
    fn index(
        &mut self,
        c: Row<'a>,
        meta: Meta,
        docker: Option<Cow<'a, str>>,
        name: Option<Cow<'a, str>>,
        split: Split<'a>,
        view: Option<InstanceView>,
    ) {
        let at = self.containers.len();
        self.container_at.insert(c.id, at);
        if meta.service != 0 {
            self.by_service.entry(meta.service).or_default().push(at);
        }
        if let (Some(names), Some(n)) = (&mut self.docker_names, &docker) {
            if !c.is_removed() {
                *names.entry((c.host, n.clone())).or_default() += 1;
            }
        }
        self.dockers.push(docker);
        if let Some(ix) = &mut self.sched {
            if meta.live && c.host != 0 {
                ix.add(view.unwrap_or_else(|| instance_view(&c)));
            }
        }
        self.meta.push(meta);
        self.names.push(name);
        self.splits.push(split);
        self.containers.push(c);
    }

    /// The decoded fields of a container row and its name.
    fn facts<'s>(&'s self, c: &'s Resource) -> (Meta, Option<&'s str>) {
        match self.container_at.get(&c.id) {
            Some(&i) => (self.meta[i], self.names[i].as_deref()),
            None => (meta_of(c), c.str("name")),
        }
    }

    /// The decoded fields of a container row.
    fn m(&self, c: &Resource) -> Meta {
        match self.container_at.get(&c.id) {
            Some(&i) => self.meta[i],
            None => meta_of(c),
        }
    }

    /// The `n` of the container at position `i` when it is named
    /// `<stack>-<service>-<n>` (as [`scale::index_of`] reads it); `prefix` is
    /// the snapshot's shared copy of `<stack>-<service>` ([`World::prefix`]).
    fn index_at(&self, i: usize, stack: &str, service: &str, prefix: Option<&str>) -> Option<u32> {
        match self.splits[i] {
            Split::Shared(p, n) => prefix.filter(|q| std::ptr::eq(*q, p)).map(|_| n),
            Split::Unnamed => None,
            Split::Fresh => scale::index_of(stack, service, self.names[i].as_deref()?),
        }
    }

    /// The snapshot's shared copy of the name prefix `<stack>-<service>`
    /// (`None`: no container of the snapshot is named from it).
    fn prefix(&self, stack: &str, service: &str) -> Option<&'a str> {
        let snap: &'a Snapshot = self.snap;
        snap.prefix(&format!("{stack}-{service}")).map(|p| &**p)
    }

    /// The hosts as the scheduler sees them, built on first use.
    fn host_views(&mut self) -> &[HostView] {
        let hosts = self.hosts;
        self.host_views
            .get_or_insert_with(|| hosts.iter().map(host_view).collect())
    }

    /// A fresh container id.
    fn allocate(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// What container creation reads about service `s`'s surroundings.
    fn around(&self, s: &Resource) -> Around<'_> {
        Around {
            project: self
                .projects
                .iter()
                .find(|p| p.id == s.project && !p.is_removed()),
            services: &self.services,
            containers: &self.containers,
        }
    }

    /// The positions of the live containers of service number `sid`.
    fn member_ix(&self, sid: u64) -> impl Iterator<Item = usize> + '_ {
        self.by_service
            .get(&sid)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| self.meta[i].live)
    }

    /// The placement index, built on first use.
    fn sched(&mut self) -> &mut Index {
        if self.sched.is_none() {
            let inst = self
                .containers
                .iter()
                .filter(|c| live(c) && c.host != 0)
                .map(|c| instance_view(c))
                .collect();
            let hosts = self.host_views().to_vec();
            self.sched = Some(Index::new(hosts, inst));
        }
        self.sched.as_mut().expect("built above")
    }

    /// The managed-network addresses taken in `project`, built on first
    /// use: those of live containers and the ones services retain.
    fn ips(&mut self, project: u64) -> &mut BTreeSet<u32> {
        let all = self.ips.get_or_insert_with(|| {
            let mut m: HashMap<u64, BTreeSet<u32>> = HashMap::new();
            for c in self.containers.iter().filter(|c| !c.is_removed()) {
                if let Some(ip) = c.str(PRIMARY_IP).and_then(parse_ip) {
                    m.entry(c.project).or_default().insert(ip);
                }
            }
            for s in &self.services {
                for ip in retained_of(s).values().filter_map(|v| v.as_str()) {
                    if let Some(ip) = parse_ip(ip) {
                        m.entry(s.project).or_default().insert(ip);
                    }
                }
            }
            m
        });
        all.entry(project).or_default()
    }

    /// True when a container not yet removed holds this docker name on
    /// this host.
    fn docker_name_taken(&mut self, host: u64, name: &str) -> bool {
        let names = self.docker_names.get_or_insert_with(|| {
            let mut names = FastMap::default();
            for (c, d) in self.containers.iter().zip(&self.dockers) {
                if let (Some(d), false) = (d, c.is_removed()) {
                    *names.entry((c.host, d.clone())).or_default() += 1;
                }
            }
            names
        });
        names
            .get(&(host, Cow::Borrowed(name)))
            .is_some_and(|n| *n > 0)
    }

    fn record(&mut self, r: Resource) {
        self.record_out((r.kind, r.id), Out::Row(r));
    }

    /// Record the container row at position `i` of the view as changed.
    fn record_container(&mut self, i: usize) {
        let key = (Kind::Container, self.containers[i].id);
        self.record_out(key, Out::Container(i));
    }

    fn record_out(&mut self, key: (Kind, u64), o: Out) {
        match self.out_at.get(&key) {
            Some(&i) => self.out[i] = o,
            None => {
                self.out_at.insert(key, self.out.len());
                self.out.push(o);
            }
        }
    }

    /// A changed row recorded already (a stack's, a service's).
    fn recorded(&self, kind: Kind, id: u64) -> Option<&Resource> {
        match &self.out[*self.out_at.get(&(kind, id))?] {
            Out::Row(r) => Some(r),
            Out::Container(i) => Some(&self.containers[*i]),
        }
    }

    /// The changed rows, in the order first changed (the view's
    /// containers are taken: the pass is over).
    fn take_out(&mut self) -> Vec<Resource> {
        let mut cs: Vec<Option<Row<'a>>> = std::mem::take(&mut self.containers)
            .into_iter()
            .map(Some)
            .collect();
        std::mem::take(&mut self.out)
            .into_iter()
            .filter_map(|o| match o {
                Out::Row(r) => Some(r),
                Out::Container(i) => cs[i].take().map(Cow::into_owned),
            })
            .collect()
    }

    /// A service as last changed in this pass.
    fn service(&self, api_id: &str) -> Option<Resource> {
        self.service_at
            .get(api_id)
            .map(|&i| self.services[i].clone().into_owned())
    }

    /// Record a changed service (and keep the view current).
    fn put_service(&mut self, s: Resource) {
        if let Some(&i) = self.service_at.get(&s.api_id()) {
            self.services[i] = Cow::Owned(s.clone());
        }
        self.record(s);
    }

    /// Record a changed container (and keep the view and indexes current).
    fn put(&mut self, c: Resource) {
        match self.container_at.get(&c.id).copied() {
            Some(i) => {
                self.meta[i] = meta_of(&c);
                self.names[i] = c.str("name").map(|n| Cow::Owned(n.to_string()));
                self.splits[i] = Split::Fresh;
                self.dockers[i] = c.str("dockerName").map(|n| Cow::Owned(n.to_string()));
                let old = &self.containers[i];
                if let Some(names) = &mut self.docker_names {
                    if let (Some(n), false) = (old.str("dockerName"), old.is_removed()) {
                        let key = (old.host, Cow::Owned(n.to_string()));
                        if let Some(k) = names.get_mut(&key) {
                            *k = k.saturating_sub(1);
                        }
                    }
                    if let (Some(n), false) = (c.str("dockerName"), c.is_removed()) {
                        *names
                            .entry((c.host, Cow::Owned(n.to_string())))
                            .or_default() += 1;
                    }
                }
                if let Some(ix) = &mut self.sched {
                    let (was, is) = (live(old) && old.host != 0, live(&c) && c.host != 0);
                    if was {
                        ix.remove(&old.api_id(), &format_id(Kind::Host, old.host));
                    }
                    if is {
                        ix.add(instance_view(&c));
                    }
                }
                self.containers[i] = Cow::Owned(c);
                self.record_container(i);
            }
            None => {
                self.insert(Cow::Owned(c));
                self.record_container(self.containers.len() - 1);
            }
        }
    }
}

/// Stacks being removed go once their services have; then every service,
/// sources of volumes/network first.
fn pass(w: &mut World, stacks: &[Resource]) {
    for st in stacks
        .iter()
        .filter(|s| state_of(s) == Some(State::Removing))
    {
        let mut st = st.clone();
        let sid = st.api_id();
        let of_stack: Vec<Resource> = w
            .services
            .iter()
            .filter(|s| s.str("stackId") == Some(&sid))
            .map(|s| s.clone().into_owned())
            .collect();
        for mut s in of_stack.iter().cloned() {
            if state_of(&s) != Some(State::Removing) {
                set_state(&mut s, State::Removing);
                w.put_service(s);
            }
        }
        if of_stack.is_empty() {
            set_state(&mut st, State::Removed);
            st.set("removed", rfc3339(w.now));
            w.record(st);
        }
    }
    let ids: Vec<String> = launch::sources_order(&w.services)
        .into_iter()
        .map(|i| w.services[i].api_id())
        .collect();
    for id in ids {
        // The latest version: another service's pass (a to-service
        // upgrade) may have changed it already.
        let Some(&i) = w.service_at.get(&id) else {
            continue;
        };
        // The row as it stands (borrowed from the snapshot unless changed
        // already: no copy), and one working copy.
        let before: Row = w.services[i].clone();
        let mut s2 = before.clone().into_owned();
        service(w, &mut s2);
        if let Some(m) = w.retained.remove(&id) {
            s2.set(RETAINED_IPS, Value::Object(m));
        }
        if s2 != *before {
            w.put_service(s2);
        }
    }
    // Addresses retained for services changed by another's pass.
    for (id, m) in std::mem::take(&mut w.retained) {
        if let Some(mut s) = w.service(&id) {
            s.set(RETAINED_IPS, Value::Object(m));
            w.put_service(s);
        }
    }
    stacks_health(w, stacks);
}

/// Every container row of a service in the view (removing ones too).
fn owned<'b, 'a>(w: &'b World<'a>, sid: u64) -> impl Iterator<Item = &'b Row<'a>> {
    w.by_service
        .get(&sid)
        .into_iter()
        .flatten()
        .map(|&i| &w.containers[i])
}

/// The live containers of a service.
fn members<'b, 'a>(w: &'b World<'a>, s: &Resource) -> Vec<&'b Row<'a>> {
    w.by_service
        .get(&s.id)
        .into_iter()
        .flatten()
        .filter(|&&i| w.meta[i].live)
        .map(|&i| &w.containers[i])
        .collect()
}

// A container the scheduler could not place ([`UNPLACED`]) is an `error`
// row with no host that says why (`transitioningMessage`), kept — not
// re-created on every pass — until its index fits somewhere or is not
// wanted any more.

fn unplaced(c: &Resource) -> bool {
    c.host == 0 && c.data.get(UNPLACED) == Some(&Value::Bool(true))
}

/// An unplaced row goes straight to `removed`: no agent holds it.
fn drop_unplaced(w: &mut World, c: &Resource) {
    let mut c = c.clone();
    c.state = ContainerState::Removed.as_str().into();
    c.set("desiredState", "removed");
    c.set("removed", rfc3339(w.now));
    w.put(c);
}

/// Record (or update) the unplaced row of index `idx` with the reason.
#[allow(clippy::too_many_arguments)]
fn record_unplaced(
    w: &mut World,
    s: &Resource,
    spec: &ServiceSpec,
    stack: &str,
    gen: u64,
    idx: u32,
    row: Option<&Resource>,
    why: &str,
) {
    if let Some(r) = row {
        if r.str("transitioningMessage") != Some(why) {
            let mut r = r.clone();
            r.set("transitioningMessage", why);
            w.put(r);
        }
        return;
    }
    let id = w.allocate();
    let name = scale::container_name(stack, &spec.name, idx);
    let mut c = Resource::new(Kind::Container, id, s.project, "error");
    c.set("name", name);
    c.set("hostId", Value::Null);
    c.set("desiredState", "running");
    c.set("accountId", format_id(Kind::Project, s.project));
    c.set("imageUuid", format!("docker:{}", spec.launch_config.image));
    c.set("serviceId", s.api_id());
    c.set("stackId", s.str("stackId").unwrap_or_default());
    c.set("serviceIndex", idx);
    c.set("_gen", gen);
    c.set("transitioning", "error");
    c.set("transitioningMessage", why);
    c.set(UNPLACED, true);
    w.put(c);
}

fn set_desired(w: &mut World, c: &Resource, desired: &str) {
    if unplaced(c) && desired != "running" {
        drop_unplaced(w, c);
        return;
    }
    let mut c = c.clone();
    let cur = cstate(&c);
    match desired {
        "removed" => c.state = ContainerState::Removing.as_str().into(),
        "stopped" if cur != ContainerState::Stopped => {
            c.state = ContainerState::Stopping.as_str().into();
        }
        "running" if cur == ContainerState::Stopped => {
            c.state = ContainerState::Starting.as_str().into();
        }
        _ => {}
    }
    c.set("desiredState", desired);
    w.put(c);
}

fn service(w: &mut World, s: &mut Resource) {
    let Some(spec) = spec_of(s, "_spec") else {
        return;
    };
    if !kinds::has_containers(spec.kind) {
        return kinds::without_containers(w, s, &spec);
    }
    let gen = s
        .data
        .get("_generation")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let stack = s.str("_stack").unwrap_or_default().to_string();
    // A state this reconciler does not know is left alone.
    let Some(state) = state_of(s) else {
        return;
    };
    match state {
        State::Removing => {
            let all: Vec<Row> = members(w, s).into_iter().cloned().collect();
            for c in &all {
                set_desired(w, c, "removed");
            }
            if all.is_empty() {
                set_state(s, State::Removed);
                s.set("removed", rfc3339(w.now));
            }
        }
        State::Deactivating => {
            let all: Vec<Row> = members(w, s).into_iter().cloned().collect();
            let mut busy = false;
            for c in &all {
                if c.str("desiredState") != Some("stopped") {
                    set_desired(w, c, "stopped");
                }
                busy |= cstate(c) != ContainerState::Stopped;
            }
            if !busy {
                set_state(s, State::Inactive);
            }
        }
        State::Activating | State::Active | State::Restarting | State::Error => {
            // Containers of other generations (after a finish) go.
            let old: Vec<Row> = w
                .member_ix(s.id)
                .filter(|&i| w.meta[i].gen != gen)
                .map(|i| w.containers[i].clone())
                .collect();
            for c in &old {
                set_desired(w, c, "removed");
            }
            let wanted = keep_scale(w, s, &spec, &stack, gen);
            let scale = wanted.map_or(spec.scale, |n| u32::try_from(n).unwrap_or(u32::MAX));
            let hs: Vec<MemberHealth> = w
                .member_ix(s.id)
                .map(|i| {
                    let m = w.meta[i];
                    MemberHealth {
                        running: m.state == ContainerState::Running,
                        health: m.health,
                    }
                })
                .collect();
            let h = health::service_health(&hs, scale, start_once(&spec)).as_str();
            if s.str("healthState") != Some(h) {
                s.set("healthState", h);
            }
            let running = hs.iter().filter(|m| m.running).count();
            if state == State::Restarting {
                restart_pass(w, s, gen);
            } else if wanted.is_some_and(|n| running >= n) && state != State::Active {
                set_state(s, State::Active);
            }
        }
        State::Upgrading => match to_service_of(s) {
            Some(ts) => to_service_pass(w, s, &spec, &stack, gen, &ts),
            None => upgrade_pass(w, s, &spec, &stack, gen),
        },
        State::CancelingUpgrade => {
            // No new batch: a start-first replacement already running
            // retires its old container, then the upgrade rests.
            if to_service_of(s).is_none() {
                retire_replaced(w, s, gen);
            }
            set_state(s, State::CanceledUpgrade);
        }
        State::FinishingUpgrade => {
            let old: Vec<Row> = members(w, s)
                .into_iter()
                .filter(|c| gen_of(c) != gen)
                .cloned()
                .collect();
            let units: Vec<upgrade::Unit> = old.iter().map(|c| unit(c)).collect();
            for id in upgrade::finish(&units) {
                if let Some(c) = old.iter().find(|c| c.api_id() == id) {
                    set_desired(w, c, "removed");
                }
            }
            s.data.remove("_toService");
            set_state(s, State::Active);
        }
        State::RollingBack => {
            if let Some(ts) = to_service_of(s) {
                // Scales go back to where they were when the upgrade began.
                set_scale(s, ts.from_scale);
                if let Some(mut b) = w.service(&ts.id) {
                    set_scale(&mut b, ts.target_from_scale);
                    w.put_service(b);
                }
                s.data.remove("_toService");
                set_state(s, State::Active);
                return;
            }
            let prev = s.data.get("_prevGeneration").and_then(Value::as_u64);
            if let (Some(prev), Some(old)) = (prev, spec_of(s, "_prevSpec")) {
                let all: Vec<Row> = members(w, s).into_iter().cloned().collect();
                let units = |g: u64| -> Vec<upgrade::Unit> {
                    all.iter()
                        .filter(|c| gen_of(c) == g)
                        .map(|c| unit(c))
                        .collect()
                };
                let plan = upgrade::rollback(&units(prev), &units(gen));
                for (ids, desired) in [(&plan.remove_new, "removed"), (&plan.start_old, "running")]
                {
                    for id in ids {
                        if let Some(c) = all.iter().find(|c| c.api_id() == *id) {
                            set_desired(w, c, desired);
                        }
                    }
                }
                s.set("_generation", prev);
                s.set(
                    "launchConfig",
                    super::rows::launch_config_json(&old.launch_config),
                );
                s.set("_spec", serde_json::to_value(&old).unwrap_or(Value::Null));
            }
            set_state(s, State::Active);
        }
        State::Requested
        | State::Registering
        | State::Inactive
        | State::Upgraded
        | State::CanceledUpgrade
        | State::Erroring
        | State::Removed => {}
    }
}

/// A service's or stack's state, typed; `None` for a state no rule knows.
fn state_of(r: &Resource) -> Option<State> {
    r.state.parse().ok()
}

fn set_state(r: &mut Resource, st: State) {
    r.state = st.as_str().into();
}

fn health_of(c: &Resource) -> Option<ContainerHealth> {
    c.str("healthState").and_then(parse_health)
}

/// Running and, when health-checked, healthy.
fn ready(c: &Resource) -> bool {
    cstate(c) == ContainerState::Running
        && c.str("desiredState") != Some("stopped")
        && (c.data.get("healthCheck").map_or(true, Value::is_null)
            || health_of(c) == Some(ContainerHealth::Healthy))
}

/// Set a service's scale (field and spec).
fn set_scale(s: &mut Resource, n: u32) {
    s.set("scale", n);
    super::rows::sync_scale(s);
}

/// Create, start and remove to keep the service at its scale (one per
/// eligible host for a global service) with containers of generation
/// `gen`; the number wanted, or `None` when a container could not be
/// placed (the reason is on the service's `transitioningMessage`).
fn keep_scale(
    w: &mut World,
    s: &mut Resource,
    spec: &ServiceSpec,
    stack: &str,
    gen: u64,
) -> Option<usize> {
    mark_lost(w, s, spec);
    if !spec.global && steady(w, s, spec, stack, gen) {
        #[cfg(debug_assertions)]
        {
            // The full plan agrees: nothing to do.
            let cur: Vec<Row> = w
                .member_ix(s.id)
                .filter(|&i| w.meta[i].gen == gen)
                .map(|i| w.containers[i].clone())
                .collect();
            let recreate = replace(w, &cur, spec);
            let ms = scale_members(w, &cur, stack, spec, &recreate);
            assert_eq!(
                scale::plan(spec.scale, &ms, start_once(spec)),
                scale::ScalePlan::default()
            );
        }
        clear_error(s);
        return Some(spec.scale as usize);
    }
    let (waiting, cur): (Vec<Row>, Vec<Row>) = w
        .member_ix(s.id)
        .filter(|&i| w.meta[i].gen == gen)
        .map(|i| w.containers[i].clone())
        .partition(|c| w.m(c).unplaced);
    let recreate = replace(w, &cur, spec);
    if spec.global {
        return keep_global(w, s, spec, stack, gen, &cur, &recreate);
    }
    let ms = scale_members(w, &cur, stack, spec, &recreate);
    let plan = scale::plan(spec.scale, &ms, start_once(spec));
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
    let index = |c: &Resource| c.data.get("serviceIndex").and_then(Value::as_u64);
    for c in waiting
        .iter()
        .filter(|c| !plan.create.iter().any(|i| Some(u64::from(*i)) == index(c)))
    {
        drop_unplaced(w, c);
    }
    let mut failed = None;
    for idx in plan.create {
        let row = waiting.iter().find(|c| index(c) == Some(u64::from(idx)));
        match create(w, s, spec, stack, gen, idx, None) {
            Ok(()) => {
                if let Some(r) = row {
                    drop_unplaced(w, r);
                }
            }
            Err(why) => {
                // Waiting for a sibling (volumes_from) is not a failure.
                if launch::transitioning(&why) == "error" {
                    record_unplaced(w, s, spec, stack, gen, idx, row.map(|r| &**r), &why);
                }
                failed.get_or_insert(why);
            }
        }
    }
    if let Some(why) = failed {
        if s.str("transitioningMessage") != Some(&why) {
            s.set("transitioning", launch::transitioning(&why));
            s.set("transitioningMessage", why);
        }
        return None;
    }
    clear_error(s);
    Some(spec.scale as usize)
}

/// The scale plan's view of a service's current members.
fn scale_members(
    w: &World,
    cur: &[Row],
    stack: &str,
    spec: &ServiceSpec,
    recreate: &BTreeSet<String>,
) -> Vec<scale::Member> {
    cur.iter()
        .filter_map(|c| {
            let (m, name) = w.facts(c);
            let name = name?;
            Some(scale::Member {
                index: scale::index_of(stack, &spec.name, name)?,
                name: name.to_string(),
                state: m.state,
                recreate: recreate.contains(name),
            })
        })
        .collect()
}

/// True when [`keep_scale`]'s plan for a (not global) service is empty:
/// no unplaced row of generation `gen` waits, no member is to be replaced
/// (none unhealthy, none on a lost host), none failed or stopped (unless
/// `start_once`), and exactly `scale` live members are named by index —
/// the conditions under which [`scale::plan`] creates, starts and removes
/// nothing. Read from this pass's decoded facts (never from what an
/// earlier pass saw), so a container that died, a host lost or a health
/// change makes it false and the full plan runs. It reads no names: a
/// member's index comes from the snapshot's shared name prefixes.
fn steady(w: &World, s: &Resource, spec: &ServiceSpec, stack: &str, gen: u64) -> bool {
    let checked = spec.launch_config.health_check.is_some();
    let once = start_once(spec);
    let prefix = w.prefix(stack, &spec.name);
    let mut live = 0usize;
    for i in w.member_ix(s.id) {
        let m = w.meta[i];
        if m.gen != gen {
            continue;
        }
        if m.unplaced {
            return false;
        }
        if checked
            && (m.health == Some(ContainerHealth::Unhealthy) || host_gone(w, &w.containers[i]))
        {
            return false;
        }
        if w.index_at(i, stack, &spec.name, prefix).is_none() {
            continue;
        }
        match m.state {
            ContainerState::Removing | ContainerState::Removed => {}
            ContainerState::Error => return false,
            ContainerState::Stopped if !once => return false,
            _ => live += 1,
        }
    }
    u32::try_from(live) == Ok(spec.scale)
}

fn start_once(spec: &ServiceSpec) -> bool {
    spec.launch_config
        .labels
        .get("io.rancher.container.start_once")
        .is_some_and(|v| v == "true")
}

fn clear_error(s: &mut Resource) {
    if s.data.contains_key("transitioningMessage") {
        s.data.remove("transitioning");
        s.data.remove("transitioningMessage");
    }
    s.data.remove(PLACEMENT);
}

/// A global service: one container per eligible host (hard host-label
/// rules only), following hosts as they come, go and change labels; the
/// service's `scale` reports the number of those hosts.
fn keep_global(
    w: &mut World,
    s: &mut Resource,
    spec: &ServiceSpec,
    stack: &str,
    gen: u64,
    cur: &[Row],
    recreate: &BTreeSet<String>,
) -> Option<usize> {
    let eligible = scheduler::global_hosts(w.host_views(), &spec.schedule_request(stack, 0));
    let placed: Vec<scale::Placed> = cur
        .iter()
        .map(|c| scale::Placed {
            name: c.str("name").unwrap_or_default().to_string(),
            host_id: format_id(Kind::Host, c.host),
            state: if c.str("name").is_some_and(|n| recreate.contains(n)) {
                ContainerState::Error
            } else {
                cstate(c)
            },
        })
        .collect();
    let plan = scale::plan_global(&eligible, &placed);
    for c in cur {
        let name = c.str("name").unwrap_or_default();
        if plan.remove.iter().any(|r| r == name) {
            set_desired(w, c, "removed");
        } else if cstate(c) == ContainerState::Stopped && !start_once(spec) {
            set_desired(w, c, "running");
        }
    }
    let mut used: Vec<u32> = cur
        .iter()
        .filter(|c| {
            !plan
                .remove
                .iter()
                .any(|r| Some(r.as_str()) == c.str("name"))
        })
        .filter_map(|c| scale::index_of(stack, &spec.name, c.str("name")?))
        .collect();
    for h in plan.create_on {
        let idx = (1..).find(|i| !used.contains(i)).unwrap_or(1);
        used.push(idx);
        if let Err(why) = create(w, s, spec, stack, gen, idx, Some(h.clone())) {
            s.set("transitioning", launch::transitioning(&why));
            s.set("transitioningMessage", format!("host {h}: {why}"));
            return None;
        }
    }
    if s.data.get("scale").and_then(Value::as_u64) != Some(eligible.len() as u64) {
        s.set("scale", eligible.len());
    }
    clear_error(s);
    Some(eligible.len())
}

/// True when `c`'s host is gone: removed, unknown, or its agent
/// `disconnected` (after the server's `--disconnected-after`, 180 s by
/// default; a `reconnecting` host keeps its containers).
fn host_gone(w: &World<'_>, c: &Resource) -> bool {
    w.host_at.get(&c.host).map_or(true, |&i| w.host_lost[i])
}

/// True when host `id` is only `reconnecting`: active, its agent's
/// heartbeats late but not yet `disconnected` (see [`host_gone`]).
fn host_reconnecting(w: &World<'_>, id: u64) -> bool {
    w.host_at.get(&id).is_some_and(|&i| {
        let h = &w.hosts[i];
        !w.host_lost[i] && h.state == "active" && h.str("agentState") == Some("reconnecting")
    })
}

/// Health-checked containers on a lost host cannot be checked: they are
/// `unhealthy` (as Rancher's checkers on other hosts would find them), so
/// the health strategy decides their fate and the service shows it. The
/// agent reports afresh when it is back.
fn mark_lost(w: &mut World, s: &Resource, spec: &ServiceSpec) {
    if spec.launch_config.health_check.is_none() {
        return;
    }
    let lost: Vec<Row> = members(w, s)
        .into_iter()
        .filter(|c| !unplaced(c) && host_gone(w, c) && c.str("healthState") != Some("unhealthy"))
        .cloned()
        .collect();
    for c in lost {
        let mut c = c.into_owned();
        c.set("healthState", "unhealthy");
        w.put(c);
    }
}

/// Names of the members to replace: the unhealthy ones, as the service's
/// health strategy says (`recreate`: all of them; `recreateOnQuorum`:
/// only while `quorum` others are healthy; `none`: never).
fn replace(w: &World<'_>, cur: &[Row], spec: &ServiceSpec) -> BTreeSet<String> {
    let Some(hc) = &spec.launch_config.health_check else {
        return BTreeSet::new();
    };
    let members: Vec<(String, ContainerHealth)> = cur
        .iter()
        .filter_map(|c| {
            let h = if host_gone(w, c) {
                ContainerHealth::Unhealthy
            } else {
                health_of(c)?
            };
            Some((c.str("name")?.to_string(), h))
        })
        .collect();
    health::to_recreate(hc.strategy, &members)
        .into_iter()
        .collect()
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
    launch::prepare(w.around(s), s, spec, stack, idx, &mut req)?;
    if spec.global {
        req = global_request(&req)?;
    }
    // Containers of this service's other generations are on their way out
    // (an upgrade replaces them): they do not repel their replacements —
    // but one still meant to run (start-first: it stops only once its
    // replacement runs) keeps its host ports, so the replacement gets
    // others instead of a port docker cannot publish twice.
    let others: Vec<(String, bool)> = owned(w, s.id)
        .filter(|c| w.m(c).gen != gen)
        .map(|c| (c.api_id(), c.str("desiredState") == Some("running")))
        .collect();
    let ix = w.sched();
    let placed = if others.is_empty() {
        ix.place(&req)
    } else {
        let mut inst = ix.instances();
        inst.retain_mut(|i| match others.iter().find(|(id, _)| *id == i.uuid) {
            None => true,
            Some((_, false)) => false,
            Some((_, true)) => {
                i.labels.clear();
                i.name.clear();
                true
            }
        });
        scheduler::place(ix.hosts(), &inst, &req)
    }
    .map_err(|e| e.to_string())?;
    let hid = model::parse_id(Kind::Host, &placed.host_id)
        .filter(|id| w.host_at.contains_key(id))
        .ok_or("placed on an unknown host")?;
    let lc = &spec.launch_config;
    let name = scale::container_name(stack, &spec.name, idx);
    let docker = docker_name_for(&name, gen);
    if w.docker_name_taken(hid, &docker) {
        return Err(format!(
            "{}{name}: its predecessor {docker} is still being removed from {}",
            launch::WAITING,
            placed.host_id
        ));
    }
    let id = w.allocate();
    let mut c = Resource::new(Kind::Container, id, s.project, "requested");
    c.host = hid;
    c.set("name", name.clone());
    c.set("hostId", placed.host_id.clone());
    c.set("desiredState", "running");
    c.set("startOnCreate", true);
    c.set("dockerName", docker);
    c.set("externalId", Value::Null);
    c.set("accountId", format_id(Kind::Project, s.project));
    c.set("imageUuid", format!("docker:{}", lc.image));
    if spec.kind == crate::cluster::plan::compose::ServiceKind::LoadBalancerService {
        // The agent runs the load balancer image (see `agent::lb`).
        c.set("_lb", true);
    }
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
    let on = w.host_at.get(&hid).map(|&i| &w.hosts[i]);
    launch::apply(w.around(s), &mut c, s, spec, stack, idx, &placed, on)?;
    c.set("serviceId", s.api_id());
    c.set("stackId", s.str("stackId").unwrap_or_default());
    c.set("serviceIndex", idx);
    c.set("_gen", gen);
    if c.str("networkMode") == Some("managed") {
        let ip = network_address(w, s, spec, idx)?;
        c.set(PRIMARY_IP, ip);
    }
    let view = InstanceView {
        name,
        uuid: c.api_id(),
        host_id: placed.host_id,
        labels: req.labels,
        ports: placed.ports,
        memory_reservation: 0,
        milli_cpu_reservation: 0,
    };
    w.insert_with(Cow::Owned(c), Some(view));
    w.record_container(w.containers.len() - 1);
    Ok(())
}

/// The container row field holding its managed-network address.
pub const PRIMARY_IP: &str = "primaryIpAddress";

/// The service row field holding the addresses its containers keep across
/// replacement (`retainIp`): service index → address.
pub const RETAINED_IPS: &str = "_retainedIps";

fn parse_ip(s: &str) -> Option<u32> {
    s.parse::<std::net::Ipv4Addr>().ok().map(u32::from)
}

fn retained_of(s: &Resource) -> serde_json::Map<String, Value> {
    s.data
        .get(RETAINED_IPS)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The environment's managed subnet (the project's `subnet`, Rancher's
/// 10.42.0.0/16 by default).
pub fn project_subnet(project: Option<&Resource>) -> Result<allocate::Subnet, String> {
    let text = project
        .and_then(|p| p.str("subnet"))
        .unwrap_or(allocate::DEFAULT_SUBNET);
    allocate::Subnet::parse(text).map_err(|e| format!("environment subnet: {e}"))
}

/// The allocation stage's address for a new container of `s` at `idx`:
/// with `retainIp`, the one its index had (once no other live container
/// holds it), else the lowest free one of the environment's subnet; an
/// error when the subnet is full.
fn network_address(
    w: &mut World,
    s: &Resource,
    spec: &ServiceSpec,
    idx: u32,
) -> Result<String, String> {
    let subnet = project_subnet(w.around(s).project)?;
    let sid = s.api_id();
    let key = idx.to_string();
    let mut kept = match w.retained.get(&sid) {
        Some(m) => m.clone(),
        None => retained_of(s),
    };
    let retained = if spec.retain_ip {
        kept.get(&key).and_then(Value::as_str).and_then(parse_ip)
    } else {
        None
    };
    if let Some(r) = retained.filter(|r| subnet.contains(*r)) {
        let text = std::net::Ipv4Addr::from(r).to_string();
        // Its predecessor may still run with it: wait until it stops (a
        // stopped one of the same index, kept for a rollback, hands it on).
        let holder = w.containers.iter().find(|c| {
            !c.is_removed()
                && c.str(PRIMARY_IP) == Some(text.as_str())
                && !(c.str("serviceId") == Some(sid.as_str())
                    && matches!(c.state.as_str(), "stopped" | "error")
                    && c.str("desiredState") != Some("running"))
        });
        if let Some(h) = holder {
            return Err(format!(
                "{}address {text} is retained for {} and still held by {}",
                launch::WAITING,
                scale::container_name(s.str("_stack").unwrap_or_default(), &spec.name, idx),
                h.str("name").unwrap_or_default()
            ));
        }
        w.ips(s.project).insert(r);
        return Ok(text);
    }
    let from = w.ip_from.get(&s.project).copied().unwrap_or(0);
    let used = w.ips(s.project);
    let ip = allocate::address_from(&subnet, used, from)?;
    used.insert(ip);
    w.ip_from.insert(s.project, ip + 1);
    let text = std::net::Ipv4Addr::from(ip).to_string();
    if spec.retain_ip {
        kept.insert(key, Value::String(text.clone()));
        w.retained.insert(sid, kept);
    }
    Ok(text)
}

/// The docker name of a new container: `r-<name>`, `-g<gen>` after an
/// upgrade. A replacement for the same index and generation is created only
/// once its predecessor is gone from that host ([`create`] waits): two
/// containers with one docker name on a host made the agent's create fail
/// with a name conflict while the old one was still being removed (or
/// drained), and its health checker inspect the old one under the new
/// one's name; each replacement of an unhealthy container then failed and
/// was replaced again — a burst of throw-away containers per index until
/// the old one was gone.
fn docker_name_for(name: &str, gen: u64) -> String {
    if gen == 0 {
        model::docker_name(name)
    } else {
        format!("{}-g{gen}", model::docker_name(name))
    }
}

/// One step of an in-service upgrade: wait for the current batch, then
/// replace the next `batchSize` old containers (start-first or stop-first)
/// on their own hosts — a batch waits while one of them is `reconnecting`;
/// `upgraded` when no old container runs.
fn upgrade_pass(w: &mut World, s: &mut Resource, spec: &ServiceSpec, stack: &str, gen: u64) {
    // Unplaced rows have nothing to upgrade: the new containers take
    // their indexes when the service is kept at scale again.
    let (waiting, all): (Vec<Row>, Vec<Row>) = members(w, s)
        .into_iter()
        .cloned()
        .partition(|c| unplaced(c));
    for c in &waiting {
        drop_unplaced(w, c);
    }
    let (new, old): (Vec<&Row>, Vec<&Row>) = all.iter().partition(|c| gen_of(c) == gen);
    // A replacement that failed goes (its index is replaced again in a
    // later batch) and says why; one stopped behind our back starts again.
    let mut failed = BTreeSet::new();
    for n in &new {
        match cstate(n) {
            ContainerState::Error => {
                let why = n
                    .str("transitioningMessage")
                    .unwrap_or("failed")
                    .to_string();
                let name = n.str("name").unwrap_or_default().to_string();
                set_desired(w, n, "removed");
                failed.insert(n.id);
                s.set("transitioning", "error");
                s.set("transitioningMessage", format!("{name}: {why}"));
            }
            ContainerState::Stopped if n.str("desiredState") == Some("running") => {
                set_desired(w, n, "running");
            }
            _ => {}
        }
    }
    let old_units: Vec<upgrade::Unit> = old.iter().map(|c| unit(c)).collect();
    let new_units: Vec<upgrade::Unit> = new
        .iter()
        .filter(|c| !failed.contains(&c.id))
        .map(|c| unit(c))
        .collect();
    let last = s
        .data
        .get("_lastBatch")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let since = (last > 0).then(|| u64::try_from(w.now.saturating_sub(last)).unwrap_or(0));
    let by_id = |id: &str| old.iter().find(|c| c.api_id() == id).copied();
    // New containers go where the old one of their index is (its volumes).
    let host_of_index = |i: u32| old.iter().find(|c| index_of(c) == Some(i)).map(|c| c.host);
    let (stop, start) =
        match upgrade::next_step(&spec.upgrade_strategy, &old_units, &new_units, since) {
            upgrade::UpgradeStep::Begin { start, stop } => {
                // A host only `reconnecting` (its heartbeats late) is
                // expected back, and the scheduler places nothing on it:
                // the batch waits for it — nothing stopped, its old
                // containers serve meanwhile — and begins on the pass
                // after it is `active` again (its heartbeat's commit kicks
                // one). A host gone for good fails the batch below.
                let late = start
                    .iter()
                    .filter_map(|&i| host_of_index(i))
                    .find(|&h| host_reconnecting(w, h));
                if let Some(h) = late {
                    let why = format!(
                        "{}host {} is reconnecting",
                        launch::WAITING,
                        format_id(Kind::Host, h)
                    );
                    placement_trouble(s, why);
                    return;
                }
                s.set("_lastBatch", w.now);
                (stop, start)
            }
            upgrade::UpgradeStep::StopOld(stop) => (stop, Vec::new()),
            upgrade::UpgradeStep::Done => {
                set_state(s, State::Upgraded);
                return;
            }
            upgrade::UpgradeStep::Wait(_) | upgrade::UpgradeStep::Blocked(_) => return,
        };
    for id in &stop {
        if let Some(o) = by_id(id) {
            set_desired(w, o, "stopped");
        }
    }
    for &idx in &start {
        let host = host_of_index(idx).map(|h| format_id(Kind::Host, h));
        if let Err(why) = create(w, s, spec, stack, gen, idx, host) {
            placement_trouble(s, why);
            return;
        }
    }
    if !start.is_empty() {
        // The batch is placed: a reason shown for not placing it is over.
        placement_done(s);
    }
}

/// The service row field that holds the reason an upgrade batch could not
/// be placed (or had to wait) while it is the service's
/// `transitioningMessage`: [`placement_done`] clears that message once a
/// batch is placed — a transient reason (a host briefly away, a port or a
/// docker name still held) does not outlive its cause — and leaves any
/// other (a failed replacement's) in view.
const PLACEMENT: &str = "_placementMessage";

/// Show why an upgrade batch is not placed: an error, or a wait
/// ([`launch::WAITING`]).
fn placement_trouble(s: &mut Resource, why: String) {
    s.set("transitioning", launch::transitioning(&why));
    s.set("transitioningMessage", why.clone());
    s.set(PLACEMENT, why);
}

/// An upgrade batch was placed: the message [`placement_trouble`] showed
/// goes, if it is still the one shown.
fn placement_done(s: &mut Resource) {
    if let Some(why) = s.data.remove(PLACEMENT) {
        if s.data.get("transitioningMessage") == Some(&why) {
            s.data.remove("transitioning");
            s.data.remove("transitioningMessage");
        }
    }
}

/// A container as the upgrade plans see it: keyed by its id (names repeat
/// across generations).
fn unit(c: &Resource) -> upgrade::Unit {
    upgrade::Unit {
        index: index_of(c).unwrap_or(1),
        name: c.api_id(),
        state: cstate(c),
        ready: ready(c),
    }
}

fn index_of(c: &Resource) -> Option<u32> {
    c.data
        .get("serviceIndex")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

/// The request of a container of a global service, for its requested host: only the
/// hard host-label rules count (Rancher ignores the other affinity kinds
/// for global services), ports and resources as always.
fn global_request(req: &scheduler::Request) -> Result<scheduler::Request, String> {
    if req.requested_host.is_none() {
        return Err("a global service's containers are placed per host".into());
    }
    let mut req = req.clone();
    req.labels.retain(|k, _| {
        !k.starts_with("io.rancher.scheduler.affinity:")
            || k == "io.rancher.scheduler.affinity:host_label"
            || k == "io.rancher.scheduler.affinity:host_label_ne"
    });
    Ok(req)
}

/// Start-first: the old container of a replacement that runs stops now.
fn retire_replaced(w: &mut World, s: &Resource, gen: u64) {
    let all: Vec<Row> = members(w, s).into_iter().cloned().collect();
    let (new, old): (Vec<&Row>, Vec<&Row>) = all.iter().partition(|c| gen_of(c) == gen);
    for o in &old {
        let idx = o.data.get("serviceIndex").and_then(Value::as_u64);
        let replaced = new
            .iter()
            .any(|n| n.data.get("serviceIndex").and_then(Value::as_u64) == idx && ready(n));
        if replaced && o.str("desiredState") == Some("running") {
            set_desired(w, o, "stopped");
        }
    }
}

/// One step of a rolling restart (`rollingRestartStrategy`): containers
/// of the current batch carry the restart's id; each is stopped, the scale
/// keeper starts it again, and the next batch begins once every marked one
/// runs (and is healthy) and the interval passed. `active` when all did.
fn restart_pass(w: &mut World, s: &mut Resource, gen: u64) {
    let r = s.data.get("_restart").cloned().unwrap_or(Value::Null);
    let id = r.get("id").and_then(Value::as_u64).unwrap_or(0);
    let batch = r
        .get("batchSize")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1);
    let interval = r.get("intervalMillis").and_then(Value::as_u64).unwrap_or(0);
    let cur: Vec<Row> = members(w, s)
        .into_iter()
        .filter(|c| gen_of(c) == gen)
        .cloned()
        .collect();
    let ms: Vec<upgrade::Restarting> = cur
        .iter()
        .map(|c| upgrade::Restarting {
            name: c.str("name").unwrap_or_default().to_string(),
            restarted: c.data.get("_restartId").and_then(Value::as_u64) == Some(id),
            ready: ready(c),
        })
        .collect();
    let last = s
        .data
        .get("_lastBatch")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let since = (last > 0).then(|| u64::try_from(w.now - last).unwrap_or(0));
    match upgrade::restart_step(batch, interval, &ms, since) {
        upgrade::UpgradeStep::Begin { stop, .. } => {
            for n in stop {
                if let Some(c) = cur.iter().find(|c| c.str("name") == Some(&n)) {
                    let mut c = c.clone().into_owned();
                    c.set("_restartId", id);
                    let count = c.data.get("startCount").and_then(Value::as_u64);
                    c.set("startCount", count.unwrap_or(1) + 1);
                    set_desired(w, &c, "stopped");
                }
            }
            s.set("_lastBatch", w.now);
        }
        upgrade::UpgradeStep::Done => {
            set_state(s, State::Active);
            s.data.remove("_lastBatch");
        }
        _ => {}
    }
}

/// A to-service upgrade in progress on a service (`upgrade` with
/// `toServiceStrategy`), as stored on it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ToService {
    id: String,
    final_scale: u32,
    batch_size: u32,
    interval_millis: u64,
    update_links: bool,
    from_scale: u32,
    target_from_scale: u32,
}

fn to_service_of(s: &Resource) -> Option<ToService> {
    let t = s.data.get("_toService")?;
    let n = |k: &str| {
        t.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    Some(ToService {
        id: t.get("toServiceId")?.as_str()?.to_string(),
        final_scale: n("finalScale"),
        batch_size: n("batchSize").max(1),
        interval_millis: t.get("intervalMillis").and_then(Value::as_u64).unwrap_or(0),
        update_links: t
            .get("updateLinks")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        from_scale: n("fromScale"),
        target_from_scale: n("targetFromScale"),
    })
}

fn fail(s: &mut Resource, why: String) {
    if s.str("transitioningMessage") != Some(&why) {
        s.set("transitioning", "error");
        s.set("transitioningMessage", why);
    }
}

/// One step of a to-service upgrade A → B: B grows by up to a batch and
/// must be running and healthy; then A shrinks by up to a batch and the
/// interval passes; until B has `finalScale` and A none. Every step is read
/// from the two stored scales, so a restarted server resumes where it was.
fn to_service_pass(
    w: &mut World,
    s: &mut Resource,
    spec: &ServiceSpec,
    stack: &str,
    gen: u64,
    ts: &ToService,
) {
    // A is not `active`, so its own scale is kept here.
    if keep_scale(w, s, spec, stack, gen).is_none() {
        return;
    }
    let Some(mut b) = w.service(&ts.id) else {
        return fail(s, format!("target service {} is gone", ts.id));
    };
    if matches!(state_of(&b), Some(State::Removing | State::Removed)) {
        return fail(s, format!("target service {} is being removed", ts.id));
    }
    if state_of(&b) == Some(State::Inactive) {
        set_state(&mut b, State::Activating);
        w.put_service(b);
        return;
    }
    let a_scale = spec.scale;
    let b_scale = b
        .data
        .get("scale")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    let b_gen = b
        .data
        .get("_generation")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let b_ready = members(w, &b)
        .iter()
        .filter(|c| gen_of(c) == b_gen && ready(c))
        .count();
    let a_live = members(w, s).iter().filter(|c| gen_of(c) == gen).count();
    if b_ready < b_scale as usize || a_live > a_scale as usize {
        return; // the last step is still in progress
    }
    clear_error(s);
    match upgrade::to_service_step(a_scale, b_scale, ts.final_scale, ts.batch_size) {
        None => {
            if ts.update_links {
                relink(w, s, &b);
            }
            set_state(s, State::Upgraded);
        }
        Some((a, nb)) => {
            if nb != b_scale {
                let last = s
                    .data
                    .get("_lastBatch")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let wait = i64::try_from(ts.interval_millis).unwrap_or(i64::MAX);
                if last > 0 && w.now.saturating_sub(last) < wait {
                    return;
                }
                set_scale(&mut b, nb);
                w.put_service(b);
            }
            if a != a_scale {
                set_scale(s, a);
                s.set("_lastBatch", w.now);
            }
        }
    }
}

/// `updateLinks`: services that link to A link to B instead.
fn relink(w: &mut World, a: &Resource, b: &Resource) {
    let (a_stack, a_name) = (a.str("_stack").unwrap_or_default(), a.str("name"));
    let (b_stack, b_name) = (
        b.str("_stack").unwrap_or_default().to_string(),
        b.str("name").unwrap_or_default().to_string(),
    );
    let consumers: Vec<Resource> = w
        .services
        .iter()
        .filter(|c| c.project == a.project && c.id != a.id && c.id != b.id)
        .map(|c| c.clone().into_owned())
        .collect();
    for mut c in consumers {
        let Some(mut spec) = spec_of(&c, "_spec") else {
            continue;
        };
        let here = c.str("_stack").unwrap_or_default().to_string();
        let mut changed = false;
        for l in spec.links.iter_mut().chain(spec.external_links.iter_mut()) {
            let target_stack = l.stack.clone().unwrap_or_else(|| here.clone());
            if target_stack == a_stack && Some(l.service.as_str()) == a_name {
                l.stack = (b_stack != here).then(|| b_stack.clone());
                l.service = b_name.clone();
                changed = true;
            }
        }
        if changed {
            c.set("_spec", serde_json::to_value(&spec).unwrap_or(Value::Null));
            c.set("linkedServices", super::rows::links_json(&spec));
            w.put_service(c);
        }
    }
}

/// A stack's `healthState` follows its services' (inactive ones aside).
fn stacks_health(w: &mut World, stacks: &[Resource]) {
    for st in stacks {
        if matches!(state_of(st), Some(State::Removing | State::Removed)) {
            continue;
        }
        let id = st.api_id();
        let hs: Vec<health::ServiceHealth> = w
            .services
            .iter()
            .filter(|s| s.str("stackId") == Some(&id))
            .filter(|s| {
                !matches!(
                    state_of(s),
                    Some(State::Inactive | State::Removing | State::Removed)
                )
            })
            .filter_map(|s| s.str("healthState").and_then(health::ServiceHealth::parse))
            .collect();
        let h = health::stack_health(&hs).as_str();
        if st.str("healthState") != Some(h) {
            let mut st = w.recorded(Kind::Stack, st.id).unwrap_or(st).clone();
            st.set("healthState", h);
            w.record(st);
        }
    }
}
