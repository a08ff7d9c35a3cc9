//! The service lifecycle beyond scale and in-service upgrades, through the
//! API with the reconciler running and the test playing the agents (every
//! container reaches its desired state when the test says so):
//! cancel/continue, rolling restart, to-service upgrades, health strategies,
//! global services following hosts, and a server restart mid-upgrade.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::cluster::model::{Kind, Resource};
use crate::cluster::store::Scope;

fn config() -> ServerConfig {
    ServerConfig {
        max_wait: Duration::from_millis(200),
        ..ServerConfig::default()
    }
}

/// Every container row (removed ones too).
fn all(s: &Srv) -> Vec<Resource> {
    s.app.store.list(Kind::Container, Scope::All).unwrap()
}

/// Live containers of a service.
fn live(s: &Srv, service: &str) -> Vec<Resource> {
    let mut v: Vec<Resource> = all(s)
        .into_iter()
        .filter(|c| {
            c.str("serviceId") == Some(service)
                && !c.is_removed()
                && c.str("desiredState") != Some("removed")
        })
        .collect();
    v.sort_by_key(|c| c.str("name").unwrap_or_default().to_string());
    v
}

fn gen(c: &Resource) -> u64 {
    c.data.get("_gen").and_then(Value::as_u64).unwrap_or(0)
}

/// Play the agents once: every container reaches its desired state; a
/// running health-checked one reports `health` (unless it already has a
/// state other than `initializing`).
fn converge(s: &Srv, health: &str) {
    let _g = s.app.write.blocking_lock();
    let mut rows = Vec::new();
    for mut c in all(s) {
        let before = c.clone();
        let want = match c.str("desiredState") {
            Some("stopped") => "stopped",
            Some("removed") => "removed",
            _ => "running",
        };
        if c.state != want && !c.is_removed() {
            c.state = want.into();
        }
        if c.state == "running" && c.str("healthState") == Some("initializing") {
            c.set("healthState", health);
        }
        if c != before {
            rows.push(c);
        }
    }
    s.app.store.commit(&rows).unwrap();
    s.app.kick.notify_one();
}

/// Converge and poll until `f` holds (20 s at most).
fn until<T>(s: &Srv, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        converge(s, "healthy");
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Poll without converging.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Env {
    srv: Srv,
    base: String,
}

impl Env {
    fn new(db: &Path) -> Env {
        let srv = start(db, config());
        let base = format!("{}/v1/projects/1a5", srv.url);
        Env { srv, base }
    }

    fn svc(&self, id: &str) -> Value {
        get(&format!("{}/services/{id}", self.base)).body
    }

    fn state(&self, id: &str) -> String {
        self.svc(id)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn act(&self, id: &str, action: &str, body: Value) -> Resp {
        post(
            &format!("{}/services/{id}?action={action}", self.base),
            body,
        )
    }

    /// A stack from compose text; its service ids by name.
    fn stack(&self, name: &str, dc: &str, rc: &str) -> BTreeMap<String, String> {
        let st = post(
            &format!("{}/stacks", self.base),
            json!({"name": name, "dockerCompose": dc, "rancherCompose": rc}),
        );
        assert_eq!(st.status, 201, "{:?}", st.body);
        let sid = st.body["id"].as_str().unwrap();
        get(&format!("{}/services?stackId={sid}", self.base)).body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Activate and wait until active with every container running.
    fn up(&self, id: &str) {
        if self.state(id) == "inactive" {
            assert_eq!(self.act(id, "activate", json!({})).status, 200);
        }
        until(&self.srv, "active", || {
            (self.state(id) == "active").then_some(())
        });
    }
}

const WEB: &str =
    "version: '2'\nservices:\n  web:\n    image: busybox:1\n    command: [sleep, '600']\n";

fn web_scale(n: u32) -> String {
    format!("version: '2'\nservices:\n  web:\n    scale: {n}\n")
}

fn hosts(e: &Env, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            register(
                &e.srv.url,
                "1a5",
                &format!("lifecyclekey{i:08}"),
                &format!("n{i}"),
            )
            .0
        })
        .collect()
}

#[test]
fn cancel_continue_finish_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let e = Env::new(&dir.path().join("db"));
    hosts(&e, 3);
    let ids = e.stack("app", WEB, &web_scale(3));
    let web = &ids["web"];
    e.up(web);
    assert_eq!(live(&e.srv, web).len(), 3);

    // Upgrade, batch 1, and do not let the first replacement run.
    let up = e.act(
        web,
        "upgrade",
        json!({"inServiceStrategy": {"launchConfig": {"imageUuid": "docker:busybox:2",
               "command": ["sleep", "601"]}, "batchSize": 1, "intervalMillis": 0}}),
    );
    assert_eq!(
        (up.status, up.body["state"].as_str()),
        (200, Some("upgrading"))
    );
    let new_gen = |e: &Env| live(&e.srv, web).iter().filter(|c| gen(c) == 1).count();
    wait_for("first batch", || (new_gen(&e) == 1).then_some(()));
    // Rejected while upgrading: finish, continue, restart, upgrade.
    for a in [
        "finishupgrade",
        "continueupgrade",
        "restart",
        "upgrade",
        "activate",
    ] {
        let r = e.act(web, a, json!({}));
        assert_eq!((r.status, r.code()), (405, "ActionNotAvailable"), "{a}");
    }
    let cancel = e.act(web, "cancelupgrade", json!({}));
    assert_eq!(
        cancel.body["state"], "canceling-upgrade",
        "{:?}",
        cancel.body
    );
    until(&e.srv, "canceled", || {
        (e.state(web) == "canceled-upgrade").then_some(())
    });
    // The rollout stays where it was: no new batch however long we wait.
    for _ in 0..3 {
        converge(&e.srv, "healthy");
        settle(&e.srv);
    }
    assert_eq!(new_gen(&e), 1, "no batch after cancel");
    let acts = e.svc(web)["actions"].clone();
    for a in ["continueupgrade", "rollback", "remove"] {
        assert!(acts.get(a).is_some(), "{a} offered: {acts}");
    }
    for a in ["finishupgrade", "cancelupgrade", "upgrade", "restart"] {
        assert!(acts.get(a).is_none(), "{a} not offered: {acts}");
        let r = e.act(web, a, json!({}));
        assert_eq!((r.status, r.code()), (405, "ActionNotAvailable"), "{a}");
    }

    // Continue: upgrading → upgraded with every index replaced once.
    let cont = e.act(web, "continueupgrade", json!({}));
    assert_eq!(cont.body["state"], "upgrading");
    until(&e.srv, "upgraded", || {
        (e.state(web) == "upgraded").then_some(())
    });
    let now = live(&e.srv, web);
    assert_eq!(now.iter().filter(|c| gen(c) == 1).count(), 3);
    assert!(now
        .iter()
        .filter(|c| gen(c) == 0)
        .all(|c| c.state == "stopped"));
    // Finish: old containers go, active.
    assert_eq!(e.act(web, "finishupgrade", json!({})).status, 200);
    until(&e.srv, "finished", || {
        (e.state(web) == "active" && live(&e.srv, web).len() == 3).then_some(())
    });
    assert!(live(&e.srv, web).iter().all(|c| gen(c) == 1));

    // Another upgrade, canceled half way, then rolled back: the old
    // containers run again, the new ones go, the old image is back.
    e.act(
        web,
        "upgrade",
        json!({"inServiceStrategy": {"launchConfig": {"imageUuid": "docker:busybox:3"},
               "batchSize": 2, "intervalMillis": 0}}),
    );
    wait_for("batch", || {
        (live(&e.srv, web).iter().filter(|c| gen(c) == 2).count() == 2).then_some(())
    });
    e.act(web, "cancelupgrade", json!({}));
    until(&e.srv, "canceled", || {
        (e.state(web) == "canceled-upgrade").then_some(())
    });
    let rb = e.act(web, "rollback", json!({}));
    assert_eq!(rb.body["state"], "rolling-back");
    until(&e.srv, "rolled back", || {
        let l = live(&e.srv, web);
        (e.state(web) == "active"
            && l.len() == 3
            && l.iter().all(|c| gen(c) == 1 && c.state == "running"))
        .then_some(())
    });
    assert_eq!(e.svc(web)["launchConfig"]["imageUuid"], "docker:busybox:2");
}

#[test]
fn rolling_restart_goes_batch_by_batch() {
    let dir = tempfile::tempdir().unwrap();
    let e = Env::new(&dir.path().join("db"));
    hosts(&e, 2);
    let ids = e.stack("app", WEB, &web_scale(4));
    let web = &ids["web"];
    e.up(web);
    let before: Vec<u64> = live(&e.srv, web).iter().map(|c| c.id).collect();
    let bad = e.act(
        web,
        "restart",
        json!({"rollingRestartStrategy": {"batchSize": "two"}}),
    );
    assert_eq!(
        (bad.status, bad.code()),
        (422, "InvalidOption"),
        "{:?}",
        bad.body
    );
    let r = e.act(
        web,
        "restart",
        json!({"rollingRestartStrategy": {"batchSize": 2, "intervalMillis": 100}}),
    );
    assert_eq!(r.body["state"], "restarting", "{:?}", r.body);
    // At no time are more than a batch of containers down; every one is
    // restarted exactly once, keeping its id.
    let mut worst = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let down = live(&e.srv, web)
            .iter()
            .filter(|c| c.state != "running")
            .count();
        worst = worst.max(down);
        if e.state(web) == "active" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "restart timed out");
        converge(&e.srv, "healthy");
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(worst <= 2, "{worst} containers down at once");
    assert!(worst >= 1, "nothing was ever restarted");
    let after = live(&e.srv, web);
    assert_eq!(after.iter().map(|c| c.id).collect::<Vec<_>>(), before);
    for c in &after {
        assert_eq!(c.state, "running");
        assert_eq!(c.data.get("startCount"), Some(&json!(2)), "{}", c.api_id());
    }
}

#[test]
fn to_service_upgrade_moves_scale_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let e = Env::new(&dir.path().join("db"));
    hosts(&e, 3);
    let dc = "version: '2'\nservices:\n  a:\n    image: busybox:1\n  b:\n    image: busybox:2\n  c:\n    image: busybox:1\n    links: [a]\n";
    let rc =
        "version: '2'\nservices:\n  a:\n    scale: 3\n  b:\n    scale: 0\n  c:\n    scale: 1\n";
    let ids = e.stack("app", dc, rc);
    let (a, b, c) = (&ids["a"], &ids["b"], &ids["c"]);
    e.up(a);
    e.up(c);
    assert_eq!(e.state(b), "inactive");
    // Bad strategies are refused by name.
    for (body, code) in [
        (json!({"toServiceStrategy": {}}), "MissingRequired"),
        (
            json!({"toServiceStrategy": {"toServiceId": "1s999"}}),
            "InvalidReference",
        ),
        (
            json!({"toServiceStrategy": {"toServiceId": a}}),
            "InvalidReference",
        ),
        (
            json!({"toServiceStrategy": {"toServiceId": b, "finalScale": -1}}),
            "InvalidOption",
        ),
        (
            json!({"toServiceStrategy": {"toServiceId": b}, "inServiceStrategy": {}}),
            "InvalidOption",
        ),
        (json!({"toServiceStrategy": "b"}), "InvalidFormat"),
    ] {
        let r = e.act(a, "upgrade", body.clone());
        assert_eq!((r.status, r.code()), (422, code), "{body}: {:?}", r.body);
    }
    assert_eq!(e.state(a), "active");
    let up = e.act(
        a,
        "upgrade",
        json!({"toServiceStrategy": {"toServiceId": b, "finalScale": 3, "batchSize": 1,
               "intervalMillis": 50, "updateLinks": true}}),
    );
    assert_eq!(up.body["state"], "upgrading", "{:?}", up.body);
    // Watch the scales: B never above the final scale, A+B never below
    // what A served, each moving by at most one batch.
    let mut seen: Vec<(u64, u64)> = Vec::new();
    until(&e.srv, "upgraded", || {
        let (sa, sb) = (
            e.svc(a)["scale"].as_u64().unwrap(),
            e.svc(b)["scale"].as_u64().unwrap(),
        );
        if seen.last() != Some(&(sa, sb)) {
            seen.push((sa, sb));
        }
        (e.state(a) == "upgraded").then_some(())
    });
    for w in seen.windows(2) {
        let ((a0, b0), (a1, b1)) = (w[0], w[1]);
        assert!(a0.abs_diff(a1) <= 1 && b0.abs_diff(b1) <= 1, "{seen:?}");
    }
    assert!(
        seen.iter().all(|(sa, sb)| sb <= &3 && sa + sb >= 3),
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&(0, 3)), "{seen:?}");
    until(&e.srv, "b active with 3", || {
        (e.state(b) == "active"
            && live(&e.srv, b)
                .iter()
                .filter(|c| c.state == "running")
                .count()
                == 3
            && live(&e.srv, a).is_empty())
        .then_some(())
    });
    // C links to B now.
    let links = e.svc(c)["linkedServices"].clone();
    assert_eq!(links[0]["service"], "b", "{links}");
    // Finish: A stays, at scale 0, active.
    assert_eq!(e.act(a, "finishupgrade", json!({})).status, 200);
    until(&e.srv, "a active", || {
        (e.state(a) == "active").then_some(())
    });
    assert_eq!(e.svc(a)["scale"], 0);
}

fn hc_stack(strategy: &str) -> String {
    format!(
        "version: '2'\nservices:\n  web:\n    scale: 3\n    health_check:\n      port: 80\n      interval: 2000\n      unhealthy_threshold: 2\n      healthy_threshold: 2\n      response_timeout: 2000\n{strategy}"
    )
}

/// Set the health of the named containers (the agents' report).
fn set_health(s: &Srv, names: &[&str], h: &str) {
    let _g = s.app.write.blocking_lock();
    let rows: Vec<Resource> = all(s)
        .into_iter()
        .filter(|c| names.contains(&c.str("name").unwrap_or_default()) && !c.is_removed())
        .map(|mut c| {
            c.set("healthState", h);
            c
        })
        .collect();
    s.app.store.commit(&rows).unwrap();
    s.app.kick.notify_one();
}

/// A few reconcile passes (under the write lock, as the server runs them).
fn settle(s: &Srv) {
    for _ in 0..4 {
        {
            let _g = s.app.write.blocking_lock();
            crate::cluster::server::driver::pass(&s.app).unwrap();
        }
        std::thread::sleep(Duration::from_millis(60));
    }
}

#[test]
fn health_strategies_quorum_and_none() {
    let dir = tempfile::tempdir().unwrap();
    let e = Env::new(&dir.path().join("db"));
    hosts(&e, 3);
    let q = e.stack(
        "q",
        WEB,
        &hc_stack("      strategy: recreateOnQuorum\n      recreate_on_quorum_strategy_config:\n        quorum: 2\n"),
    );
    let n = e.stack("n", WEB, &hc_stack("      strategy: none\n"));
    let (q, n) = (&q["web"], &n["web"]);
    e.up(q);
    e.up(n);
    let ids = |svc: &str| -> Vec<u64> { live(&e.srv, svc).iter().map(|c| c.id).collect() };
    let (q0, n0) = (ids(q), ids(n));

    // Quorum 2, two unhealthy: one healthy < 2 — nothing is replaced.
    set_health(&e.srv, &["q-web-1", "q-web-2"], "unhealthy");
    settle(&e.srv);
    assert_eq!(ids(q), q0, "below quorum: kept");
    // One healthy again: two healthy >= 2 — the unhealthy one goes.
    set_health(&e.srv, &["q-web-1"], "healthy");
    settle(&e.srv);
    let q1 = ids(q);
    assert!(q1.contains(&q0[0]) && q1.contains(&q0[2]), "{q0:?} {q1:?}");
    assert!(!q1.contains(&q0[1]), "q-web-2 replaced: {q0:?} {q1:?}");
    until(&e.srv, "q back at 3", || (ids(q).len() == 3).then_some(()));
    assert_eq!(
        live(&e.srv, q)
            .iter()
            .map(|c| c.str("name").unwrap().to_string())
            .collect::<Vec<_>>(),
        ["q-web-1", "q-web-2", "q-web-3"],
        "the replacement takes the freed index"
    );

    // `none`: unhealthy containers are never replaced.
    set_health(&e.srv, &["n-web-1", "n-web-2", "n-web-3"], "unhealthy");
    settle(&e.srv);
    assert_eq!(ids(n), n0);
    wait_for("n unhealthy", || {
        (e.svc(n)["healthState"] == "unhealthy").then_some(())
    });
}

/// Set a host's labels through the API.
fn label_host(e: &Env, host: &str, labels: Value) {
    let r = call(
        "PUT",
        &format!("{}/hosts/{host}", e.base),
        None,
        Some(json!({ "labels": labels }).to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    e.srv.app.kick.notify_one();
}

#[test]
fn global_service_follows_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let e = Env::new(&dir.path().join("db"));
    let hs = hosts(&e, 2);
    for h in &hs {
        label_host(&e, h, json!({"role": "web"}));
    }
    let dc = "version: '2'\nservices:\n  g:\n    image: busybox:1\n    labels:\n      io.rancher.scheduler.global: 'true'\n      io.rancher.scheduler.affinity:host_label: role=web\n      io.rancher.scheduler.affinity:container_label_ne: io.rancher.stack_service.name=app/g\n";
    let ids = e.stack("app", dc, "");
    let g = &ids["g"];
    e.up(g);
    let on = |e: &Env| -> Vec<String> {
        let mut v: Vec<String> = live(&e.srv, g)
            .iter()
            .map(|c| c.str("hostId").unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(on(&e), hs, "one per eligible host");
    assert_eq!(e.svc(g)["scale"], 2, "scale reports the hosts");

    // A host joins without the label: nothing; it gets the label: one more.
    let h3 = hosts_more(&e, "n9");
    settle(&e.srv);
    assert_eq!(on(&e), hs);
    label_host(&e, &h3, json!({"role": "web"}));
    let mut want = hs.clone();
    want.push(h3.clone());
    want.sort();
    until(&e.srv, "third host", || (on(&e) == want).then_some(()));
    until(&e.srv, "scale 3", || (e.svc(g)["scale"] == 3).then_some(()));
    // A host loses the label: its container goes.
    label_host(&e, &hs[0], json!({"role": "db"}));
    want.retain(|h| *h != hs[0]);
    until(&e.srv, "label removed", || (on(&e) == want).then_some(()));
    assert_eq!(e.state(g), "active");
    // A host leaves (deactivated): its container goes; back: it returns.
    let gone = want[0].clone();
    let deact = post(
        &format!("{}/hosts/{gone}?action=deactivate", e.base),
        json!({}),
    );
    assert_eq!(deact.status, 200, "{:?}", deact.body);
    let rest: Vec<String> = want.iter().filter(|h| **h != gone).cloned().collect();
    until(&e.srv, "host left", || (on(&e) == rest).then_some(()));
    assert_eq!(e.svc(g)["scale"], 1);
    post(
        &format!("{}/hosts/{gone}?action=activate", e.base),
        json!({}),
    );
    until(&e.srv, "host back", || (on(&e) == want).then_some(()));

    // An in-service upgrade replaces per host.
    let before: Vec<(String, u64)> = live(&e.srv, g)
        .iter()
        .map(|c| {
            (
                c.str("hostId").unwrap().to_string(),
                c.data["serviceIndex"].as_u64().unwrap(),
            )
        })
        .collect();
    e.act(
        g,
        "upgrade",
        json!({"inServiceStrategy": {"launchConfig": {"imageUuid": "docker:busybox:2",
               "labels": {"io.rancher.scheduler.global": "true",
                          "io.rancher.scheduler.affinity:host_label": "role=web"}},
               "batchSize": 1, "intervalMillis": 0}}),
    );
    until(&e.srv, "upgraded", || {
        (e.state(g) == "upgraded").then_some(())
    });
    let mut after: Vec<(String, u64)> = live(&e.srv, g)
        .iter()
        .filter(|c| gen(c) == 1)
        .map(|c| {
            (
                c.str("hostId").unwrap().to_string(),
                c.data["serviceIndex"].as_u64().unwrap(),
            )
        })
        .collect();
    after.sort();
    let mut before = before;
    before.sort();
    assert_eq!(after, before, "each host's container replaced on that host");
}

fn hosts_more(e: &Env, name: &str) -> String {
    register(&e.srv.url, "1a5", &format!("lifecyclekeyextra{name}"), name).0
}

#[test]
fn server_restart_mid_upgrade_completes_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let web;
    {
        let e = Env::new(&db);
        hosts(&e, 3);
        web = e.stack("app", WEB, &web_scale(4))["web"].clone();
        e.up(&web);
        e.act(
            &web,
            "upgrade",
            json!({"inServiceStrategy": {"launchConfig": {"imageUuid": "docker:busybox:2"},
                   "batchSize": 1, "intervalMillis": 0, "startFirst": true}}),
        );
        // Let two batches happen, then stop the server in the middle.
        until(&e.srv, "two batches", || {
            (live(&e.srv, &web).iter().filter(|c| gen(c) == 1).count() >= 2).then_some(())
        });
        assert_eq!(e.state(&web), "upgrading");
    }
    // A new server on the same file carries on.
    let e = Env::new(&db);
    until(&e.srv, "upgraded after restart", || {
        (e.state(&web) == "upgraded").then_some(())
    });
    assert_eq!(e.act(&web, "finishupgrade", json!({})).status, 200);
    until(&e.srv, "active", || {
        (e.state(&web) == "active" && live(&e.srv, &web).len() == 4).then_some(())
    });
    // Nothing was created twice: one container per (index, generation).
    let mut made: Vec<(u64, u64)> = all(&e.srv)
        .iter()
        .filter(|c| c.str("serviceId") == Some(&web))
        .map(|c| (c.data["serviceIndex"].as_u64().unwrap(), gen(c)))
        .collect();
    made.sort_unstable();
    let n = made.len();
    made.dedup();
    assert_eq!(n, made.len(), "duplicates: {made:?}");
    assert_eq!(n, 8, "4 old + 4 new: {made:?}");
}

#[test]
fn server_restart_mid_to_service_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let dc = "version: '2'\nservices:\n  a:\n    image: busybox:1\n  b:\n    image: busybox:2\n";
    let rc = "version: '2'\nservices:\n  a:\n    scale: 3\n  b:\n    scale: 0\n";
    let (a, b);
    {
        let e = Env::new(&db);
        hosts(&e, 2);
        let ids = e.stack("app", dc, rc);
        (a, b) = (ids["a"].clone(), ids["b"].clone());
        e.up(&a);
        e.act(
            &a,
            "upgrade",
            json!({"toServiceStrategy": {"toServiceId": b, "batchSize": 1, "intervalMillis": 0}}),
        );
        until(&e.srv, "half way", || {
            (e.svc(&b)["scale"].as_u64() >= Some(2)).then_some(())
        });
    }
    let e = Env::new(&db);
    until(&e.srv, "upgraded", || {
        (e.state(&a) == "upgraded").then_some(())
    });
    assert_eq!(e.svc(&b)["scale"], 3, "finalScale defaults to A's scale");
    let made: Vec<u64> = all(&e.srv)
        .iter()
        .filter(|c| c.str("serviceId") == Some(&b))
        .map(|c| c.data["serviceIndex"].as_u64().unwrap())
        .collect();
    assert_eq!(made.len(), 3, "B's containers made once each: {made:?}");
}

#[test]
fn to_service_cancel_continue_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let e = Env::new(&dir.path().join("db"));
    hosts(&e, 2);
    let dc = "version: '2'\nservices:\n  a:\n    image: busybox:1\n  b:\n    image: busybox:2\n";
    let rc = "version: '2'\nservices:\n  a:\n    scale: 3\n  b:\n    scale: 0\n";
    let ids = e.stack("app", dc, rc);
    let (a, b) = (&ids["a"], &ids["b"]);
    e.up(a);
    let scales = |e: &Env| {
        (
            e.svc(a)["scale"].as_u64().unwrap(),
            e.svc(b)["scale"].as_u64().unwrap(),
        )
    };
    e.act(
        a,
        "upgrade",
        json!({"toServiceStrategy": {"toServiceId": b, "batchSize": 1, "intervalMillis": 400}}),
    );
    until(&e.srv, "first step", || (scales(&e).1 >= 1).then_some(()));
    let c = e.act(a, "cancelupgrade", json!({}));
    assert_eq!(c.body["state"], "canceling-upgrade", "{:?}", c.body);
    until(&e.srv, "canceled", || {
        (e.state(a) == "canceled-upgrade").then_some(())
    });
    let held = scales(&e);
    for _ in 0..10 {
        converge(&e.srv, "healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(scales(&e), held, "no step while canceled");
    assert!(held.0 + held.1 >= 3, "{held:?}");
    assert_eq!(
        e.act(a, "continueupgrade", json!({})).body["state"],
        "upgrading"
    );
    until(&e.srv, "upgraded", || {
        (e.state(a) == "upgraded").then_some(())
    });
    assert_eq!(scales(&e), (0, 3));
    // Rollback: both scales as they were before the upgrade.
    assert_eq!(
        e.act(a, "rollback", json!({})).body["state"],
        "rolling-back"
    );
    until(&e.srv, "rolled back", || {
        (e.state(a) == "active"
            && live(&e.srv, a)
                .iter()
                .filter(|c| c.state == "running")
                .count()
                == 3
            && live(&e.srv, b).is_empty())
        .then_some(())
    });
    assert_eq!(scales(&e), (3, 0));
    assert!(e.svc(a)["actions"].get("continueupgrade").is_none());
}

#[test]
fn server_restart_mid_rolling_restart_restarts_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let web;
    let before: Vec<u64>;
    {
        let e = Env::new(&db);
        hosts(&e, 2);
        web = e.stack("app", WEB, &web_scale(3))["web"].clone();
        e.up(&web);
        before = live(&e.srv, &web).iter().map(|c| c.id).collect();
        e.act(
            &web,
            "restart",
            json!({"rollingRestartStrategy": {"batchSize": 1, "intervalMillis": 0}}),
        );
        // Stop the server once the first batch is through and the restart
        // is still going (the next batch may be stopping already: passes
        // follow the agents' reports at once).
        until(&e.srv, "first batch restarted, restart still going", || {
            let l = live(&e.srv, &web);
            (l.iter()
                .any(|c| c.data.get("startCount") == Some(&json!(2)))
                && e.state(&web) == "restarting")
                .then_some(())
        });
    }
    let e = Env::new(&db);
    until(&e.srv, "restart done", || {
        (e.state(&web) == "active").then_some(())
    });
    let after = live(&e.srv, &web);
    assert_eq!(after.iter().map(|c| c.id).collect::<Vec<_>>(), before);
    for c in &after {
        assert_eq!(c.data.get("startCount"), Some(&json!(2)), "{}", c.api_id());
    }
}
