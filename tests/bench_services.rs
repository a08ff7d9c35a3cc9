//! Benchmark (ignored by default; `bash build/bench-services.sh` runs it):
//! scale one service 0 → 100 containers across the 3 test hosts, then
//! Docker swarm mode on the same engines (`docker swarm init` + `docker
//! service create --replicas 100`), printed as a ratio; a 10-container
//! in-service upgrade at batch size 2; the server's RSS with 100 and with
//! 1,000 containers, and the start rate between 700 and 900 containers.
//!
//! Fairness of the swarm baseline: with a tag reference, every swarm worker
//! tries to pull the image before each task (and only then falls back to
//! the local copy) — on these machines, with no registry reachable, that
//! cost minutes. The swarm service is therefore created from the image ID
//! with `--no-resolve-image`, which swarm never pulls; our agent never
//! pulls either (no `pull_image` label).

mod harness;

use std::time::{Duration, Instant};

use harness::*;
use serde_json::json;

/// A container that exits on SIGTERM (busybox `sleep` as PID 1 ignores it,
/// and every stop would wait for the kill timeout).
const SLEEP: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];

fn running_count(url: &str, prefix: &str, image: &str) -> usize {
    get(&format!(
        "{url}/v1/projects/1a5/containers?limit=3000&state=running"
    ))["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter(|c| {
                    c["name"].as_str().unwrap_or("").starts_with(prefix)
                        && c["imageUuid"] == format!("docker:{image}").as_str()
                        && c["desiredState"] == "running"
                })
                .count()
        })
        .unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "benchmark: bash build/bench-services.sh"]
fn bench_scale_upgrade_rss() {
    let mut c = setup();
    let url = c.url.clone();
    join_agents(&mut c);
    // One image ID on every engine (the harness imports per host, which
    // gives each its own ID; swarm runs the service by ID).
    let tar = c.dir.path().join("img.tar");
    c.hosts[0]
        .docker(&["save", "-o", tar.to_str().unwrap(), IMAGE])
        .unwrap();
    for h in &c.hosts {
        h.docker(&["load", "-i", tar.to_str().unwrap()]).unwrap();
        h.docker(&["tag", IMAGE, "ros-test/busybox:v2"]).unwrap();
    }
    let st = post(
        &format!("{url}/v1/projects/1a5/stacks"),
        json!({"name": "b"}),
    );
    let sid = st["id"].as_str().unwrap();
    let svc = post(
        &format!("{url}/v1/projects/1a5/services"),
        json!({"name": "s", "stackId": sid, "scale": 100, "startOnCreate": true,
               "launchConfig": {"imageUuid": format!("docker:{IMAGE}"), "command": SLEEP}}),
    );
    let id = svc["id"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    wait_for("100 running", 900, || {
        (running_count(&url, "b-s-", IMAGE) == 100).then_some(())
    });
    let ros_s = t0.elapsed().as_secs_f64();
    println!("BENCH ros 0->100 containers on 3 hosts: {ros_s:.1} s");
    let pid = c.server.as_ref().unwrap().id();
    println!(
        "BENCH server RSS with 100 containers: {} MiB",
        rss_kb(pid) / 1024
    );

    // 10 containers, in-service upgrade at batch size 2.
    call_put(&url, &id, json!({"scale": 10}));
    wait_for("10", 300, || {
        let all = get(&format!("{url}/v1/projects/1a5/containers?limit=3000"));
        let live = all["data"]
            .as_array()?
            .iter()
            .filter(|c| c["desiredState"] != "removed" && c["state"] != "removed")
            .count();
        (live == 10 && running_count(&url, "b-s-", IMAGE) == 10).then_some(())
    });
    let t1 = Instant::now();
    post(
        &format!("{url}/v1/projects/1a5/services/{id}?action=upgrade"),
        json!({"inServiceStrategy": {"launchConfig": {"imageUuid": "docker:ros-test/busybox:v2", "command": SLEEP},
               "batchSize": 2, "intervalMillis": 0, "startFirst": false}}),
    );
    wait_for("upgraded", 300, || {
        (get(&format!("{url}/v1/projects/1a5/services/{id}"))["state"] == "upgraded").then_some(())
    });
    println!(
        "BENCH in-service upgrade of 10 containers, batch 2, interval 0: {:.1} s",
        t1.elapsed().as_secs_f64()
    );
    post(
        &format!("{url}/v1/projects/1a5/services/{id}?action=remove"),
        json!({}),
    );
    wait_for("removed", 300, || {
        (get(&format!("{url}/v1/projects/1a5/services/{id}"))["state"] == "removed").then_some(())
    });

    // Swarm mode on the same engines.
    let h0 = &c.hosts[0];
    let init = h0.docker(&["swarm", "init", "--advertise-addr", &h0.ip]);
    match init {
        Err(e) => println!("BENCH swarm: init failed: {e}"),
        Ok(_) => {
            let tok = h0.docker(&["swarm", "join-token", "-q", "worker"]).unwrap();
            for h in &c.hosts[1..] {
                let _ = h.docker(&[
                    "swarm",
                    "join",
                    "--token",
                    tok.trim(),
                    &format!("{}:2377", h0.ip),
                ]);
            }
            let ids: Vec<String> = c
                .hosts
                .iter()
                .map(|h| {
                    h.docker(&["image", "inspect", "-f", "{{.Id}}", IMAGE])
                        .unwrap()
                        .trim()
                        .to_string()
                })
                .collect();
            assert!(
                ids.windows(2).all(|w| w[0] == w[1]),
                "same image everywhere: {ids:?}"
            );
            let t2 = Instant::now();
            let mut args = vec![
                "service",
                "create",
                "--detach",
                "--no-resolve-image",
                "--name",
                "bench",
                "--replicas",
                "100",
                "--endpoint-mode",
                "dnsrr",
                &ids[0],
            ];
            args.extend_from_slice(&SLEEP);
            let made = h0.docker(&args);
            if let Err(e) = made {
                println!("BENCH swarm: service create failed: {e}");
            } else {
                let done = (|| {
                    let deadline = Instant::now() + Duration::from_secs(600);
                    while Instant::now() < deadline {
                        let out = h0
                            .docker(&[
                                "service",
                                "ps",
                                "bench",
                                "--filter",
                                "desired-state=running",
                                "--format",
                                "{{.CurrentState}}",
                            ])
                            .unwrap_or_default();
                        if out.lines().filter(|l| l.starts_with("Running")).count() >= 100 {
                            return true;
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    false
                })();
                let sw = t2.elapsed().as_secs_f64();
                if done {
                    println!("BENCH swarm 0->100 replicas on 3 engines: {sw:.1} s");
                    println!("BENCH ratio ros/swarm: {:.2}", ros_s / sw);
                } else {
                    println!("BENCH swarm: not 100 running after {sw:.0} s");
                }
                let _ = h0.docker(&["service", "rm", "bench"]);
            }
            for h in &c.hosts {
                let _ = h.docker(&["swarm", "leave", "--force"]);
            }
        }
    }

    // 1,000 containers: the server's RSS, and the start rate at 700-900.
    let svc = post(
        &format!("{url}/v1/projects/1a5/services"),
        json!({"name": "k", "stackId": sid, "scale": 1000, "startOnCreate": true,
               "launchConfig": {"imageUuid": format!("docker:{IMAGE}"), "command": SLEEP}}),
    );
    let kid = svc["id"].as_str().unwrap().to_string();
    let t3 = Instant::now();
    wait_for("1000 running", 1800, || {
        std::thread::sleep(Duration::from_millis(800));
        (running_count(&url, "b-k-", IMAGE) == 1000).then_some(())
    });
    println!(
        "BENCH ros 0->1000 containers on 3 hosts: {:.1} s",
        t3.elapsed().as_secs_f64()
    );
    // The engines' own start times, merged over the hosts.
    let mut starts: Vec<f64> = Vec::new();
    for h in &c.hosts {
        let ids = h.docker(&["ps", "-q", "--filter", "name=b-k-"]).unwrap();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        for chunk in ids.chunks(200) {
            let mut a = vec!["inspect", "-f", "{{.State.StartedAt}}"];
            a.extend_from_slice(chunk);
            let out = h.docker(&a).unwrap();
            starts.extend(out.lines().filter_map(epoch_secs));
        }
    }
    starts.sort_by(f64::total_cmp);
    if starts.len() >= 900 {
        let s = (starts[899] - starts[699]).max(0.001);
        println!(
            "BENCH start rate between the 700th and 900th container (engine StartedAt): {:.0} starts/minute",
            200.0 / s * 60.0
        );
    }
    println!(
        "BENCH server RSS with 1000 containers: {} MiB",
        rss_kb(pid) / 1024
    );
    for (i, h) in c.hosts.iter().enumerate() {
        if let Some(a) = &h.agent {
            println!("BENCH agent{} RSS: {} MiB", i + 1, rss_kb(a.id()) / 1024);
        }
    }
    let t4 = Instant::now();
    post(
        &format!("{url}/v1/projects/1a5/services/{kid}?action=remove"),
        json!({}),
    );
    wait_for("1000 removed", 1800, || {
        std::thread::sleep(Duration::from_millis(800));
        let left: usize = c
            .hosts
            .iter()
            .map(|h| {
                h.docker(&["ps", "-aq", "--filter", "name=b-k-"])
                    .map(|o| o.split_whitespace().count())
                    .unwrap_or(1)
            })
            .sum();
        (left == 0).then_some(())
    });
    println!(
        "BENCH remove 1000 containers: {:.1} s",
        t4.elapsed().as_secs_f64()
    );
}

/// Seconds since the epoch of docker's `2026-11-24T03:58:01.123456789Z`.
fn epoch_secs(t: &str) -> Option<f64> {
    let (date, time) = t.trim().trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut hms = time.split(':');
    let h: f64 = hms.next()?.parse().ok()?;
    let mi: f64 = hms.next()?.parse().ok()?;
    let s: f64 = hms.next()?.parse().ok()?;
    Some(days as f64 * 86_400.0 + h * 3600.0 + mi * 60.0 + s)
}

#[test]
fn epoch_seconds_of_docker_times() {
    assert_eq!(epoch_secs("1970-01-01T00:00:01.5Z"), Some(1.5));
    assert_eq!(epoch_secs("2000-03-01T00:00:00Z"), Some(951_868_800.0));
    assert_eq!(epoch_secs("nonsense"), None);
}

fn call_put(url: &str, id: &str, body: serde_json::Value) {
    api()
        .put(&format!("{url}/v1/projects/1a5/services/{id}"))
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
        .unwrap();
}
