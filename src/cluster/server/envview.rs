//! The environment view agents keep for DNS and metadata, kept by the
//! server as a journal per environment: every entry (host, stack, service,
//! container) carries the revision of its last change, and a removed
//! entry leaves a tombstone. An agent's long-poll says which revision it
//! holds and gets only the entries changed since ([`EnvDelta`]); a full
//! copy goes only to an agent that is new, comes from another server epoch
//! (the journal lives in memory) or is behind the oldest tombstone kept.
//!
//! Entries are derived from one stored row each ([`entry_of`]), so every
//! write path only hands its committed rows to [`EnvViews::note`]; an
//! entry whose derived value did not change (a usage sample, a host's
//! heartbeat) does not move the revision and wakes nobody.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::Value;

use crate::cluster::model::{format_id, Kind, Resource};
use crate::cluster::plan::compose::ServiceKind;
use crate::cluster::plan::rows::spec_of;
use crate::cluster::protocol::{
    EnvContainer, EnvDelta, EnvHost, EnvInfo, EnvLink, EnvService, EnvStack,
};
use crate::cluster::store::{Scope, Store, StoreError};

/// One entry of the view.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// A host.
    Host(EnvHost),
    /// A stack.
    Stack(EnvStack),
    /// A service.
    Service(EnvService),
    /// A container.
    Container(EnvContainer),
}

/// Tombstones kept beyond this many (plus the live entries) are dropped
/// oldest first; an agent behind them gets a full copy.
const TOMBSTONE_SLACK: usize = 512;

#[derive(Default)]
struct Journal {
    revision: u64,
    /// Revisions at or below this may have lost tombstones.
    floor: u64,
    name: String,
    entries: HashMap<String, (u64, Option<Entry>)>,
    tombstones: usize,
}

impl Journal {
    /// Set `id` to `e`; true when it changed.
    fn put(&mut self, id: String, e: Option<Entry>) -> bool {
        match self.entries.get(&id) {
            Some((_, old)) if *old == e => return false,
            None if e.is_none() => return false,
            _ => {}
        }
        self.revision += 1;
        let was_tomb = matches!(self.entries.get(&id), Some((_, None)));
        if e.is_none() && !was_tomb {
            self.tombstones += 1;
        } else if e.is_some() && was_tomb {
            self.tombstones -= 1;
        }
        self.entries.insert(id, (self.revision, e));
        self.compact();
        true
    }

    fn compact(&mut self) {
        let live = self.entries.len() - self.tombstones;
        if self.tombstones <= live + TOMBSTONE_SLACK {
            return;
        }
        let mut tombs: Vec<(u64, String)> = self
            .entries
            .iter()
            .filter(|(_, (_, e))| e.is_none())
            .map(|(k, (r, _))| (*r, k.clone()))
            .collect();
        tombs.sort_unstable();
        let drop = tombs.len() / 2;
        for (r, k) in tombs.into_iter().take(drop) {
            self.entries.remove(&k);
            self.floor = self.floor.max(r);
            self.tombstones -= 1;
        }
    }

    fn delta(&self, epoch: u64, since: Option<u64>) -> EnvDelta {
        let full = match since {
            None => true,
            Some(s) => s < self.floor || s > self.revision,
        };
        let since = if full { 0 } else { since.unwrap_or(0) };
        let mut d = EnvDelta {
            epoch,
            revision: self.revision,
            full,
            ..EnvDelta::default()
        };
        for (id, (rev, e)) in &self.entries {
            if *rev <= since {
                continue;
            }
            match e {
                None if !full => d.removed.push(id.clone()),
                None => {}
                Some(Entry::Host(h)) => d.hosts.push(h.clone()),
                Some(Entry::Stack(s)) => d.stacks.push(s.clone()),
                Some(Entry::Service(s)) => d.services.push(s.clone()),
                Some(Entry::Container(c)) => d.containers.push(c.clone()),
            }
        }
        d
    }
}

/// The journals of every environment.
pub struct EnvViews {
    epoch: u64,
    journals: Mutex<HashMap<u64, Journal>>,
}

impl Default for EnvViews {
    fn default() -> Self {
        EnvViews::new()
    }
}

impl EnvViews {
    /// Empty journals with a fresh epoch.
    pub fn new() -> EnvViews {
        let epoch = rand::random::<u64>() >> 12 | 1;
        EnvViews {
            epoch,
            journals: Mutex::new(HashMap::new()),
        }
    }

    /// This server's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Fold committed rows into the journals of environments already
    /// loaded; the projects whose view changed.
    pub fn note(&self, rows: &[Resource]) -> Vec<u64> {
        let Ok(mut js) = self.journals.lock() else {
            return Vec::new();
        };
        let mut changed = Vec::new();
        for r in rows {
            let Some((project, id, e)) = entry_of(r) else {
                continue;
            };
            if let Some(j) = js.get_mut(&project) {
                if j.put(id, e) && !changed.contains(&project) {
                    changed.push(project);
                }
            }
        }
        changed
    }

    /// Load `project`'s journal from the store unless loaded.
    pub fn ensure(&self, store: &dyn Store, project: u64) -> Result<(), StoreError> {
        if self
            .journals
            .lock()
            .map(|j| j.contains_key(&project))
            .unwrap_or(true)
        {
            return Ok(());
        }
        let mut j = Journal {
            name: store
                .get(Kind::Project, project)?
                .and_then(|p| p.str("name").map(str::to_string))
                .unwrap_or_default(),
            ..Journal::default()
        };
        for kind in [Kind::Host, Kind::Stack, Kind::Service, Kind::Container] {
            for r in store.list(kind, Scope::Project(project))? {
                if let Some((_, id, e)) = entry_of(&r) {
                    j.put(id, e);
                }
            }
        }
        if let Ok(mut js) = self.journals.lock() {
            js.entry(project).or_insert(j);
        }
        Ok(())
    }

    /// The revision `project`'s view is at (0 when not loaded).
    pub fn revision(&self, project: u64) -> u64 {
        self.journals
            .lock()
            .ok()
            .and_then(|j| j.get(&project).map(|j| j.revision))
            .unwrap_or(0)
    }

    /// True when an agent holding `(epoch, revision)` of `project` is
    /// missing something.
    pub fn behind(&self, project: u64, epoch: u64, revision: u64) -> bool {
        epoch != self.epoch || revision < self.revision(project)
    }

    /// What an agent holding `(epoch, revision)` must apply; `None` when
    /// it is up to date.
    pub fn since(&self, project: u64, epoch: u64, revision: u64) -> Option<EnvDelta> {
        if !self.behind(project, epoch, revision) {
            return None;
        }
        let js = self.journals.lock().ok()?;
        let j = js.get(&project)?;
        let since = (epoch == self.epoch).then_some(revision);
        let mut d = j.delta(self.epoch, since);
        d.environment = EnvInfo {
            id: format_id(Kind::Project, project),
            name: j.name.clone(),
        };
        Some(d)
    }
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

fn opt_str(r: &Resource, f: &str) -> Option<String> {
    r.str(f).filter(|s| !s.is_empty()).map(str::to_string)
}

fn u64_of(r: &Resource, f: &str) -> u64 {
    r.data.get(f).and_then(Value::as_u64).unwrap_or(0)
}

/// The view entry a stored row stands for: `(project, id, entry)`, the
/// entry `None` when the row is removed; `None` for rows of other kinds.
pub fn entry_of(r: &Resource) -> Option<(u64, String, Option<Entry>)> {
    let id = r.api_id();
    let gone = r.is_removed();
    let e = match r.kind {
        Kind::Host => Entry::Host(EnvHost {
            id: id.clone(),
            name: r.str("name").unwrap_or_default().to_string(),
            hostname: r.str("hostname").unwrap_or_default().to_string(),
            agent_ip: r.str("agentIpAddress").unwrap_or_default().to_string(),
            agent_state: r.str("agentState").unwrap_or_default().to_string(),
            state: r.state.clone(),
            labels: str_map(r.data.get("labels")),
            memory: u64_of(r, "memory"),
            milli_cpu: u64_of(r, "milliCpu"),
            local_storage_mb: u64_of(r, "localStorageMb"),
        }),
        Kind::Stack => Entry::Stack(EnvStack {
            id: id.clone(),
            name: r.str("name").unwrap_or_default().to_string(),
            state: r.state.clone(),
        }),
        Kind::Service => {
            let spec = spec_of(r, "_spec");
            let spec = spec.as_ref();
            let kind = match spec.map(|s| s.kind).unwrap_or_default() {
                ServiceKind::Service => "service",
                ServiceKind::LoadBalancerService => "loadBalancerService",
                ServiceKind::DnsService => "dnsService",
                ServiceKind::ExternalService => "externalService",
            };
            Entry::Service(EnvService {
                id: id.clone(),
                name: r.str("name").unwrap_or_default().to_string(),
                stack_id: r.str("stackId").unwrap_or_default().to_string(),
                kind: kind.into(),
                state: r.state.clone(),
                health_state: r.str("healthState").unwrap_or_default().to_string(),
                scale: u64_of(r, "scale"),
                links: spec
                    .map(|s| {
                        s.links
                            .iter()
                            .chain(&s.external_links)
                            .map(|l| EnvLink {
                                stack: l.stack.clone(),
                                service: l.service.clone(),
                                alias: l.alias.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                metadata: spec.map(|s| s.metadata.clone()).unwrap_or_default(),
                labels: spec
                    .map(|s| s.launch_config.labels.clone())
                    .unwrap_or_default(),
                ports: spec
                    .map(|s| {
                        s.launch_config
                            .ports
                            .iter()
                            .map(ToString::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                external_ips: spec.map(|s| s.external_ips.clone()).unwrap_or_default(),
                hostname: spec.and_then(|s| s.external_hostname.clone()),
                primary_service: None,
                lb_config: spec.and_then(|s| s.lb_config.clone().map(Box::new)),
                health_check: spec.and_then(|s| s.launch_config.health_check.clone().map(Box::new)),
                drain_timeout_ms: spec
                    .and_then(|s| s.launch_config.drain_timeout_ms.or(s.drain_timeout_ms))
                    .unwrap_or(0),
            })
        }
        Kind::Container => Entry::Container(EnvContainer {
            id: id.clone(),
            name: r.str("name").unwrap_or_default().to_string(),
            service_id: opt_str(r, "serviceId"),
            stack_id: opt_str(r, "stackId"),
            host_id: format_id(Kind::Host, r.host),
            state: r.state.clone(),
            health_state: opt_str(r, "healthState"),
            primary_ip: opt_str(r, "primaryIpAddress"),
            service_index: u64_of(r, "serviceIndex"),
            labels: str_map(r.data.get("labels")),
            network_mode: opt_str(r, "networkMode").filter(|m| m != "managed"),
            external_id: opt_str(r, "externalId"),
            start_count: u64_of(r, "startCount"),
            created_ms: r.created_ms,
        }),
        _ => return None,
    };
    Some((r.project, id, (!gone).then_some(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::store::SqliteStore;

    fn container(id: u64, state: &str, health: &str) -> Resource {
        let mut c = Resource::new(Kind::Container, id, 5, state);
        c.host = 1;
        c.set("name", format!("app-web-{id}"));
        c.set("healthState", health);
        c.set("primaryIpAddress", format!("10.42.0.{id}"));
        c
    }

    #[test]
    fn an_agent_gets_only_what_changed_since_its_revision() {
        let store = SqliteStore::memory().unwrap();
        let rows: Vec<Resource> = (1..=50)
            .map(|i| container(i, "running", "healthy"))
            .collect();
        store.commit(&rows).unwrap();
        let v = EnvViews::new();
        v.ensure(&store, 5).unwrap();
        let full = v.since(5, 0, 0).unwrap();
        assert!(full.full);
        assert_eq!(full.containers.len(), 50);
        let (e, r) = (full.epoch, full.revision);
        assert!(v.since(5, e, r).is_none(), "up to date: nothing to send");

        // A usage sample changes the row but not the entry: no revision.
        let mut c7 = rows[6].clone();
        c7.set("cpuPercent", 3.5);
        assert!(v.note(&[c7.clone()]).is_empty());
        assert_eq!(v.revision(5), r);

        // One container turns unhealthy, another is removed.
        c7.set("healthState", "unhealthy");
        let mut c9 = rows[8].clone();
        c9.state = "removed".into();
        assert_eq!(v.note(&[c7, c9]), vec![5]);
        let d = v.since(5, e, r).unwrap();
        assert!(!d.full);
        assert_eq!(d.containers.len(), 1);
        assert_eq!(d.containers[0].id, "1i7");
        assert_eq!(d.containers[0].health_state.as_deref(), Some("unhealthy"));
        assert_eq!(d.removed, vec!["1i9".to_string()]);
        // Another server epoch (a restart): a full copy without tombstones.
        let d = v.since(5, e + 1, r).unwrap();
        assert!(d.full && d.removed.is_empty());
        assert_eq!(d.containers.len(), 49);
    }

    #[test]
    fn an_agent_behind_the_forgotten_tombstones_gets_a_full_copy() {
        let store = SqliteStore::memory().unwrap();
        store.commit(&[container(1, "running", "healthy")]).unwrap();
        let v = EnvViews::new();
        v.ensure(&store, 5).unwrap();
        let r0 = v.revision(5);
        let e = v.epoch();
        for i in 2..2000 {
            let c = container(i, "running", "healthy");
            v.note(std::slice::from_ref(&c));
            let mut c = c;
            c.state = "removed".into();
            v.note(&[c]);
        }
        let d = v.since(5, e, r0).unwrap();
        assert!(d.full, "the removals it missed were forgotten");
        assert_eq!(d.containers.len(), 1);
        let recent = v.revision(5) - 2;
        let d = v.since(5, e, recent).unwrap();
        assert!(!d.full);
        assert_eq!(d.removed.len(), 1);
    }
}
