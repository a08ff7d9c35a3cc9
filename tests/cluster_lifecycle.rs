//! The rest of the service lifecycle on a real multi-host cluster (server +
//! 3 agents in network namespaces with their own dockerd, images made
//! locally): `ros compose create` (services made, nothing started), `start`,
//! `ros compose upgrade A B --wait --cleanup` (B made from the compose file,
//! the scale moved over batch by batch, A removed), a rolling
//! `ros compose restart` (same containers, started again), the errors of
//! bad invocations, and a global service following a host that gets its
//! label.

mod harness;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use harness::*;
use serde_json::Value;

const DC: &str = r#"version: '2'
services:
  a:
    image: ros-test/busybox:latest
    command: [sleep, "3600"]
  b:
    image: ros-test/busybox:v2
    command: [sleep, "3600"]
"#;

const RC: &str = r#"version: '2'
services:
  a:
    scale: 2
"#;

fn compose(c: &Cluster, dir: &Path, args: &[&str]) -> Output {
    ros_compose(c, dir, &[&["-p", "app"], args].concat())
}

fn ok(c: &Cluster, dir: &Path, args: &[&str]) -> String {
    let out = compose(c, dir, args);
    assert!(out.status.success(), "ros compose {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn service(url: &str, name: &str) -> Option<Value> {
    get(&format!("{url}/v1/projects/1a5/services?name={name}"))["data"]
        .as_array()?
        .iter()
        .find(|s| s["state"] != "removed")
        .cloned()
}

/// Live containers whose name starts with `prefix`.
fn containers(url: &str, prefix: &str) -> Vec<Value> {
    get(&format!("{url}/v1/projects/1a5/containers?limit=1000"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["name"].as_str().unwrap_or("").starts_with(prefix)
                && !matches!(c["state"].as_str(), Some("removed" | "removing"))
                && c["desiredState"] != "removed"
        })
        .cloned()
        .collect()
}

/// docker's `StartedAt` of every live container with `prefix`, by id.
fn started_at(c: &Cluster, prefix: &str) -> BTreeMap<String, String> {
    containers(&c.url, prefix)
        .iter()
        .map(|ct| {
            let host = (0..3)
                .find(|i| {
                    host_by_name(&c.url, &format!("node{}", i + 1)).unwrap()["id"] == ct["hostId"]
                })
                .unwrap();
            let at = c.hosts[host]
                .docker(&[
                    "inspect",
                    "-f",
                    "{{.State.StartedAt}}",
                    ct["dockerName"].as_str().unwrap(),
                ])
                .unwrap();
            (
                ct["id"].as_str().unwrap().to_string(),
                at.trim().to_string(),
            )
        })
        .collect()
}

#[test]
fn compose_create_upgrade_to_service_and_rolling_restart() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "cluster_lifecycle needs root (network namespaces and dockerd); CI runs as root"
    );
    let mut c = setup();
    let url = c.url.clone();
    join_agents(&mut c);
    for h in &c.hosts {
        h.docker(&["tag", IMAGE, "ros-test/busybox:v2"]).unwrap();
    }
    let dir = c.dir.path().join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), DC).unwrap();
    std::fs::write(dir.join("rancher-compose.yml"), RC).unwrap();

    // Bad invocations: the reason, non-zero.
    let bad = compose(&c, &dir, &["create", "nope"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no service nope"),
        "{bad:?}"
    );

    // create: the service exists, inactive, nothing runs.
    let out = ok(&c, &dir, &["create", "a"]);
    assert!(out.contains("[1/1] [a]: Created"), "{out}");
    let a = service(&url, "a").unwrap();
    assert_eq!(a["state"], "inactive");
    assert!(service(&url, "b").is_none(), "only a was created");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(containers(&url, "app-a-").is_empty());
    let out = ok(&c, &dir, &["start", "a"]);
    assert!(out.contains("[a]: Started"), "{out}");
    wait_for("2 a running", 90, || {
        let v = containers(&url, "app-a-");
        (v.len() == 2 && v.iter().all(|x| x["state"] == "running")).then_some(())
    });

    let missing = compose(&c, &dir, &["upgrade", "zz", "b"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no service zz"),
        "{missing:?}"
    );

    // upgrade a b: b made from the compose file, scale moved to 3, a removed.
    let t0 = std::time::Instant::now();
    let out = ok(
        &c,
        &dir,
        &[
            "upgrade",
            "a",
            "b",
            "--scale",
            "3",
            "--batch-size",
            "1",
            "--interval",
            "200",
            "--wait",
            "--cleanup",
        ],
    );
    eprintln!("upgrade a b took {:?}", t0.elapsed());
    assert!(out.contains("[b]: Created"), "{out}");
    assert!(out.contains("[a]: Upgraded to b"), "{out}");
    assert!(out.contains("[3/3]"), "{out}");
    assert!(out.contains("[a]: Removed"), "{out}");
    assert!(service(&url, "a").is_none(), "a removed");
    let b = service(&url, "b").unwrap();
    assert_eq!(
        (b["state"].as_str(), b["scale"].as_u64()),
        (Some("active"), Some(3))
    );
    let bs = wait_for("3 b running", 60, || {
        let v = containers(&url, "app-b-");
        (v.len() == 3 && v.iter().all(|x| x["state"] == "running")).then_some(v)
    });
    assert!(bs
        .iter()
        .all(|x| x["imageUuid"] == "docker:ros-test/busybox:v2"));
    wait_for("a's containers gone", 60, || {
        containers(&url, "app-a-").is_empty().then_some(())
    });
    wait_for("a's docker containers removed", 60, || {
        c.hosts
            .iter()
            .all(|h| {
                !h.docker(&["ps", "-a", "--format", "{{.Names}}"])
                    .unwrap()
                    .contains("r-app-a-")
            })
            .then_some(())
    });

    // Rolling restart: same containers, each started again.
    let before = started_at(&c, "app-b-");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = ok(
        &c,
        &dir,
        &["restart", "--batch-size", "1", "--interval", "100", "b"],
    );
    assert!(out.contains("[1/1] [b]: Restarted"), "{out}");
    let after = started_at(&c, "app-b-");
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "same containers"
    );
    for (id, at) in &after {
        assert_ne!(&before[id], at, "{id} was restarted");
    }
    ok(&c, &dir, &["rm", "-f"]);

    // A global service: one container per host labelled role=web, following
    // a host that gets the label.
    let gdir = c.dir.path().join("glob");
    std::fs::create_dir_all(&gdir).unwrap();
    std::fs::write(gdir.join("docker-compose.yml"), GLOBAL).unwrap();
    let node = |i: usize| host_by_name(&url, &format!("node{i}")).unwrap();
    let label = |i: usize| {
        let h = node(i);
        let id = h["id"].as_str().unwrap();
        let mut labels = h["labels"].clone();
        labels["role"] = "web".into();
        api()
            .put(&format!("{url}/v1/projects/1a5/hosts/{id}"))
            .set("Content-Type", "application/json")
            .send_string(&serde_json::json!({ "labels": labels }).to_string())
            .unwrap();
    };
    label(1);
    label(2);
    let up = std::process::Command::new(ros())
        .args(["compose", "-p", "glob", "--url", &url, "up", "-d"])
        .current_dir(&gdir)
        .output()
        .unwrap();
    assert!(up.status.success(), "{up:?}");
    let on_hosts = |n: usize| {
        wait_for(&format!("global on {n} hosts"), 90, || {
            let v = containers(&url, "glob-g-");
            let hosts: std::collections::BTreeSet<String> = v
                .iter()
                .map(|x| x["hostId"].as_str().unwrap().to_string())
                .collect();
            (v.len() == n && hosts.len() == n && v.iter().all(|x| x["state"] == "running"))
                .then_some(hosts)
        })
    };
    let two = on_hosts(2);
    assert!(!two.contains(node(3)["id"].as_str().unwrap()), "{two:?}");
    label(3);
    on_hosts(3);
    assert_eq!(service(&url, "g").unwrap()["scale"], 3);
    let rm = std::process::Command::new(ros())
        .args(["compose", "-p", "glob", "--url", &url, "rm", "-f"])
        .current_dir(&gdir)
        .output()
        .unwrap();
    assert!(rm.status.success(), "{rm:?}");
}

const GLOBAL: &str = r#"version: '2'
services:
  g:
    image: ros-test/busybox:latest
    command: [sleep, "3600"]
    labels:
      io.rancher.scheduler.global: 'true'
      io.rancher.scheduler.affinity:host_label: role=web
"#;
