//! Health on the server side: several reports for one container in one
//! sync all apply; a host whose agent goes silent turns `disconnected` and
//! its health-checked containers are handled per strategy (`recreate` →
//! replaced on a live host under the same name, `none` → kept and marked
//! `unhealthy`), while containers without a check stay put.

use serde_json::{json, Value};

use super::*;

fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sync(u: &str, creds: (&str, &str), body: Value) -> Resp {
    let r = call(
        "POST",
        &format!("{u}/v1/agent/sync"),
        Some(creds),
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    r
}

#[test]
fn batched_reports_for_one_container_all_apply() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    let (host, ak, sk) = register(u, "1a5", &"h".repeat(32), "node1");
    let c = post(
        &format!("{u}/v1/projects/1a5/containers"),
        json!({"name": "web", "imageUuid": "docker:busybox", "requestedHostId": host}),
    );
    let cid = c.body["id"].as_str().unwrap().to_string();
    // State, then health, then a usage sample: the later ones must not
    // undo the earlier ones.
    sync(
        u,
        (&ak, &sk),
        json!({"reports": [
            {"instanceId": cid, "state": "running", "externalId": "abc"},
            {"instanceId": cid, "state": "", "healthState": "unhealthy"},
            {"instanceId": cid, "state": "", "cpuPercent": 2.5, "memoryMb": 7},
        ]}),
    );
    let got = get(&format!("{u}/v1/projects/1a5/containers/{cid}")).body;
    assert_eq!(got["state"], "running", "{got}");
    assert_eq!(got["healthState"], "unhealthy", "{got}");
    assert_eq!(got["memoryMb"], 7, "{got}");
    assert_eq!(got["externalId"], "abc", "{got}");
}

/// Live containers: name → (id, host, healthState).
fn live(s: &Srv) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = get(&format!("{}/v1/projects/1a5/containers?limit=100", s.url)).body
        ["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["desiredState"] != "removed" && c["state"] != "removed")
        .map(|c| {
            let f = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (f("name"), f("id"), f("hostId"), f("healthState"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn lost_host_checked_containers_follow_their_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        &dir.path().join("db"),
        ServerConfig {
            reconnecting_after: Duration::from_millis(700),
            disconnected_after: Duration::from_millis(1500),
            max_wait: Duration::from_millis(100),
            advertise_url: None,
            ..fast()
        },
    );
    let u = s.url.clone();
    let base = format!("{u}/v1/projects/1a5");
    let dc = "version: '2'\nservices:\n  web:\n    image: busybox\n  keep:\n    image: busybox\n  plain:\n    image: busybox\n";
    let check = |strategy: &str| {
        format!(
            "    health_check:\n      port: 80\n      interval: 500\n      strategy: {strategy}\n"
        )
    };
    let rc = format!(
        "version: '2'\nservices:\n  web:\n    scale: 1\n{}  keep:\n    scale: 1\n{}  plain:\n    scale: 1\n",
        check("recreate"),
        check("none")
    );
    let st = post(
        &format!("{base}/stacks"),
        json!({"name": "app", "dockerCompose": dc, "rancherCompose": rc}),
    );
    assert_eq!(st.status, 201, "{:?}", st.body);
    let (h1, a1, s1) = register(&u, "1a5", &"1".repeat(32), "n1");
    let svcs = get(&format!("{base}/services")).body["data"].clone();
    for svc in svcs.as_array().unwrap() {
        post(
            &format!(
                "{base}/services/{}?action=activate",
                svc["id"].as_str().unwrap()
            ),
            json!({}),
        );
    }
    // n1 runs all three, and its checks pass.
    let first = wait("3 containers on n1", || {
        let l = live(&s);
        (l.len() == 3).then_some(l)
    });
    assert!(first.iter().all(|c| c.2 == h1), "{first:?}");
    let reports: Vec<Value> = first
        .iter()
        .flat_map(|c| {
            let mut r = vec![json!({"instanceId": c.1, "state": "running", "externalId": c.1})];
            if c.0 != "app-plain-1" {
                r.push(json!({"instanceId": c.1, "state": "", "healthState": "healthy"}));
            }
            r
        })
        .collect();
    // n1's last contact is this sync: the clock starts before it, so the
    // time measured is never less than the server's (registering n2 in
    // between takes long on a loaded machine).
    let lost = std::time::Instant::now();
    sync(&u, (&a1, &s1), json!({"reports": reports}));
    let (h2, a2, s2) = register(&u, "1a5", &"2".repeat(32), "n2");

    // n1 goes silent, n2 keeps syncing.
    let moved = wait("web replaced on n2", || {
        sync(&u, (&a2, &s2), json!({"waitMs": 0}));
        let l = live(&s);
        l.iter().find(|c| c.0 == "app-web-1" && c.2 == h2).cloned()
    });
    assert!(
        lost.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        lost.elapsed()
    );
    let host1 = get(&format!("{base}/hosts/{h1}")).body;
    assert_eq!(host1["agentState"], "disconnected");
    assert_eq!(moved.3, "initializing", "{moved:?}");
    let old_web = first.iter().find(|c| c.0 == "app-web-1").unwrap();
    assert_ne!(moved.1, old_web.1, "a new container");
    let old = get(&format!("{base}/containers/{}", old_web.1)).body;
    assert_eq!(old["desiredState"], "removed", "{old}");
    // `none` stays on n1, marked unhealthy; `plain` has no check: untouched.
    let l = live(&s);
    let keep = l.iter().find(|c| c.0 == "app-keep-1").unwrap();
    assert_eq!(
        (keep.2.as_str(), keep.3.as_str()),
        (h1.as_str(), "unhealthy")
    );
    let plain = l.iter().find(|c| c.0 == "app-plain-1").unwrap();
    assert_eq!((plain.2.as_str(), plain.3.as_str()), (h1.as_str(), ""));
    let keep_svc = get(&format!("{base}/services?name=keep")).body["data"][0].clone();
    wait("keep service unhealthy", || {
        sync(&u, (&a2, &s2), json!({"waitMs": 0}));
        let k = get(&format!(
            "{base}/services/{}",
            keep_svc["id"].as_str().unwrap()
        ))
        .body;
        (k["healthState"] == "unhealthy").then_some(())
    });

    // n1 is back: it is told to remove the old web, nothing else moves.
    let back = sync(&u, (&a1, &s1), json!({"waitMs": 0}));
    let want: Vec<(String, String)> = back.body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["desiredState"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        want.contains(&(old_web.1.clone(), "removed".into())),
        "{want:?}"
    );
    assert!(
        want.contains(&(keep.1.clone(), "running".into())),
        "{want:?}"
    );
    assert!(
        want.contains(&(plain.1.clone(), "running".into())),
        "{want:?}"
    );
    assert_eq!(
        get(&format!("{base}/hosts/{h1}")).body["agentState"],
        "active"
    );
}
