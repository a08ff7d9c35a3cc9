//! Service ordering (pure): dependency edges from the ordering labels, a
//! check for missing services and cycles, and start "levels".
//!
//! Edges: `io.rancher.os.after` / `ros.after` / `depends_on` (this service
//! waits for those), `io.rancher.os.before` (those wait for this one), and
//! `volumes_from` naming another service (the volume holder comes first).
//! `cloud-init` is accepted as the old name of `cloud-init-execute`.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::service::ServiceConfig;

/// Errors in the service graph.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OrderError {
    /// A service names a dependency that is not defined.
    #[error("service {service}: {label} names {missing}, which is not a defined service")]
    Missing {
        /// The service with the bad edge.
        service: String,
        /// The label or field that named it.
        label: &'static str,
        /// The unknown name.
        missing: String,
    },
    /// The services depend on each other in a circle.
    #[error("services depend on each other in a cycle: {}", cycle.join(" → "))]
    Cycle {
        /// The services in the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
}

/// The checked graph: each service and the services it waits for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Service → the services it starts after.
    pub deps: BTreeMap<String, BTreeSet<String>>,
    /// Services in a valid start order (dependencies first, then by name).
    pub order: Vec<String>,
    /// Service → its level: 0 without dependencies, else 1 + the deepest one.
    pub level: BTreeMap<String, usize>,
}

fn alias(name: &str) -> &str {
    if name == "cloud-init" {
        "cloud-init-execute"
    } else {
        name
    }
}

/// Build and check the plan for `services`.
pub fn plan(services: &BTreeMap<String, ServiceConfig>) -> Result<Plan, OrderError> {
    let mut deps: BTreeMap<String, BTreeSet<String>> = services
        .keys()
        .map(|k| (k.clone(), BTreeSet::new()))
        .collect();
    for (name, svc) in services {
        for a in svc.after() {
            let a = alias(&a).to_string();
            if !services.contains_key(&a) {
                return Err(OrderError::Missing {
                    service: name.clone(),
                    label: "io.rancher.os.after",
                    missing: a,
                });
            }
            deps.entry(name.clone()).or_default().insert(a);
        }
        for b in svc.before() {
            let b = alias(&b).to_string();
            if !services.contains_key(&b) {
                return Err(OrderError::Missing {
                    service: name.clone(),
                    label: "io.rancher.os.before",
                    missing: b,
                });
            }
            deps.entry(b).or_default().insert(name.clone());
        }
        for v in &svc.volumes_from {
            let src = v.0.split(':').next().unwrap_or_default();
            // A container that is not a service is allowed (it may exist).
            if services.contains_key(src) && src != name {
                deps.entry(name.clone())
                    .or_default()
                    .insert(src.to_string());
            }
        }
    }
    for (name, d) in &deps {
        if d.contains(name) {
            return Err(OrderError::Cycle {
                cycle: vec![name.clone(), name.clone()],
            });
        }
    }
    // Kahn's algorithm, smallest name first, for a deterministic order.
    let mut remaining: BTreeMap<&String, usize> = deps.iter().map(|(k, d)| (k, d.len())).collect();
    let mut order = Vec::new();
    let mut level = BTreeMap::new();
    while !remaining.is_empty() {
        let ready: Vec<String> = remaining
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(k, _)| (*k).clone())
            .collect();
        if ready.is_empty() {
            let left: BTreeSet<String> = remaining.keys().map(|k| (*k).clone()).collect();
            return Err(OrderError::Cycle {
                cycle: find_cycle(&deps, &left),
            });
        }
        for r in ready {
            remaining.remove(&r);
            let l = deps[&r].iter().map(|d| level[d] + 1).max().unwrap_or(0);
            level.insert(r.clone(), l);
            for (k, n) in remaining.iter_mut() {
                if deps[*k].contains(&r) {
                    *n -= 1;
                }
            }
            order.push(r);
        }
    }
    Ok(Plan { deps, order, level })
}

/// Walk dependencies inside `left` (every node has one there) until a
/// node repeats; return the circle.
fn find_cycle(deps: &BTreeMap<String, BTreeSet<String>>, left: &BTreeSet<String>) -> Vec<String> {
    let Some(start) = left.iter().next() else {
        return Vec::new();
    };
    let mut path = vec![start.clone()];
    let mut cur = start.clone();
    loop {
        let next = deps
            .get(&cur)
            .and_then(|d| d.iter().find(|n| left.contains(*n)))
            .cloned();
        let Some(next) = next else { return path };
        if let Some(pos) = path.iter().position(|p| *p == next) {
            let mut cycle = path[pos..].to_vec();
            cycle.reverse();
            cycle.insert(0, next);
            return cycle;
        }
        path.push(next.clone());
        cur = next;
    }
}

impl Plan {
    /// Services that (transitively) wait for `name`.
    pub fn dependents(&self, name: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(n) = todo.pop() {
            for (k, d) in &self.deps {
                if d.contains(&n) && out.insert(k.clone()) {
                    todo.push(k.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::{KeyValues, Text};

    fn svc(labels: &[(&str, &str)]) -> ServiceConfig {
        ServiceConfig {
            image: "i".into(),
            labels: KeyValues(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn set(rows: &[(&str, ServiceConfig)]) -> BTreeMap<String, ServiceConfig> {
        rows.iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect()
    }

    #[test]
    fn order_and_levels() {
        let s = set(&[
            ("udev-cold", svc(&[])),
            ("udev", svc(&[("io.rancher.os.after", "udev-cold")])),
            ("network", svc(&[("io.rancher.os.after", "udev")])),
            ("ntp", svc(&[("ros.after", "network")])),
            ("syslog", svc(&[("io.rancher.os.after", "network")])),
            (
                "cloud-init-execute",
                svc(&[("io.rancher.os.after", "ntp, syslog")]),
            ),
            ("console", svc(&[("io.rancher.os.after", "cloud-init")])),
            ("logrotate", svc(&[("io.rancher.os.before", "udev-cold")])),
        ]);
        let p = plan(&s).unwrap();
        assert_eq!(
            p.order,
            [
                "logrotate",
                "udev-cold",
                "udev",
                "network",
                "ntp",
                "syslog",
                "cloud-init-execute",
                "console"
            ]
        );
        assert_eq!(p.level["ntp"], p.level["syslog"]);
        assert_eq!(p.level["console"], 6);
        assert_eq!(
            p.dependents("network"),
            ["cloud-init-execute", "console", "ntp", "syslog"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
    }

    #[test]
    fn volumes_from_orders_the_holder_first() {
        let mut user = svc(&[]);
        user.volumes_from = vec![Text("holder".into()), Text("not-a-service".into())];
        let p = plan(&set(&[("user", user), ("holder", svc(&[]))])).unwrap();
        assert_eq!(p.order, ["holder", "user"]);
    }

    #[test]
    fn errors_table() {
        let rows: Vec<(BTreeMap<String, ServiceConfig>, OrderError)> = vec![
            (
                set(&[("a", svc(&[("io.rancher.os.after", "ghost")]))]),
                OrderError::Missing {
                    service: "a".into(),
                    label: "io.rancher.os.after",
                    missing: "ghost".into(),
                },
            ),
            (
                set(&[("a", svc(&[("io.rancher.os.before", "ghost")]))]),
                OrderError::Missing {
                    service: "a".into(),
                    label: "io.rancher.os.before",
                    missing: "ghost".into(),
                },
            ),
            (
                set(&[("a", svc(&[("io.rancher.os.after", "a")]))]),
                OrderError::Cycle {
                    cycle: vec!["a".into(), "a".into()],
                },
            ),
            (
                set(&[
                    ("a", svc(&[("io.rancher.os.after", "c")])),
                    ("b", svc(&[("io.rancher.os.after", "a")])),
                    ("c", svc(&[("io.rancher.os.after", "b")])),
                    ("d", svc(&[("io.rancher.os.after", "a")])),
                ]),
                OrderError::Cycle {
                    cycle: vec!["a".into(), "b".into(), "c".into(), "a".into()],
                },
            ),
        ];
        for (services, want) in rows {
            assert_eq!(plan(&services).unwrap_err(), want);
        }
        let msg = plan(&set(&[
            ("a", svc(&[("io.rancher.os.after", "b")])),
            (
                "b",
                svc(&[("io.rancher.os.before", "a"), ("io.rancher.os.after", "a")]),
            ),
        ]))
        .unwrap_err()
        .to_string();
        assert!(msg.contains("cycle"), "{msg}");
    }
}
