//! In-service upgrades under load on a real multi-host cluster (server + 3
//! agents in network namespaces with their own dockerd):
//! - a client keeps requesting the service through its public endpoints
//!   (random host ports from the project range, each request picking a
//!   running, healthy container the server lists — what a load balancer or
//!   Rancher's DNS does) while web is upgraded start-first at batch 1, then
//!   finished: not one request fails, and the answers move from v1 to v2;
//! - the server is killed (SIGKILL) in the middle of a second upgrade and
//!   started again on the same database: the upgrade completes, with
//!   exactly one new container per index — nothing started twice.

mod harness;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;
use serde_json::Value;

const DC: &str = r#"version: '2'
services:
  web:
    image: ros-test/busybox:latest
    environment:
      VERSION: v1
    command:
      - sh
      - -c
      - "trap 'exit 0' TERM; mkdir -p /www; echo $$VERSION > /www/index.html; httpd -f -p 80 -h /www & wait"
    ports:
      - "80"
"#;

const RC: &str = r#"version: '2'
services:
  web:
    scale: 3
    drain_timeout_ms: 1500
    upgrade_strategy:
      start_first: true
      batch_size: 1
      interval_millis: 500
    health_check:
      port: 80
      request_line: GET / HTTP/1.0
      interval: 500
      response_timeout: 500
      healthy_threshold: 1
      unhealthy_threshold: 3
      initializing_timeout: 20000
"#;

fn compose(c: &Cluster, dir: &Path, args: &[&str]) -> Output {
    ros_compose(c, dir, &[&["-p", "up"], args].concat())
}

fn ok(c: &Cluster, dir: &Path, args: &[&str]) {
    assert!(
        compose(c, dir, args).status.success(),
        "ros compose {args:?}"
    );
}

/// Live containers of web.
fn web(url: &str) -> Vec<Value> {
    get(&format!("{url}/v1/projects/1a5/containers?limit=1000"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["name"].as_str().unwrap_or("").starts_with("up-web-")
                && !matches!(c["state"].as_str(), Some("removed" | "removing"))
                && c["desiredState"] != "removed"
        })
        .cloned()
        .collect()
}

/// `ip:port` of every container a client may use now: running, meant to
/// run, healthy.
fn endpoints(url: &str) -> Option<Vec<String>> {
    let body = api()
        .get(&format!("{url}/v1/projects/1a5/containers?limit=1000"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    let v: Value = serde_json::from_str(&body).ok()?;
    Some(
        v["data"]
            .as_array()?
            .iter()
            .filter(|c| {
                c["name"].as_str().unwrap_or("").starts_with("up-web-")
                    && c["state"] == "running"
                    && c["desiredState"] == "running"
                    && c["healthState"] == "healthy"
            })
            .flat_map(|c| c["publicEndpoints"].as_array().cloned().unwrap_or_default())
            .map(|e| format!("{}:{}", e["ipAddress"].as_str().unwrap_or(""), e["port"]))
            .collect(),
    )
}

fn http_get(addr: &str) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect_timeout(
        &addr.parse().map_err(|e| format!("{addr}: {e}"))?,
        Duration::from_secs(2),
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("{addr}: {e}"))?;
    if !out.starts_with("HTTP/1.") || !out.contains(" 200 ") {
        return Err(format!("{addr}: answered {out:?}"));
    }
    Ok(out
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

#[derive(Default)]
struct Tally {
    ok: usize,
    failed: Vec<String>,
    bodies: BTreeMap<String, usize>,
    last: String,
}

/// The client: request the service until `stop`, one endpoint after the
/// other.
fn client(url: String, stop: Arc<AtomicBool>, t: Arc<Mutex<Tally>>) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let r = match endpoints(&url) {
            None => Err("server did not answer the endpoint list".to_string()),
            Some(eps) if eps.is_empty() => Err("no healthy endpoint".to_string()),
            Some(eps) => http_get(&eps[i % eps.len()]),
        };
        i += 1;
        let mut t = t.lock().unwrap();
        match r {
            Ok(body) => {
                t.ok += 1;
                *t.bodies.entry(body.clone()).or_default() += 1;
                t.last = body;
            }
            Err(e) => t.failed.push(e),
        }
        drop(t);
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_healthy(url: &str, version: &str, n: usize) {
    wait_for(&format!("{n} web {version} healthy"), 120, || {
        let all = web(url);
        (all.len() == n
            && all.iter().all(|c| {
                c["state"] == "running"
                    && c["healthState"] == "healthy"
                    && c["environment"]["VERSION"] == version
            }))
        .then_some(())
    });
}

/// Kill the server with SIGKILL and start it again with the same
/// arguments (same database, same listeners).
fn restart_server(c: &mut Cluster) {
    let mut old = c.server.take().unwrap();
    let args: Vec<String> = std::fs::read(format!("/proc/{}/cmdline", old.id()))
        .unwrap()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    old.kill().unwrap();
    old.wait().unwrap();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(c.dir.path().join("server.log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    c.server = Some(
        Command::new(&args[0])
            .args(&args[1..])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let ping = format!("{}/ping", c.url);
    wait_for("server again", 30, || api().get(&ping).call().ok());
}

#[test]
fn upgrade_under_load_and_across_a_server_restart() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "cluster_upgrade needs root (network namespaces and dockerd); CI runs as root"
    );
    let t0 = Instant::now();
    let mut c = setup();
    let url = c.url.clone();
    join_agents(&mut c);
    let dir = c.dir.path().join("up");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), DC).unwrap();
    std::fs::write(dir.join("rancher-compose.yml"), RC).unwrap();
    ok(&c, &dir, &["up", "-d"]);
    wait_healthy(&url, "v1", 3);

    // Upgrade to v2 under load, then finish.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let th = {
        let (u, s, t) = (url.clone(), stop.clone(), tally.clone());
        std::thread::spawn(move || client(u, s, t))
    };
    wait_for("the client's first answers", 30, || {
        (tally.lock().unwrap().ok >= 20).then_some(())
    });
    std::fs::write(
        dir.join("docker-compose.yml"),
        DC.replace("VERSION: v1", "VERSION: v2"),
    )
    .unwrap();
    ok(
        &c,
        &dir,
        &[
            "up",
            "-d",
            "--upgrade",
            "--batch-size",
            "1",
            "--interval",
            "2000",
        ],
    );
    ok(&c, &dir, &["up", "-d", "--confirm-upgrade"]);
    wait_healthy(&url, "v2", 3);
    let before = tally.lock().unwrap().ok;
    wait_for("more answers after the finish", 30, || {
        (tally.lock().unwrap().ok >= before + 20).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    th.join().unwrap();
    let t = tally.lock().unwrap();
    eprintln!(
        "client: {} answers, {} failures, bodies {:?}",
        t.ok,
        t.failed.len(),
        t.bodies
    );
    assert!(t.failed.is_empty(), "failed requests: {:?}", t.failed);
    assert!(t.bodies.contains_key("v1") && t.bodies.contains_key("v2"));
    assert_eq!(t.last, "v2");
    drop(t);

    // Upgrade to v3 with a long interval; kill the server after the first
    // batch, start it again: the upgrade completes, one container per index.
    std::fs::write(
        dir.join("docker-compose.yml"),
        DC.replace("VERSION: v1", "VERSION: v3"),
    )
    .unwrap();
    let mut up = Command::new(ros())
        .args(["compose", "-p", "up", "--url", &url])
        .args([
            "up",
            "-d",
            "--upgrade",
            "--batch-size",
            "1",
            "--interval",
            "4000",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("first v3 container running", 60, || {
        web(&url)
            .iter()
            .any(|c| c["environment"]["VERSION"] == "v3" && c["state"] == "running")
            .then_some(())
    });
    let _ = up.kill();
    let _ = up.wait();
    restart_server(&mut c);
    wait_for("web upgraded after the restart", 120, || {
        (get(&format!("{url}/v1/projects/1a5/services?name=web"))["data"][0]["state"] == "upgraded")
            .then_some(())
    });
    let all = web(&url);
    let v3: Vec<&Value> = all
        .iter()
        .filter(|c| c["environment"]["VERSION"] == "v3")
        .collect();
    let mut idx: Vec<u64> = v3
        .iter()
        .map(|c| c["serviceIndex"].as_u64().unwrap())
        .collect();
    idx.sort_unstable();
    assert_eq!(idx, [1, 2, 3], "one v3 container per index: {v3:?}");
    assert!(v3.iter().all(|c| c["state"] == "running"));
    let old: Vec<&Value> = all
        .iter()
        .filter(|c| c["environment"]["VERSION"] == "v2")
        .collect();
    assert_eq!(
        old.len(),
        3,
        "old containers kept (stopped) until the finish"
    );
    assert!(old.iter().all(|c| c["state"] == "stopped"), "{old:?}");
    ok(&c, &dir, &["up", "-d", "--confirm-upgrade"]);
    wait_healthy(&url, "v3", 3);
    // Every engine holds exactly the three v3 containers once the agents
    // have removed the v2 ones the finish let go (they do so on their next
    // converge, which may come just after the v3 ones turn healthy).
    let engines = || -> usize {
        c.hosts
            .iter()
            .map(|h| {
                h.docker(&["ps", "-aq", "--filter", "name=up-web-"])
                    .unwrap()
                    .split_whitespace()
                    .count()
            })
            .sum()
    };
    wait_for("the old containers gone from the engines", 30, || {
        (engines() <= 3).then_some(())
    });
    assert_eq!(engines(), 3, "engines hold only the new containers");
    ok(&c, &dir, &["rm", "-f"]);
    eprintln!("cluster_upgrade took {:?}", t0.elapsed());
}
