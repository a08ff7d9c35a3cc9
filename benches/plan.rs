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

mod common;

use common::empty_cluster;
use ros::cluster::model::{Kind, Resource};
use ros::cluster::plan::reconcile::{reconcile, Snapshot};

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

/// The cluster after `snap`'s pass, with every container running and
/// every service active: a pass over it has nothing to do.
fn settled(mut snap: Snapshot, rows: Vec<Resource>) -> Snapshot {
    let mut done = Vec::new();
    for mut r in rows {
        match r.kind {
            Kind::Container => {
                r.state = "running".into();
                snap.next_container_id = snap.next_container_id.max(r.id + 1);
            }
            Kind::Service | Kind::Stack => {
                r.state = "active".into();
                r.set("healthState", "healthy");
            }
            _ => {}
        }
        done.push(r);
    }
    snap.apply(done);
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

/// This thread's CPU time in seconds: on a loaded machine the wall time of
/// a pass includes other processes' turns; its CPU time does not.
fn cpu() -> f64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
        .unwrap_or(0.0)
}

fn run(hosts: usize, services: usize, per: u32, rounds: usize) {
    let want = services * per as usize;
    let empty = empty_cluster(hosts, services, per);
    let t = Instant::now();
    let c0 = cpu();
    let (a0, _) = counters();
    let ch = reconcile(&empty, NOW);
    let placing = t.elapsed();
    let placing_cpu = cpu() - c0;
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
    let mut best_cpu = f64::MAX;
    let mut allocs = 0;
    let mut bytes = 0;
    for _ in 0..rounds {
        let (a, b) = counters();
        let t = Instant::now();
        let c = cpu();
        let ch = reconcile(&steady, NOW + 1000);
        let d = t.elapsed().as_secs_f64();
        best_cpu = best_cpu.min(cpu() - c);
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
         placed {made} (unplaceable {unplaced}) in {:.3} s = {:.0} placements/s \
         ({:.0}/s of CPU time), {} allocations; \
         steady pass {:.2} ms ({:.2} ms CPU), {allocs} allocations ({:.1} MB)",
        placing.as_secs_f64(),
        made as f64 / placing.as_secs_f64(),
        made as f64 / placing_cpu,
        a1 - a0,
        best * 1e3,
        best_cpu * 1e3,
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
