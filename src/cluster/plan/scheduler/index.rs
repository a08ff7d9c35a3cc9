//! The scheduler at scale: the same placement as [`super::place`], over an
//! index kept up to date while a reconcile pass places container after
//! container, so one placement costs about the hosts it looks at, not
//! hosts × containers.
//!
//! - instances are grouped per host (a hard check reads only its host's);
//! - hosts are kept ordered by (containers on them, id) in a `BTreeSet`,
//!   and per service the hosts already running some of its containers
//!   are counted, so the candidate order of [`super::place`] — fewest of
//!   this service, then fewest overall, then id — is walked lazily: first
//!   every host without this service in load order, then the few that
//!   have some, sorted;
//! - the walk stops at the first host that passes every hard check and
//!   every soft rule, which is the host the full algorithm picks; only
//!   when none does (a soft rule must be dropped, or nothing fits) does it
//!   run the full algorithm over this index for the exact answer and its
//!   reasons.

use std::collections::{BTreeSet, HashMap};

use super::{rules, HostView, InstanceView, NoPlacement, Placement, Request};

/// Hosts and the instances on them, indexed for placement.
#[derive(Clone, Debug, Default)]
pub struct Index {
    hosts: Vec<HostView>,
    pos: HashMap<String, usize>,
    on: Vec<Vec<InstanceView>>,
    /// (instances on host, host id, host position) of active hosts.
    load: BTreeSet<(usize, String, usize)>,
    /// `stack/service` → host position → its instances there.
    same: HashMap<String, HashMap<usize, usize>>,
    /// Instances on unknown hosts (they count nowhere).
    stray: Vec<InstanceView>,
}

fn service_key(i: &InstanceView) -> Option<&String> {
    i.labels.get(rules::LABEL_STACK_SERVICE)
}

impl Index {
    /// Index `hosts` and `instances`.
    pub fn new(hosts: Vec<HostView>, instances: Vec<InstanceView>) -> Index {
        let pos = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.id.clone(), i))
            .collect();
        let mut ix = Index {
            on: vec![Vec::new(); hosts.len()],
            hosts,
            pos,
            ..Index::default()
        };
        for (p, h) in ix.hosts.iter().enumerate() {
            if h.active {
                ix.load.insert((0, h.id.clone(), p));
            }
        }
        for i in instances {
            ix.add(i);
        }
        ix
    }

    /// The hosts.
    pub fn hosts(&self) -> &[HostView] {
        &self.hosts
    }

    fn reload(&mut self, p: usize, before: usize) {
        let h = &self.hosts[p];
        if h.active {
            self.load.remove(&(before, h.id.clone(), p));
            self.load.insert((self.on[p].len(), h.id.clone(), p));
        }
    }

    /// A container now holds its place.
    pub fn add(&mut self, i: InstanceView) {
        let Some(&p) = self.pos.get(&i.host_id) else {
            self.stray.push(i);
            return;
        };
        if let Some(k) = service_key(&i) {
            *self
                .same
                .entry(k.clone())
                .or_default()
                .entry(p)
                .or_default() += 1;
        }
        let before = self.on[p].len();
        self.on[p].push(i);
        self.reload(p, before);
    }

    /// A container no longer holds its place.
    pub fn remove(&mut self, uuid: &str, host_id: &str) {
        let Some(&p) = self.pos.get(host_id) else {
            self.stray.retain(|i| i.uuid != uuid);
            return;
        };
        let Some(at) = self.on[p].iter().position(|i| i.uuid == uuid) else {
            return;
        };
        let before = self.on[p].len();
        let i = self.on[p].swap_remove(at);
        if let Some(k) = service_key(&i) {
            if let Some(m) = self.same.get_mut(k) {
                if let Some(n) = m.get_mut(&p) {
                    *n -= 1;
                    if *n == 0 {
                        m.remove(&p);
                    }
                }
            }
        }
        self.reload(p, before);
    }

    /// Every instance (for the full algorithm).
    pub fn instances(&self) -> Vec<InstanceView> {
        self.on
            .iter()
            .flatten()
            .chain(self.stray.iter())
            .cloned()
            .collect()
    }

    /// Place `req`: the host [`super::place`] would choose over the same
    /// hosts and instances.
    pub fn place(&self, req: &Request) -> Result<Placement, NoPlacement> {
        super::duplicate_ports(req)?;
        let (rules, bad) = rules::parse_rules(&req.labels, &req.stack, &req.service);
        if bad.is_empty() {
            if let Some(p) = self.first_fit(req, &rules) {
                return Ok(p);
            }
        }
        super::place(&self.hosts, &self.instances(), req)
    }

    /// Walk the candidates in order; the first passing every hard check
    /// and soft rule.
    fn first_fit(&self, req: &Request, rules: &[rules::Rule]) -> Option<Placement> {
        let me = format!("{}/{}", req.stack, req.service);
        let same = self.same.get(&me);
        let try_host = |p: usize| -> Option<Placement> {
            let h = &self.hosts[p];
            let on: Vec<&InstanceView> = self.on[p].iter().collect();
            // The cheap checks first: most hosts a walk passes fail one.
            if !super::may_fit(h, &on, req, rules)
                || !rules
                    .iter()
                    .filter(|r| r.soft)
                    .all(|r| rules::satisfied(r, h, &on))
            {
                return None;
            }
            let ports = super::hard_check(h, &on, req, rules).ok()?;
            Some(Placement {
                host_id: h.id.clone(),
                ports,
                dropped: Vec::new(),
            })
        };
        if let Some(id) = &req.requested_host {
            let p = *self.pos.get(id)?;
            return self.hosts[p].active.then(|| try_host(p)).flatten();
        }
        let has = |p: usize| same.is_some_and(|m| m.contains_key(&p));
        for (_, _, p) in &self.load {
            if has(*p) {
                continue;
            }
            if let Some(found) = try_host(*p) {
                return Some(found);
            }
        }
        let mut rest: Vec<(usize, usize, &str, usize)> = same
            .into_iter()
            .flatten()
            .filter(|(p, _)| self.hosts[**p].active)
            .map(|(p, n)| (*n, self.on[*p].len(), self.hosts[*p].id.as_str(), *p))
            .collect();
        rest.sort();
        rest.into_iter().find_map(|(_, _, _, p)| try_host(p))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{place, system_labels, HostPort, Protocol};
    use super::*;

    fn host(id: &str, labels: &[(&str, &str)]) -> HostView {
        HostView {
            id: id.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            active: true,
            ..HostView::default()
        }
    }

    /// A small deterministic generator (no dependency for a test).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    /// The index answers exactly what the reference algorithm answers,
    /// placement after placement, over hosts with labels, fixed and random
    /// ports, hard and soft affinity, and pinned hosts.
    #[test]
    fn agrees_with_place_on_random_clusters() {
        let mut g = Lcg(7);
        for round in 0..30 {
            let hosts: Vec<HostView> = (0..(3 + g.next(12)))
                .map(|i| {
                    let mut h = host(
                        &format!("1h{i}"),
                        &[("zone", ["a", "b", "c"][(i % 3) as usize])],
                    );
                    h.active = g.next(8) != 0;
                    h
                })
                .collect();
            let mut ix = Index::new(hosts.clone(), Vec::new());
            let mut all: Vec<InstanceView> = Vec::new();
            for n in 0..(20 + g.next(40)) {
                let svc = format!("s{}", g.next(5));
                let mut labels = system_labels("st", &svc);
                match g.next(6) {
                    0 => {
                        labels.insert(
                            "io.rancher.scheduler.affinity:host_label".into(),
                            "zone=a".into(),
                        );
                    }
                    1 => {
                        labels.insert(
                            "io.rancher.scheduler.affinity:container_label_ne".into(),
                            "io.rancher.stack_service.name=st/s1".into(),
                        );
                    }
                    2 => {
                        labels.insert(
                            "io.rancher.scheduler.affinity:host_label_soft".into(),
                            "zone=b".into(),
                        );
                    }
                    _ => {}
                }
                let ports = match g.next(4) {
                    0 => vec![HostPort {
                        bind_ip: None,
                        port: Some(8000 + g.next(3) as u16),
                        protocol: Protocol::Tcp,
                    }],
                    1 => vec![HostPort {
                        bind_ip: None,
                        port: None,
                        protocol: Protocol::Tcp,
                    }],
                    _ => Vec::new(),
                };
                let req = Request {
                    name: format!("st-{svc}-{n}"),
                    stack: "st".into(),
                    service: svc.clone(),
                    labels: labels.clone(),
                    ports,
                    requested_host: (g.next(10) == 0)
                        .then(|| hosts[g.next(hosts.len() as u64) as usize].id.clone()),
                    port_range: (49153, 49156),
                    ..Request::default()
                };
                let want = place(&hosts, &all, &req);
                let got = ix.place(&req);
                assert_eq!(got, want, "round {round}, placement {n}: {req:?}");
                if let Ok(p) = got {
                    let inst = InstanceView {
                        name: req.name.clone(),
                        uuid: format!("1i{n}"),
                        host_id: p.host_id.clone(),
                        labels: labels.clone(),
                        ports: p.ports.clone(),
                        ..InstanceView::default()
                    };
                    ix.add(inst.clone());
                    all.push(inst);
                }
                // Now and then a container goes.
                if g.next(5) == 0 && !all.is_empty() {
                    let i = all.remove(g.next(all.len() as u64) as usize);
                    ix.remove(&i.uuid, &i.host_id);
                }
            }
        }
    }
}
