//! Health checks run by the agent: for every running instance with a
//! `healthCheck`, a TCP connect to its port — or, with a `requestLine`, an
//! HTTP request whose status must be 2xx/3xx — every `interval`, folded
//! into a [`Tally`] by [`health::observe`]. A changed `healthState` is
//! reported to the server, which replaces unhealthy containers.
//!
//! # Where the probe runs
//!
//! Inside the container's own network namespace (`setns` into
//! `/proc/<pid>/ns/net`), to the container's address there (its bridge IP,
//! or 127.0.0.1 when it has none: `host`, `none` and `container:` network
//! modes). That is the one place a container's port is reachable whatever
//! its network mode, whatever netns the agent itself runs in (on ros the
//! agent may live in a system container that has no route to the user
//! docker's bridge) and whatever the host firewall does with bridge
//! traffic. Rancher checked from other hosts through its overlay; with
//! per-host docker bridges there is no such path, and a check from outside
//! would test the agent's routing rather than the container.
//!
//! `setns` changes the calling *thread*, so each probe runs on a fresh,
//! dedicated OS thread that ends with it — never on a tokio worker or a
//! `spawn_blocking` thread, which are reused and would carry the foreign
//! namespace into unrelated work. When `setns` is refused (an agent
//! without CAP_SYS_ADMIN, or in another PID namespace) the probe falls back
//! to connecting from the agent's own namespace to the container's IP.
//!
//! # Restarts
//!
//! Each probe round inspects the container: a new `StartedAt` for the same
//! docker id is a restart and makes the container `reinitializing` (a new
//! docker id is a new container: `initializing`), with the
//! (re)initializing timeout counted from that moment.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::plan::compose::HealthCheck;
use crate::cluster::plan::health::{self, Tally};
use crate::cluster::protocol::{DesiredInstance, Report};

/// Per-instance check state.
#[derive(Default)]
pub struct Checker {
    state: HashMap<String, Entry>,
}

struct Entry {
    tally: Tally,
    /// When the run being checked was first seen.
    since: Instant,
    last: Option<Instant>,
    /// Docker id and `StartedAt` of the run being checked.
    run: Option<(String, String)>,
    reported: Option<&'static str>,
    reported_at: Instant,
}

/// A health state is sent again this often even when unchanged, so a
/// report lost on the way (a failed sync) does not stick.
const REPORT_AGAIN: Duration = Duration::from_secs(15);

/// Where to probe: the container's main process (for its netns) and the
/// address inside that namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// PID of the container's init (0 = unknown: probe from here).
    pub pid: i64,
    /// The container's IP, or loopback when it has none.
    pub ip: IpAddr,
}

/// What a probe round needs to know about a running container.
struct Seen {
    id: String,
    started_at: String,
    target: Target,
}

static FALLBACK_WARNED: AtomicBool = AtomicBool::new(false);

/// Parse the status of an HTTP response head: true for 2xx/3xx; `None`
/// while the status line is incomplete or not HTTP.
pub fn http_ok(head: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(head).ok()?;
    let line = text.split("\r\n").next()?;
    if !text.contains('\n') && head.len() < 12 {
        return None;
    }
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return Some(false);
    }
    let code = parts.next()?;
    Some(code.len() == 3 && (code.starts_with('2') || code.starts_with('3')))
}

/// One blocking check against `addr` from the calling thread's namespace.
fn check_blocking(addr: SocketAddr, hc: &HealthCheck, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let Some(line) = &hc.request_line else {
        return true;
    };
    let req = format!("{}\r\nConnection: close\r\n\r\n", line.trim_end());
    if s.set_write_timeout(Some(left().max(Duration::from_millis(1))))
        .and_then(|()| s.write_all(req.as_bytes()))
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 256];
    let mut n = 0;
    loop {
        let l = left();
        if l.is_zero() || s.set_read_timeout(Some(l)).is_err() {
            return false;
        }
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => return http_ok(&buf[..n]).unwrap_or(false),
            Ok(k) => n += k,
        }
        if let Some(ok) = http_ok(&buf[..n]) {
            return ok;
        }
        if n == buf.len() {
            return false;
        }
    }
}

/// Enter the network namespace of `pid` (on the calling thread).
fn enter_netns(pid: i64) -> Result<(), String> {
    let path = format!("/proc/{pid}/ns/net");
    let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns {path}: {e}"))
}

/// One check of `t`: true when the port answers (and, with a request
/// line, the HTTP status is 2xx/3xx) within the response timeout.
pub async fn probe(t: &Target, hc: &HealthCheck) -> bool {
    let timeout = Duration::from_millis(hc.response_timeout.max(100));
    let addr = SocketAddr::new(t.ip, hc.port);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (pid, hc2) = (t.pid, hc.clone());
    // A dedicated thread: see the module docs.
    let spawned = std::thread::Builder::new()
        .name("health-probe".into())
        .spawn(move || {
            if pid > 0 {
                if let Err(e) = enter_netns(pid) {
                    if addr.ip().is_loopback() {
                        let _ = tx.send(false);
                        return;
                    }
                    if !FALLBACK_WARNED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "health checks: cannot enter container network namespaces; probing from the agent's");
                    }
                }
            }
            let _ = tx.send(check_blocking(addr, &hc2, timeout));
        });
    if spawned.is_err() {
        return false;
    }
    // The thread honours the timeout itself; the margin only guards a
    // thread that never answers.
    matches!(
        tokio::time::timeout(timeout + Duration::from_secs(1), rx).await,
        Ok(Ok(true))
    )
}

/// The container behind `name` when it runs.
async fn inspect(docker: &bollard::Docker, name: &str) -> Option<Seen> {
    let c = docker.inspect_container(name, None).await.ok()?;
    let st = c.state?;
    if st.running != Some(true) {
        return None;
    }
    let ip = c
        .network_settings
        .and_then(|ns| ns.networks)
        .and_then(|nets| {
            nets.values()
                .filter_map(|n| n.ip_address.as_deref()?.parse::<IpAddr>().ok())
                .next()
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    Some(Seen {
        id: c.id?,
        started_at: st.started_at.unwrap_or_default(),
        target: Target {
            pid: st.pid.unwrap_or(0),
            ip,
        },
    })
}

/// How a check round treats the run it found, given the one it checked
/// before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunChange {
    /// Same run: keep counting.
    Same,
    /// First look at this instance, or a different docker container
    /// (recreated under the same name): `initializing`.
    New,
    /// Same container started again: `reinitializing`.
    Restarted,
}

/// Compare the checked run `(docker id, StartedAt)` with the current one.
pub fn run_change(before: Option<(&str, &str)>, now: (&str, &str)) -> RunChange {
    match before {
        None => RunChange::New,
        Some((id, _)) if id != now.0 => RunChange::New,
        Some((_, started)) if started != now.1 => RunChange::Restarted,
        Some(_) => RunChange::Same,
    }
}

impl Checker {
    /// Run the checks that are due; reports for changed health states.
    pub async fn run(
        &mut self,
        docker: &bollard::Docker,
        desired: &[DesiredInstance],
    ) -> Vec<Report> {
        // Entries live as long as the instance is assigned here, so a
        // stop/start shows as a restart.
        self.state.retain(|id, _| {
            desired
                .iter()
                .any(|d| &d.id == id && d.health_check.is_some())
        });
        let mut due = Vec::new();
        for d in desired {
            let Some(hc) = &d.health_check else { continue };
            if d.state != "running" || d.desired_state != "running" {
                continue;
            }
            let e = self.state.entry(d.id.clone()).or_insert_with(|| Entry {
                tally: Tally::default(),
                since: Instant::now(),
                last: None,
                run: None,
                reported: None,
                reported_at: Instant::now(),
            });
            if e.last
                .is_some_and(|l| l.elapsed() < Duration::from_millis(hc.interval.max(100)))
            {
                continue;
            }
            let Some(seen) = inspect(docker, &d.docker_name).await else {
                continue;
            };
            let before = e.run.as_ref().map(|(i, s)| (i.as_str(), s.as_str()));
            match run_change(before, (&seen.id, &seen.started_at)) {
                RunChange::Same => {}
                change => {
                    let first = e.run.is_none();
                    e.tally = if change == RunChange::Restarted {
                        Tally::restarted()
                    } else {
                        Tally::default()
                    };
                    if !first {
                        e.since = Instant::now();
                    }
                    e.run = Some((seen.id.clone(), seen.started_at.clone()));
                }
            }
            due.push((d.id.clone(), seen.target, hc.clone()));
        }
        let results = futures_util::future::join_all(due.iter().map(|(id, t, hc)| async move {
            let t0 = Instant::now();
            let ok = probe(t, hc).await;
            tracing::debug!(instance = %id, target = ?t, ok, ms = t0.elapsed().as_millis() as u64, "health probe");
            (id.clone(), ok, hc)
        }))
        .await;
        let mut out = Vec::new();
        for (id, ok, hc) in results {
            let Some(e) = self.state.get_mut(&id) else {
                continue;
            };
            e.last = Some(Instant::now());
            let age = u64::try_from(e.since.elapsed().as_millis()).unwrap_or(u64::MAX);
            e.tally = health::observe(e.tally, ok, age, hc);
            let now = e.tally.health.as_str();
            if e.reported != Some(now) || e.reported_at.elapsed() >= REPORT_AGAIN {
                if e.reported != Some(now) {
                    tracing::info!(instance = %id, health = now, "health state");
                }
                e.reported = Some(now);
                e.reported_at = Instant::now();
                out.push(Report {
                    instance_id: id,
                    health_state: Some(now.to_string()),
                    ..Report::default()
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_lines() {
        let rows: &[(&[u8], Option<bool>)] = &[
            (b"HTTP/1.0 200 OK\r\n", Some(true)),
            (b"HTTP/1.1 204 No Content\r\n\r\n", Some(true)),
            (b"HTTP/1.0 302 Found\r\nLocation: /\r\n", Some(true)),
            (b"HTTP/1.0 404 Not Found\r\n", Some(false)),
            (b"HTTP/1.1 500 Oops\r\n", Some(false)),
            (b"HTTP/1.0 200", Some(true)),
            (b"HTTP/1.", None),
            (b"", None),
            (b"SSH-2.0-OpenSSH_9.2\r\n", Some(false)),
            (b"HTTP/1.0 2000 what\r\n", Some(false)),
            (b"\xff\xfe garbage bytes here\n", None),
        ];
        for (head, want) in rows {
            assert_eq!(http_ok(head), *want, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn run_changes() {
        let rows = [
            (None, ("a", "t1"), RunChange::New),
            (Some(("a", "t1")), ("a", "t1"), RunChange::Same),
            (Some(("a", "t1")), ("a", "t2"), RunChange::Restarted),
            (Some(("a", "t1")), ("b", "t1"), RunChange::New),
            (Some(("a", "t1")), ("b", "t2"), RunChange::New),
        ];
        for (before, now, want) in rows {
            assert_eq!(run_change(before, now), want, "{before:?} → {now:?}");
        }
    }

    #[test]
    fn probes_tcp_and_http_locally() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = Target {
            pid: 0,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let mut hc = HealthCheck::new(port);
        hc.response_timeout = 1000;
        // One server thread answering 200, then 404, to two HTTP checks.
        let srv = std::thread::spawn(move || {
            for status in ["200 OK", "404 Not Found"] {
                let (mut s, _) = l.accept().unwrap();
                let mut b = [0u8; 512];
                let _ = s.read(&mut b);
                let _ = s.write_all(format!("HTTP/1.0 {status}\r\n\r\n").as_bytes());
            }
            l
        });
        hc.request_line = Some("GET / HTTP/1.0".into());
        assert!(rt.block_on(probe(&t, &hc)));
        assert!(!rt.block_on(probe(&t, &hc)));
        let l = srv.join().unwrap();
        // TCP: the listener still accepts (backlog), so connect succeeds.
        hc.request_line = None;
        assert!(rt.block_on(probe(&t, &hc)));
        drop(l);
        assert!(!rt.block_on(probe(&t, &hc)), "closed port fails");
        // A silent server fails the HTTP check within the timeout.
        let quiet = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut hc2 = HealthCheck::new(quiet.local_addr().unwrap().port());
        hc2.request_line = Some("GET / HTTP/1.0".into());
        hc2.response_timeout = 300;
        let t0 = Instant::now();
        assert!(!rt.block_on(probe(&t, &hc2)));
        assert!(
            t0.elapsed() < Duration::from_millis(1200),
            "{:?}",
            t0.elapsed()
        );
    }
}
