//! One reconcile pass through the server's driver over a real SQLite
//! store (read, plan, commit): 1,000 containers in 100 services on 20
//! hosts — placement from empty, then a steady pass with nothing to do.
//! `cargo bench --bench pass_store`; compare with the same file run on an
//! older commit (the "before" figure of the reshape). `PASS_BENCH_SIZE=
//! hosts,services,per` runs another size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

mod common;

use common::empty_cluster;
use ros::cluster::model::Kind;
use ros::cluster::store::{Scope, SqliteStore, Store};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// This thread's CPU time in seconds (the wall time on a loaded machine
/// includes other processes' turns).
fn cpu() -> f64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
        .unwrap_or(0.0)
}

fn pass(app: &ros::cluster::api::App) {
    ros::cluster::server::driver::pass(app).unwrap();
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (hosts, services, per) = if bench { (20, 100, 10) } else { (5, 5, 2) };
    // Another size, e.g. `PASS_BENCH_SIZE=500,100,100` for 10,000
    // containers on 500 hosts.
    let size: Vec<usize> = std::env::var("PASS_BENCH_SIZE")
        .unwrap_or_default()
        .split(',')
        .filter_map(|x| x.parse().ok())
        .collect();
    let (hosts, services, per) = match size[..] {
        [h, s, p] if bench => (h, s, u32::try_from(p).unwrap_or(u32::MAX)),
        _ => (hosts, services, per),
    };
    let snap = empty_cluster(hosts, services, per);
    let store = SqliteStore::memory().unwrap();
    let mut rows = snap.projects.clone();
    rows.extend(snap.hosts.iter().cloned());
    rows.extend(snap.stacks.iter().cloned());
    rows.extend(snap.services.iter().cloned());
    rows.extend(snap.containers().iter().cloned());
    store.commit(&rows).unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let app = ros::cluster::api::App::new(store.clone(), Default::default()).unwrap();
    let t = Instant::now();
    let a = ALLOCS.load(Ordering::Relaxed);
    pass(&app);
    let placing = t.elapsed();
    let placed_allocs = ALLOCS.load(Ordering::Relaxed) - a;
    let mut cs = store.list(Kind::Container, Scope::All).unwrap();
    let made = cs.len();
    for c in &mut cs {
        c.state = "running".into();
    }
    let mut ss = store.list(Kind::Service, Scope::All).unwrap();
    for s in &mut ss {
        s.state = "active".into();
        s.set("healthState", "healthy");
    }
    cs.extend(ss);
    store.commit(&cs).unwrap();
    pass(&app);
    let mut best = f64::MAX;
    let mut best_cpu = f64::MAX;
    let mut allocs = 0;
    for _ in 0..5 {
        let a = ALLOCS.load(Ordering::Relaxed);
        let t = Instant::now();
        let c = cpu();
        pass(&app);
        let d = t.elapsed().as_secs_f64();
        best_cpu = best_cpu.min(cpu() - c);
        if d < best {
            best = d;
            allocs = ALLOCS.load(Ordering::Relaxed) - a;
        }
    }
    println!(
        "store pass, {hosts} hosts, {services} services, {made} containers: \
         placement pass {:.1} ms ({placed_allocs} allocations), \
         steady pass {:.2} ms ({:.2} ms CPU, {allocs} allocations)",
        placing.as_secs_f64() * 1e3,
        best * 1e3,
        best_cpu * 1e3
    );
}
