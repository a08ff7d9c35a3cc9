//! Table tests of the pure reconciler: a snapshot (hosts, a stack, its
//! services and containers as the store holds them) and a time in, the
//! changes out. One row per situation; no server, no clock, no docker.

use serde_json::{json, Value};

use super::{reconcile, Changes, Snapshot};
use crate::cluster::model::{Kind, Resource};
use crate::cluster::plan::compose::{
    HealthCheck, HealthStrategy, LaunchConfig, ServiceKind, ServiceSpec, UpgradeStrategy,
};

const NOW: i64 = 1_800_000_000_000;
const P: u64 = 5;

fn host(id: u64) -> Resource {
    let mut h = Resource::new(Kind::Host, id, P, "active");
    h.set("agentState", "active");
    h.set("agentIpAddress", format!("10.0.0.{id}"));
    h.set("labels", json!({}));
    h
}

fn spec(name: &str, scale: u32) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        scale,
        launch_config: LaunchConfig {
            image: "busybox".into(),
            ..LaunchConfig::default()
        },
        ..ServiceSpec::default()
    }
}

fn checked(mut s: ServiceSpec, strategy: HealthStrategy) -> ServiceSpec {
    let mut hc = HealthCheck::new(80);
    hc.strategy = strategy;
    s.launch_config.health_check = Some(hc);
    s
}

fn service(id: u64, state: &str, sp: &ServiceSpec) -> Resource {
    let mut s = Resource::new(Kind::Service, id, P, state);
    s.set("name", sp.name.clone());
    s.set("stackId", "1st1");
    s.set("scale", sp.scale);
    s.set("healthState", "healthy");
    s.set("_stack", "app");
    s.set("_spec", serde_json::to_value(sp).unwrap());
    s
}

/// Container `id` of service `s`, index `idx`, on `host`.
fn ct(id: u64, s: &Resource, idx: u32, host: u64, state: &str) -> Resource {
    let name = format!("app-{}-{idx}", s.str("name").unwrap());
    let mut c = Resource::new(Kind::Container, id, P, state);
    c.host = host;
    c.set("hostId", format!("1h{host}"));
    c.set("dockerName", format!("r-{name}"));
    c.set("name", name);
    c.set("serviceId", s.api_id());
    c.set("stackId", "1st1");
    c.set("serviceIndex", idx);
    c.set(
        "desiredState",
        if matches!(state, "stopped") {
            "stopped"
        } else {
            "running"
        },
    );
    c.set(
        "_gen",
        s.data.get("_generation").cloned().unwrap_or(json!(0)),
    );
    c
}

fn health(mut c: Resource, h: &str) -> Resource {
    c.set("healthCheck", json!({"port": 80}));
    c.set("healthState", h);
    c
}

fn stack() -> Resource {
    let mut st = Resource::new(Kind::Stack, 1, P, "active");
    st.set("name", "app");
    st.set("healthState", "healthy");
    st
}

fn snap(hosts: Vec<Resource>, services: Vec<Resource>, containers: Vec<Resource>) -> Snapshot {
    let mut p = Resource::new(Kind::Project, P, 0, "active");
    p.set(
        "servicesPortRange",
        json!({"startPort": 49153, "endPort": 65535}),
    );
    Snapshot::new(vec![p], hosts, vec![stack()], services, containers, 100)
}

/// What a pass did, in words a row can state.
#[derive(Debug, Default, PartialEq)]
struct Did {
    /// `name@host` of new containers.
    created: Vec<String>,
    /// Names (ids) whose desired state became `removed`.
    removed: Vec<u64>,
    /// Ids whose desired state became `stopped`.
    stopped: Vec<u64>,
    /// Ids whose desired state became `running` again.
    started: Vec<u64>,
    /// Service states the pass changed, by id.
    service: Vec<(u64, String)>,
}

fn did(before: &Snapshot, ch: &Changes) -> Did {
    let mut d = Did::default();
    for r in &ch.rows {
        match r.kind {
            Kind::Container => {
                let old = before.containers().iter().find(|c| c.id == r.id);
                let desired = r.str("desiredState").unwrap_or_default();
                match old {
                    None if r.host != 0 => {
                        d.created
                            .push(format!("{}@{}", r.str("name").unwrap_or_default(), r.host))
                    }
                    None => {}
                    Some(o) if o.str("desiredState") != Some(desired) => match desired {
                        "removed" => d.removed.push(r.id),
                        "stopped" => d.stopped.push(r.id),
                        "running" => d.started.push(r.id),
                        _ => {}
                    },
                    Some(_) => {}
                }
            }
            Kind::Service => {
                let old = before.services.iter().find(|s| s.id == r.id);
                if old.is_none_or(|o| o.state != r.state) {
                    d.service.push((r.id, r.state.clone()));
                }
            }
            _ => {}
        }
    }
    d.created.sort();
    d.removed.sort();
    d
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn situations() {
    let web = spec("web", 2);
    let active = service(10, "active", &web);
    let one_host = vec![host(1)];
    let two_hosts = vec![host(1), host(2)];
    let lost = {
        let mut h = host(2);
        h.set("agentState", "disconnected");
        vec![host(1), h]
    };
    let checked_web = service(
        10,
        "active",
        &checked(spec("web", 2), HealthStrategy::Recreate),
    );
    struct Row {
        what: &'static str,
        snap: Snapshot,
        want: Did,
    }
    let rows = vec![
        Row {
            what: "scale up from nothing: spread over the hosts",
            snap: snap(two_hosts.clone(), vec![service(10, "activating", &web)], vec![]),
            want: Did {
                created: names(&["app-web-1@1", "app-web-2@2"]),
                // Active once they run (the agents report).
                ..Did::default()
            },
        },
        Row {
            what: "at scale: nothing to do",
            snap: snap(
                one_host.clone(),
                vec![active.clone()],
                vec![
                    ct(1, &active, 1, 1, "running"),
                    ct(2, &active, 2, 1, "running"),
                ],
            ),
            want: Did::default(),
        },
        Row {
            what: "scale down: the highest index goes",
            snap: snap(
                one_host.clone(),
                vec![service(10, "active", &spec("web", 1))],
                vec![
                    ct(1, &active, 1, 1, "running"),
                    ct(2, &active, 2, 1, "running"),
                ],
            ),
            want: Did {
                removed: vec![2],
                ..Did::default()
            },
        },
        Row {
            what: "heal: a failed container is replaced on the same index",
            snap: snap(
                one_host.clone(),
                vec![active.clone()],
                vec![
                    ct(1, &active, 1, 1, "running"),
                    ct(2, &active, 2, 1, "error"),
                ],
            ),
            // The replacement waits for the failed one's docker name.
            want: Did {
                removed: vec![2],
                ..Did::default()
            },
        },
        Row {
            what: "heal on another host: the replacement does not wait",
            snap: {
                let mut full = host(1);
                full.set("labels", json!({"full": "yes"}));
                let pinned = service(10, "active", &{
                    let mut s = spec("web", 2);
                    s.launch_config.labels.insert(
                        "io.rancher.scheduler.affinity:host_label_ne".into(),
                        "full=yes".into(),
                    );
                    s
                });
                snap(
                    vec![full, host(2)],
                    vec![pinned.clone()],
                    vec![
                        ct(1, &pinned, 1, 2, "running"),
                        ct(2, &pinned, 2, 1, "error"),
                    ],
                )
            },
            want: Did {
                created: names(&["app-web-2@2"]),
                removed: vec![2],
                ..Did::default()
            },
        },
        Row {
            what: "a stopped container starts again",
            snap: snap(
                one_host.clone(),
                vec![active.clone()],
                vec![
                    ct(1, &active, 1, 1, "running"),
                    ct(2, &active, 2, 1, "stopped"),
                ],
            ),
            want: Did {
                started: vec![2],
                ..Did::default()
            },
        },
        Row {
            what: "unhealthy under recreate: removed, replaced once it is gone",
            snap: snap(
                one_host.clone(),
                vec![checked_web.clone()],
                vec![
                    health(ct(1, &checked_web, 1, 1, "running"), "healthy"),
                    health(ct(2, &checked_web, 2, 1, "running"), "unhealthy"),
                ],
            ),
            want: Did {
                removed: vec![2],
                ..Did::default()
            },
        },
        Row {
            what: "the replacement initializing while the old one is removed: no second one",
            snap: snap(
                two_hosts.clone(),
                vec![checked_web.clone()],
                vec![
                    health(ct(1, &checked_web, 1, 1, "running"), "healthy"),
                    {
                        let mut c = health(ct(2, &checked_web, 2, 1, "removing"), "unhealthy");
                        c.set("desiredState", "removed");
                        c
                    },
                    health(ct(3, &checked_web, 2, 2, "running"), "initializing"),
                ],
            ),
            want: Did {
                ..Did::default()
            },
        },
        Row {
            what: "recreateOnQuorum 2 of 3, two broken in one pass: none replaced",
            snap: {
                let s = service(
                    10,
                    "active",
                    &checked(
                        spec("web", 3),
                        HealthStrategy::RecreateOnQuorum { quorum: 2 },
                    ),
                );
                snap(
                    one_host.clone(),
                    vec![s.clone()],
                    vec![
                        health(ct(1, &s, 1, 1, "running"), "healthy"),
                        health(ct(2, &s, 2, 1, "running"), "unhealthy"),
                        health(ct(3, &s, 3, 1, "running"), "unhealthy"),
                    ],
                )
            },
            want: Did {
                ..Did::default()
            },
        },
        Row {
            what: "recreateOnQuorum: the second broken one waits while the first's replacement initializes",
            snap: {
                let s = service(
                    10,
                    "active",
                    &checked(
                        spec("web", 3),
                        HealthStrategy::RecreateOnQuorum { quorum: 2 },
                    ),
                );
                snap(
                    one_host.clone(),
                    vec![s.clone()],
                    vec![
                        health(ct(1, &s, 1, 1, "running"), "healthy"),
                        health(ct(4, &s, 2, 1, "running"), "initializing"),
                        health(ct(3, &s, 3, 1, "running"), "unhealthy"),
                    ],
                )
            },
            want: Did {
                ..Did::default()
            },
        },
        Row {
            what: "host lost: its health-checked container is replaced elsewhere",
            snap: snap(
                lost.clone(),
                vec![checked_web.clone()],
                vec![
                    health(ct(1, &checked_web, 1, 1, "running"), "healthy"),
                    health(ct(2, &checked_web, 2, 2, "running"), "healthy"),
                ],
            ),
            want: Did {
                created: names(&["app-web-2@1"]),
                removed: vec![2],
                ..Did::default()
            },
        },
        Row {
            what: "unplaceable: no host answers; an error row says why, none placed",
            snap: snap(
                vec![{
                    let mut h = host(1);
                    h.state = "inactive".into();
                    h
                }],
                vec![service(10, "activating", &web)],
                vec![],
            ),
            want: Did::default(),
        },
        Row {
            what: "deactivate: containers stop",
            snap: snap(
                one_host.clone(),
                vec![service(10, "deactivating", &web)],
                vec![
                    ct(1, &active, 1, 1, "running"),
                    ct(2, &active, 2, 1, "running"),
                ],
            ),
            want: Did {
                stopped: vec![1, 2],
                ..Did::default()
            },
        },
        Row {
            what: "remove: containers go, the service after them",
            snap: snap(
                one_host.clone(),
                vec![service(10, "removing", &web)],
                vec![ct(1, &active, 1, 1, "running")],
            ),
            want: Did {
                removed: vec![1],
                ..Did::default()
            },
        },
        Row {
            what: "global: one per host",
            snap: {
                let mut g = spec("agent", 1);
                g.global = true;
                snap(two_hosts.clone(), vec![service(11, "activating", &g)], vec![])
            },
            want: Did {
                created: names(&["app-agent-1@1", "app-agent-2@2"]),
                ..Did::default()
            },
        },
        Row {
            what: "a DNS alias runs no containers and is active at once",
            snap: {
                let mut d = spec("alias", 1);
                d.kind = ServiceKind::DnsService;
                d.launch_config.image = "rancher/dns-service".into();
                snap(one_host.clone(), vec![service(12, "activating", &d)], vec![])
            },
            want: Did {
                service: vec![(12, "active".into())],
                ..Did::default()
            },
        },
        Row {
            what: "an external service runs no containers",
            snap: {
                let mut d = spec("ext", 1);
                d.kind = ServiceKind::ExternalService;
                d.external_ips = vec!["192.0.2.7".into()];
                snap(one_host.clone(), vec![service(13, "activating", &d)], vec![])
            },
            want: Did {
                service: vec![(13, "active".into())],
                ..Did::default()
            },
        },
    ];
    for r in rows {
        let ch = reconcile(&r.snap, NOW);
        let got = did(&r.snap, &ch);
        assert_eq!(got, r.want, "{}", r.what);
        // Re-running on the result changes nothing more than the first
        // pass would have decided again (no duplicate creates).
        for row in &ch.rows {
            assert_eq!(
                ch.rows
                    .iter()
                    .filter(|x| x.kind == row.kind && x.id == row.id)
                    .count(),
                1,
                "{}: one row per resource",
                r.what
            );
        }
    }
}

/// Apply a pass's rows to the snapshot, as the driver's commit does.
fn apply(s: &mut Snapshot, ch: &Changes) {
    s.apply(ch.rows.iter().cloned());
    for r in ch.rows.iter().filter(|r| r.kind == Kind::Container) {
        s.next_container_id = s.next_container_id.max(r.id + 1);
    }
}

/// Change container `id` as a report from its agent would.
fn edit(s: &mut Snapshot, id: u64, f: impl Fn(&mut Resource)) {
    let rows: Vec<Resource> = s
        .containers()
        .iter()
        .filter(|c| c.id == id)
        .map(|c| {
            let mut c = c.clone();
            f(&mut c);
            c
        })
        .collect();
    assert!(!rows.is_empty(), "container {id} is in the snapshot");
    s.apply(rows);
}

#[test]
fn an_unhealthy_container_gets_exactly_one_replacement_once_its_predecessor_is_gone() {
    let web = service(
        10,
        "active",
        &checked(spec("web", 2), HealthStrategy::Recreate),
    );
    let mut s = snap(
        vec![host(1)],
        vec![web.clone()],
        vec![
            health(ct(1, &web, 1, 1, "running"), "healthy"),
            health(ct(2, &web, 2, 1, "running"), "unhealthy"),
        ],
    );
    // The unhealthy one goes; its replacement waits for the docker name.
    let ch = reconcile(&s, NOW);
    assert_eq!(did(&s, &ch).removed, vec![2]);
    apply(&mut s, &ch);
    assert_eq!(s.next_container_id, 100, "nothing created yet");
    let svc = s.services.iter().find(|x| x.id == 10).unwrap();
    assert_eq!(svc.str("transitioning"), Some("yes"));
    assert!(svc
        .str("transitioningMessage")
        .is_some_and(|m| m.contains("r-app-web-2 is still being removed")));
    // Passes while the old one is still removing (draining, say): still
    // nothing — never a burst of replacements.
    for t in 1..4 {
        edit(&mut s, 2, |c| c.state = "removing".into());
        let ch = reconcile(&s, NOW + t * 500);
        apply(&mut s, &ch);
        assert_eq!(s.next_container_id, 100);
    }
    // The agent reports it removed: exactly one replacement, same name.
    edit(&mut s, 2, |c| c.state = "removed".into());
    let ch = reconcile(&s, NOW + 3000);
    assert_eq!(did(&s, &ch).created, names(&["app-web-2@1"]));
    apply(&mut s, &ch);
    let new = s.containers().iter().find(|c| c.id == 100).unwrap();
    assert_eq!(new.str("dockerName"), Some("r-app-web-2"));
    assert_eq!(new.str("healthState"), Some("initializing"));
    for t in 4..8 {
        let ch = reconcile(&s, NOW + t * 500);
        apply(&mut s, &ch);
    }
    assert_eq!(s.next_container_id, 101, "exactly one replacement was made");
}

#[test]
fn stack_health_follows_services() {
    let web = service(10, "active", &checked(spec("web", 2), HealthStrategy::None));
    let s = snap(
        vec![host(1)],
        vec![web.clone()],
        vec![
            health(ct(1, &web, 1, 1, "running"), "healthy"),
            health(ct(2, &web, 2, 1, "running"), "unhealthy"),
        ],
    );
    let ch = reconcile(&s, NOW);
    let st = ch.rows.iter().find(|r| r.kind == Kind::Stack).unwrap();
    assert_eq!(st.str("healthState"), Some("degraded"));
    let mut s = s;
    apply(&mut s, &ch);
    let second = s.containers()[1].id;
    edit(&mut s, second, |c| c.set("healthState", "healthy"));
    let ch = reconcile(&s, NOW);
    let st = ch.rows.iter().find(|r| r.kind == Kind::Stack).unwrap();
    assert_eq!(st.str("healthState"), Some("healthy"));
}

fn set_state(s: &mut Snapshot, id: u64, state: &str) {
    edit(s, id, |c| c.state = state.into());
}

fn stopped(s: &mut Snapshot, id: u64) {
    set_state(s, id, "stopped");
}

fn running(s: &mut Snapshot, id: u64) {
    set_state(s, id, "running");
}

#[test]
fn start_first_upgrade_retires_the_old_once_the_new_is_ready() {
    let old = spec("web", 1);
    let mut new = old.clone();
    new.launch_config.image = "busybox:2".into();
    new.upgrade_strategy = UpgradeStrategy {
        batch_size: 1,
        interval_millis: 0,
        start_first: true,
    };
    let mut up = service(10, "upgrading", &new);
    up.set("_generation", 1);
    up.set("_prevGeneration", 0);
    up.set("_prevSpec", serde_json::to_value(&old).unwrap());
    let base = service(10, "active", &old);
    let mut s = snap(vec![host(1)], vec![up], vec![ct(1, &base, 1, 1, "running")]);
    let ch = reconcile(&s, NOW);
    let d = did(&s, &ch);
    assert_eq!(d.created, names(&["app-web-1@1"]));
    assert!(d.stopped.is_empty(), "the old one serves meanwhile");
    apply(&mut s, &ch);
    assert_eq!(did(&s, &reconcile(&s, NOW + 10)), Did::default());
    running(&mut s, 100);
    let ch = reconcile(&s, NOW + 20);
    assert_eq!(did(&s, &ch).stopped, vec![1]);
    apply(&mut s, &ch);
    stopped(&mut s, 1);
    let ch = reconcile(&s, NOW + 30);
    assert_eq!(did(&s, &ch).service, vec![(10, "upgraded".to_string())]);
}

#[test]
fn upgrade_steps_and_rollback() {
    let old = spec("web", 2);
    let mut new = old.clone();
    new.launch_config.image = "busybox:2".into();
    new.upgrade_strategy = UpgradeStrategy {
        batch_size: 1,
        interval_millis: 1000,
        start_first: false,
    };
    let mut up = service(10, "upgrading", &new);
    up.set("_generation", 1);
    up.set("_prevGeneration", 0);
    up.set("_prevSpec", serde_json::to_value(&old).unwrap());
    up.set("_lastBatch", 0);
    let base = service(10, "active", &old);
    let mut s = snap(
        vec![host(1)],
        vec![up],
        vec![ct(1, &base, 1, 1, "running"), ct(2, &base, 2, 1, "running")],
    );
    // Batch 1 (stop-first): index 1 stops and its replacement (generation
    // 1, its own docker name) is made in the same pass.
    let ch = reconcile(&s, NOW);
    let d = did(&s, &ch);
    assert_eq!(d.stopped, vec![1], "{d:?}");
    assert_eq!(d.created, names(&["app-web-1@1"]), "{d:?}");
    apply(&mut s, &ch);
    stopped(&mut s, 1);
    let newc = s.containers().iter().find(|c| c.id == 100).unwrap().clone();
    assert_eq!(newc.str("dockerName"), Some("r-app-web-1-g1"));
    assert_eq!(newc.str("imageUuid"), Some("docker:busybox:2"));
    // The batch is in progress until the new container runs.
    assert_eq!(did(&s, &reconcile(&s, NOW + 5000)), Did::default());
    running(&mut s, 100);
    // Within the interval (from the batch's start): wait.
    assert_eq!(did(&s, &reconcile(&s, NOW + 500)), Did::default());
    // After it: batch 2.
    let ch = reconcile(&s, NOW + 1500);
    let d = did(&s, &ch);
    assert_eq!(d.stopped, vec![2]);
    assert_eq!(d.created, names(&["app-web-2@1"]));
    apply(&mut s, &ch);
    stopped(&mut s, 2);
    running(&mut s, 101);
    let ch = reconcile(&s, NOW + 3000);
    assert_eq!(
        did(&s, &ch).service,
        vec![(10, "upgraded".to_string())],
        "no old container runs: upgraded"
    );
    apply(&mut s, &ch);
    // Rollback: the new generation goes, the old starts again.
    s.services[0].state = "rolling-back".into();
    let ch = reconcile(&s, NOW + 4000);
    let d = did(&s, &ch);
    assert_eq!(d.removed, vec![100, 101]);
    assert_eq!(d.started, vec![1, 2]);
    let svc = ch.rows.iter().find(|r| r.kind == Kind::Service).unwrap();
    assert_eq!(svc.state, "active");
    assert_eq!(svc.data.get("_generation"), Some(&Value::from(0)));
}

#[test]
fn finish_upgrade_removes_the_old_generation() {
    let sp = spec("web", 1);
    let mut s10 = service(10, "finishing-upgrade", &sp);
    s10.set("_generation", 1);
    let old = service(10, "active", &sp);
    let s = snap(
        vec![host(1)],
        vec![s10.clone()],
        vec![ct(1, &old, 1, 1, "stopped"), ct(2, &s10, 1, 1, "running")],
    );
    let ch = reconcile(&s, NOW);
    let d = did(&s, &ch);
    assert_eq!(d.removed, vec![1]);
    assert_eq!(d.service, vec![(10, "active".to_string())]);
}

#[test]
fn rolling_restart_in_batches() {
    let sp = spec("web", 2);
    let mut r = service(10, "restarting", &sp);
    r.set(
        "_restart",
        json!({"id": 7, "batchSize": 1, "intervalMillis": 0}),
    );
    let mut s = snap(
        vec![host(1)],
        vec![r.clone()],
        vec![ct(1, &r, 1, 1, "running"), ct(2, &r, 2, 1, "running")],
    );
    let ch = reconcile(&s, NOW);
    let d = did(&s, &ch);
    assert_eq!(d.stopped.len(), 1, "one batch: {d:?}");
    apply(&mut s, &ch);
    let first = d.stopped[0];
    edit(&mut s, first, |c| c.state = "stopped".into());
    // The scale keeper starts it again.
    let ch = reconcile(&s, NOW + 100);
    assert_eq!(did(&s, &ch).started, vec![first]);
    apply(&mut s, &ch);
    edit(&mut s, first, |c| c.state = "running".into());
    let ch = reconcile(&s, NOW + 200);
    let d = did(&s, &ch);
    assert_eq!(d.stopped.len(), 1);
    assert_ne!(d.stopped[0], first, "the next batch takes the other one");
}

#[test]
fn to_service_upgrade_moves_scale_in_batches() {
    let a_spec = spec("a", 2);
    let b_spec = spec("b", 0);
    let mut a = service(10, "upgrading", &a_spec);
    a.set(
        "_toService",
        json!({"toServiceId": "1s11", "finalScale": 2, "batchSize": 1, "intervalMillis": 0,
               "updateLinks": false, "fromScale": 2, "targetFromScale": 0}),
    );
    let b = service(11, "active", &b_spec);
    let s = snap(
        vec![host(1)],
        vec![a.clone(), b.clone()],
        vec![ct(1, &a, 1, 1, "running"), ct(2, &a, 2, 1, "running")],
    );
    let ch = reconcile(&s, NOW);
    let b2 = ch
        .rows
        .iter()
        .find(|r| r.kind == Kind::Service && r.id == 11)
        .expect("B grows");
    assert_eq!(b2.data.get("scale"), Some(&Value::from(1)));
    // A shrinks only once B's new container runs.
    let a2 = ch
        .rows
        .iter()
        .find(|r| r.kind == Kind::Service && r.id == 10);
    assert!(a2.is_none_or(|a| a.data.get("scale") == Some(&Value::from(2))));
    let mut s = s;
    apply(&mut s, &ch);
    let d = did(&s, &reconcile(&s, NOW + 10));
    assert_eq!(d, Did::default(), "B's container is not running yet");
    let ch = reconcile(&s, NOW);
    apply(&mut s, &ch);
    let running: Vec<Resource> = s
        .containers()
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.state = "running".into();
            c
        })
        .collect();
    s.apply(running);
    let ch = reconcile(&s, NOW + 20);
    let a3 = ch
        .rows
        .iter()
        .find(|r| r.kind == Kind::Service && r.id == 10)
        .expect("A shrinks");
    assert_eq!(a3.data.get("scale"), Some(&Value::from(1)));
}

#[test]
fn unplaceable_says_why() {
    let mut h = host(1);
    h.state = "inactive".into();
    let s = snap(
        vec![h],
        vec![service(10, "activating", &spec("web", 1))],
        vec![],
    );
    let ch = reconcile(&s, NOW);
    let row = ch
        .rows
        .iter()
        .find(|r| r.kind == Kind::Container)
        .expect("an error row");
    assert_eq!(row.state, "error");
    assert_eq!(row.host, 0);
    assert!(row
        .str("transitioningMessage")
        .is_some_and(|m| !m.is_empty()));
    let svc = ch.rows.iter().find(|r| r.kind == Kind::Service).unwrap();
    assert_eq!(svc.str("transitioning"), Some("error"));
    // The next pass keeps that one row; no new one per pass.
    let mut s = s;
    apply(&mut s, &ch);
    let ch = reconcile(&s, NOW + 500);
    assert!(ch
        .rows
        .iter()
        .all(|r| r.kind != Kind::Container || r.id == 100));
}

#[test]
fn kinds_without_containers_keep_their_members_on_the_row() {
    use crate::cluster::plan::compose::fields::Link;
    let mut d = spec("alias", 1);
    d.kind = ServiceKind::DnsService;
    d.links = vec![Link {
        stack: None,
        service: "web".into(),
        alias: "web".into(),
    }];
    let mut e = spec("ext", 1);
    e.kind = ServiceKind::ExternalService;
    e.external_ips = vec!["192.0.2.7".into()];
    // A DNS alias made by an older server still had containers: they go.
    let alias = service(12, "active", &d);
    let s = snap(
        vec![host(1)],
        vec![alias.clone(), service(13, "active", &e)],
        vec![ct(1, &alias, 1, 1, "running")],
    );
    let ch = reconcile(&s, NOW);
    let row = |id: u64| {
        ch.rows
            .iter()
            .find(|r| r.kind == Kind::Service && r.id == id)
            .unwrap()
    };
    assert_eq!(row(12).data["linkedServices"][0]["service"], "web");
    assert_eq!(row(13).data["externalIpAddresses"], json!(["192.0.2.7"]));
    assert_eq!(did(&s, &ch).removed, vec![1]);
}

fn ip_of(s: &Snapshot, name: &str) -> Option<String> {
    s.containers()
        .iter()
        .find(|c| c.str("name") == Some(name) && !c.is_removed())
        .and_then(|c| c.str("primaryIpAddress"))
        .map(str::to_string)
}

#[test]
fn managed_containers_get_distinct_addresses_and_wake_every_host() {
    let web = service(10, "active", &spec("web", 3));
    let mut s = snap(vec![host(1), host(2)], vec![web], vec![]);
    let ch = reconcile(&s, NOW);
    apply(&mut s, &ch);
    let ips: Vec<String> = (1..=3)
        .map(|i| ip_of(&s, &format!("app-web-{i}")).unwrap())
        .collect();
    assert_eq!(ips, ["10.42.0.2", "10.42.0.3", "10.42.0.4"]);
    // Every host of the project learns of them (their overlay entries).
    assert_eq!(ch.hosts, [1, 2].into());
    // Not on the managed network: no address.
    let mut host_net = spec("hn", 1);
    host_net.launch_config.network_mode = crate::cluster::plan::compose::fields::NetworkMode::Host;
    s.services.push(service(11, "active", &host_net));
    let ch = reconcile(&s, NOW + 1);
    apply(&mut s, &ch);
    assert_eq!(ip_of(&s, "app-hn-1"), None);
    // A released address is handed out again; the others are not.
    let gone = s
        .containers()
        .iter()
        .find(|c| c.str("name") == Some("app-web-2"))
        .unwrap()
        .id;
    edit(&mut s, gone, |c| c.state = "removed".into());
    let ch = reconcile(&s, NOW + 2);
    apply(&mut s, &ch);
    assert_eq!(ip_of(&s, "app-web-2").as_deref(), Some("10.42.0.3"));
}

#[test]
fn retain_ip_keeps_the_address_across_replacement_and_move() {
    let mut sp = spec("db", 2);
    sp.retain_ip = true;
    let db = service(10, "active", &sp);
    let mut s = snap(vec![host(1), host(2)], vec![db], vec![]);
    let ch = reconcile(&s, NOW);
    apply(&mut s, &ch);
    let first = ip_of(&s, "app-db-2").unwrap();
    let svc = s.services.iter().find(|x| x.id == 10).unwrap();
    assert_eq!(svc.data["_retainedIps"]["2"], first.as_str());
    // Another service takes the lowest free address meanwhile.
    s.services.push(service(11, "active", &spec("web", 1)));
    // db-2 is deleted: while its predecessor still holds the address the
    // replacement waits; then it gets the same address (on any host).
    let old = s
        .containers()
        .iter()
        .find(|c| c.str("name") == Some("app-db-2"))
        .unwrap();
    let (old_id, old_host) = (old.id, old.host);
    edit(&mut s, old_id, |c| {
        c.set("desiredState", "removed");
        c.state = "removing".into();
    });
    let ch = reconcile(&s, NOW + 1);
    apply(&mut s, &ch);
    let svc = s.services.iter().find(|x| x.id == 10).unwrap();
    assert_eq!(svc.str("transitioning"), Some("yes"), "{svc:?}");
    let web_ip = ip_of(&s, "app-web-1").unwrap();
    assert_ne!(web_ip, first, "a retained address is not handed to another");
    edit(&mut s, old_id, |c| c.state = "removed".into());
    // Its host is gone too: the replacement lands elsewhere, same address.
    s.hosts.retain(|h| h.id != old_host);
    let ch = reconcile(&s, NOW + 2);
    apply(&mut s, &ch);
    let new = s
        .containers()
        .iter()
        .find(|c| c.str("name") == Some("app-db-2") && c.id != old_id)
        .unwrap();
    assert_ne!(new.host, old_host);
    assert_eq!(new.str("primaryIpAddress"), Some(first.as_str()));
}

#[test]
fn a_full_subnet_makes_an_error_row_never_a_duplicate() {
    let web = service(10, "active", &spec("web", 15));
    let mut s = snap(vec![host(1)], vec![web], vec![]);
    // A /28: 13 usable addresses (network, gateway, broadcast excluded).
    s.projects[0].set("subnet", "10.50.0.0/28");
    let ch = reconcile(&s, NOW);
    apply(&mut s, &ch);
    let ips: std::collections::BTreeSet<String> = s
        .containers()
        .iter()
        .filter_map(|c| c.str("primaryIpAddress").map(str::to_string))
        .collect();
    assert_eq!(ips.len(), 13, "{ips:?}");
    let errors: Vec<&Resource> = s
        .containers()
        .iter()
        .filter(|c| c.state == "error")
        .collect();
    assert_eq!(errors.len(), 2);
    for e in errors {
        let m = e.str("transitioningMessage").unwrap();
        assert!(
            m.contains("no free address") && m.contains("10.50.0.0/28"),
            "{m}"
        );
        assert_eq!(e.str("primaryIpAddress"), None);
    }
    // A bad stored subnet says so, and creates nothing.
    let mut s2 = snap(
        vec![host(1)],
        vec![service(10, "active", &spec("web", 1))],
        vec![],
    );
    s2.projects[0].set("subnet", "10.50.0.1/16");
    let ch = reconcile(&s2, NOW);
    apply(&mut s2, &ch);
    let e = &s2.containers()[0];
    assert_eq!(e.state, "error");
    assert!(e
        .str("transitioningMessage")
        .unwrap()
        .contains("environment subnet"));
}

/// The steady pass's fast path (`steady`, the snapshot's shared name
/// prefixes) decides from the rows of this pass: a pass over a settled
/// cluster does nothing, and each change an agent or the heartbeat
/// monitor commits into the kept snapshot makes the next pass act.
#[test]
fn a_steady_pass_still_sees_each_change() {
    let sp = checked(spec("web", 3), HealthStrategy::Recreate);
    let web = service(10, "active", &sp);
    let settled = || {
        snap(
            vec![host(1), host(2)],
            vec![web.clone()],
            vec![
                health(ct(1, &web, 1, 1, "running"), "healthy"),
                health(ct(2, &web, 2, 2, "running"), "healthy"),
                health(ct(3, &web, 3, 1, "running"), "healthy"),
            ],
        )
    };
    assert_eq!(reconcile(&settled(), NOW).rows, vec![], "settled");
    type Change = Box<dyn Fn(&mut Snapshot)>;
    let rows: Vec<(&str, Change, Did)> = vec![
        (
            "a container stopped behind our back starts again",
            Box::new(|s| edit(s, 2, |c| c.state = "stopped".into())),
            Did {
                started: vec![2],
                ..Did::default()
            },
        ),
        (
            "a failed container goes (its replacement waits for its name)",
            Box::new(|s| edit(s, 3, |c| c.state = "error".into())),
            Did {
                removed: vec![3],
                ..Did::default()
            },
        ),
        (
            "an unhealthy container is replaced",
            Box::new(|s| edit(s, 1, |c| c.set("healthState", "unhealthy"))),
            Did {
                removed: vec![1],
                ..Did::default()
            },
        ),
        (
            "a lost host's container is replaced",
            Box::new(|s| {
                let mut h = host(2);
                h.set("agentState", "disconnected");
                s.apply([h]);
            }),
            // Its replacement goes to the other host at once.
            Did {
                created: names(&["app-web-2@1"]),
                removed: vec![2],
                ..Did::default()
            },
        ),
        (
            "a removed host's container is replaced",
            Box::new(|s| {
                let mut h = host(2);
                h.state = "removed".into();
                s.apply([h]);
            }),
            // Its replacement goes to the other host at once.
            Did {
                created: names(&["app-web-2@1"]),
                removed: vec![2],
                ..Did::default()
            },
        ),
        (
            "a container gone from the store is created again",
            Box::new(|s| edit(s, 2, |c| c.state = "removed".into())),
            Did {
                created: names(&["app-web-2@2"]),
                ..Did::default()
            },
        ),
        (
            "a container renamed out of the pattern is no member: one more is made",
            Box::new(|s| edit(s, 3, |c| c.set("name", "app-web-x"))),
            Did {
                created: names(&["app-web-3@2"]),
                ..Did::default()
            },
        ),
        (
            "a container of another service's name is no member",
            Box::new(|s| edit(s, 3, |c| c.set("name", "app-api-3"))),
            Did {
                created: names(&["app-web-3@2"]),
                ..Did::default()
            },
        ),
        (
            "a scale change creates",
            Box::new(|s| {
                let mut w = service(
                    10,
                    "active",
                    &checked(spec("web", 4), HealthStrategy::Recreate),
                );
                w.set("scale", 4);
                s.apply([w]);
            }),
            Did {
                created: names(&["app-web-4@2"]),
                ..Did::default()
            },
        ),
        (
            "a renamed service's old containers are no members",
            Box::new(|s| {
                s.apply([service(
                    10,
                    "active",
                    &checked(spec("www", 3), HealthStrategy::Recreate),
                )]);
            }),
            Did {
                created: names(&["app-www-1@2", "app-www-2@1", "app-www-3@2"]),
                ..Did::default()
            },
        ),
    ];
    for (what, change, want) in rows {
        let mut s = settled();
        change(&mut s);
        let ch = reconcile(&s, NOW);
        let mut got = did(&s, &ch);
        got.service.clear();
        // A stopped container asked to run again keeps its desired state.
        got.started.extend(
            ch.rows
                .iter()
                .filter(|r| r.kind == Kind::Container && r.state == "starting")
                .map(|r| r.id),
        );
        assert_eq!(got, want, "{what}");
        // The fresh read of the same rows plans the same.
        let fresh = Snapshot::new(
            s.projects.clone(),
            s.hosts.clone(),
            s.stacks.clone(),
            s.services.clone(),
            s.containers().to_vec(),
            s.next_container_id,
        );
        assert_eq!(fresh, s, "{what}: kept = fresh");
        // (New rows carry the wall clock's creation time.)
        let plain = |ch: Changes| -> Vec<Resource> {
            ch.rows
                .into_iter()
                .map(|mut r| {
                    r.created_ms = 0;
                    r
                })
                .collect()
        };
        assert_eq!(
            plain(reconcile(&fresh, NOW)),
            plain(ch),
            "{what}: fresh read"
        );
    }
}

/// The name split the fast path keeps agrees with `scale::index_of` for
/// every stack and service.
#[test]
fn name_split_agrees_with_index_of() {
    use super::snapshot::split_name;
    use crate::cluster::plan::scale::index_of;
    let names = [
        "app-web-1",
        "app-web-12",
        "app-web-0",
        "app-web-05",
        "app-web-+5",
        "app-web--5",
        "app-web-",
        "app-web",
        "app-web-api-1",
        "app-web-4294967296",
        "-web-1",
        "app--1",
        "web-1",
        "",
    ];
    let parts = [
        ("app", "web"),
        ("app", "web-api"),
        ("app-web", "api"),
        ("", "web"),
        ("app", ""),
        ("app", "web-"),
    ];
    for name in names {
        for (stack, svc) in parts {
            let prefix = format!("{stack}-{svc}");
            let split = split_name(name)
                .filter(|(p, _)| *p == prefix)
                .map(|(_, n)| n);
            assert_eq!(split, index_of(stack, svc, name), "{name} in {stack}/{svc}");
        }
    }
}

/// Service 10 (`web`, scale 1) upgrading from generation 0 to 1
/// (`busybox:2`), one container per batch, and its old container.
fn upgrading_web(start_first: bool, interval_millis: u64) -> (Resource, Resource) {
    let old = spec("web", 1);
    let mut new = old.clone();
    new.launch_config.image = "busybox:2".into();
    new.upgrade_strategy = UpgradeStrategy {
        batch_size: 1,
        interval_millis,
        start_first,
    };
    let mut up = service(10, "upgrading", &new);
    up.set("_generation", 1);
    up.set("_prevGeneration", 0);
    up.set("_prevSpec", serde_json::to_value(&old).unwrap());
    (up, service(10, "active", &old))
}

/// Host 1 with this row state and agent state.
fn host_as(state: &str, agent: &str) -> Resource {
    let mut h = host(1);
    h.state = state.into();
    h.set("agentState", agent);
    h
}

fn svc(s: &Snapshot) -> &Resource {
    s.services.iter().find(|x| x.id == 10).unwrap()
}

/// A batch's replacement is pinned to its old container's host. Host
/// `reconnecting` (heartbeats late, expected back): the batch waits —
/// nothing stopped or created, no error, no batch time recorded. A host
/// gone (disconnected, deactivated) fails the batch as before: its old
/// container stops and the service says why, in error.
#[test]
fn an_upgrade_batch_waits_for_a_reconnecting_host() {
    struct Row {
        what: &'static str,
        host: Resource,
        start_first: bool,
        old_state: &'static str,
        stopped: Vec<u64>,
        transitioning: Option<&'static str>,
        message: &'static str,
    }
    let rows = vec![
        Row {
            what: "stop-first, host reconnecting: wait",
            host: host_as("active", "reconnecting"),
            start_first: false,
            old_state: "running",
            stopped: vec![],
            transitioning: Some("yes"),
            message: "host 1h1 is reconnecting",
        },
        Row {
            what: "start-first, host reconnecting: wait",
            host: host_as("active", "reconnecting"),
            start_first: true,
            old_state: "running",
            stopped: vec![],
            transitioning: Some("yes"),
            message: "host 1h1 is reconnecting",
        },
        Row {
            what: "old container already stopped, host reconnecting: wait, no error",
            host: host_as("active", "reconnecting"),
            start_first: false,
            old_state: "stopped",
            stopped: vec![],
            transitioning: Some("yes"),
            message: "host 1h1 is reconnecting",
        },
        Row {
            what: "host disconnected: the batch fails as before",
            host: host_as("active", "disconnected"),
            start_first: false,
            old_state: "running",
            stopped: vec![1],
            transitioning: Some("error"),
            message: "no active hosts to run app-web-1",
        },
        Row {
            what: "host deactivated: the batch fails as before",
            host: host_as("inactive", "active"),
            start_first: false,
            old_state: "running",
            stopped: vec![1],
            transitioning: Some("error"),
            message: "no active hosts to run app-web-1",
        },
    ];
    for r in rows {
        let (up, base) = upgrading_web(r.start_first, 0);
        let s = snap(
            vec![r.host],
            vec![up],
            vec![ct(1, &base, 1, 1, r.old_state)],
        );
        let ch = reconcile(&s, NOW);
        let d = did(&s, &ch);
        assert_eq!(d.stopped, r.stopped, "{}: {d:?}", r.what);
        assert!(d.created.is_empty(), "{}: {d:?}", r.what);
        let mut s = s;
        apply(&mut s, &ch);
        let sv = svc(&s);
        assert_eq!(sv.state, "upgrading", "{}", r.what);
        assert_eq!(sv.str("transitioning"), r.transitioning, "{}", r.what);
        let msg = sv.str("transitioningMessage").unwrap_or_default();
        assert!(msg.contains(r.message), "{}: {msg}", r.what);
        if r.transitioning == Some("yes") {
            assert!(sv.data.get("_lastBatch").is_none(), "{}: not begun", r.what);
            // Still waiting on the next pass: the same (no write).
            let again = reconcile(&s, NOW + 500);
            assert!(again.is_empty(), "{}: {:?}", r.what, again.rows);
        }
    }
}

/// Stop-first, the host reconnecting and then back: the batch waits with
/// the old container running, begins on the first pass after the host is
/// `active`, and the upgrade completes with nothing left in
/// `transitioning`.
#[test]
fn a_waiting_upgrade_batch_resumes_once_its_host_is_back() {
    let (up, base) = upgrading_web(false, 1000);
    let mut s = snap(
        vec![host_as("active", "reconnecting")],
        vec![up],
        vec![ct(1, &base, 1, 1, "running")],
    );
    for t in 0..3 {
        let ch = reconcile(&s, NOW + t * 500);
        assert_eq!(did(&s, &ch), Did::default(), "pass {t}");
        apply(&mut s, &ch);
    }
    assert_ne!(svc(&s).str("transitioning"), Some("error"));
    assert_eq!(s.next_container_id, 100, "nothing created while it waits");
    // Its heartbeat is back.
    s.apply([host(1)]);
    let ch = reconcile(&s, NOW + 2000);
    let d = did(&s, &ch);
    assert_eq!(d.stopped, vec![1], "{d:?}");
    assert_eq!(d.created, names(&["app-web-1@1"]), "{d:?}");
    apply(&mut s, &ch);
    assert_eq!(svc(&s).str("transitioning"), None);
    assert_eq!(svc(&s).str("transitioningMessage"), None);
    assert!(svc(&s).data.get("_placementMessage").is_none());
    stopped(&mut s, 1);
    running(&mut s, 100);
    let ch = reconcile(&s, NOW + 2500);
    assert_eq!(did(&s, &ch).service, vec![(10, "upgraded".to_string())]);
    apply(&mut s, &ch);
    assert_eq!(svc(&s).str("transitioning"), None);
}

/// A batch that could not be placed (its host away long enough to be
/// `disconnected`) says so in error; once the host is back and the
/// replacement is placed, that error goes. A failed replacement's error is
/// not a placement's: it stays in view when its index is placed again.
#[test]
fn a_placement_error_clears_once_the_batch_is_placed() {
    let (up, base) = upgrading_web(false, 0);
    let mut s = snap(
        vec![host_as("active", "disconnected")],
        vec![up],
        vec![ct(1, &base, 1, 1, "running")],
    );
    let ch = reconcile(&s, NOW);
    assert_eq!(did(&s, &ch).stopped, vec![1]);
    apply(&mut s, &ch);
    stopped(&mut s, 1);
    assert_eq!(svc(&s).str("transitioning"), Some("error"));
    // Still away: the error stays, nothing is created.
    let ch = reconcile(&s, NOW + 500);
    assert!(did(&s, &ch).created.is_empty());
    apply(&mut s, &ch);
    assert_eq!(svc(&s).str("transitioning"), Some("error"));
    // Back: the replacement is placed and the error goes with its cause.
    s.apply([host(1)]);
    let ch = reconcile(&s, NOW + 1000);
    assert_eq!(did(&s, &ch).created, names(&["app-web-1@1"]));
    apply(&mut s, &ch);
    assert_eq!(svc(&s).str("transitioning"), None);
    assert_eq!(svc(&s).str("transitioningMessage"), None);
    assert!(svc(&s).data.get("_placementMessage").is_none());

    // A replacement that fails: its error is shown, and kept when its
    // index is placed again.
    let (up, base) = upgrading_web(false, 1000);
    let mut s = snap(vec![host(1)], vec![up], vec![ct(1, &base, 1, 1, "running")]);
    let ch = reconcile(&s, NOW);
    assert_eq!(did(&s, &ch).created, names(&["app-web-1@1"]));
    apply(&mut s, &ch);
    stopped(&mut s, 1);
    edit(&mut s, 100, |c| {
        c.state = "error".into();
        c.set("transitioningMessage", "image not found");
    });
    let ch = reconcile(&s, NOW + 100);
    assert_eq!(did(&s, &ch).removed, vec![100]);
    apply(&mut s, &ch);
    let failed = "app-web-1: image not found";
    assert_eq!(svc(&s).str("transitioning"), Some("error"));
    assert_eq!(svc(&s).str("transitioningMessage"), Some(failed));
    set_state(&mut s, 100, "removed");
    let ch = reconcile(&s, NOW + 1500);
    assert_eq!(did(&s, &ch).created, names(&["app-web-1@1"]));
    apply(&mut s, &ch);
    assert_eq!(svc(&s).str("transitioning"), Some("error"));
    assert_eq!(svc(&s).str("transitioningMessage"), Some(failed));
}
