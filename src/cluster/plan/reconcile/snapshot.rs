//! What a pass reads: the store's live rows, with each container row's
//! facts (state, generation, health, service, docker name) decoded once
//! when the row enters the snapshot — not on every pass. The driver keeps
//! one snapshot between passes and [`Snapshot::apply`]s only the rows
//! commits changed since, so a pass over an unchanged cluster decodes
//! nothing.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use crate::cluster::model::{parse_id, Kind, Resource};
use crate::cluster::plan::health::ContainerHealth;
use crate::cluster::plan::lifecycle::ContainerState;

/// Everything a pass reads: live (not removed) rows of the store, each
/// list in id order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Projects (port ranges).
    pub projects: Vec<Resource>,
    /// Every host, removed ones included (their containers are lost).
    pub hosts: Vec<Resource>,
    /// Live stacks.
    pub stacks: Vec<Resource>,
    /// Live services.
    pub services: Vec<Resource>,
    /// Live containers.
    containers: Vec<Resource>,
    /// Their facts, position for position.
    facts: Vec<Facts>,
    /// The name prefixes their facts share.
    prefixes: Prefixes,
    /// The id the first container created in this pass gets.
    pub next_container_id: u64,
}

/// The `<stack>-<service>` prefixes of container names, one shared copy
/// each: the facts of every container named from one prefix point at the
/// same string, so a pass tells a service's members by comparing two
/// pointers instead of reading 100,000 names. Only a cache of strings: two
/// snapshots are equal when their rows and facts are (the facts compare the
/// prefixes' text).
#[derive(Clone, Default)]
struct Prefixes(HashSet<Arc<str>>);

impl PartialEq for Prefixes {
    fn eq(&self, _: &Prefixes) -> bool {
        true
    }
}

impl std::fmt::Debug for Prefixes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} name prefixes", self.0.len())
    }
}

impl Prefixes {
    fn share(&mut self, p: &str) -> Arc<str> {
        if let Some(a) = self.0.get(p) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(p);
        self.0.insert(a.clone());
        a
    }
}

/// A container name split as [`crate::cluster::plan::scale::index_of`]
/// reads it: `<prefix>-<n>`, `n` > 0 without a leading zero. For any stack
/// and service, `index_of(stack, service, name) == Some(n)` exactly when
/// this gives `(format!("{stack}-{service}"), n)`: the number cannot hold
/// a `-`, so the last `-` is the one before it.
pub(super) fn split_name(name: &str) -> Option<(&str, u32)> {
    let (prefix, rest) = name.rsplit_once('-')?;
    if rest.starts_with('0') {
        return None;
    }
    let n: u32 = rest.parse().ok().filter(|n| *n > 0)?;
    Some((prefix, n))
}

/// What the reconciler reads of a container row on every pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Meta {
    pub live: bool,
    pub gen: u64,
    pub state: ContainerState,
    pub health: Option<ContainerHealth>,
    pub unplaced: bool,
    /// The number of its service's id (0: none).
    pub service: u64,
}

/// A container row's [`Meta`] with the names the pass reads it by.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Facts {
    pub meta: Meta,
    pub docker: Option<String>,
    pub name: Option<String>,
    /// The name's [`split_name`], its prefix shared through the snapshot's
    /// [`Prefixes`].
    pub split: Option<(Arc<str>, u32)>,
}

/// Marks a container the scheduler could not place (see
/// `reconcile::record_unplaced`).
pub(super) const UNPLACED: &str = "_unplaced";

/// A container's state as the plans read it.
pub(super) fn cstate(c: &Resource) -> ContainerState {
    match c.state.as_str() {
        // The container `restart` action's transitional state: the agent
        // is restarting it. Not a failure (that would replace it).
        "restarting" => ContainerState::Starting,
        s => s.parse().unwrap_or(ContainerState::Error),
    }
}

pub(super) fn parse_health(h: &str) -> Option<ContainerHealth> {
    match h {
        "healthy" => Some(ContainerHealth::Healthy),
        "unhealthy" => Some(ContainerHealth::Unhealthy),
        "reinitializing" => Some(ContainerHealth::Reinitializing),
        "initializing" => Some(ContainerHealth::Initializing),
        _ => None,
    }
}

/// A container row's [`Meta`], docker name and name, read in one walk
/// over its fields (one lookup per field cost more than the walk).
pub(super) fn decode(c: &Resource) -> (Meta, Option<&str>, Option<&str>) {
    let (mut desired_removed, mut gen, mut health, mut unplaced_flag) = (false, 0, None, false);
    let (mut service, mut docker, mut name) = (0, None, None);
    for (k, v) in &c.data {
        match k.as_str() {
            "desiredState" => desired_removed = v.as_str() == Some("removed"),
            "_gen" => gen = v.as_u64().unwrap_or(0),
            "healthState" => health = v.as_str().and_then(parse_health),
            UNPLACED => unplaced_flag = v == &Value::Bool(true),
            "serviceId" => {
                service = v
                    .as_str()
                    .and_then(|s| parse_id(Kind::Service, s))
                    .unwrap_or(0);
            }
            "dockerName" => docker = v.as_str(),
            "name" => name = v.as_str(),
            _ => {}
        }
    }
    let meta = Meta {
        live: !c.is_removed() && !desired_removed,
        gen,
        state: cstate(c),
        health,
        unplaced: c.host == 0 && unplaced_flag,
        service,
    };
    (meta, docker, name)
}

fn facts_of(c: &Resource, prefixes: &mut Prefixes) -> Facts {
    let (meta, docker, name) = decode(c);
    Facts {
        meta,
        docker: docker.map(str::to_string),
        name: name.map(str::to_string),
        split: name
            .and_then(split_name)
            .map(|(p, n)| (prefixes.share(p), n)),
    }
}

/// Put `r` into the id-ordered `list` (replacing the row with its id), or
/// take that row out when `keep` is false.
fn upsert(list: &mut Vec<Resource>, r: Resource, keep: bool) {
    match (list.binary_search_by_key(&r.id, |x| x.id), keep) {
        (Ok(i), true) => list[i] = r,
        (Ok(i), false) => drop(list.remove(i)),
        (Err(i), true) => list.insert(i, r),
        (Err(_), false) => {}
    }
}

impl Snapshot {
    /// A snapshot of these rows (each list is put in id order).
    pub fn new(
        projects: Vec<Resource>,
        hosts: Vec<Resource>,
        stacks: Vec<Resource>,
        services: Vec<Resource>,
        containers: Vec<Resource>,
        next_container_id: u64,
    ) -> Snapshot {
        let sorted = |mut v: Vec<Resource>| {
            v.sort_by_key(|r| r.id);
            v
        };
        let containers = sorted(containers);
        let mut prefixes = Prefixes::default();
        Snapshot {
            projects: sorted(projects),
            hosts: sorted(hosts),
            stacks: sorted(stacks),
            services: sorted(services),
            facts: containers
                .iter()
                .map(|c| facts_of(c, &mut prefixes))
                .collect(),
            containers,
            prefixes,
            next_container_id,
        }
    }

    /// The live containers, in id order.
    pub fn containers(&self) -> &[Resource] {
        &self.containers
    }

    /// Their facts, position for position.
    pub(super) fn facts(&self) -> &[Facts] {
        &self.facts
    }

    /// The shared copy of a name prefix, when a container's name has it.
    pub(super) fn prefix(&self, p: &str) -> Option<&Arc<str>> {
        self.prefixes.0.get(p)
    }

    /// Bring the snapshot up to date with rows written since it was read
    /// (as [`crate::cluster::store::Store::changed_since`] gives them,
    /// oldest first): each replaces the row with its id; a removed one
    /// leaves (hosts stay: their containers are lost). Only changed
    /// containers are decoded again.
    pub fn apply(&mut self, rows: impl IntoIterator<Item = Resource>) {
        // Containers: in-place changes one by one; rows that come or go
        // are gathered and merged in one sweep (a pass that removes a
        // thousand containers costs one walk of the list, not a thousand).
        let mut changed: Vec<Resource> = Vec::new();
        for r in rows {
            let keep = !r.is_removed();
            match r.kind {
                Kind::Project => upsert(&mut self.projects, r, keep),
                Kind::Host => upsert(&mut self.hosts, r, true),
                Kind::Stack => upsert(&mut self.stacks, r, keep),
                Kind::Service => upsert(&mut self.services, r, keep),
                Kind::Container => changed.push(r),
                _ => {}
            }
        }
        let mut moved = false;
        for r in &changed {
            match self.containers.binary_search_by_key(&r.id, |x| x.id) {
                Ok(i) if !r.is_removed() => {
                    self.facts[i] = facts_of(r, &mut self.prefixes);
                    self.containers[i] = r.clone();
                }
                Err(_) if r.is_removed() => {}
                _ => moved = true,
            }
        }
        if !moved {
            return;
        }
        let mut last: std::collections::HashMap<u64, Resource> = std::collections::HashMap::new();
        for r in changed {
            last.insert(r.id, r);
        }
        // Rows that stayed keep their facts; only changed ones are decoded.
        let old = std::mem::take(&mut self.containers);
        let old_facts = std::mem::take(&mut self.facts);
        let mut rows: Vec<(Resource, Facts)> = old
            .into_iter()
            .zip(old_facts)
            .filter(|(c, _)| !last.contains_key(&c.id))
            .collect();
        let prefixes = &mut self.prefixes;
        rows.extend(last.into_values().filter(|r| !r.is_removed()).map(|r| {
            let f = facts_of(&r, prefixes);
            (r, f)
        }));
        rows.sort_by_key(|(r, _)| r.id);
        (self.containers, self.facts) = rows.into_iter().unzip();
    }
}
