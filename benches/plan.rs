//! The reconcile plan alone, at scale: no store, no docker — hosts and
//! containers are data. Prints, per size, the placements per second of
//! one pass from an empty cluster and the time and allocations of one
//! steady-state pass with nothing to do.
//!
//! `cargo bench --bench plan` (release build): 1k / 10k / 100k containers
//! on 50 / 500 / 5,000 hosts in 10 / 100 / 1,000 services, with host-label
//! and host-port constraints. Under `cargo test` (no `--bench`) it runs
//! the smallest size once as a smoke test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::json;

use ros::cluster::model::{Kind, Resource};
use ros::cluster::plan::compose::fields::PortSpec;
use ros::cluster::plan::compose::{LaunchConfig, ServiceSpec};
use ros::cluster::plan::reconcile::{reconcile, Snapshot};
use ros::cluster::plan::scheduler::Protocol;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(l.size() as u64, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(n as u64, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const NOW: i64 = 1_800_000_000_000;

/// `hosts` hosts in three zones; `services` services of `per` containers,
/// ten per stack; every fourth service pinned to a zone by a host label,
/// every fifth publishing a fixed host port (one of 50; where the hosts of
/// one zone can hold its scale), every seventh a random port.
fn empty_cluster(hosts: usize, services: usize, per: u32) -> Snapshot {
    let zones = ["a", "b", "c"];
    let mut p = Resource::new(Kind::Project, 5, 0, "active");
    p.set(
        "servicesPortRange",
        json!({"startPort": 49153, "endPort": 65535}),
    );
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
    Snapshot {
        projects: vec![p],
        hosts: hs,
        stacks,
        services: svcs,
        containers: Vec::new(),
        next_container_id: 1,
    }
}

/// The cluster after `snap`'s pass, with every container running and
/// every service active: a pass over it has nothing to do.
fn settled(mut snap: Snapshot, rows: Vec<Resource>) -> Snapshot {
    for mut r in rows {
        match r.kind {
            Kind::Container => {
                r.state = "running".into();
                snap.next_container_id = snap.next_container_id.max(r.id + 1);
                snap.containers.push(r);
            }
            Kind::Service => {
                if let Some(s) = snap.services.iter_mut().find(|s| s.id == r.id) {
                    *s = r;
                }
            }
            _ => {}
        }
    }
    for s in &mut snap.services {
        s.state = "active".into();
        s.set("healthState", "healthy");
    }
    snap
}

fn counters() -> (u64, u64) {
    (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    )
}

fn run(hosts: usize, services: usize, per: u32, rounds: usize) {
    let want = services * per as usize;
    let empty = empty_cluster(hosts, services, per);
    let t = Instant::now();
    let (a0, _) = counters();
    let ch = reconcile(&empty, NOW);
    let placing = t.elapsed();
    let (a1, _) = counters();
    let made = ch
        .rows
        .iter()
        .filter(|r| r.kind == Kind::Container && r.host != 0)
        .count();
    let unplaced = ch
        .rows
        .iter()
        .filter(|r| r.kind == Kind::Container && r.host == 0)
        .count();
    assert_eq!(unplaced, 0, "every container fits");
    let steady = settled(empty, ch.rows);
    let mut best = f64::MAX;
    let mut allocs = 0;
    let mut bytes = 0;
    for _ in 0..rounds {
        let (a, b) = counters();
        let t = Instant::now();
        let ch = reconcile(&steady, NOW + 1000);
        let d = t.elapsed().as_secs_f64();
        let (a2, b2) = counters();
        assert!(
            ch.rows.is_empty(),
            "a settled cluster needs nothing: {:?}",
            &ch.rows[..ch.rows.len().min(2)]
        );
        if d < best {
            best = d;
            allocs = a2 - a;
            bytes = b2 - b;
        }
    }
    println!(
        "hosts {hosts:>5}  services {services:>5}  containers {want:>6}: \
         placed {made} (unplaceable {unplaced}) in {:.3} s = {:.0} placements/s, {} allocations; \
         steady pass {:.2} ms, {allocs} allocations ({:.1} MB)",
        placing.as_secs_f64(),
        made as f64 / placing.as_secs_f64(),
        a1 - a0,
        best * 1e3,
        bytes as f64 / 1e6,
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        run(50, 10, 100, 1);
        return;
    }
    if let Ok(only) = std::env::var("PLAN_BENCH_ONLY") {
        // One size, e.g. `PLAN_BENCH_ONLY=500,100,100` (for a profiler).
        let n: Vec<usize> = only.split(',').filter_map(|x| x.parse().ok()).collect();
        if let [h, s, p] = n[..] {
            let rounds = std::env::var("PLAN_BENCH_ROUNDS")
                .ok()
                .and_then(|r| r.parse().ok());
            run(h, s, p as u32, rounds.unwrap_or(3));
            return;
        }
    }
    println!("reconcile plan (one core, no store, no docker)");
    run(20, 100, 10, 5);
    run(50, 10, 100, 5);
    run(500, 100, 100, 5);
    run(5000, 1000, 100, 3);
}
