//! The per-host DNS server under load: queries per second and latency of
//! service-name answers with 1,000 containers in the environment, the
//! server on one core (a current-thread runtime on its own thread), and
//! the forwarder under the same load (names outside the environment
//! relayed to an upstream the bench runs): every query must be answered.
//!
//! `cargo bench --bench dns` (release build). The load tool keeps a fixed
//! window of queries in flight over one UDP socket and times each by its
//! id; bounded by a query count. Under `cargo test` (no `--bench`) it runs
//! a small load once as a smoke test.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ros::cluster::agent::dns::{self, DnsConfig, Resolver};
use ros::cluster::agent::envview::View;
use ros::cluster::agent::names::Index;
use ros::cluster::protocol::{EnvContainer, EnvService, EnvStack};

const SERVICES: usize = 100;
const PER_SERVICE: usize = 10;

/// 10 stacks × 10 services × 10 containers = 1,000 containers.
fn environment() -> View {
    let mut v = View::default();
    for st in 0..10 {
        let sid = format!("1st{st}");
        v.stacks.insert(
            sid.clone(),
            EnvStack {
                id: sid.clone(),
                name: format!("stack{st}"),
                state: "active".into(),
            },
        );
    }
    for s in 0..SERVICES {
        let id = format!("1s{s}");
        let stack = format!("1st{}", s / 10);
        v.services.insert(
            id.clone(),
            EnvService {
                id: id.clone(),
                name: format!("svc{s}"),
                stack_id: stack.clone(),
                kind: "service".into(),
                ..EnvService::default()
            },
        );
        for c in 0..PER_SERVICE {
            let n = s * PER_SERVICE + c;
            let cid = format!("1i{n}");
            v.containers.insert(
                cid.clone(),
                EnvContainer {
                    id: cid,
                    name: format!("stack{}-svc{s}-{}", s / 10, c + 1),
                    service_id: Some(id.clone()),
                    stack_id: Some(stack.clone()),
                    state: "running".into(),
                    health_state: Some(if c == 0 { "unhealthy" } else { "healthy" }.into()),
                    primary_ip: Some(format!("10.42.{}.{}", n / 250, n % 250 + 1)),
                    ..EnvContainer::default()
                },
            );
        }
    }
    v
}

/// A trivial upstream: answers every question with 192.0.2.1.
fn upstream() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                return;
            };
            let Ok(req) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut m = Message::new();
            m.set_id(req.id()).set_message_type(MessageType::Response);
            m.add_queries(req.queries().iter().cloned());
            let name = req.queries()[0].name().clone();
            m.add_answer(Record::from_rdata(
                name,
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
            ));
            let _ = s.send_to(&m.to_vec().unwrap(), from);
        }
    });
    addr
}

/// CPU time (user + system) of thread `tid` of this process.
fn thread_cpu(tid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The server on its own single-threaded runtime; its address and
/// thread id.
fn server(up: SocketAddr) -> (SocketAddr, i32) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let tid = nix::unistd::gettid().as_raw();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let ix = Index::build(&environment(), None, Ipv4Addr::new(169, 254, 169, 250));
            let r: Arc<Resolver> = Resolver::new(ix, vec![up], Duration::from_secs(2));
            let cfg = DnsConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                upstreams: vec![up],
                timeout: Duration::from_secs(2),
            };
            tx.send((dns::start(&cfg, r).await.unwrap(), tid)).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

struct Outcome {
    qps: f64,
    p50: Duration,
    p99: Duration,
    lost: usize,
    bad: usize,
}

/// `total` queries from `names`, `window` in flight.
fn load(srv: SocketAddr, names: &[String], total: usize, window: usize, want: usize) -> Outcome {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(srv).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let queries: Vec<Vec<u8>> = names
        .iter()
        .map(|n| {
            let mut m = Message::new();
            m.set_recursion_desired(true);
            m.add_query(Query::query(Name::from_ascii(n).unwrap(), RecordType::A));
            m.to_vec().unwrap()
        })
        .collect();
    let mut inflight: HashMap<u16, Instant> = HashMap::new();
    let mut lat = Vec::with_capacity(total);
    let (mut sent, mut lost, mut bad) = (0usize, 0usize, 0usize);
    let mut buf = [0u8; 1500];
    let start = Instant::now();
    let mut next_id: u16 = 0;
    while lat.len() + lost < total {
        while inflight.len() < window && sent < total {
            let mut q = queries[sent % queries.len()].clone();
            next_id = next_id.wrapping_add(1);
            q[..2].copy_from_slice(&next_id.to_be_bytes());
            inflight.insert(next_id, Instant::now());
            s.send(&q).unwrap();
            sent += 1;
        }
        match s.recv(&mut buf) {
            Ok(n) => {
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                if let Some(t) = inflight.remove(&id) {
                    lat.push(t.elapsed());
                    let m = Message::from_vec(&buf[..n]).unwrap();
                    if m.response_code() != ResponseCode::NoError || m.answers().len() != want {
                        bad += 1;
                    }
                }
            }
            Err(_) => {
                // Nothing for 2 s: what is in flight is lost.
                lost += inflight.len();
                inflight.clear();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: usize| lat.get(lat.len() * p / 100).copied().unwrap_or_default();
    Outcome {
        qps: lat.len() as f64 / secs,
        p50: pct(50),
        p99: pct(99),
        lost,
        bad,
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let total = if bench { 200_000 } else { 2_000 };
    // Memory of the environment view and its name index.
    for n in [100usize, 1000] {
        let before = rss_kib();
        let mut v = environment();
        v.containers
            .retain(|id, _| id[2..].parse::<usize>().unwrap() < n);
        let ix = Index::build(&v, None, Ipv4Addr::new(169, 254, 169, 250));
        let after = rss_kib();
        println!(
            "view + name index of {} containers: ~{} KiB resident",
            v.containers.len(),
            after.saturating_sub(before)
        );
        drop((v, ix));
    }
    let t = Instant::now();
    let v = environment();
    let reps = if bench { 100 } else { 3 };
    let mut ix = Index::build(&v, None, Ipv4Addr::new(169, 254, 169, 250));
    for _ in 0..reps {
        ix = Index::build(&v, Some(&ix), Ipv4Addr::new(169, 254, 169, 250));
    }
    println!(
        "index rebuild at 1,000 containers: {:?}",
        t.elapsed() / (reps + 1)
    );
    let up = upstream();
    let (srv, tid) = server(up);
    let local: Vec<String> = (0..SERVICES)
        .map(|s| format!("svc{s}.stack{}.rancher.internal.", s / 10))
        .collect();
    let outside: Vec<String> = (0..1000).map(|i| format!("host{i}.example.org.")).collect();
    for (what, names, want) in [
        ("service names (1,000 containers)", &local, PER_SERVICE - 1),
        ("forwarded names", &outside, 1),
    ] {
        // Warm up, then throughput (32 in flight) with the server
        // thread's CPU time, then latency (1 in flight).
        load(srv, names, total / 10, 32, want);
        let cpu0 = thread_cpu(tid);
        let o = load(srv, names, total, 32, want);
        let cpu = thread_cpu(tid).saturating_sub(cpu0);
        println!(
            "dns {what}: {total} queries, 32 in flight: {:.0} q/s wall, server thread {:?} CPU = {:.0} q per CPU-second; p50 {:?}, p99 {:?}, lost {}, wrong {}",
            o.qps,
            cpu,
            total as f64 / cpu.as_secs_f64().max(1e-3),
            o.p50,
            o.p99,
            o.lost,
            o.bad
        );
        assert_eq!(o.lost, 0, "{what}: lost queries");
        assert_eq!(o.bad, 0, "{what}: wrong answers");
        let l = load(srv, names, total / 4, 1, want);
        println!(
            "dns {what}: {} queries one at a time: p50 {:?}, p99 {:?}, lost {}",
            total / 4,
            l.p50,
            l.p99,
            l.lost
        );
        assert_eq!(l.lost + l.bad, 0, "{what}: lost or wrong");
    }
}
