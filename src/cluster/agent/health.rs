//! Health checks run by the agent: for every running instance with a
//! `healthCheck`, a TCP connect to its port — or, with a `requestLine`, an
//! HTTP request whose status must be 2xx/3xx — every `interval`, folded
//! into a [`Tally`] by [`health::observe`]. A changed `healthState` is
//! reported to the server, which replaces unhealthy containers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    since: Instant,
    last: Option<Instant>,
    ip: Option<String>,
    reported: Option<&'static str>,
}

/// One check: `Ok` when the port answers (and the HTTP status is 2xx/3xx).
pub async fn probe(ip: &str, hc: &HealthCheck) -> bool {
    let timeout = Duration::from_millis(hc.response_timeout.max(100));
    let run = async {
        let mut s = TcpStream::connect((ip, hc.port)).await.ok()?;
        let Some(line) = &hc.request_line else {
            return Some(true);
        };
        let req = format!("{}\r\nConnection: close\r\n\r\n", line.trim_end());
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let k = s.read(&mut buf[n..]).await.ok()?;
            if k == 0 {
                break;
            }
            n += k;
        }
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        let code = head.split_whitespace().nth(1)?;
        Some(code.starts_with('2') || code.starts_with('3'))
    };
    matches!(tokio::time::timeout(timeout, run).await, Ok(Some(true)))
}

impl Checker {
    /// Run the checks that are due; reports for changed health states.
    pub async fn run(
        &mut self,
        docker: &bollard::Docker,
        desired: &[DesiredInstance],
    ) -> Vec<Report> {
        self.state
            .retain(|id, _| desired.iter().any(|d| &d.id == id && d.state == "running"));
        let mut due = Vec::new();
        for d in desired {
            let Some(hc) = &d.health_check else { continue };
            if d.state != "running" {
                continue;
            }
            let e = self.state.entry(d.id.clone()).or_insert_with(|| Entry {
                tally: Tally::default(),
                since: Instant::now(),
                last: None,
                ip: None,
                reported: None,
            });
            if e.last
                .is_some_and(|l| l.elapsed() < Duration::from_millis(hc.interval.max(100)))
            {
                continue;
            }
            if e.ip.is_none() {
                e.ip = container_ip(docker, &d.docker_name).await;
            }
            if let Some(ip) = e.ip.clone() {
                due.push((d.id.clone(), ip, hc.clone()));
            }
        }
        let results = futures_util::future::join_all(
            due.iter()
                .map(|(id, ip, hc)| async move { (id.clone(), probe(ip, hc).await, hc) }),
        )
        .await;
        let mut out = Vec::new();
        for (id, ok, hc) in results {
            let Some(e) = self.state.get_mut(&id) else {
                continue;
            };
            e.last = Some(Instant::now());
            if !ok {
                // Look the address up again (the container may have been
                // recreated under the same name), and forget its neighbour
                // entry: a new container often reuses the address of a
                // removed one, and a stale ARP entry would fail every check.
                if let Some(ip) = e.ip.take() {
                    let _ = tokio::process::Command::new("ip")
                        .args(["neigh", "flush", "to", &ip])
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                        .await;
                }
            }
            let age = u64::try_from(e.since.elapsed().as_millis()).unwrap_or(u64::MAX);
            e.tally = health::observe(e.tally, ok, age, hc);
            let now = e.tally.health.as_str();
            if e.reported != Some(now) {
                e.reported = Some(now);
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

async fn container_ip(docker: &bollard::Docker, name: &str) -> Option<String> {
    let c = docker.inspect_container(name, None).await.ok()?;
    let ns = c.network_settings?;
    ns.networks?
        .values()
        .filter_map(|n| n.ip_address.clone())
        .find(|ip| !ip.is_empty())
}
