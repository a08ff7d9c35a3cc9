//! Scheduler tables: every affinity label form, soft dropping, ports,
//! resources, spreading, macros and global services.

use super::*;

pub(super) fn labels(spec: &str) -> BTreeMap<String, String> {
    // `k=v;k2=v2` (`;` separates, since affinity values contain `,` and `=`).
    spec.split(';')
        .filter(|s| !s.is_empty())
        .map(|kv| match kv.split_once("=>") {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            }
        })
        .collect()
}

pub(super) fn host(id: &str, l: &str) -> HostView {
    HostView {
        id: id.into(),
        labels: labels(l),
        memory: None,
        milli_cpu: None,
        active: true,
    }
}

pub(super) fn port(s: &str) -> HostPort {
    let (rest, proto) = match s.split_once('/') {
        Some((r, "udp")) => (r, Protocol::Udp),
        Some((r, _)) => (r, Protocol::Tcp),
        None => (s, Protocol::Tcp),
    };
    let (ip, num) = match rest.rsplit_once(':') {
        Some((ip, n)) => (Some(ip.to_string()), n),
        None => (None, rest),
    };
    HostPort {
        bind_ip: ip,
        port: num.parse().ok(),
        protocol: proto,
    }
}

/// A container `name` of `stack/service` on `host` with extra labels and ports.
pub(super) fn inst(name: &str, host: &str, svc: &str, extra: &str, ports: &[&str]) -> InstanceView {
    let (stack, service) = svc.split_once('/').unwrap_or(("", ""));
    let mut l = if svc.is_empty() {
        BTreeMap::new()
    } else {
        system_labels(stack, service)
    };
    l.extend(labels(extra));
    InstanceView {
        name: name.into(),
        uuid: format!("uuid-{name}"),
        host_id: host.into(),
        labels: l,
        ports: ports.iter().map(|p| port(p)).collect(),
        ..Default::default()
    }
}

pub(super) fn req(l: &str, ports: &[&str]) -> Request {
    Request {
        name: "app-web-1".into(),
        stack: "app".into(),
        service: "web".into(),
        labels: labels(l),
        ports: ports.iter().map(|p| port(p)).collect(),
        ..Default::default()
    }
}

pub(super) const AFF: &str = "io.rancher.scheduler.affinity:";

struct Row {
    name: &'static str,
    hosts: Vec<HostView>,
    instances: Vec<InstanceView>,
    req: Request,
    /// Ok(host) or Err(substring of the message).
    want: Result<&'static str, &'static str>,
}

pub(super) fn three_hosts() -> Vec<HostView> {
    vec![
        host("h1", "zone=a;disk=ssd"),
        host("h2", "zone=b;disk=HDD"),
        host("h3", "zone=c"),
    ]
}

fn rows() -> Vec<Row> {
    let a = |k: &str, v: &str| format!("{AFF}{k}=>{v}");
    vec![
        Row {
            name: "spread: empty hosts, lowest id wins",
            hosts: three_hosts(),
            instances: vec![],
            req: req("", &[]),
            want: Ok("h1"),
        },
        Row {
            name: "spread: fewest of this service first",
            hosts: three_hosts(),
            instances: vec![
                inst("app-web-1", "h1", "app/web", "", &[]),
                inst("x1", "h2", "other/db", "", &[]),
                inst("x2", "h2", "other/db", "", &[]),
            ],
            req: req("", &[]),
            want: Ok("h3"),
        },
        Row {
            name: "spread: then fewest overall",
            hosts: three_hosts(),
            instances: vec![
                inst("x1", "h1", "other/db", "", &[]),
                inst("x3", "h3", "other/db", "", &[]),
                inst("x4", "h3", "other/db", "", &[]),
            ],
            req: req("", &[]),
            want: Ok("h2"),
        },
        Row {
            name: "inactive hosts are skipped",
            hosts: vec![
                HostView {
                    active: false,
                    ..host("h1", "")
                },
                host("h2", ""),
            ],
            instances: vec![],
            req: req("", &[]),
            want: Ok("h2"),
        },
        Row {
            name: "no active hosts",
            hosts: vec![HostView {
                active: false,
                ..host("h1", "")
            }],
            instances: vec![],
            req: req("", &[]),
            want: Err("no active hosts to run app-web-1"),
        },
        Row {
            name: "host_label: must have (case-insensitive)",
            hosts: three_hosts(),
            instances: vec![],
            req: req(&a("host_label", "Disk=hdd"), &[]),
            want: Ok("h2"),
        },
        Row {
            name: "host_label: bare key means has key",
            hosts: three_hosts(),
            instances: vec![inst("x", "h1", "o/x", "", &[])],
            req: req(&a("host_label", "disk"), &[]),
            want: Ok("h2"),
        },
        Row {
            name: "host_label: several entries all required",
            hosts: three_hosts(),
            instances: vec![],
            req: req(&a("host_label", "zone=b,disk=ssd"), &[]),
            want: Err("h1: host needs label zone=b; h2: host needs label disk=ssd"),
        },
        Row {
            name: "host_label_ne",
            hosts: three_hosts(),
            instances: vec![],
            req: req(&a("host_label_ne", "zone=a,zone=b"), &[]),
            want: Ok("h3"),
        },
        Row {
            name: "host_label_ne: fails everywhere",
            hosts: vec![host("h1", "zone=a")],
            instances: vec![],
            req: req(&a("host_label_ne", "zone=a"), &[]),
            want: Err("h1: host must not have label zone=a"),
        },
        Row {
            name: "host_label_soft: honoured when possible",
            hosts: three_hosts(),
            instances: vec![],
            req: req(&a("host_label_soft", "zone=c"), &[]),
            want: Ok("h3"),
        },
        Row {
            name: "host_label_soft: dropped when nothing fits",
            hosts: three_hosts(),
            instances: vec![],
            req: req(&a("host_label_soft", "zone=z"), &[]),
            want: Ok("h1"),
        },
        Row {
            name: "host_label_soft_ne",
            hosts: three_hosts(),
            instances: vec![],
            req: req(&a("host_label_soft_ne", "zone=a"), &[]),
            want: Ok("h2"),
        },
        Row {
            name: "container_label: join a container",
            hosts: three_hosts(),
            instances: vec![inst("db-1", "h3", "app/db", "role=db", &[])],
            req: req(&a("container_label", "role=db"), &[]),
            want: Ok("h3"),
        },
        Row {
            name: "container_label: nobody has it",
            hosts: vec![host("h1", "")],
            instances: vec![],
            req: req(&a("container_label", "role=db"), &[]),
            want: Err("h1: host needs a container with label role=db"),
        },
        Row {
            name: "container_label_ne with macros: one per host",
            hosts: three_hosts(),
            instances: vec![
                inst("app-web-1", "h1", "app/web", "", &[]),
                inst("app-web-2", "h3", "app/web", "", &[]),
            ],
            req: req(
                &a(
                    "container_label_ne",
                    "io.rancher.stack_service.name=${stack_name}/${service_name}",
                ),
                &[],
            ),
            want: Ok("h2"),
        },
        Row {
            name: "container_label_ne with macros: fourth does not fit",
            hosts: three_hosts(),
            instances: vec![
                inst("app-web-1", "h1", "app/web", "", &[]),
                inst("app-web-2", "h2", "app/web", "", &[]),
                inst("app-web-3", "h3", "app/web", "", &[]),
            ],
            req: req(
                &a(
                    "container_label_ne",
                    "io.rancher.stack_service.name=${stack_name}/${service_name}",
                ),
                &[],
            ),
            want: Err("h3: host has a container with label io.rancher.stack_service.name=app/web"),
        },
        Row {
            name: "service name alone gets the stack prepended",
            hosts: three_hosts(),
            instances: vec![inst("app-db-1", "h2", "app/db", "", &[])],
            req: req(
                &a("container_label", "io.rancher.stack_service.name=db"),
                &[],
            ),
            want: Ok("h2"),
        },
        Row {
            name: "legacy ${project_name} macro",
            hosts: three_hosts(),
            instances: vec![inst("app-db-1", "h3", "app/db", "", &[])],
            req: req(
                &a(
                    "container_label",
                    "io.rancher.stack_service.name=${project_name}/db",
                ),
                &[],
            ),
            want: Ok("h3"),
        },
        Row {
            name: "container_label_soft: prefers, then drops",
            hosts: vec![host("h1", ""), host("h2", "")],
            instances: vec![],
            req: req(&a("container_label_soft", "role=cache"), &[]),
            want: Ok("h1"),
        },
        Row {
            name: "container_label_soft_ne: avoids",
            hosts: vec![host("h1", ""), host("h2", "")],
            instances: vec![
                inst("c1", "h1", "", "role=cache", &[]),
                inst("c2", "h2", "", "", &[]),
                inst("c3", "h2", "", "", &[]),
            ],
            req: req(&a("container_label_soft_ne", "role=cache"), &[]),
            want: Ok("h2"),
        },
        Row {
            name: "container: by name",
            hosts: three_hosts(),
            instances: vec![inst("Redis-1", "h2", "", "", &[])],
            req: req(&a("container", "redis-1"), &[]),
            want: Ok("h2"),
        },
        Row {
            name: "container: by uuid",
            hosts: three_hosts(),
            instances: vec![inst("redis-1", "h3", "", "", &[])],
            req: req(&a("container", "uuid-redis-1"), &[]),
            want: Ok("h3"),
        },
        Row {
            name: "container_ne",
            hosts: vec![host("h1", ""), host("h2", "")],
            instances: vec![inst("redis-1", "h1", "", "", &[])],
            req: req(&a("container_ne", "redis-1"), &[]),
            want: Ok("h2"),
        },
        Row {
            name: "container_ne: only host runs it",
            hosts: vec![host("h1", "")],
            instances: vec![inst("redis-1", "h1", "", "", &[])],
            req: req(&a("container_ne", "redis-1"), &[]),
            want: Err("h1: host runs container redis-1"),
        },
        Row {
            name: "container_soft: follows when possible",
            hosts: three_hosts(),
            instances: vec![inst("redis-1", "h3", "", "", &[])],
            req: req(&a("container_soft", "redis-1"), &[]),
            want: Ok("h3"),
        },
        Row {
            name: "container_soft_ne: avoids when possible",
            hosts: vec![host("h1", ""), host("h2", "")],
            instances: vec![inst("redis-1", "h1", "", "", &[])],
            req: req(&a("container_soft_ne", "redis-1"), &[]),
            want: Ok("h2"),
        },
        Row {
            name: "soft rules dropped one at a time, last declared first",
            hosts: three_hosts(),
            instances: vec![],
            // "zone=c" and "not zone=c" cannot both hold; the later key is dropped.
            req: req(
                &format!(
                    "{};{}",
                    a("host_label_soft", "zone=c"),
                    a("host_label_soft_ne", "zone=c")
                ),
                &[],
            ),
            want: Ok("h3"),
        },
        Row {
            name: "hard rule beats soft",
            hosts: three_hosts(),
            instances: vec![],
            req: req(
                &format!(
                    "{};{}",
                    a("host_label", "zone=b"),
                    a("host_label_soft", "zone=a")
                ),
                &[],
            ),
            want: Ok("h2"),
        },
        Row {
            name: "unknown affinity key is an error",
            hosts: three_hosts(),
            instances: vec![],
            req: req(&a("host_lable", "zone=a"), &[]),
            want: Err("unknown scheduling label io.rancher.scheduler.affinity:host_lable"),
        },
        Row {
            name: "ports: taken on h1, goes to h2",
            hosts: vec![host("h1", ""), host("h2", "")],
            instances: vec![
                inst("x", "h1", "", "", &["8081/tcp"]),
                inst("y", "h2", "", "", &[]),
                inst("z", "h2", "", "", &[]),
            ],
            req: req("", &["8081/tcp"]),
            want: Ok("h2"),
        },
        Row {
            name: "ports: taken everywhere",
            hosts: vec![host("h1", "")],
            instances: vec![inst("x", "h1", "", "", &["8081/tcp"])],
            req: req("", &["8081/tcp", "9000/tcp"]),
            want: Err("no host can run app-web-1: h1: host needs ports 8081/tcp available"),
        },
        Row {
            name: "ports: other protocol is free",
            hosts: vec![host("h1", "")],
            instances: vec![inst("x", "h1", "", "", &["53/tcp"])],
            req: req("", &["53/udp"]),
            want: Ok("h1"),
        },
        Row {
            name: "ports: other bind ip is free",
            hosts: vec![host("h1", "")],
            instances: vec![inst("x", "h1", "", "", &["127.0.0.1:80/tcp"])],
            req: req("", &["127.0.0.2:80/tcp"]),
            want: Ok("h1"),
        },
        Row {
            name: "ports: wildcard bind clashes with a specific ip",
            hosts: vec![host("h1", "")],
            instances: vec![inst("x", "h1", "", "", &["127.0.0.1:80/tcp"])],
            req: req("", &["80/tcp"]),
            want: Err("host needs ports 80/tcp available"),
        },
        Row {
            name: "ports: same port twice in one request",
            hosts: vec![host("h1", "")],
            instances: vec![],
            req: req("", &["5555/tcp", "5555/tcp"]),
            want: Err("Port 5555/tcp requested more than once."),
        },
        Row {
            name: "memory: not enough on h1",
            hosts: vec![
                HostView {
                    memory: Some(1000),
                    ..host("h1", "")
                },
                HostView {
                    memory: Some(4000),
                    ..host("h2", "")
                },
            ],
            instances: vec![
                InstanceView {
                    memory_reservation: 600,
                    ..inst("x", "h2", "", "", &[])
                },
                inst("y", "h2", "", "", &[]),
            ],
            req: Request {
                memory_reservation: 1500,
                ..req("", &[])
            },
            want: Ok("h2"),
        },
        Row {
            name: "memory: reserved counts",
            hosts: vec![HostView {
                memory: Some(1000),
                ..host("h1", "")
            }],
            instances: vec![InstanceView {
                memory_reservation: 600,
                ..inst("x", "h1", "", "", &[])
            }],
            req: Request {
                memory_reservation: 500,
                ..req("", &[])
            },
            want: Err("h1: not enough memory (needs 500 bytes, 400 of 1000 free)"),
        },
        Row {
            name: "cpu: not enough",
            hosts: vec![HostView {
                milli_cpu: Some(2000),
                ..host("h1", "")
            }],
            instances: vec![InstanceView {
                milli_cpu_reservation: 1800,
                ..inst("x", "h1", "", "", &[])
            }],
            req: Request {
                milli_cpu_reservation: 500,
                ..req("", &[])
            },
            want: Err("h1: not enough CPU (needs 500 milli-CPU, 200 of 2000 free)"),
        },
        Row {
            name: "cpu: exactly fits",
            hosts: vec![HostView {
                milli_cpu: Some(2000),
                ..host("h1", "")
            }],
            instances: vec![InstanceView {
                milli_cpu_reservation: 1500,
                ..inst("x", "h1", "", "", &[])
            }],
            req: Request {
                milli_cpu_reservation: 500,
                ..req("", &[])
            },
            want: Ok("h1"),
        },
        Row {
            name: "require_any: host refuses unlabelled containers",
            hosts: vec![
                host("h1", "io.rancher.scheduler.require_any=>tier=db"),
                host("h2", ""),
            ],
            instances: vec![inst("a", "h2", "", "", &[]), inst("b", "h2", "", "", &[])],
            req: req("", &[]),
            want: Ok("h2"),
        },
        Row {
            name: "require_any: admits a labelled one",
            hosts: vec![host("h1", "io.rancher.scheduler.require_any=>tier=db")],
            instances: vec![],
            req: req("tier=db", &[]),
            want: Ok("h1"),
        },
        Row {
            name: "requested host pins",
            hosts: three_hosts(),
            instances: vec![],
            req: Request {
                requested_host: Some("h3".into()),
                ..req("", &[])
            },
            want: Ok("h3"),
        },
    ]
}

#[test]
fn placement_table() {
    for row in rows() {
        let got = place(&row.hosts, &row.instances, &row.req);
        match (row.want, got) {
            (Ok(h), Ok(p)) => assert_eq!(p.host_id, h, "{}", row.name),
            (Err(msg), Err(e)) => {
                let text = e.to_string();
                assert!(text.contains(msg), "{}: {text:?} lacks {msg:?}", row.name);
            }
            (want, got) => panic!("{}: want {want:?}, got {got:?}", row.name),
        }
    }
}

#[path = "tests_more.rs"]
mod more;
