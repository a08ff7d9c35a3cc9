//! Stacks and services: creation from compose text, error codes, actions
//! by state, and the reconciler keeping a service at its scale (containers
//! named `<stack>-<service>-<n>`, highest index removed first, nothing
//! created twice across passes, scheduler reasons on the service).

use serde_json::json;

use super::*;
use crate::cluster::model::Kind;
use crate::cluster::server::driver;
use crate::cluster::store::Scope;

fn slow_monitor() -> ServerConfig {
    ServerConfig {
        max_wait: Duration::from_millis(200),
        ..ServerConfig::default()
    }
}

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

/// Live container names of the project, sorted.
fn names(s: &Srv) -> Vec<String> {
    let mut v: Vec<String> = s
        .app
        .store
        .list(Kind::Container, Scope::All)
        .unwrap()
        .into_iter()
        .filter(|c| !c.is_removed() && c.str("desiredState") != Some("removed"))
        .map(|c| c.str("name").unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

/// Play the agents: every container reaches its desired state.
fn converge(s: &Srv) {
    let _g = s.app.write.blocking_lock();
    let mut rows = Vec::new();
    for mut c in s.app.store.list(Kind::Container, Scope::All).unwrap() {
        let want = match c.str("desiredState") {
            Some("stopped") => "stopped",
            Some("removed") => "removed",
            _ => "running",
        };
        if c.state != want {
            c.state = want.into();
            rows.push(c);
        }
    }
    s.app.store.commit(&rows).unwrap();
}

/// Compose text posted to the API (the UI's deploy, `ros compose up`) is
/// substituted from the stack's `environment` on the server: `$$` is a
/// literal `$` that reaches the container's shell once, `${TAG}` comes from
/// the environment, `${stack_name}` stays for the scheduler; the text is
/// stored as written. A malformed `${…}` is a 422 naming the file and line.
#[test]
fn stack_compose_variables_are_substituted_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), slow_monitor());
    let base = format!("{}/v2-beta/projects/1a5", s.url);
    let dc = "version: '2'\nservices:\n  web:\n    image: busybox:${TAG}\n    command: [sh, -c, 'echo $$HOSTNAME ${MISSING:-d}']\n    labels:\n      x: ${stack_name}\n";
    let st = post(
        &format!("{base}/stacks"),
        json!({"name": "vars", "dockerCompose": dc, "environment": {"TAG": "1.36"}}),
    );
    assert_eq!(st.status, 201, "{:?}", st.body);
    assert_eq!(st.body["dockerCompose"], dc);
    let sid = st.body["id"].as_str().unwrap().to_string();
    let web = get(&format!("{base}/services?stackId={sid}")).body["data"][0].clone();
    assert_eq!(web["launchConfig"]["imageUuid"], "docker:busybox:1.36");
    assert_eq!(
        web["launchConfig"]["command"],
        json!(["sh", "-c", "echo $HOSTNAME d"])
    );
    let bad = post(
        &format!("{base}/stacks"),
        json!({"name": "bad", "dockerCompose": "version: '2'\nservices:\n  web:\n    image: ${TAG\n"}),
    );
    assert_eq!(
        (bad.status, bad.code()),
        (422, "InvalidFormat"),
        "{:?}",
        bad.body
    );
    let msg = bad.body["message"].as_str().unwrap();
    assert!(msg.contains("docker-compose.yml: line 4"), "{msg}");
    let env = post(
        &format!("{base}/stacks"),
        json!({"name": "env", "dockerCompose": dc, "environment": ["TAG=1"]}),
    );
    assert_eq!(
        (env.status, env.body["fieldName"].as_str()),
        (422, Some("environment")),
        "{:?}",
        env.body
    );
}

#[test]
fn stack_from_compose_services_and_codes() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), slow_monitor());
    let base = format!("{}/v2-beta/projects/1a5", s.url);
    let st = post(
        &format!("{base}/stacks"),
        json!({"name": "app", "dockerCompose": "version: '2'\nservices:\n  web:\n    image: busybox\n    command: [sleep, '60']\n",
               "rancherCompose": "version: '2'\nservices:\n  web:\n    scale: 2\n"}),
    );
    assert_eq!(st.status, 201, "{:?}", st.body);
    assert_eq!(st.body["type"], "stack");
    assert_eq!(st.body["state"], "active");
    let sid = st.body["id"].as_str().unwrap().to_string();
    assert!(sid.starts_with("1st"), "{sid}");
    let svcs = get(&format!("{base}/services?stackId={sid}"));
    let web = svcs.body["data"][0].clone();
    assert_eq!(web["name"], "web");
    assert_eq!(web["state"], "inactive");
    assert_eq!(web["scale"], 2);
    assert_eq!(web["launchConfig"]["imageUuid"], "docker:busybox");
    assert!(web["actions"].get("activate").is_some());
    assert!(web["actions"].get("upgrade").is_some());
    assert!(web["actions"].get("finishupgrade").is_none());
    let wid = web["id"].as_str().unwrap().to_string();

    // Error codes.
    let dup = post(&format!("{base}/stacks"), json!({"name": "app"}));
    assert_eq!((dup.status, dup.code()), (422, "NotUnique"));
    let bad = post(&format!("{base}/stacks"), json!({"name": "a b"}));
    assert_eq!((bad.status, bad.code()), (422, "InvalidCharacters"));
    let unknown = post(
        &format!("{base}/stacks"),
        json!({"name": "x", "dockerCompose": "version: '2'\nservices:\n  web:\n    image: busybox\n    bogus_key: 1\n"}),
    );
    assert_eq!(unknown.status, 422, "{:?}", unknown.body);
    assert!(
        unknown.body["message"]
            .as_str()
            .unwrap()
            .contains("bogus_key"),
        "{:?}",
        unknown.body
    );
    let no_stack = post(
        &format!("{base}/services"),
        json!({"name": "w", "stackId": "1st999", "launchConfig": {"imageUuid": "docker:busybox"}}),
    );
    assert_eq!(
        (no_stack.status, no_stack.code()),
        (422, "InvalidReference")
    );
    let svc_dup = post(
        &format!("{base}/services"),
        json!({"name": "web", "stackId": sid, "launchConfig": {"imageUuid": "docker:busybox"}}),
    );
    assert_eq!((svc_dup.status, svc_dup.code()), (422, "NotUnique"));
    let fin = post(
        &format!("{base}/services/{wid}?action=finishupgrade"),
        json!({}),
    );
    assert_eq!((fin.status, fin.code()), (405, "ActionNotAvailable"));
    let fly = post(&format!("{base}/services/{wid}?action=fly"), json!({}));
    assert_eq!((fly.status, fly.code()), (422, "InvalidAction"));

    // Activate with no hosts: the scheduler's reason, never a silent wait.
    let act = post(&format!("{base}/services/{wid}?action=activate"), json!({}));
    assert_eq!(act.body["state"], "activating");
    let msg = wait("no-host reason", || {
        let w = get(&format!("{base}/services/{wid}")).body;
        (w["transitioning"] == "error").then(|| w["transitioningMessage"].clone())
    });
    assert!(msg.as_str().unwrap().contains("no active hosts"), "{msg}");

    // Two hosts: two containers, named by index, spread.
    register(&s.url, "1a5", "servicetestkey00001", "n1");
    register(&s.url, "1a5", "servicetestkey00002", "n2");
    // The error rows of the host-less wait give way to placed containers.
    let live = |s: &Srv| -> Vec<crate::cluster::model::Resource> {
        s.app
            .store
            .list(Kind::Container, Scope::All)
            .unwrap()
            .into_iter()
            .filter(|c| !c.is_removed())
            .collect()
    };
    wait("2 containers", || {
        (names(&s) == ["app-web-1", "app-web-2"] && live(&s).iter().all(|c| c.host != 0))
            .then_some(())
    });
    let hosts: std::collections::BTreeSet<u64> = live(&s).iter().map(|c| c.host).collect();
    assert_eq!(hosts.len(), 2, "spread over both hosts");
    converge(&s);
    wait("active", || {
        (get(&format!("{base}/services/{wid}")).body["state"] == "active").then_some(())
    });
    // Passes repeat nothing: level-triggered, no duplicate.
    for _ in 0..3 {
        driver::pass(&s.app).unwrap();
    }
    assert_eq!(names(&s), ["app-web-1", "app-web-2"]);

    // Scale to 4, then 1: the highest indexes go.
    let put = call(
        "PUT",
        &format!("{base}/services/{wid}"),
        None,
        Some(br#"{"scale": 4}"#),
    );
    assert_eq!(put.status, 200, "{:?}", put.body);
    wait("4", || (names(&s).len() == 4).then_some(()));
    converge(&s);
    call(
        "PUT",
        &format!("{base}/services/{wid}"),
        None,
        Some(br#"{"scale": 1}"#),
    );
    wait("1", || (names(&s) == ["app-web-1"]).then_some(()));

    // Remove the stack: services and containers go.
    converge(&s);
    let rm = post(&format!("{base}/stacks/{sid}?action=remove"), json!({}));
    assert_eq!(rm.body["state"], "removing");
    wait("containers gone", || names(&s).is_empty().then_some(()));
    converge(&s);
    wait("stack removed", || {
        (get(&format!("{base}/stacks/{sid}")).body["state"] == "removed").then_some(())
    });
}

/// A container that fits nowhere is an `error` row saying why — one per
/// index, kept (not re-created) across passes — and goes when it fits or
/// is no longer wanted.
#[test]
fn unplaceable_container_is_an_error_row_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), slow_monitor());
    let base = format!("{}/v1/projects/1a5", s.url);
    register(&s.url, "1a5", "servicetestkey00011", "n1");
    let st = post(&format!("{base}/stacks"), json!({"name": "p"}));
    let sid = st.body["id"].as_str().unwrap().to_string();
    let svc = post(
        &format!("{base}/services"),
        json!({"name": "web", "stackId": sid, "scale": 2, "startOnCreate": true,
               "launchConfig": {"imageUuid": "docker:busybox", "ports": ["8081:80/tcp"]}}),
    );
    assert_eq!(svc.status, 201, "{:?}", svc.body);
    let wid = svc.body["id"].as_str().unwrap().to_string();
    let rows = |s: &Srv| -> Vec<crate::cluster::model::Resource> {
        s.app
            .store
            .list(Kind::Container, Scope::All)
            .unwrap()
            .into_iter()
            .filter(|c| !c.is_removed())
            .collect()
    };
    let err = wait("an error row for index 2", || {
        rows(&s).into_iter().find(|c| c.state == "error")
    });
    assert_eq!(err.str("name"), Some("p-web-2"));
    let why = err.str("transitioningMessage").unwrap_or_default();
    assert!(why.contains("host needs ports 8081/tcp available"), "{why}");
    let api = get(&format!("{base}/containers/{}", err.api_id())).body;
    assert_eq!(api["state"], "error");
    assert_eq!(api["transitioningMessage"], why);
    // Passes keep the same row: nothing re-created.
    for _ in 0..3 {
        driver::pass(&s.app).unwrap();
    }
    let errs: Vec<_> = rows(&s)
        .into_iter()
        .filter(|c| c.state == "error")
        .collect();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].id, err.id);
    let w = get(&format!("{base}/services/{wid}")).body;
    assert_eq!(w["transitioning"], "error");
    // A second host: index 2 fits there, the error row goes.
    register(&s.url, "1a5", "servicetestkey00012", "n2");
    wait("2 placed", || {
        let r = rows(&s);
        (r.len() == 2 && r.iter().all(|c| c.state != "error" && c.host != 0)).then_some(())
    });
    // Scale 3 on two hosts: one error row; scale back to 2: it goes.
    call(
        "PUT",
        &format!("{base}/services/{wid}"),
        None,
        Some(br#"{"scale": 3}"#),
    );
    wait("error row for 3", || {
        rows(&s)
            .into_iter()
            .find(|c| c.state == "error" && c.str("name") == Some("p-web-3"))
    });
    call(
        "PUT",
        &format!("{base}/services/{wid}"),
        None,
        Some(br#"{"scale": 2}"#),
    );
    wait("error row gone", || {
        rows(&s).iter().all(|c| c.state != "error").then_some(())
    });
    // Removing the service removes everything, error rows included.
    call(
        "PUT",
        &format!("{base}/services/{wid}"),
        None,
        Some(br#"{"scale": 4}"#),
    );
    wait("error rows", || {
        (rows(&s).iter().filter(|c| c.state == "error").count() == 2).then_some(())
    });
    converge(&s);
    post(&format!("{base}/services/{wid}?action=remove"), json!({}));
    converge(&s);
    wait("service removed", || {
        (get(&format!("{base}/services/{wid}")).body["state"] == "removed").then_some(())
    });
}
