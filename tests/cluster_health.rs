//! Health checks and host failure on a real multi-host cluster (server + 3
//! agents in network namespaces with their own dockerd, images made
//! locally):
//! - an HTTP-checked container whose page is deleted inside it turns
//!   `unhealthy` and is replaced (same name, new id) under `recreate` by
//!   exactly one new container (three times in a row); the service and
//!   its stack go `degraded` then `healthy` again;
//! - under `strategy: none` it stays, marked `unhealthy`;
//! - a container restarted through the API goes `reinitializing` then
//!   `healthy`, and the agent, busy ~10 s with that restart, keeps its host
//!   `active` (heartbeats) so nothing moves;
//! - an agent killed with SIGKILL (its dockerd keeps running): the host goes
//!   `disconnected` and its health-checked containers come up on the other
//!   two hosts, while a container without a health check stays put
//!   (Rancher's rule); the agent restarted removes the replaced containers,
//!   and every service runs exactly `scale` containers, none twice.
//!
//! Prints the measured latencies (`HEALTH-TIMING …` lines). The server
//! runs with `--disconnected-after 5` (harness). Logs are copied to
//! `$TMPDIR/cluster_health-logs` on failure or with `ROS_TEST_KEEP_LOGS`.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use harness::*;
use serde_json::Value;

const STACK: &str = "hc";

/// httpd serving /www/index.html; deleting the file makes it answer 404.
const HTTPD: &str = "/bin/busybox mkdir -p /www && echo ok > /www/index.html && \
                     exec /bin/busybox httpd -f -p 80 -h /www";

fn docker_compose() -> String {
    let spread = |svc: &str| {
        format!(
            "    labels:\n      io.rancher.scheduler.affinity:container_label_soft_ne: \
             io.rancher.stack_service.name={STACK}/{svc}\n"
        )
    };
    format!(
        "version: '2'\nservices:\n\
         \x20 web:\n    image: {IMAGE}\n    command: [/bin/sh, -c, '{HTTPD}']\n{web}\
         \x20 api:\n    image: {IMAGE}\n    command: [/bin/sh, -c, '{HTTPD}']\n{api}\
         \x20 keep:\n    image: {IMAGE}\n    command: [/bin/sh, -c, '{HTTPD}']\n\
         \x20 plain:\n    image: {IMAGE}\n    command: [sleep, '3600']\n{plain}",
        web = spread("web"),
        api = spread("api"),
        plain = spread("plain"),
    )
}

const RANCHER_COMPOSE: &str = r#"version: '2'
services:
  web:
    scale: 3
    health_check:
      port: 80
      request_line: GET /index.html HTTP/1.0
      interval: 500
      response_timeout: 500
      healthy_threshold: 3
      unhealthy_threshold: 2
      initializing_timeout: 20000
      strategy: recreate
  api:
    scale: 3
    health_check:
      port: 80
      interval: 500
      response_timeout: 500
      healthy_threshold: 3
      unhealthy_threshold: 2
      initializing_timeout: 20000
  keep:
    scale: 1
    health_check:
      port: 80
      request_line: GET /index.html HTTP/1.0
      interval: 500
      response_timeout: 500
      healthy_threshold: 2
      unhealthy_threshold: 2
      strategy: none
  plain:
    scale: 3
"#;

fn compose(c: &Cluster, dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(ros())
        .args(["compose", "-p", STACK, "-f", "docker-compose.yml"])
        .args(["-f", "rancher-compose.yml", "--url", &c.url])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ros compose {args:?}: {text}");
    text
}

/// Live containers of service `svc`.
fn live(url: &str, svc: &str) -> Vec<Value> {
    let prefix = format!("{STACK}-{svc}-");
    get(&format!("{url}/v1/projects/1a5/containers?limit=1000"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["name"].as_str().unwrap_or("").starts_with(&prefix)
                && !matches!(c["state"].as_str(), Some("removed" | "removing"))
                && c["desiredState"] != "removed"
        })
        .cloned()
        .collect()
}

fn container(url: &str, id: &str) -> Value {
    get(&format!("{url}/v1/projects/1a5/containers/{id}"))
}

fn service(url: &str, name: &str) -> Value {
    get(&format!("{url}/v1/projects/1a5/services?name={name}"))["data"][0].clone()
}

/// `n` running containers of `svc`, all healthy when `healthy`.
fn settled(url: &str, svc: &str, n: usize, healthy: bool) -> Option<Vec<Value>> {
    let all = live(url, svc);
    (all.len() == n
        && all
            .iter()
            .all(|c| c["state"] == "running" && (!healthy || c["healthState"] == "healthy")))
    .then_some(all)
}

fn names(cs: &[Value]) -> BTreeSet<String> {
    cs.iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// Host index of the container's host.
fn host_of(hosts: &BTreeMap<String, usize>, ct: &Value) -> usize {
    hosts[ct["hostId"].as_str().unwrap()]
}

/// Running managed containers on host `i`: docker name → instance id.
fn docker_running(c: &Cluster, i: usize) -> BTreeMap<String, String> {
    c.hosts[i]
        .docker(&[
            "ps",
            "--filter",
            "label=io.ros.instance.id",
            "--format",
            "{{.Names}} {{.Label \"io.ros.instance.id\"}}",
        ])
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (n, id) = l.split_once(' ')?;
            Some((n.to_string(), id.to_string()))
        })
        .collect()
}

/// The fields worth printing while waiting.
fn brief(cs: &[Value]) -> Vec<String> {
    cs.iter()
        .map(|c| {
            format!(
                "{} {} {} {} {}",
                c["name"], c["id"], c["hostId"], c["state"], c["healthState"]
            )
        })
        .collect()
}

fn timing(what: &str, d: Duration) {
    eprintln!("HEALTH-TIMING {what}: {:.2}s", d.as_secs_f64());
}

fn stack(url: &str) -> Value {
    get(&format!("{url}/v1/projects/1a5/stacks?name={STACK}"))["data"][0].clone()
}

/// Ids of every container row named `name` (removed ones too).
fn ids_named(url: &str, name: &str) -> BTreeSet<String> {
    get(&format!("{url}/v1/projects/1a5/containers?limit=1000"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// Break hc-web-2's check; it is replaced by exactly one new container,
/// while the service and the stack go degraded and back to healthy.
fn break_and_replace(c: &Cluster, url: &str, hosts: &BTreeMap<String, usize>, round: usize) {
    let web = live(url, "web");
    let victim = web
        .iter()
        .find(|w| w["name"] == "hc-web-2")
        .unwrap()
        .clone();
    let victim_id = victim["id"].as_str().unwrap().to_string();
    let vh = host_of(hosts, &victim);
    let before = ids_named(url, "hc-web-2");
    let t = Instant::now();
    c.hosts[vh]
        .docker(&[
            "exec",
            victim["dockerName"].as_str().unwrap(),
            "/bin/busybox",
            "rm",
            "/www/index.html",
        ])
        .unwrap();
    let mut detected = None;
    let mut degraded = false;
    let mut stack_degraded = false;
    let replacement = wait_for("hc-web-2 replaced and healthy", 60, || {
        let old = container(url, &victim_id);
        if detected.is_none()
            && (old["healthState"] == "unhealthy" || old["desiredState"] == "removed")
        {
            detected = Some(t.elapsed());
        }
        degraded |= service(url, "web")["healthState"] == "degraded";
        stack_degraded |= stack(url)["healthState"] == "degraded";
        let cs = settled(url, "web", 3, true)?;
        let new = cs.iter().find(|x| x["name"] == "hc-web-2")?;
        (new["id"] != victim_id.as_str()).then(|| new.clone())
    });
    let replaced = t.elapsed();
    timing(
        &format!("round {round}: unhealthy detected (page deleted -> healthState unhealthy)"),
        detected.expect("the old container was seen unhealthy or removed"),
    );
    timing(
        &format!("round {round}: unhealthy replaced (page deleted -> new one healthy)"),
        replaced,
    );
    assert!(degraded, "web went degraded while hc-web-2 was replaced");
    assert!(stack_degraded, "the stack went degraded with web");
    wait_for("web healthy again", 30, || {
        (service(url, "web")["healthState"] == "healthy").then_some(())
    });
    wait_for("stack healthy again", 30, || {
        (stack(url)["healthState"] == "healthy").then_some(())
    });
    assert_eq!(replacement["serviceIndex"], 2);
    assert_eq!(
        names(&live(url, "web")),
        (1..=3).map(|i| format!("hc-web-{i}")).collect()
    );
    let made: BTreeSet<String> = ids_named(url, "hc-web-2")
        .difference(&before)
        .cloned()
        .collect();
    assert_eq!(
        made,
        BTreeSet::from([replacement["id"].as_str().unwrap().to_string()]),
        "round {round}: exactly one replacement for index 2"
    );
    wait_for("old hc-web-2 gone from docker", 30, || {
        (!docker_running(c, vh).values().any(|id| id == &victim_id)).then_some(())
    });
    assert_eq!(container(url, &victim_id)["state"], "removed");
}

#[test]
fn unhealthy_replaced_and_host_failover() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "cluster_health needs root (network namespaces and dockerd); CI runs as root"
    );
    let started = Instant::now();
    let mut c = setup();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&mut c, started)));
    // Logs outlive the cluster on failure, or when ROS_TEST_KEEP_LOGS is set.
    if r.is_err() || std::env::var_os("ROS_TEST_KEEP_LOGS").is_some() {
        let keep = std::env::temp_dir().join("cluster_health-logs");
        let _ = std::fs::create_dir_all(&keep);
        for f in ["server.log", "agent1.log", "agent2.log", "agent3.log"] {
            let _ = std::fs::copy(c.dir.path().join(f), keep.join(f));
        }
        eprintln!("logs kept in {}", keep.display());
    }
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
}

fn scenario(c: &mut Cluster, started: Instant) {
    let url = c.url.clone();
    let reg = join_agents(c);
    let hosts: BTreeMap<String, usize> = (0..3)
        .map(|i| {
            let h = host_by_name(&url, &format!("node{}", i + 1)).unwrap();
            (h["id"].as_str().unwrap().to_string(), i)
        })
        .collect();
    let dir = c.dir.path().join("hc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), docker_compose()).unwrap();
    std::fs::write(dir.join("rancher-compose.yml"), RANCHER_COMPOSE).unwrap();

    // Deploy; every checked container becomes healthy, spread over 3 hosts.
    let t = Instant::now();
    compose(c, &dir, &["up", "-d"]);
    for (svc, n, checked) in [
        ("web", 3, true),
        ("api", 3, true),
        ("keep", 1, true),
        ("plain", 3, false),
    ] {
        let mut tries = 0;
        let cs = wait_for(&format!("{svc} running"), 120, || {
            tries += 1;
            if tries % 50 == 0 {
                eprintln!("waiting for {svc}: {:#?}", brief(&live(&url, svc)));
            }
            settled(&url, svc, n, checked)
        });
        if n == 3 {
            let on: BTreeSet<usize> = cs.iter().map(|x| host_of(&hosts, x)).collect();
            assert_eq!(on.len(), 3, "{svc} spread over the 3 hosts: {cs:?}");
        }
        if !checked {
            assert!(cs.iter().all(|x| x["healthState"].is_null()), "{cs:?}");
        }
    }
    for svc in ["web", "api", "keep", "plain"] {
        wait_for(&format!("{svc} healthy"), 30, || {
            (service(&url, svc)["healthState"] == "healthy").then_some(())
        });
    }
    timing("deploy 10 containers to all healthy", t.elapsed());

    // recreate: delete the page inside one web container — three times
    // in a row; each time exactly one new container is made for index 2
    // (no burst of throw-away replacements), and the stack's healthState
    // follows the service: degraded, then healthy.
    assert_eq!(stack(&url)["healthState"], "healthy");
    for round in 1..=3 {
        break_and_replace(c, &url, &hosts, round);
    }

    // none: the same fault only marks the container.
    let keep = live(&url, "keep").remove(0);
    let keep_id = keep["id"].as_str().unwrap().to_string();
    let kh = host_of(&hosts, &keep);
    c.hosts[kh]
        .docker(&[
            "exec",
            keep["dockerName"].as_str().unwrap(),
            "/bin/busybox",
            "rm",
            "/www/index.html",
        ])
        .unwrap();
    wait_for("keep unhealthy", 30, || {
        (container(&url, &keep_id)["healthState"] == "unhealthy").then_some(())
    });
    wait_for("keep service unhealthy", 10, || {
        (service(&url, "keep")["healthState"] == "unhealthy").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let k = live(&url, "keep");
    assert_eq!(k.len(), 1, "{k:?}");
    assert_eq!(k[0]["id"], keep_id.as_str(), "strategy none never replaces");
    assert_eq!(k[0]["state"], "running");
    assert_eq!(k[0]["healthState"], "unhealthy");
    assert!(docker_running(c, kh).values().any(|id| id == &keep_id));

    // Restarted by the orchestrator: `reinitializing`, then `healthy`, the
    // same container. httpd (PID 1) ignores SIGTERM, so docker waits out
    // its stop timeout: the agent is busy for ~10 s, longer than the
    // server's 5 s `--disconnected-after` — its heartbeats must keep the
    // host `active` and nothing may move.
    let before_ids: BTreeSet<String> = [live(&url, "web"), live(&url, "api")]
        .concat()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    let api1 = live(&url, "api")
        .into_iter()
        .find(|x| x["name"] == "hc-api-1")
        .unwrap();
    let api1_id = api1["id"].as_str().unwrap().to_string();
    let api1_host = api1["hostId"].as_str().unwrap().to_string();
    let t = Instant::now();
    let r = post(
        &format!("{url}/v1/projects/1a5/containers/{api1_id}?action=restart"),
        serde_json::json!({}),
    );
    assert_eq!(r["state"], "restarting", "{r}");
    let mut states: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let x = container(&url, &api1_id);
        let h = format!("{}/{}", x["state"], x["healthState"]);
        if states.last() != Some(&h) {
            states.push(h);
        }
        let host = get(&format!("{url}/v1/projects/1a5/hosts/{api1_host}"));
        assert_ne!(
            host["agentState"], "disconnected",
            "busy agent seen as dead"
        );
        if x["state"] == "running"
            && x["healthState"] == "healthy"
            && states.iter().any(|s| s.ends_with("\"reinitializing\""))
        {
            break;
        }
        assert!(Instant::now() < deadline, "restart not seen: {states:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    timing("restart -> healthy again", t.elapsed());
    eprintln!("api-1 through the restart: {states:?}");
    let after_ids: BTreeSet<String> = [live(&url, "web"), live(&url, "api")]
        .concat()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(before_ids, after_ids, "nothing replaced during the restart");

    // Host failure: SIGKILL the agent of a host without `keep`.
    let dead = (0..3).find(|i| *i != kh).unwrap();
    let dead_id = hosts
        .iter()
        .find(|(_, i)| **i == dead)
        .map(|(h, _)| h.clone())
        .unwrap();
    let on_dead = |svc: &str| -> Vec<Value> {
        live(&url, svc)
            .into_iter()
            .filter(|x| host_of(&hosts, x) == dead)
            .collect()
    };
    let moved: Vec<Value> = [on_dead("web"), on_dead("api")].concat();
    assert_eq!(moved.len(), 2, "one web and one api on node{}", dead + 1);
    let stays = on_dead("plain");
    assert_eq!(stays.len(), 1, "one plain on node{}", dead + 1);
    let moved_ids: BTreeSet<String> = moved
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    let mut agent = c.hosts[dead].agent.take().unwrap();
    let t = Instant::now();
    agent.kill().unwrap();
    agent.wait().unwrap();
    wait_for("host disconnected", 30, || {
        let h = get(&format!("{url}/v1/projects/1a5/hosts/{dead_id}"));
        (h["agentState"] == "disconnected").then_some(())
    });
    timing("agent killed -> host disconnected", t.elapsed());
    for svc in ["web", "api"] {
        wait_for(
            &format!("{svc} back to 3 healthy off node{}", dead + 1),
            60,
            || {
                let cs = settled(&url, svc, 3, true)?;
                cs.iter().all(|x| host_of(&hosts, x) != dead).then_some(())
            },
        );
        assert_eq!(
            names(&live(&url, svc)),
            (1..=3).map(|i| format!("hc-{svc}-{i}")).collect()
        );
    }
    timing(
        "agent killed -> replacements healthy on the other hosts",
        t.elapsed(),
    );
    // No health check: stays where it is, `running` in the API.
    let p = container(&url, stays[0]["id"].as_str().unwrap());
    assert_eq!(p["state"], "running", "{p}");
    assert_eq!(p["hostId"], dead_id.as_str());
    // The old containers still run on the dead host's docker meanwhile.
    let before = docker_running(c, dead);
    assert!(
        moved_ids.iter().all(|id| before.values().any(|x| x == id)),
        "agent gone, its containers keep running: {before:?}"
    );

    // The agent returns: it removes the replaced containers.
    let t = Instant::now();
    let a = start_agent(c, dead, &reg);
    c.hosts[dead].agent = Some(a);
    wait_for("host active again", 60, || {
        let h = get(&format!("{url}/v1/projects/1a5/hosts/{dead_id}"));
        (h["agentState"] == "active").then_some(())
    });
    wait_for("stale containers removed", 60, || {
        let now = docker_running(c, dead);
        (!moved_ids.iter().any(|id| now.values().any(|x| x == id))).then_some(())
    });
    timing("agent restarted -> stale containers removed", t.elapsed());
    for id in &moved_ids {
        wait_for("stale rows removed", 30, || {
            (container(&url, id)["state"] == "removed").then_some(())
        });
    }
    // Every service runs exactly its scale, each name once, across hosts.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..3 {
        for name in docker_running(c, i).keys() {
            *seen.entry(name.clone()).or_default() += 1;
        }
    }
    let want: BTreeMap<String, usize> = [("web", 3), ("api", 3), ("keep", 1), ("plain", 3)]
        .iter()
        .flat_map(|(s, n)| (1..=*n).map(move |i| (format!("r-hc-{s}-{i}"), 1)))
        .collect();
    assert_eq!(seen, want, "docker on the 3 hosts runs each container once");
    let p2 = container(&url, stays[0]["id"].as_str().unwrap());
    assert_eq!(p2["state"], "running");
    assert_eq!(p2["externalId"], stays[0]["externalId"], "not recreated");
    for svc in ["web", "api", "plain"] {
        wait_for(&format!("{svc} healthy at the end"), 30, || {
            (service(&url, svc)["healthState"] == "healthy").then_some(())
        });
    }

    compose(c, &dir, &["rm", "-f"]);
    wait_for("no containers left", 60, || {
        (0..3)
            .all(|i| docker_running(c, i).is_empty())
            .then_some(())
    });
    timing("whole test", started.elapsed());
}
