//! The load balancer service on the 3-host rig (issue 13): server + 3
//! agents in network namespaces with their own dockerd, the HAProxy image
//! from `images/haproxy.sh` loaded into each. `web` (busybox httpd
//! answering its version and hostname, health-checked, one per host) and
//! `api` behind an LB on host 1's port 80 (beside the agent's metadata
//! service, which answers 169.254.169.250:80 through a DNAT, not a socket):
//! - 30 requests through host1:80 answer from each web container exactly
//!   10 times, in strict rotation;
//! - hostname and path rules route to `api`;
//! - web scaled to 4: the new container answers through the LB within 2 s
//!   of being healthy;
//! - a broken health check takes its container out of rotation;
//! - a start-first in-service upgrade (batch 1) under continuous load: 0
//!   failed requests, every answer from v2 after the finish;
//! - a port rule added under load (a reload): no request lost, the new
//!   port answers;
//! - refusals (udp, port 42, http and tcp on one port, unknown target) as
//!   422s naming the rule;
//! - HAProxy's stats through the API (`…/loadbalancerservices/{id}/stats`,
//!   `/v1` and `/v2-beta`) and `ros compose lb-stats`: the web servers UP,
//!   the requests counted;
//! - an internal LB (`ilb`, no host port, written the Rancher 1.x way:
//!   `links` and an `io.rancher.loadbalancer.target.web` label) answers a
//!   container of the stack by its name (`ilb`, `ilb.app`), in rotation;
//! - TLS termination: a certificate made here (bad PEM refused naming the
//!   field, the key never shown), an https rule on 443 serves the backend
//!   with exactly that certificate, and a renewed one once it is PUT; a
//!   tls rule on 8443 terminates and goes on as TCP; an https rule without
//!   a certificate is a 422.
//!
//! Needs root, docker.io, busybox-static and the image build's tools
//! (build/deps.sh). The image is built once into build/work/user-images
//! (~2 min the first time; `ROS_LB_IMAGE=path.tar` to use another).

mod harness;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;
use serde_json::{json, Value};

const WEB: &str = "mkdir -p /www/api; echo $$VERSION $$(hostname) > /www/index.html; cp /www/index.html /www/health; trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait";

fn dc(version: &str) -> String {
    format!(
        r#"version: '2'
services:
  web:
    image: ros-test/busybox:latest
    environment:
      VERSION: {version}
    command: [sh, -c, "{WEB}"]
    labels:
      io.rancher.scheduler.affinity:container_label_soft_ne: io.rancher.stack_service.name=app/web
  api:
    image: ros-test/busybox:latest
    command: [sh, -c, "mkdir -p /www/v1; echo api > /www/index.html; echo api > /www/v1/index.html; exec httpd -f -p 8080 -h /www"]
  lb:
    image: rancher/lb-service-haproxy:v0.7.15
    ports: ["80:80", "8080:8080"]
    labels:
      io.rancher.scheduler.affinity:host_label: node=n1
  ilb:
    image: rancher/load-balancer-service
    expose: ["90"]
    links: [web]
    labels:
      io.rancher.loadbalancer.target.web: "90=80"
"#
    )
}

const RC: &str = r#"version: '2'
services:
  web:
    scale: 3
    drain_timeout_ms: 1000
    upgrade_strategy:
      start_first: true
      batch_size: 1
      interval_millis: 500
    health_check:
      port: 80
      request_line: GET /health HTTP/1.0
      interval: 500
      response_timeout: 500
      healthy_threshold: 1
      unhealthy_threshold: 2
      initializing_timeout: 20000
  api:
    scale: 1
  lb:
    scale: 1
    lb_config:
      port_rules:
        - {source_port: 80, target_port: 80, service: web}
        - {source_port: 80, target_port: 8080, service: api, hostname: api.example.com}
        - {source_port: 80, target_port: 8080, service: api, path: /v1, priority: 1}
  ilb:
    scale: 1
"#;

fn compose(c: &Cluster, dir: &Path, args: &[&str]) -> Output {
    ros_compose(c, dir, &[&["-p", "app"], args].concat())
}

fn ok(c: &Cluster, dir: &Path, args: &[&str]) {
    assert!(
        compose(c, dir, args).status.success(),
        "ros compose {args:?}"
    );
}

/// The HAProxy image archive: built by images/haproxy.sh when missing.
fn lb_image() -> PathBuf {
    if let Ok(p) = std::env::var("ROS_LB_IMAGE") {
        return PathBuf::from(p);
    }
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::var("ROS_WORK").map_or_else(|_| top.join("build/work"), PathBuf::from);
    let tar = work.join("user-images/lb-haproxy.tar");
    if !tar.exists() {
        let t = Instant::now();
        let st = std::process::Command::new("bash")
            .arg(top.join("images/haproxy.sh"))
            .env("ROS_WORK", &work)
            .status()
            .unwrap();
        assert!(st.success(), "images/haproxy.sh failed");
        eprintln!("images/haproxy.sh took {:?}", t.elapsed());
    }
    tar
}

/// One HTTP/1.0 request; `(status, body)`.
fn http(addr: &str, path: &str, host: &str) -> Result<(u16, String), String> {
    let mut s = std::net::TcpStream::connect_timeout(
        &addr.parse().map_err(|e| format!("{addr}: {e}"))?,
        Duration::from_secs(2),
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("{addr}: {e}"))?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr}: answered {out:?}"))?;
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |x| x.1)
        .trim()
        .to_string();
    Ok((status, body))
}

fn get_ok(addr: &str, path: &str, host: &str) -> Result<String, String> {
    match http(addr, path, host)? {
        (200, b) => Ok(b),
        (s, b) => Err(format!("{addr}{path}: {s} {b}")),
    }
}

/// Live containers named `app-<svc>-…`.
fn containers(url: &str, svc: &str) -> Vec<Value> {
    get(&format!("{url}/v1/projects/1a5/containers?limit=1000"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["name"]
                .as_str()
                .unwrap_or("")
                .starts_with(&format!("app-{svc}-"))
                && !matches!(c["state"].as_str(), Some("removed" | "removing"))
                && c["desiredState"] != "removed"
        })
        .cloned()
        .collect()
}

fn wait_healthy(url: &str, version: &str, n: usize) {
    wait_for(&format!("{n} web {version} healthy"), 120, || {
        let all = containers(url, "web");
        (all.len() == n
            && all.iter().all(|c| {
                c["state"] == "running"
                    && c["healthState"] == "healthy"
                    && c["environment"]["VERSION"] == version
            }))
        .then_some(())
    });
}

#[derive(Default)]
struct Tally {
    ok: usize,
    failed: Vec<String>,
    bodies: BTreeMap<String, usize>,
    last: String,
}

/// Requests through the LB without pause until `stop`.
fn client(addr: String, stop: Arc<AtomicBool>, t: Arc<Mutex<Tally>>) {
    while !stop.load(Ordering::Relaxed) {
        let r = get_ok(&addr, "/", "web");
        let mut t = t.lock().unwrap();
        match r {
            Ok(body) => {
                t.ok += 1;
                let v = body.split_whitespace().next().unwrap_or("").to_string();
                *t.bodies.entry(v).or_default() += 1;
                t.last = body;
            }
            Err(e) => t.failed.push(e),
        }
    }
}

fn post_status(url: &str, body: Value) -> (u16, Value) {
    let r = api()
        .post(url)
        .set("Content-Type", "application/json")
        .send_string(&body.to_string());
    let (code, text) = match r {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("POST {url}: {e}"),
    };
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The host of a container (`node1` is `c.hosts[0]` …).
fn host_of<'a>(c: &'a Cluster, ct: &Value) -> &'a Host {
    let i = (0..3)
        .find(|i| host_by_name(&c.url, &format!("node{}", i + 1)).unwrap()["id"] == ct["hostId"])
        .unwrap();
    &c.hosts[i]
}

/// `wget` inside a container (busybox's `-q` exits non-zero here even on
/// success, so the progress goes to /dev/null instead; its `-T` crashes
/// busybox 1.35, so `timeout` bounds it).
fn fetch(h: &Host, ct: &Value, url: &str) -> Result<String, String> {
    let id = ct["externalId"].as_str().unwrap();
    let cmd = format!("timeout 5 wget -O- {url} 2>/dev/null");
    h.docker(&["exec", id, "sh", "-c", &cmd])
        .map(|s| s.trim().to_string())
}

/// The LB container's log and config (on a failure).
fn lb_debug(c: &Cluster) {
    let h = &c.hosts[0];
    eprintln!("--- lb logs ---\n{:?}", h.docker(&["logs", "r-app-lb-1"]));
    eprintln!("--- lb ps ---\n{:?}", h.docker(&["ps", "-a"]));
    eprintln!(
        "--- haproxy.cfg ---\n{}",
        h.docker(&["exec", "r-app-lb-1", "cat", "/run/lb/haproxy.cfg"])
            .unwrap_or_else(|e| e)
    );
    let vols = h.root.join("var/lib/docker/volumes");
    for e in std::fs::read_dir(&vols).into_iter().flatten().flatten() {
        let sock = e.path().join("_data/admin.sock");
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) {
            let _ = s.write_all(b"show servers state\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            eprintln!("--- {} ---\n{out}", sock.display());
        }
    }
    let text = std::fs::read_to_string(c.dir.path().join("agent1.log")).unwrap_or_default();
    for l in text.lines().filter(|l| l.contains("load balancer")) {
        eprintln!("{l}");
    }
}

#[test]
fn load_balancer_rotates_routes_follows_health_and_loses_nothing() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "!!! SKIPPED cluster_lb: needs root (network namespaces and dockerd); CI runs as root"
        );
        return;
    }
    let t0 = Instant::now();
    let image = lb_image();
    let mut c = setup();
    let url = c.url.clone();
    for h in &c.hosts {
        h.docker(&["load", "-i", image.to_str().unwrap()]).unwrap();
    }
    join_agents(&mut c);
    // Port 80 on a host whose agent serves metadata on
    // 169.254.169.250:80 (a DNAT to its own port, so docker can publish
    // 0.0.0.0:80).
    let lb_addr = format!("{}:80", c.hosts[0].ip);
    let dir = c.dir.path().join("app");
    std::fs::create_dir_all(&dir).unwrap();

    // Refusals first (nothing is created by them).
    let refused = [
        ("{source_port: 53, target_port: 53, service: web, protocol: udp}", "HAProxy cannot balance UDP"),
        ("{source_port: 42, target_port: 80, service: web}", "port 42 is reserved"),
        ("{source_port: 80, target_port: 80, service: ghost}", "target ghost: no such service"),
        (
            "{source_port: 80, target_port: 80, service: web}\n        - {source_port: 80, target_port: 81, service: web, protocol: tcp}",
            "port_rules[0] (http) and port_rules[1] (tcp) both listen on source_port 80",
        ),
    ];
    for (rule, want) in refused {
        let rc = format!(
            "version: '2'\nservices:\n  lb:\n    lb_config:\n      port_rules:\n        - {rule}\n"
        );
        let (code, body) = post_status(
            &format!("{url}/v2-beta/projects/1a5/stacks"),
            json!({"name": "bad", "dockerCompose": dc("v1"), "rancherCompose": rc}),
        );
        assert_eq!(code, 422, "{rule}: {body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains(want),
            "{rule}: {body}"
        );
    }

    std::fs::write(dir.join("docker-compose.yml"), dc("v1")).unwrap();
    std::fs::write(dir.join("rancher-compose.yml"), RC).unwrap();
    ok(&c, &dir, &["up", "-d"]);
    wait_healthy(&url, "v1", 3);
    wait_for("api running", 60, || {
        containers(&url, "api")
            .iter()
            .any(|c| c["state"] == "running")
            .then_some(())
    });
    let lbsvc = get(&format!(
        "{url}/v2-beta/projects/1a5/loadbalancerservices?name=lb"
    ))["data"][0]
        .clone();
    assert_eq!(lbsvc["type"], "loadBalancerService", "{lbsvc}");
    assert_eq!(
        lbsvc["lbConfig"]["portRules"][1]["hostname"], "api.example.com",
        "{lbsvc}"
    );
    assert!(
        lbsvc["lbConfig"]["portRules"][0]["serviceId"]
            .as_str()
            .is_some_and(|s| s.starts_with("1s")),
        "{lbsvc}"
    );
    let ps = compose(&c, &dir, &["ps"]);
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        ps.contains(&format!("{}:80/tcp", c.hosts[0].ip)),
        "ps shows the LB's endpoint:\n{ps}"
    );

    // Rotation: 30 requests, each of 3 containers 10 times, strictly in turn.
    let t = Instant::now();
    loop {
        let got: Vec<Result<String, String>> =
            (0..6).map(|_| get_ok(&lb_addr, "/", "web")).collect();
        let seen: std::collections::BTreeSet<&String> =
            got.iter().filter_map(|r| r.as_ref().ok()).collect();
        if seen.len() == 3 {
            break;
        }
        if t.elapsed() > Duration::from_secs(60) {
            lb_debug(&c);
            panic!("not all 3 web containers through the LB: {got:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let answers: Vec<String> = (0..30)
        .map(|_| get_ok(&lb_addr, "/", "web").unwrap())
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &answers {
        *counts.entry(a).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{answers:?}");
    assert!(counts.values().all(|n| *n == 10), "{counts:?}");
    for (i, a) in answers.iter().enumerate().skip(3) {
        assert_eq!(a, &answers[i - 3], "not in strict rotation: {answers:?}");
    }

    // HAProxy's stats through the API (live from the LB container's
    // runtime socket, relayed by its agent): the web servers UP, the
    // requests above counted.
    let lb_id = lbsvc["id"].as_str().unwrap().to_string();
    for prefix in ["v2-beta", "v1"] {
        let st = get(&format!(
            "{url}/{prefix}/projects/1a5/loadbalancerservices/{lb_id}/stats"
        ));
        assert_eq!(st["containers"].as_array().map(Vec::len), Some(1), "{st}");
        let one = &st["containers"][0];
        assert!(one["error"].is_null(), "{st}");
        let web = one["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"].as_str().unwrap().starts_with("web_"))
            .unwrap_or_else(|| panic!("no web backend: {st}"));
        let servers = web["servers"].as_array().unwrap();
        assert_eq!(servers.len(), 3, "{web}");
        assert!(servers.iter().all(|s| s["status"] == "UP"), "{web}");
        assert!(
            servers
                .iter()
                .all(|s| s["totalSessions"].as_u64().unwrap() >= 10),
            "{web}"
        );
        let fe = one["frontends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "port_80")
            .unwrap_or_else(|| panic!("no port_80 frontend: {st}"));
        assert!(fe["totalSessions"].as_u64().unwrap() >= 30, "{fe}");
    }
    let out = compose(&c, &dir, &["lb-stats", "lb"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ros compose lb-stats: {out:?}");
    let up = text
        .lines()
        .skip_while(|l| !l.starts_with("  backend web_"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .filter(|l| l.contains(" UP "))
        .count();
    assert_eq!(up, 3, "three web servers UP:\n{text}");

    // An internal LB (no host port) answers containers by its name, in
    // the stack (`ilb`) and fully (`ilb.app`).
    let api_ct = wait_for("api running", 60, || {
        containers(&url, "api")
            .into_iter()
            .find(|c| c["state"] == "running")
    });
    let api_host = host_of(&c, &api_ct);
    let web_answers: std::collections::BTreeSet<String> = answers.iter().cloned().collect();
    for name in ["ilb", "ilb.app"] {
        let t = Instant::now();
        let last = loop {
            let last = (0..3)
                .map(|_| fetch(api_host, &api_ct, &format!("http://{name}:90/")))
                .collect::<Vec<_>>();
            let got: std::collections::BTreeSet<String> =
                last.iter().filter_map(|r| r.clone().ok()).collect();
            if got == web_answers {
                break last;
            }
            if t.elapsed() > Duration::from_secs(60) {
                lb_debug(&c);
                let ilb = containers(&url, "ilb");
                eprintln!("--- ilb containers ---\n{ilb:#?}");
                let ip = ilb[0]["primaryIpAddress"].as_str().unwrap_or("none");
                let id = api_ct["externalId"].as_str().unwrap();
                let web_ip = containers(&url, "web")[0]["primaryIpAddress"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                for cmd in [
                    "ip addr; ip route".to_string(),
                    format!("nslookup {name} 169.254.169.250"),
                    format!("timeout 5 wget -O- http://{name}:90/"),
                    format!("timeout 5 wget -O- http://{ip}:90/"),
                    format!("timeout 5 wget -O- http://{ip}:42/"),
                    format!("timeout 5 wget -O- http://{web_ip}:80/"),
                ] {
                    let wrapped = format!("{cmd} >/www/o 2>&1; echo rc=$?; cat /www/o");
                    eprintln!(
                        "--- {cmd} ---\n{:?}",
                        api_host.docker(&["exec", id, "sh", "-c", &wrapped])
                    );
                }
                let isvc = get(&format!(
                    "{url}/v2-beta/projects/1a5/loadbalancerservices?name=ilb"
                ));
                let iid = isvc["data"][0]["id"].as_str().unwrap_or("none").to_string();
                eprintln!("--- ilb service ---\n{}", isvc["data"][0]);
                eprintln!(
                    "--- ilb stats ---\n{}",
                    get(&format!(
                        "{url}/v2-beta/projects/1a5/loadbalancerservices/{iid}/stats"
                    ))
                );
                let ih = host_of(&c, &ilb[0]);
                let iname = format!("r-{}", ilb[0]["name"].as_str().unwrap_or(""));
                eprintln!("--- ilb logs ---\n{:?}", ih.docker(&["logs", &iname]));
                let pid = ih
                    .docker(&["inspect", "-f", "{{.State.Pid}}", &iname])
                    .unwrap_or_default();
                let netns = format!("--net=/proc/{}/ns/net", pid.trim());
                eprintln!(
                    "--- ilb netns ---\n{:?}\n{:?}",
                    sh("nsenter", &[&netns, "ip", "-br", "addr"]),
                    sh("nsenter", &[&netns, "ss", "-ltn"])
                );
                eprintln!(
                    "--- ilb host iptables ---\n{:?}",
                    sh(
                        "nsenter",
                        &[&format!("--net=/var/run/netns/{}", ih.ns), "iptables-save"]
                    )
                );
                eprintln!(
                    "--- ilb cfg ---\n{:?}",
                    ih.docker(&["exec", &iname, "cat", "/run/lb/haproxy.cfg"])
                );
                panic!("http://{name}:90/ from a container: {last:?}, want {web_answers:?}");
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        eprintln!("internal LB {name}:90 from a container: {last:?}");
    }

    // Hostname and path rules.
    let or_debug = |r: Result<String, String>| {
        r.unwrap_or_else(|e| {
            lb_debug(&c);
            panic!("{e}")
        })
    };
    assert_eq!(or_debug(get_ok(&lb_addr, "/", "api.example.com")), "api");
    assert_eq!(or_debug(get_ok(&lb_addr, "/v1/", "web")), "api");
    assert!(get_ok(&lb_addr, "/", "web").unwrap().starts_with("v1 "));

    // Scale to 4: the new container answers within 2 s of being healthy.
    ok(&c, &dir, &["scale", "web=4"]);
    let old: std::collections::BTreeSet<String> = answers.iter().cloned().collect();
    wait_healthy(&url, "v1", 4);
    let healthy_at = Instant::now();
    let new_name = wait_for("the fourth container through the LB", 10, || {
        (0..4)
            .filter_map(|_| get_ok(&lb_addr, "/", "web").ok())
            .find(|a| !old.contains(a))
    });
    let join = healthy_at.elapsed();
    eprintln!("healthy → in rotation: {join:?} ({new_name})");
    assert!(join <= Duration::from_secs(2), "{join:?}");

    // A broken health check takes its container out of rotation.
    let victim = containers(&url, "web")
        .into_iter()
        .find(|c| c["hostId"] == host_by_name(&url, "node2").unwrap()["id"])
        .unwrap();
    let vname = format!("r-{}", victim["name"].as_str().unwrap());
    let vanswer = c.hosts[1]
        .docker(&["exec", &vname, "cat", "/www/index.html"])
        .unwrap()
        .trim()
        .to_string();
    c.hosts[1]
        .docker(&["exec", &vname, "/bin/busybox", "rm", "/www/health"])
        .unwrap();
    let vid = victim["id"].as_str().unwrap().to_string();
    wait_for("the broken container unhealthy", 30, || {
        let v = get(&format!("{url}/v1/projects/1a5/containers/{vid}"));
        (v["healthState"] == "unhealthy" || v["desiredState"] == "removed").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        let a = get_ok(&lb_addr, "/", "web").unwrap();
        assert_ne!(a, vanswer, "an unhealthy container is still in rotation");
    }
    // Back to 3 healthy (the unhealthy one is recreated by its strategy).
    ok(&c, &dir, &["scale", "web=3"]);
    wait_healthy(&url, "v1", 3);

    // Start-first upgrade under continuous load: nothing fails.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let th = {
        let (a, s, t) = (lb_addr.clone(), stop.clone(), tally.clone());
        std::thread::spawn(move || client(a, s, t))
    };
    wait_for("the client's first answers", 30, || {
        (tally.lock().unwrap().ok >= 20).then_some(())
    });
    std::fs::write(dir.join("docker-compose.yml"), dc("v2")).unwrap();
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
            "1000",
        ],
    );
    ok(&c, &dir, &["up", "-d", "--confirm-upgrade"]);
    wait_healthy(&url, "v2", 3);
    std::thread::sleep(Duration::from_millis(1500));
    tally.lock().unwrap().bodies.clear();
    let before = tally.lock().unwrap().ok;
    wait_for("answers after the finish", 30, || {
        (tally.lock().unwrap().ok >= before + 30).then_some(())
    });
    {
        let t = tally.lock().unwrap();
        eprintln!(
            "upgrade under load: {} answers, {} failed, after finish {:?}",
            t.ok,
            t.failed.len(),
            t.bodies
        );
        assert!(
            t.failed.is_empty(),
            "failed requests: {:?}",
            &t.failed[..t.failed.len().min(5)]
        );
        assert_eq!(
            t.bodies.keys().collect::<Vec<_>>(),
            ["v2"],
            "every answer from v2 after finish"
        );
    }

    // A port rule added under the same load: a reload that loses nothing.
    let before = tally.lock().unwrap().ok;
    let id = lbsvc["id"].as_str().unwrap();
    let mut rules = lbsvc["lbConfig"]["portRules"].as_array().unwrap().clone();
    rules.push(json!({"sourcePort": 8080, "targetPort": 80, "serviceId": lbsvc["lbConfig"]["portRules"][0]["serviceId"], "protocol": "tcp"}));
    let put = api()
        .put(&format!(
            "{url}/v2-beta/projects/1a5/loadbalancerservices/{id}"
        ))
        .set("Content-Type", "application/json")
        .send_string(&json!({"lbConfig": {"portRules": rules}}).to_string());
    assert!(put.is_ok(), "PUT lbConfig: {put:?}");
    wait_for("the new port rule", 20, || {
        get_ok(&format!("{}:8080", c.hosts[0].ip), "/", "web").ok()
    });
    wait_for("more answers after the reload", 30, || {
        (tally.lock().unwrap().ok >= before + 50).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    th.join().unwrap();
    let t = tally.lock().unwrap();
    eprintln!(
        "rule change under load: {} answers, {} failed",
        t.ok,
        t.failed.len()
    );
    assert!(
        t.failed.is_empty(),
        "failed requests: {:?}",
        &t.failed[..t.failed.len().min(5)]
    );
    drop(t);

    // TLS termination: a certificate (made here), refused when its PEM is
    // bad, its key never shown; an https rule on 443 serves it.
    let site = rcgen::generate_simple_self_signed(vec!["secure.example.com".to_string()]).unwrap();
    let (cert_pem, key_pem) = (site.cert.pem(), site.key_pair.serialize_pem());
    let certs_url = format!("{url}/v2-beta/projects/1a5/certificates");
    for (body, field) in [
        (
            json!({"name": "bad", "cert": "not a pem", "key": key_pem}),
            "cert",
        ),
        (
            json!({"name": "bad", "cert": cert_pem, "key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
            "key",
        ),
    ] {
        let (code, e) = post_status(&certs_url, body);
        assert_eq!(code, 422, "{e}");
        assert_eq!(e["fieldName"], field, "{e}");
        assert!(e["message"].as_str().unwrap().starts_with(field), "{e}");
    }
    let (code, cert) = post_status(
        &certs_url,
        json!({"name": "site", "cert": cert_pem, "key": key_pem}),
    );
    assert_eq!(code, 201, "{cert}");
    let cert_id = cert["id"].as_str().unwrap().to_string();
    let shown = get(&format!("{certs_url}/{cert_id}"));
    assert!(shown.get("key").is_none(), "{shown}");
    assert!(!shown.to_string().contains("PRIVATE KEY"), "{shown}");
    let lbsvc = get(&format!(
        "{url}/v2-beta/projects/1a5/loadbalancerservices/{id}"
    ));
    let web_id = lbsvc["lbConfig"]["portRules"][0]["serviceId"].clone();
    let mut rules = lbsvc["lbConfig"]["portRules"].as_array().unwrap().clone();
    rules.push(
        json!({"sourcePort": 443, "targetPort": 80, "serviceId": web_id, "protocol": "https"}),
    );
    rules.push(
        json!({"sourcePort": 8443, "targetPort": 80, "serviceId": web_id, "protocol": "tls"}),
    );
    let put = api()
        .put(&format!(
            "{url}/v2-beta/projects/1a5/loadbalancerservices/{id}"
        ))
        .set("Content-Type", "application/json")
        .send_string(
            &json!({"lbConfig": {"portRules": rules, "defaultCertificateId": cert_id}}).to_string(),
        );
    assert!(put.is_ok(), "PUT lbConfig with https: {put:?}");
    let shown = get(&format!(
        "{url}/v2-beta/projects/1a5/loadbalancerservices/{id}"
    ));
    assert_eq!(
        shown["lbConfig"]["defaultCertificateId"],
        cert_id.as_str(),
        "{shown}"
    );
    let lb_ip = containers(&url, "lb")[0]["primaryIpAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let netns = format!("--net=/var/run/netns/{}", c.hosts[0].ns);
    let resolve = format!("secure.example.com:443:{lb_ip}");
    let body = wait_for("https through the LB", 30, || {
        sh(
            "nsenter",
            &[
                &netns,
                "curl",
                "-sSk",
                "--max-time",
                "3",
                "--resolve",
                &resolve,
                "https://secure.example.com/",
            ],
        )
        .ok()
        .filter(|b| b.starts_with("v2 "))
    });
    eprintln!("https through the LB: {}", body.trim());
    // tls: terminated, then TCP to the backend (which speaks HTTP).
    let resolve_tls = format!("secure.example.com:8443:{lb_ip}");
    let body = sh(
        "nsenter",
        &[
            &netns,
            "curl",
            "-sSk",
            "--max-time",
            "3",
            "--resolve",
            &resolve_tls,
            "https://secure.example.com:8443/",
        ],
    )
    .unwrap();
    assert!(body.starts_with("v2 "), "tls through the LB: {body}");
    let served = || {
        sh(
            "nsenter",
            &[
                &netns,
                "sh",
                "-c",
                &format!("openssl s_client -connect {lb_ip}:443 -servername secure.example.com </dev/null 2>/dev/null | openssl x509"),
            ],
        )
        .unwrap_or_default()
    };
    assert_eq!(
        served().trim(),
        cert_pem.trim(),
        "the LB serves the uploaded certificate"
    );
    // A renewed certificate (PUT) is served within seconds (the agents are
    // woken; the LB reloads with the new file).
    let renewed =
        rcgen::generate_simple_self_signed(vec!["secure.example.com".to_string()]).unwrap();
    let new_pem = renewed.cert.pem();
    let put = api()
        .put(&format!("{certs_url}/{cert_id}"))
        .set("Content-Type", "application/json")
        .send_string(
            &json!({"cert": new_pem, "key": renewed.key_pair.serialize_pem()}).to_string(),
        );
    assert!(put.is_ok(), "PUT certificate: {put:?}");
    let t = Instant::now();
    wait_for("the renewed certificate served", 20, || {
        (served().trim() == new_pem.trim()).then_some(())
    });
    eprintln!("renewed certificate served after {:?}", t.elapsed());
    let (code, e) = post_status(
        &format!("{url}/v2-beta/projects/1a5/loadbalancerservices"),
        json!({"name": "lb3", "stackId": lbsvc["stackId"], "launchConfig": {"imageUuid": "docker:rancher/lb-service-haproxy"},
               "lbConfig": {"portRules": [{"sourcePort": 443, "protocol": "https", "targetPort": 80, "serviceId": web_id}]}}),
    );
    assert_eq!(code, 422, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("needs a certificate"),
        "{e}"
    );

    // The API refuses UDP on a loadBalancerService too, naming the rule.
    let stack = lbsvc["stackId"].as_str().unwrap();
    let (code, body) = post_status(
        &format!("{url}/v2-beta/projects/1a5/loadbalancerservices"),
        json!({"name": "lb2", "stackId": stack, "launchConfig": {"imageUuid": "docker:rancher/lb-service-haproxy"},
               "lbConfig": {"portRules": [{"sourcePort": 81, "targetPort": 80, "serviceId": lbsvc["lbConfig"]["portRules"][0]["serviceId"]},
                                           {"sourcePort": 53, "protocol": "udp", "serviceId": lbsvc["lbConfig"]["portRules"][0]["serviceId"]}]}}),
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("lbConfig.portRules[1].protocol: protocol udp"),
        "{body}"
    );
    eprintln!("cluster_lb took {:?}", t0.elapsed());
}

/// `wrk` in host 1's network namespace against `target`: (requests/s, p99).
fn wrk(c: &Cluster, target: &str) -> (String, String) {
    let out = sh(
        "nsenter",
        &[
            &format!("--net=/var/run/netns/{}", c.hosts[0].ns),
            "wrk",
            "-t2",
            "-c16",
            "-d5s",
            "--latency",
            target,
        ],
    )
    .unwrap();
    eprintln!("wrk {target}:\n{out}");
    let field = |key: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    (field("Requests/sec:"), field("99%"))
}

/// Benchmarks (figures in the issue note): the LB's overhead against one
/// backend with wrk, failed requests over 10 start-first upgrades of a
/// scale-3 service under load, and the time from a container healthy (as
/// the API says) to its first answer through the LB.
/// `cargo test --test cluster_lb -- --ignored --nocapture bench`
#[test]
#[ignore]
fn bench_lb_overhead_upgrades_and_join_latency() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    let image = lb_image();
    let mut c = setup();
    let url = c.url.clone();
    for h in &c.hosts {
        h.docker(&["load", "-i", image.to_str().unwrap()]).unwrap();
    }
    join_agents(&mut c);
    let lb_addr = format!("{}:80", c.hosts[0].ip);
    let dir = c.dir.path().join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), dc("v1")).unwrap();
    std::fs::write(dir.join("rancher-compose.yml"), RC).unwrap();
    ok(&c, &dir, &["up", "-d"]);
    wait_healthy(&url, "v1", 3);
    wait_for("the LB answers", 60, || get_ok(&lb_addr, "/", "web").ok());

    // 1. Overhead: through the LB container vs one backend, same netns.
    let lb_ip = containers(&url, "lb")[0]["primaryIpAddress"]
        .as_str()
        .unwrap()
        .to_string();
    // A backend on host 1 (the host's own namespace reaches its local
    // containers' addresses; remote ones only from containers).
    let h1 = host_by_name(&url, "node1").unwrap()["id"].clone();
    let web_ip = containers(&url, "web")
        .into_iter()
        .find(|c| c["hostId"] == h1)
        .expect("a web container on host 1")["primaryIpAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let (lb_rps, lb_p99) = wrk(&c, &format!("http://{lb_ip}:80/"));
    let (be_rps, be_p99) = wrk(&c, &format!("http://{web_ip}:80/"));
    eprintln!("BENCH wrk -t2 -c16 -d5s: through the LB {lb_rps} req/s p99 {lb_p99}; one backend {be_rps} req/s p99 {be_p99}");

    // 2 + 3. Ten upgrades under load; healthy → first answer per container.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let failed: Arc<Mutex<Vec<String>>> = Arc::default();
    let answers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = {
        let (a, s, seen, failed, n) = (
            lb_addr.clone(),
            stop.clone(),
            seen.clone(),
            failed.clone(),
            answers.clone(),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match get_ok(&a, "/", "web") {
                    Ok(b) => {
                        n.fetch_add(1, Ordering::Relaxed);
                        let host = b.split_whitespace().nth(1).unwrap_or("").to_string();
                        seen.lock()
                            .unwrap()
                            .entry(host)
                            .or_insert_with(Instant::now);
                    }
                    Err(e) => failed.lock().unwrap().push(e),
                }
            }
        })
    };
    let healthy: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let poller = {
        let (u, s, healthy) = (url.clone(), stop.clone(), healthy.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for ct in containers(&u, "web") {
                    if ct["state"] == "running" && ct["healthState"] == "healthy" {
                        if let Some(id) = ct["externalId"].as_str() {
                            let short: String = id.chars().take(12).collect();
                            healthy
                                .lock()
                                .unwrap()
                                .entry(short)
                                .or_insert_with(Instant::now);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let t = Instant::now();
    for v in 2..=11 {
        std::fs::write(dir.join("docker-compose.yml"), dc(&format!("v{v}"))).unwrap();
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
                "500",
            ],
        );
        ok(&c, &dir, &["up", "-d", "--confirm-upgrade"]);
        wait_healthy(&url, &format!("v{v}"), 3);
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    poller.join().unwrap();
    let (seen, healthy) = (seen.lock().unwrap(), healthy.lock().unwrap());
    let mut lat: Vec<Duration> = healthy
        .iter()
        .filter_map(|(h, at)| seen.get(h).map(|s| s.saturating_duration_since(*at)))
        .collect();
    lat.sort();
    let pct = |p: usize| {
        lat.get((lat.len() * p / 100).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    eprintln!(
        "BENCH 10 upgrades (scale 3, start-first, batch 1) in {:?}: {} answers, {} failed",
        t.elapsed(),
        answers.load(Ordering::Relaxed),
        failed.lock().unwrap().len()
    );
    eprintln!(
        "BENCH healthy (API, 50 ms poll) → first answer through the LB, {} containers: p50 {:?} p99 {:?} max {:?}",
        lat.len(),
        pct(50),
        pct(99),
        lat.last().copied().unwrap_or_default()
    );
}
