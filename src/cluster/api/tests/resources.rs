//! CRUD, actions by state, filters/sort/pagination, agent sync, heartbeat
//! states, restart.

use serde_json::json;

use super::*;

#[test]
fn default_project_and_conventions() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let r = get(&format!("{}/v1/projects/1a5", s.url));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], "1a5");
    assert_eq!(r.body["type"], "project");
    assert_eq!(r.body["name"], "Default");
    assert!(r.body["links"]["self"]
        .as_str()
        .unwrap()
        .ends_with("/v1/projects/1a5"));
    assert_eq!(
        r.schemas.as_deref(),
        Some(&*format!("{}/v1/schemas", s.url))
    );
    // /v2-beta is an alias with its own links.
    let b = get(&format!("{}/v2-beta/projects/1a5", s.url));
    assert!(b.body["links"]["self"]
        .as_str()
        .unwrap()
        .contains("/v2-beta/"));
    let sc = get(&format!("{}/v1/schemas", s.url));
    assert!(sc.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == "host"));
    let hs = get(&format!("{}/v1/schemas/container", s.url));
    assert!(hs.body["resourceFields"]["state"]["options"]
        .as_array()
        .unwrap()
        .contains(&json!("stopping")));
    assert_eq!(get(&format!("{}/v1", s.url)).status, 200);
}

#[test]
fn project_crud_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = &s.url;
    let p = post(&format!("{u}/v1/projects"), json!({"name": "staging"}));
    assert_eq!(p.status, 201);
    let id = p.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("1a"));
    let dup = post(&format!("{u}/v1/projects"), json!({"name": "staging"}));
    assert_eq!((dup.status, dup.code()), (422, "NotUnique"));
    assert_eq!(dup.body["fieldName"], "name");
    let bad = post(&format!("{u}/v1/projects"), json!({"name": "no spaces"}));
    assert_eq!((bad.status, bad.code()), (422, "InvalidCharacters"));
    let miss = post(&format!("{u}/v1/projects"), json!({"description": "x"}));
    assert_eq!((miss.status, miss.code()), (422, "MissingRequired"));
    let upd = call(
        "PUT",
        &format!("{u}/v1/projects/{id}"),
        None,
        Some(br#"{"description":"for tests"}"#),
    );
    assert_eq!(upd.body["description"], "for tests");
    // Actions follow the state.
    assert!(upd.body["actions"]["deactivate"].is_string());
    assert!(upd.body["actions"].get("activate").is_none());
    let act = post(&format!("{u}/v1/projects/{id}?action=activate"), json!({}));
    assert_eq!((act.status, act.code()), (405, "ActionNotAvailable"));
    let unk = post(&format!("{u}/v1/projects/{id}?action=fly"), json!({}));
    assert_eq!((unk.status, unk.code()), (422, "InvalidAction"));
    let de = post(
        &format!("{u}/v1/projects/{id}?action=deactivate"),
        json!({}),
    );
    assert_eq!(de.body["state"], "inactive");
    assert!(de.body["actions"]["activate"].is_string());
    let rm = call("DELETE", &format!("{u}/v1/projects/{id}"), None, None);
    assert_eq!(rm.body["state"], "removed");
    assert!(rm.body["removed"].is_string());
    let again = call("DELETE", &format!("{u}/v1/projects/{id}"), None, None);
    assert_eq!((again.status, again.code()), (422, "InvalidState"));
    // A removed project's name is free again.
    assert_eq!(
        post(&format!("{u}/v1/projects"), json!({"name": "staging"})).status,
        201
    );
    let d = call("DELETE", &format!("{u}/v1/projects/1a5"), None, None);
    assert_eq!(d.code(), "InvalidState");
    assert_eq!(get(&format!("{u}/v1/projects/1a999")).code(), "NotFound");
    assert_eq!(get(&format!("{u}/v1/projects/1h5")).code(), "NotFound");
    assert_eq!(get(&format!("{u}/v1/nothing")).code(), "NotFound");
    let acc = post(&format!("{u}/v1/accounts"), json!({"name": "ops"}));
    assert_eq!(acc.status, 201);
    assert_eq!(
        get(&format!("{u}/v1/accounts")).body["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn filters_sort_pagination() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = &s.url;
    for i in 0..12 {
        post(
            &format!("{u}/v1/projects"),
            json!({"name": format!("env-{i:02}")}),
        );
    }
    let page = get(&format!("{u}/v1/projects?name_like=env-%25&limit=5"));
    assert_eq!(page.body["data"].as_array().unwrap().len(), 5);
    assert_eq!(page.body["pagination"]["total"], 12);
    let next = page.body["pagination"]["next"]
        .as_str()
        .unwrap()
        .to_string();
    let p2 = get(&next);
    assert_eq!(p2.body["data"][0]["name"], "env-05");
    let desc = get(&format!("{u}/v1/projects?sort=name&order=desc&limit=2"));
    assert_eq!(desc.body["data"][0]["name"], "env-11");
    let ne = get(&format!(
        "{u}/v1/projects?name_ne=Default&name_prefix=env-0"
    ));
    assert_eq!(ne.body["data"].as_array().unwrap().len(), 10);
    let eq = get(&format!("{u}/v1/projects?name=Default"));
    assert_eq!(eq.body["data"][0]["id"], "1a5");
    assert_eq!(eq.body["filters"]["name"][0]["modifier"], "eq");
    let nul = get(&format!("{u}/v1/projects?removed_null=true&limit=100"));
    assert_eq!(nul.body["data"].as_array().unwrap().len(), 13);
    let cap = get(&format!("{u}/v1/projects?limit=10005"));
    assert_eq!(cap.body["pagination"]["limit"], 3000);
    assert_eq!(
        get(&format!("{u}/v1/projects?limit=x")).code(),
        "InvalidFormat"
    );
}

#[test]
fn tokens_keys_hosts_containers_and_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = &s.url;
    let key = post(
        &format!("{u}/v1/projects/1a5/apikeys"),
        json!({"name": "ci"}),
    );
    assert_eq!(key.status, 201);
    assert!(key.body["secretValue"].as_str().unwrap().len() >= 32);
    let kid = key.body["id"].as_str().unwrap();
    let again = get(&format!("{u}/v1/projects/1a5/apikeys/{kid}"));
    assert!(again.body["secretValue"].is_null(), "secret shown once");
    assert!(again.body.get("_secretHash").is_none());

    let (host, ak, sk) = register(u, "1a5", &"k".repeat(32), "node1");
    let h = get(&format!("{u}/v1/projects/1a5/hosts/{host}"));
    assert_eq!(h.body["state"], "active");
    assert_eq!(h.body["agentState"], "active");
    assert_eq!(h.body["hostname"], "node1");
    assert_eq!(h.body["labels"]["zone"], "a");
    assert_eq!(h.body["milliCpu"], 2000);
    assert!(h.body.get("_key").is_none());
    assert_eq!(
        post(&format!("{u}/v1/projects/1a5/hosts"), json!({})).code(),
        "MethodNotAllowed"
    );
    // Same agent key again: the same host, not a duplicate.
    let (host2, _, _) = register(u, "1a5", &"k".repeat(32), "node1");
    assert_eq!(host, host2);
    let hosts = get(&format!("{u}/v1/projects/1a5/hosts"));
    assert_eq!(hosts.body["data"].as_array().unwrap().len(), 1);
    // The old agent credentials were replaced.
    let stale = call(
        "POST",
        &format!("{u}/v1/agent/sync"),
        Some((&ak, &sk)),
        Some(b"{}"),
    );
    assert_eq!(stale.status, 401);
    let (_, ak, sk) = register(u, "1a5", &"k".repeat(32), "node1");

    // A container on that host: desired state reaches the agent's sync.
    let c = post(
        &format!("{u}/v1/projects/1a5/containers"),
        json!({"name": "web", "imageUuid": "docker:busybox", "requestedHostId": host}),
    );
    assert_eq!(c.status, 201, "{:?}", c.body);
    assert_eq!(c.body["state"], "requested");
    assert_eq!(c.body["dockerName"], "r-web");
    let cid = c.body["id"].as_str().unwrap().to_string();
    let dup = post(
        &format!("{u}/v1/projects/1a5/containers"),
        json!({"name": "web", "imageUuid": "docker:busybox"}),
    );
    assert_eq!(dup.code(), "NotUnique");
    let nohost = post(
        &format!("{u}/v1/projects/1a5/containers"),
        json!({"imageUuid": "docker:busybox", "requestedHostId": "1h999"}),
    );
    assert_eq!(nohost.code(), "InvalidReference");
    let sync = |body: Value| {
        call(
            "POST",
            &format!("{u}/v1/agent/sync"),
            Some((&ak, &sk)),
            Some(body.to_string().as_bytes()),
        )
    };
    let r = sync(json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let inst = &r.body["instances"][0];
    assert_eq!(inst["id"], cid.as_str());
    assert_eq!(inst["desiredState"], "running");
    assert_eq!(inst["labels"]["io.ros.instance.id"], cid.as_str());
    for st in ["creating", "starting", "running"] {
        sync(json!({"reports": [{"instanceId": cid, "state": st, "externalId": "abc"}]}));
        assert_eq!(
            get(&format!("{u}/v1/projects/1a5/containers/{cid}")).body["state"],
            st
        );
    }
    // A usage sample never changes the state.
    sync(json!({"reports": [{"instanceId": cid, "state": "", "cpuPercent": 1.5, "memoryMb": 3}]}));
    let running = get(&format!("{u}/v1/projects/1a5/containers/{cid}"));
    assert_eq!(running.body["memoryMb"], 3);
    let mut acts: Vec<&str> = running.body["actions"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    acts.sort();
    assert_eq!(acts, ["remove", "restart", "stop"]);
    assert_eq!(running.body["externalId"], "abc");
    let by_host = get(&format!(
        "{u}/v1/projects/1a5/containers?hostId={host}&state=running"
    ));
    assert_eq!(by_host.body["data"].as_array().unwrap().len(), 1);
    let stop = post(
        &format!("{u}/v1/projects/1a5/containers/{cid}?action=stop"),
        json!({}),
    );
    assert_eq!(stop.body["state"], "stopping");
    assert_eq!(stop.body["desiredState"], "stopped");
    assert_eq!(stop.body["transitioning"], "yes");
    // Out-of-band stop of a running container flips desired to stopped.
    sync(json!({"reports": [{"instanceId": cid, "state": "stopped"}]}));
    let st = get(&format!("{u}/v1/projects/1a5/containers/{cid}"));
    assert_eq!(
        (st.body["state"].as_str(), st.body["desiredState"].as_str()),
        (Some("stopped"), Some("stopped"))
    );
    let rm = call(
        "DELETE",
        &format!("{u}/v1/projects/1a5/containers/{cid}"),
        None,
        None,
    );
    assert_eq!(rm.body["state"], "removing");
    sync(json!({"reports": [{"instanceId": cid, "state": "removed"}]}));
    assert_eq!(
        get(&format!("{u}/v1/projects/1a5/containers/{cid}")).body["state"],
        "removed"
    );

    // Heartbeats stop: reconnecting, then disconnected; a sync revives it.
    let agent_state =
        || get(&format!("{u}/v1/projects/1a5/hosts/{host}")).body["agentState"].clone();
    std::thread::sleep(Duration::from_millis(400));
    crate::cluster::server::monitor_pass(&s.app).unwrap();
    assert_eq!(agent_state(), "reconnecting");
    std::thread::sleep(Duration::from_millis(300));
    crate::cluster::server::monitor_pass(&s.app).unwrap();
    assert_eq!(agent_state(), "disconnected");
    sync(json!({}));
    assert_eq!(agent_state(), "active");

    // Host removal needs deactivation first.
    let rm = call(
        "DELETE",
        &format!("{u}/v1/projects/1a5/hosts/{host}"),
        None,
        None,
    );
    assert_eq!(rm.code(), "InvalidState");
    post(
        &format!("{u}/v1/projects/1a5/hosts/{host}?action=deactivate"),
        json!({}),
    );
    let rm = call(
        "DELETE",
        &format!("{u}/v1/projects/1a5/hosts/{host}"),
        None,
        None,
    );
    assert_eq!(rm.body["state"], "removed");
    assert_eq!(sync(json!({})).status, 401);
}

#[test]
fn restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (pid, host) = {
        let s = start(&db, fast());
        let p = post(&format!("{}/v1/projects", s.url), json!({"name": "keep"}));
        let (host, _, _) = register(&s.url, "1a5", &"r".repeat(40), "n1");
        (p.body["id"].as_str().unwrap().to_string(), host)
    };
    let s = start(&db, fast());
    assert_eq!(
        get(&format!("{}/v1/projects/{pid}", s.url)).body["name"],
        "keep"
    );
    assert_eq!(
        get(&format!("{}/v1/projects/1a5/hosts/{host}", s.url)).status,
        200
    );
    assert_eq!(
        get(&format!("{}/v1/projects/1a5/registrationtokens", s.url)).body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Ids continue, never reused.
    let p2 = post(&format!("{}/v1/projects", s.url), json!({"name": "next"}));
    assert_ne!(p2.body["id"], pid.as_str());
}

#[test]
fn hosts_and_containers_stay_in_their_project() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = &s.url;
    let p2 = post(&format!("{u}/v1/projects"), json!({"name": "p2"}));
    let p2 = p2.body["id"].as_str().unwrap().to_string();
    let (h2, _, _) = register(u, &p2, &"q".repeat(32), "other");
    let (h1, _, _) = register(u, "1a5", &"w".repeat(32), "mine");
    let mine = get(&format!("{u}/v1/projects/1a5/hosts"));
    let ids: Vec<&str> = mine.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [h1.as_str()]);
    assert_eq!(get(&format!("{u}/v1/projects/1a5/hosts/{h2}")).status, 404);
    let cross = post(
        &format!("{u}/v1/projects/1a5/containers"),
        json!({"imageUuid": "docker:busybox", "requestedHostId": h2}),
    );
    assert_eq!(cross.code(), "InvalidReference");
    // Without a requested host, a container lands on an active host of its project.
    let auto = post(
        &format!("{u}/v1/projects/{p2}/containers"),
        json!({"imageUuid": "docker:busybox"}),
    );
    assert_eq!(auto.body["hostId"], h2.as_str());
    // Admin's top-level listing sees both.
    assert_eq!(
        get(&format!("{u}/v1/hosts")).body["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// A container created directly gets an address of its environment's
/// subnet, like a service's, and the agent is told to put it on the
/// managed network; `bridge` keeps it off; a full subnet is an error row
/// saying so (on no host), and a removed container's address is handed
/// out again.
#[test]
fn standalone_containers_get_managed_network_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    let p = post(
        &format!("{u}/v1/projects"),
        json!({"name": "small", "subnet": "10.50.0.0/28"}),
    );
    assert_eq!(p.status, 201, "{:?}", p.body);
    let pid = p.body["id"].as_str().unwrap().to_string();
    let (host, ak, sk) = register(u, &pid, &"s".repeat(32), "node1");
    let make = |name: &str, extra: Value| {
        let mut body =
            json!({"name": name, "imageUuid": "docker:busybox", "requestedHostId": host});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        post(&format!("{u}/v1/projects/{pid}/containers"), body)
    };
    let bridged = make("b", json!({"networkMode": "bridge"}));
    assert_eq!(bridged.status, 201, "{:?}", bridged.body);
    assert!(
        bridged.body["primaryIpAddress"].is_null(),
        "{:?}",
        bridged.body
    );
    // .2 to .14: 13 addresses.
    let mut ips = std::collections::BTreeSet::new();
    let mut first = String::new();
    for i in 0..13 {
        let c = make(&format!("c{i}"), json!({}));
        assert_eq!(c.status, 201, "{:?}", c.body);
        assert_eq!(c.body["networkMode"], "managed");
        let ip = c.body["primaryIpAddress"].as_str().unwrap().to_string();
        assert!(ip.starts_with("10.50.0."), "{ip}");
        if i == 0 {
            first = c.body["id"].as_str().unwrap().to_string();
        }
        ips.insert(ip);
    }
    assert_eq!(ips.len(), 13, "distinct: {ips:?}");
    let full = make("over", json!({}));
    assert_eq!(full.status, 201, "{:?}", full.body);
    assert_eq!(full.body["state"], "error");
    assert!(full.body["primaryIpAddress"].is_null());
    assert!(full.body["hostId"].is_null());
    let why = full.body["transitioningMessage"].as_str().unwrap();
    assert!(
        why.contains("no free address") && why.contains("10.50.0.0/28"),
        "{why}"
    );
    // The agent gets the addressed ones on the managed network, not the
    // error row.
    let r = call(
        "POST",
        &format!("{u}/v1/agent/sync"),
        Some((&ak, &sk)),
        Some(b"{}"),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let inst = r.body["instances"].as_array().unwrap();
    assert_eq!(inst.len(), 14, "13 managed + 1 bridged");
    for i in inst {
        match i["dockerName"].as_str() {
            Some("r-b") => {
                assert!(i["primaryIpAddress"].is_null());
                assert_eq!(i["networkMode"], "bridge");
            }
            _ => {
                assert!(ips.contains(i["primaryIpAddress"].as_str().unwrap()), "{i}");
                assert_eq!(i["network"]["subnet"], "10.50.0.0/28", "{i}");
            }
        }
    }
    // A removed container frees its address.
    let first_ip =
        get(&format!("{u}/v1/projects/{pid}/containers/{first}")).body["primaryIpAddress"].clone();
    let rm = post(
        &format!("{u}/v1/projects/{pid}/containers/{first}?action=remove"),
        json!({}),
    );
    assert_eq!(rm.status, 200, "{:?}", rm.body);
    let sync = |body: Value| {
        call(
            "POST",
            &format!("{u}/v1/agent/sync"),
            Some((&ak, &sk)),
            Some(body.to_string().as_bytes()),
        )
    };
    sync(json!({"reports": [{"instanceId": first, "state": "removed"}]}));
    let again = make("again", json!({}));
    assert_eq!(again.body["primaryIpAddress"], first_ip, "{:?}", again.body);
}
