//! Stacks and services on a real multi-host cluster (server + 3 agents in
//! network namespaces with their own dockerd, images made locally):
//! `ros compose up -d` of a 3-service stack, anti-affinity spreading, scale
//! up and down (highest indexes removed), containers deleted or stopped
//! behind the orchestrator coming back, an in-service upgrade (batch 1,
//! start-first) then finish with a data volume surviving it, and another
//! upgrade rolled back to the previous image.

mod harness;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use harness::*;
use serde_json::Value;

const DC: &str = r#"version: '2'
services:
  web:
    image: ros-test/busybox:latest
    command: [/bin/busybox, httpd, -f, -p, "80"]
    labels:
      io.rancher.scheduler.affinity:container_label_ne: io.rancher.stack_service.name=app/web
  worker:
    image: ros-test/busybox:latest
    command: [sleep, "3600"]
  db:
    image: ros-test/busybox:latest
    command: [sleep, "3600"]
    volumes:
      - data:/data
volumes:
  data: {}
"#;

const RC: &str = r#"version: '2'
services:
  web:
    scale: 3
    upgrade_strategy:
      start_first: true
      batch_size: 1
      interval_millis: 300
  worker:
    scale: 1
  db:
    scale: 1
"#;

fn compose(c: &Cluster, dir: &Path, args: &[&str]) -> Output {
    let files = [
        "-p",
        "app",
        "-f",
        "docker-compose.yml",
        "-f",
        "rancher-compose.yml",
    ];
    ros_compose(c, dir, &[&files[..], args].concat())
}

fn ok(c: &Cluster, dir: &Path, args: &[&str]) -> String {
    let out = compose(c, dir, args);
    assert!(out.status.success(), "ros compose {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Live containers of the stack whose name starts with `prefix`.
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

/// Names of running containers with `prefix`, once exactly `n` run and
/// nothing else of that prefix is live.
fn running(url: &str, prefix: &str, n: usize) -> Option<Vec<Value>> {
    let all = containers(url, prefix);
    (all.len() == n && all.iter().all(|c| c["state"] == "running")).then_some(all)
}

fn names(cs: &[Value]) -> BTreeSet<String> {
    cs.iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn host_index(url: &str, host_id: &str) -> usize {
    (0..3)
        .find(|i| host_by_name(url, &format!("node{}", i + 1)).unwrap()["id"] == host_id)
        .unwrap()
}

fn on_host<'a>(c: &'a Cluster, ct: &Value) -> &'a Host {
    &c.hosts[host_index(&c.url, ct["hostId"].as_str().unwrap())]
}

fn service(url: &str, name: &str) -> Value {
    get(&format!("{url}/v1/projects/1a5/services?name={name}"))["data"][0].clone()
}

#[test]
fn compose_stack_scale_heal_upgrade_rollback() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "cluster_services needs root (network namespaces and dockerd); CI runs as root"
    );
    let mut c = setup();
    let url = c.url.clone();
    join_agents(&mut c);
    for h in &c.hosts {
        for tag in ["v2", "v3"] {
            h.docker(&["tag", IMAGE, &format!("ros-test/busybox:{tag}")])
                .unwrap();
        }
    }
    let dir = c.dir.path().join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), DC).unwrap();
    std::fs::write(dir.join("rancher-compose.yml"), RC).unwrap();

    // Deploy: 3 services, web spread over the 3 hosts by anti-affinity.
    let out = ok(&c, &dir, &["up", "-d"]);
    assert!(out.contains("[web]: Started"), "{out}");
    assert!(out.contains("[1/3]"), "{out}");
    let web = wait_for("3 web running", 120, || running(&url, "app-web-", 3));
    let hosts: BTreeSet<&str> = web.iter().map(|w| w["hostId"].as_str().unwrap()).collect();
    assert_eq!(hosts.len(), 3, "anti-affinity spreads web: {web:?}");
    wait_for("worker and db", 60, || {
        running(&url, "app-worker-", 1).and(running(&url, "app-db-", 1))
    });
    assert_eq!(service(&url, "web")["state"], "active");

    // Scale up to 5, back to 2: the highest indexes go.
    ok(&c, &dir, &["scale", "worker=5"]);
    let w5 = wait_for("5 workers", 120, || running(&url, "app-worker-", 5));
    assert_eq!(
        names(&w5),
        (1..=5).map(|i| format!("app-worker-{i}")).collect()
    );
    ok(&c, &dir, &["scale", "worker=2"]);
    let w2 = wait_for("2 workers", 120, || running(&url, "app-worker-", 2));
    assert_eq!(
        names(&w2),
        BTreeSet::from(["app-worker-1".to_string(), "app-worker-2".to_string()])
    );

    // Deleted behind the orchestrator: replaced. Stopped: started again.
    let w = w2.iter().find(|w| w["name"] == "app-worker-2").unwrap();
    let old_id = w["id"].as_str().unwrap().to_string();
    on_host(&c, w)
        .docker(&["rm", "-f", w["dockerName"].as_str().unwrap()])
        .unwrap();
    wait_for("worker-2 replaced", 90, || {
        let r = running(&url, "app-worker-", 2)?;
        r.iter()
            .any(|x| x["name"] == "app-worker-2" && x["id"] != old_id.as_str())
            .then_some(())
    });
    let w1 = containers(&url, "app-worker-1").remove(0);
    on_host(&c, &w1)
        .docker(&["stop", "-t", "1", w1["dockerName"].as_str().unwrap()])
        .unwrap();
    wait_for("worker-1 stopped seen", 60, || {
        (containers(&url, "app-worker-1")[0]["state"] != "running").then_some(())
    });
    wait_for("worker-1 running again", 90, || {
        let r = running(&url, "app-worker-", 2)?;
        r.iter()
            .any(|x| x["name"] == "app-worker-1" && x["id"] == w1["id"])
            .then_some(())
    });

    // Data written in db's volume survives an upgrade.
    let db = running(&url, "app-db-", 1).unwrap().remove(0);
    on_host(&c, &db)
        .docker(&[
            "exec",
            db["dockerName"].as_str().unwrap(),
            "sh",
            "-c",
            "echo kept > /data/f",
        ])
        .unwrap();

    // In-service upgrade (web start-first batch 1, db stop-first) to :v2.
    let v2 = DC.replace("ros-test/busybox:latest", "ros-test/busybox:v2");
    std::fs::write(dir.join("docker-compose.yml"), &v2).unwrap();
    let out = ok(
        &c,
        &dir,
        &[
            "up",
            "-d",
            "--upgrade",
            "--batch-size",
            "1",
            "--interval",
            "300",
        ],
    );
    assert!(out.contains("[web]: Upgraded"), "{out}");
    assert_eq!(service(&url, "web")["state"], "upgraded");
    assert!(service(&url, "web")["previousLaunchConfig"]["image"]
        .as_str()
        .unwrap()
        .ends_with(":latest"));
    ok(&c, &dir, &["up", "-d", "--confirm-upgrade"]);
    let web = wait_for("3 web on v2", 120, || {
        let r = running(&url, "app-web-", 3)?;
        r.iter()
            .all(|x| x["imageUuid"] == "docker:ros-test/busybox:v2")
            .then_some(r)
    });
    let hosts: BTreeSet<&str> = web.iter().map(|w| w["hostId"].as_str().unwrap()).collect();
    assert_eq!(hosts.len(), 3, "still spread after the upgrade");
    let db2 = wait_for("db on v2", 90, || {
        let r = running(&url, "app-db-", 1)?;
        (r[0]["imageUuid"] == "docker:ros-test/busybox:v2").then(|| r[0].clone())
    });
    assert_eq!(db2["hostId"], db["hostId"], "volume keeps db on its host");
    let data = on_host(&c, &db2)
        .docker(&[
            "exec",
            db2["dockerName"].as_str().unwrap(),
            "cat",
            "/data/f",
        ])
        .unwrap();
    assert_eq!(data.trim(), "kept");

    // Upgrade to :v3, then roll back: v2 runs again.
    let v3 = DC.replace("ros-test/busybox:latest", "ros-test/busybox:v3");
    std::fs::write(dir.join("docker-compose.yml"), &v3).unwrap();
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
            "100",
            "web",
        ],
    );
    assert_eq!(service(&url, "web")["state"], "upgraded");
    ok(&c, &dir, &["up", "-d", "--rollback", "web"]);
    wait_for("web back on v2", 120, || {
        let r = running(&url, "app-web-", 3)?;
        r.iter()
            .all(|x| x["imageUuid"] == "docker:ros-test/busybox:v2")
            .then_some(())
    });
    assert_eq!(
        service(&url, "web")["launchConfig"]["image"],
        "ros-test/busybox:v2"
    );

    // ps lists them; rm removes the stack and its containers.
    let ps = ok(&c, &dir, &["ps"]);
    assert!(ps.contains("app-web-1") && ps.contains("running"), "{ps}");
    ok(&c, &dir, &["rm", "-f"]);
    wait_for("no containers left", 90, || {
        containers(&url, "app-").is_empty().then_some(())
    });
}
