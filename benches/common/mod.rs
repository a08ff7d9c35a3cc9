//! The cluster the benchmarks run on, as store rows.

use serde_json::json;

use ros::cluster::model::{Kind, Resource};
use ros::cluster::plan::compose::fields::PortSpec;
use ros::cluster::plan::compose::{LaunchConfig, ServiceSpec};
use ros::cluster::plan::reconcile::Snapshot;
use ros::cluster::plan::scheduler::Protocol;

/// `hosts` hosts in three zones; `services` services of `per` containers,
/// ten per stack; every fourth service pinned to a zone by a host label,
/// every fifth publishing a fixed host port (one of 50; where the hosts of
/// one zone can hold its scale), every seventh a random port.
pub fn empty_cluster(hosts: usize, services: usize, per: u32) -> Snapshot {
    let zones = ["a", "b", "c"];
    let mut p = Resource::new(Kind::Project, 5, 0, "active");
    p.set(
        "servicesPortRange",
        json!({"startPort": 49153, "endPort": 65535}),
    );
    // Every container gets a managed-network address: 100,000 of them need
    // more than Rancher's /16 (65,533), so the environment has a /10.
    p.set("subnet", "10.64.0.0/10");
    let hs = (1..=hosts as u64)
        .map(|i| {
            let mut h = Resource::new(Kind::Host, i, 5, "active");
            h.set("agentState", "active");
            h.set("labels", json!({"zone": zones[(i % 3) as usize]}));
            h
        })
        .collect();
    let mut stacks = Vec::new();
    let mut svcs = Vec::new();
    for i in 0..services {
        let st = (i / 10) as u64 + 1;
        if i % 10 == 0 {
            let mut s = Resource::new(Kind::Stack, st, 5, "active");
            s.set("name", format!("st{st}"));
            s.set("healthState", "healthy");
            stacks.push(s);
        }
        let mut lc = LaunchConfig {
            image: "busybox".into(),
            ..LaunchConfig::default()
        };
        if i % 4 == 1 {
            lc.labels.insert(
                "io.rancher.scheduler.affinity:host_label".into(),
                format!("zone={}", zones[i % 3]),
            );
        }
        if i % 5 == 2 && per as usize * 3 <= hosts {
            lc.ports.push(PortSpec {
                public: Some(8000 + (i / 5 % 50) as u16),
                private: 80,
                ..PortSpec::default()
            });
        } else if i % 7 == 3 {
            lc.ports.push(PortSpec {
                public: None,
                private: 443,
                protocol: Protocol::Tcp,
                ..PortSpec::default()
            });
        }
        let spec = ServiceSpec {
            name: format!("svc{i}"),
            scale: per,
            launch_config: lc,
            ..ServiceSpec::default()
        };
        let mut s = Resource::new(Kind::Service, i as u64 + 1, 5, "activating");
        s.set("name", spec.name.clone());
        s.set("stackId", format!("1st{st}"));
        s.set("scale", per);
        s.set("healthState", "healthy");
        s.set("_stack", format!("st{st}"));
        s.set("_spec", serde_json::to_value(&spec).unwrap());
        svcs.push(s);
    }
    Snapshot::new(vec![p], hs, stacks, svcs, Vec::new(), 1)
}
