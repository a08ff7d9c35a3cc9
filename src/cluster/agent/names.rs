//! Service discovery names over the agent's [`View`]: the index the DNS
//! server answers from, rebuilt on every view change (a rebuild at 1,000
//! containers is well under a millisecond; queries then cost one or two
//! hash lookups).
//!
//! Names (all lower-cased; the zone is `rancher.internal`):
//! - `<service>.<stack>` and `<service>.<stack>.rancher.internal`; a bare
//!   `<service>` in the querier's stack (else in the one stack that has
//!   it, the first stack by name when several do);
//! - `<sidekick>.<primary>.<stack>.rancher.internal`;
//! - `<container-name>` and `<container-name>.rancher.internal`;
//! - per querier (found by its address): its service's `links` aliases,
//!   `<alias>`, `<alias>.<stack>` and `<alias>.<stack>.rancher.internal`;
//! - a DNS alias service answers the union of its links' answers; an
//!   external service its IPs (A) or its hostname (CNAME);
//! - `rancher-metadata[.rancher.internal]`: the metadata address.
//!
//! A service answers the addresses of its containers that run and are
//! healthy (or have no health check). When none is, the addresses it
//! answered last that still run stay (else any running one), so a name
//! never empties while something could serve it.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::envview::View;
use crate::cluster::protocol::{EnvContainer, EnvLink};

/// The DNS zone of the environment.
pub const ZONE: &str = "rancher.internal";

/// What a name stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Addresses (possibly none: the name exists, nothing serves it).
    A(Vec<Ipv4Addr>),
    /// Another name (an external service's hostname).
    Cname(String),
}

/// The outcome of a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A name of the environment.
    Found(&'a Answer),
    /// A name in `rancher.internal` that does not exist.
    NxDomain,
    /// Not ours: ask the host's resolvers.
    Forward,
}

/// A container that queries: its stack and its links.
#[derive(Clone, Debug, Default)]
struct Client {
    stack: String,
    aliases: HashMap<String, Answer>,
}

/// The names of an environment.
#[derive(Clone, Debug, Default)]
pub struct Index {
    names: HashMap<String, Answer>,
    /// Bare service names: answer of the first stack (by name) with one.
    bare: HashMap<String, (String, Answer)>,
    clients: HashMap<Ipv4Addr, Client>,
    /// Addresses each service (by id) answered: the never-empty rule.
    served: HashMap<String, Vec<Ipv4Addr>>,
}

/// What `link` (of a service in `from_stack`) names.
fn target<'a, 'b>(
    by_name: &HashMap<(String, String), &'b str>,
    own: &'a HashMap<&'b str, Answer>,
    link: &EnvLink,
    from_stack: &str,
) -> Option<&'a Answer> {
    let stack = link
        .stack
        .as_deref()
        .map_or_else(|| from_stack.to_string(), str::to_lowercase);
    let id: &str = by_name.get(&(stack, link.service.to_lowercase()))?;
    own.get(id)
}

fn ip_of(c: &EnvContainer) -> Option<Ipv4Addr> {
    c.primary_ip.as_deref()?.parse().ok()
}

fn healthy(c: &EnvContainer) -> bool {
    c.state == "running" && matches!(c.health_state.as_deref(), None | Some("healthy"))
}

impl Index {
    /// Build the index of `view`; `prev` is the index it replaces (for the
    /// never-empty rule); `metadata` the metadata service's address.
    pub fn build(view: &View, prev: Option<&Index>, metadata: Ipv4Addr) -> Index {
        let stack_name =
            |id: &str| -> Option<String> { view.stacks.get(id).map(|s| s.name.to_lowercase()) };
        // Containers per service.
        let mut members: HashMap<&str, Vec<&EnvContainer>> = HashMap::new();
        for c in view.containers.values() {
            if let Some(s) = &c.service_id {
                members.entry(s.as_str()).or_default().push(c);
            }
        }
        let mut ix = Index::default();
        // (stack, service) → service id, and each service's own answer.
        let mut by_name: HashMap<(String, String), &str> = HashMap::new();
        let mut own: HashMap<&str, Answer> = HashMap::new();
        for s in view.services.values() {
            let Some(stack) = stack_name(&s.stack_id) else {
                continue;
            };
            by_name.insert((stack, s.name.to_lowercase()), s.id.as_str());
            let answer = match s.kind.as_str() {
                "externalService" => match &s.hostname {
                    Some(h) if s.external_ips.is_empty() => {
                        Answer::Cname(h.trim_end_matches('.').to_lowercase())
                    }
                    _ => Answer::A(
                        s.external_ips
                            .iter()
                            .filter_map(|i| i.parse().ok())
                            .collect(),
                    ),
                },
                "dnsService" => continue,
                _ => {
                    let cs = members.get(s.id.as_str()).map_or(&[][..], Vec::as_slice);
                    let mut ips: Vec<Ipv4Addr> = cs
                        .iter()
                        .filter(|c| healthy(c))
                        .filter_map(|c| ip_of(c))
                        .collect();
                    if ips.is_empty() {
                        let running: Vec<Ipv4Addr> = cs
                            .iter()
                            .filter(|c| c.state == "running")
                            .filter_map(|c| ip_of(c))
                            .collect();
                        ips = prev
                            .and_then(|p| p.served.get(&s.id))
                            .map(|last| {
                                last.iter()
                                    .copied()
                                    .filter(|i| running.contains(i))
                                    .collect()
                            })
                            .unwrap_or_default();
                        if ips.is_empty() {
                            ips = running;
                        }
                    }
                    ips.sort_unstable();
                    ips.dedup();
                    ix.served.insert(s.id.clone(), ips.clone());
                    Answer::A(ips)
                }
            };
            own.insert(s.id.as_str(), answer);
        }
        // DNS alias services: the union of their links.
        let mut aliases: Vec<(&str, Answer)> = Vec::new();
        for s in view.services.values().filter(|s| s.kind == "dnsService") {
            let Some(stack) = stack_name(&s.stack_id) else {
                continue;
            };
            let found: Vec<&Answer> = s
                .links
                .iter()
                .filter_map(|l| target(&by_name, &own, l, &stack))
                .collect();
            let answer = match found.as_slice() {
                [Answer::Cname(c)] => Answer::Cname(c.clone()),
                _ => {
                    let mut ips: Vec<Ipv4Addr> = found
                        .iter()
                        .flat_map(|a| match a {
                            Answer::A(ips) => ips.clone(),
                            Answer::Cname(_) => Vec::new(),
                        })
                        .collect();
                    ips.sort_unstable();
                    ips.dedup();
                    Answer::A(ips)
                }
            };
            aliases.push((s.id.as_str(), answer));
        }
        own.extend(aliases);
        // Global names.
        let mut stacks_sorted: Vec<(&String, &str)> = by_name
            .iter()
            .map(|((stack, _), id)| (stack, *id))
            .collect();
        stacks_sorted.sort();
        for (stack, id) in stacks_sorted {
            let (Some(s), Some(answer)) = (view.services.get(id), own.get(id)) else {
                continue;
            };
            let name = s.name.to_lowercase();
            ix.names.insert(format!("{name}.{stack}"), answer.clone());
            ix.names
                .insert(format!("{name}.{stack}.{ZONE}"), answer.clone());
            if let Some(p) = &s.primary_service {
                let p = p.to_lowercase();
                ix.names
                    .insert(format!("{name}.{p}.{stack}.{ZONE}"), answer.clone());
                ix.names
                    .insert(format!("{name}.{p}.{stack}"), answer.clone());
            }
            ix.bare
                .entry(name)
                .or_insert_with(|| (stack.clone(), answer.clone()));
        }
        for c in view.containers.values() {
            if c.state != "running" || c.name.is_empty() {
                continue;
            }
            if let Some(ip) = ip_of(c) {
                let name = c.name.to_lowercase();
                ix.names
                    .insert(format!("{name}.{ZONE}"), Answer::A(vec![ip]));
                ix.names.entry(name).or_insert(Answer::A(vec![ip]));
            }
        }
        let meta = Answer::A(vec![metadata]);
        ix.names.insert("rancher-metadata".into(), meta.clone());
        ix.names.insert(format!("rancher-metadata.{ZONE}"), meta);
        // Queriers: their stack and link aliases.
        for c in view.containers.values() {
            let Some(ip) = ip_of(c) else { continue };
            let stack = c
                .stack_id
                .as_deref()
                .and_then(stack_name)
                .unwrap_or_default();
            let mut client = Client {
                stack: stack.clone(),
                aliases: HashMap::new(),
            };
            let links = c
                .service_id
                .as_deref()
                .and_then(|s| view.services.get(s))
                .map_or(&[][..], |s| s.links.as_slice());
            for l in links {
                if let Some(a) = target(&by_name, &own, l, &stack) {
                    let alias = l.alias.to_lowercase();
                    client
                        .aliases
                        .insert(format!("{alias}.{stack}.{ZONE}"), a.clone());
                    client.aliases.insert(format!("{alias}.{stack}"), a.clone());
                    client.aliases.insert(alias, a.clone());
                }
            }
            ix.clients.insert(ip, client);
        }
        ix
    }

    /// Look `name` up (lower-case, no trailing dot) for a querier at `from`.
    pub fn lookup(&self, name: &str, from: Option<Ipv4Addr>) -> Lookup<'_> {
        let client = from.and_then(|ip| self.clients.get(&ip));
        if let Some(a) = client.and_then(|c| c.aliases.get(name)) {
            return Lookup::Found(a);
        }
        if let Some(a) = self.names.get(name) {
            return Lookup::Found(a);
        }
        if !name.contains('.') {
            if let Some(c) = client.filter(|c| !c.stack.is_empty()) {
                if let Some(a) = self.names.get(&format!("{name}.{}", c.stack)) {
                    return Lookup::Found(a);
                }
            }
            if let Some((_, a)) = self.bare.get(name) {
                return Lookup::Found(a);
            }
        }
        if name == ZONE || name.ends_with(".rancher.internal") {
            return Lookup::NxDomain;
        }
        Lookup::Forward
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cluster::protocol::{EnvService, EnvStack};

    const META: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 250);

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    struct Env(View);

    impl Env {
        fn new() -> Env {
            Env(View::default())
        }
        fn stack(&mut self, id: &str, name: &str) -> &mut Env {
            self.0.stacks.insert(
                id.into(),
                EnvStack {
                    id: id.into(),
                    name: name.into(),
                    state: "active".into(),
                },
            );
            self
        }
        fn service(&mut self, s: EnvService) -> &mut Env {
            self.0.services.insert(s.id.clone(), s);
            self
        }
        fn container(
            &mut self,
            id: &str,
            name: &str,
            svc: &str,
            stack: &str,
            addr: &str,
            health: Option<&str>,
        ) -> &mut Env {
            self.0.containers.insert(
                id.into(),
                EnvContainer {
                    id: id.into(),
                    name: name.into(),
                    service_id: Some(svc.into()),
                    stack_id: Some(stack.into()),
                    state: "running".into(),
                    health_state: health.map(str::to_string),
                    primary_ip: Some(addr.into()),
                    ..EnvContainer::default()
                },
            );
            self
        }
    }

    fn svc(id: &str, name: &str, stack: &str) -> EnvService {
        EnvService {
            id: id.into(),
            name: name.into(),
            stack_id: stack.into(),
            kind: "service".into(),
            ..EnvService::default()
        }
    }

    fn link(stack: Option<&str>, service: &str, alias: &str) -> EnvLink {
        EnvLink {
            stack: stack.map(str::to_string),
            service: service.into(),
            alias: alias.into(),
        }
    }

    /// Stack `app` (web ×3, one unhealthy; db; client linking db as
    /// mysql; alias `both` = web + db; external `ext` by IP, `cn` by
    /// hostname; sidekick `log` of web) and stack `other` (web ×1).
    pub(crate) fn sample() -> View {
        let mut e = Env::new();
        e.stack("1st1", "app").stack("1st2", "Other");
        e.service(svc("1s1", "web", "1st1"))
            .service(svc("1s2", "db", "1st1"))
            .service(EnvService {
                links: vec![link(None, "db", "mysql"), link(Some("other"), "web", "ow")],
                ..svc("1s3", "client", "1st1")
            })
            .service(EnvService {
                kind: "dnsService".into(),
                links: vec![link(None, "web", "web"), link(None, "db", "db")],
                ..svc("1s4", "both", "1st1")
            })
            .service(EnvService {
                kind: "externalService".into(),
                external_ips: vec!["192.0.2.7".into(), "192.0.2.8".into()],
                ..svc("1s5", "ext", "1st1")
            })
            .service(EnvService {
                kind: "externalService".into(),
                hostname: Some("Example.COM.".into()),
                ..svc("1s6", "cn", "1st1")
            })
            .service(EnvService {
                primary_service: Some("web".into()),
                ..svc("1s7", "log", "1st1")
            })
            .service(svc("1s8", "WEB", "1st2"));
        e.container("1i1", "app-web-1", "1s1", "1st1", "10.42.0.1", None)
            .container(
                "1i2",
                "app-web-2",
                "1s1",
                "1st1",
                "10.42.0.2",
                Some("healthy"),
            )
            .container(
                "1i3",
                "app-web-3",
                "1s1",
                "1st1",
                "10.42.0.3",
                Some("unhealthy"),
            )
            .container("1i4", "app-db-1", "1s2", "1st1", "10.42.0.4", None)
            .container("1i5", "app-client-1", "1s3", "1st1", "10.42.0.5", None)
            .container("1i6", "app-log-1", "1s7", "1st1", "10.42.0.6", None)
            .container("1i7", "other-web-1", "1s8", "1st2", "10.42.1.1", None);
        e.0
    }

    fn a(ips: &[&str]) -> Answer {
        Answer::A(ips.iter().map(|s| ip(s)).collect())
    }

    #[test]
    fn every_name_form_answers() {
        let ix = Index::build(&sample(), None, META);
        let web = a(&["10.42.0.1", "10.42.0.2"]);
        let client = Some(ip("10.42.0.5"));
        let table: &[(&str, Option<Ipv4Addr>, Lookup<'_>)] = &[
            ("web.app", None, Lookup::Found(&web)),
            ("web.app.rancher.internal", None, Lookup::Found(&web)),
            ("web", client, Lookup::Found(&web)),
            // Bare name, no querier: the first stack by name that has it.
            ("web", None, Lookup::Found(&web)),
            ("web.other", client, Lookup::Found(&a(&["10.42.1.1"]))),
            (
                "web.other.rancher.internal",
                None,
                Lookup::Found(&a(&["10.42.1.1"])),
            ),
            (
                "log.web.app.rancher.internal",
                None,
                Lookup::Found(&a(&["10.42.0.6"])),
            ),
            ("app-web-3", None, Lookup::Found(&a(&["10.42.0.3"]))),
            (
                "app-db-1.rancher.internal",
                None,
                Lookup::Found(&a(&["10.42.0.4"])),
            ),
            (
                "both.app",
                None,
                Lookup::Found(&a(&["10.42.0.1", "10.42.0.2", "10.42.0.4"])),
            ),
            (
                "ext.app",
                None,
                Lookup::Found(&a(&["192.0.2.7", "192.0.2.8"])),
            ),
            (
                "cn.app.rancher.internal",
                None,
                Lookup::Found(&Answer::Cname("example.com".into())),
            ),
            (
                "rancher-metadata",
                None,
                Lookup::Found(&a(&["169.254.169.250"])),
            ),
            ("mysql", client, Lookup::Found(&a(&["10.42.0.4"]))),
            (
                "mysql.app.rancher.internal",
                client,
                Lookup::Found(&a(&["10.42.0.4"])),
            ),
            ("ow", client, Lookup::Found(&a(&["10.42.1.1"]))),
            // Links are per querier.
            ("mysql", Some(ip("10.42.0.1")), Lookup::Forward),
            ("mysql.app.rancher.internal", None, Lookup::NxDomain),
            ("nope.app.rancher.internal", None, Lookup::NxDomain),
            ("example.org", client, Lookup::Forward),
        ];
        for (name, from, want) in table {
            assert_eq!(&ix.lookup(name, *from), want, "{name} from {from:?}");
        }
    }

    #[test]
    fn only_healthy_containers_and_the_name_never_empties() {
        let mut v = sample();
        let ix = Index::build(&v, None, META);
        assert_eq!(
            ix.lookup("web.app", None),
            Lookup::Found(&a(&["10.42.0.1", "10.42.0.2"]))
        );
        // 1 turns unhealthy: only 2 answers.
        v.containers.get_mut("1i1").unwrap().health_state = Some("unhealthy".into());
        let ix = Index::build(&v, Some(&ix), META);
        assert_eq!(
            ix.lookup("web.app", None),
            Lookup::Found(&a(&["10.42.0.2"]))
        );
        // 2 too: none is healthy, the last one answered stays.
        v.containers.get_mut("1i2").unwrap().health_state = Some("unhealthy".into());
        let ix = Index::build(&v, Some(&ix), META);
        assert_eq!(
            ix.lookup("web.app", None),
            Lookup::Found(&a(&["10.42.0.2"]))
        );
        // … until it stops running: then any running one.
        v.containers.get_mut("1i2").unwrap().state = "stopped".into();
        let ix = Index::build(&v, Some(&ix), META);
        assert_eq!(
            ix.lookup("web.app", None),
            Lookup::Found(&a(&["10.42.0.1", "10.42.0.3"]))
        );
        // 3 heals: only it.
        v.containers.get_mut("1i3").unwrap().health_state = Some("healthy".into());
        let ix = Index::build(&v, Some(&ix), META);
        assert_eq!(
            ix.lookup("web.app", None),
            Lookup::Found(&a(&["10.42.0.3"]))
        );
        // A stopped container's own name is gone, an initializing one is
        // not a service answer.
        assert_eq!(ix.lookup("app-web-2", None), Lookup::Forward);
        v.containers.get_mut("1i4").unwrap().health_state = Some("initializing".into());
        v.containers.insert(
            "1i9".into(),
            EnvContainer {
                id: "1i9".into(),
                name: "app-db-2".into(),
                service_id: Some("1s2".into()),
                stack_id: Some("1st1".into()),
                state: "running".into(),
                primary_ip: Some("10.42.0.9".into()),
                ..EnvContainer::default()
            },
        );
        let ix = Index::build(&v, Some(&ix), META);
        assert_eq!(ix.lookup("db.app", None), Lookup::Found(&a(&["10.42.0.9"])));
    }

    #[test]
    fn names_are_case_insensitive_in_the_index() {
        let ix = Index::build(&sample(), None, META);
        // The server lower-cases the query; upper-case service and stack
        // names in the environment are indexed lower-case.
        assert_eq!(
            ix.lookup("web.other", None),
            Lookup::Found(&a(&["10.42.1.1"]))
        );
    }
}
