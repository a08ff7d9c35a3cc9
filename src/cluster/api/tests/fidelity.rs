//! Rancher 1.6 request shapes, answered as Rancher answers them (issue 11;
//! the list is `src/cluster/api/FIDELITY.md`): health checks, volumes and
//! metadata in the API's own shapes, name rules, `startCount`, `purged`,
//! launch config versions, percent-encoded pagination links, the `/v1`
//! names (`environment`), every advertised link served, and a schema for
//! every type with its actions. Table tests run in `/v1` and `/v2-beta`.

use serde_json::{json, Value};

use super::*;
use crate::cluster::model::Kind;
use crate::cluster::store::Scope;

const VERSIONS: [&str; 2] = ["v1", "v2-beta"];

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

/// A stack in `/{ver}` (`environments` in v1); returns its id.
fn stack(u: &str, ver: &str, name: &str) -> String {
    let coll = if ver == "v1" {
        "environments"
    } else {
        "stacks"
    };
    let st = post(
        &format!("{u}/{ver}/projects/1a5/{coll}"),
        json!({ "name": name }),
    );
    assert_eq!(st.status, 201, "{:?}", st.body);
    st.body["id"].as_str().unwrap().to_string()
}

/// A service body in the stack, in `/{ver}`'s field names.
fn service_body(ver: &str, stack: &str, name: &str, lc: Value) -> Value {
    let key = if ver == "v1" {
        "environmentId"
    } else {
        "stackId"
    };
    json!({"name": name, key: stack, "launchConfig": lc})
}

#[test]
fn launch_config_shapes_as_rancher_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    for ver in VERSIONS {
        let base = format!("{u}/{ver}/projects/1a5");
        let sid = stack(u, ver, &format!("shapes-{}", ver.replace('.', "")));
        // (name, healthCheck as sent, strategy / quorum / requestLine shown)
        let rows: &[(&str, Value, &str, Value, Value)] = &[
            (
                "nostrategy",
                json!({"port": 80, "requestLine": "GET / HTTP/1.0", "interval": 2000,
                       "responseTimeout": 2000, "healthyThreshold": 2, "unhealthyThreshold": 3}),
                "recreate",
                Value::Null,
                json!("GET / HTTP/1.0"),
            ),
            (
                "quorum",
                json!({"port": 80, "strategy": "recreateOnQuorum",
                       "recreateOnQuorumStrategyConfig": {"quorum": 1}}),
                "recreateOnQuorum",
                json!({"quorum": 1}),
                Value::Null,
            ),
            (
                "tcp",
                json!({"port": 80, "requestLine": "", "strategy": "none"}),
                "none",
                Value::Null,
                Value::Null,
            ),
        ];
        for (name, hc, strategy, quorum, line) in rows {
            let lc = json!({"imageUuid": "docker:busybox", "healthCheck": hc,
                            "dataVolumes": ["/src:/dst:ro", "/data", "name:/path"]});
            let r = post(
                &format!("{base}/services"),
                service_body(ver, &sid, name, lc),
            );
            assert_eq!(r.status, 201, "{ver} {name}: {:?}", r.body);
            let got = &r.body["launchConfig"];
            assert_eq!(got["healthCheck"]["strategy"], *strategy, "{ver} {name}");
            assert_eq!(
                got["healthCheck"]["recreateOnQuorumStrategyConfig"], *quorum,
                "{ver} {name}"
            );
            assert_eq!(got["healthCheck"]["requestLine"], *line, "{ver} {name}");
            assert_eq!(got["healthCheck"]["healthyThreshold"], 2, "{ver} {name}");
            assert_eq!(
                got["dataVolumes"],
                json!(["/src:/dst:ro", "/data", "name:/path"]),
                "{ver} {name}"
            );
            assert_eq!(got["version"], "0", "{ver} {name}");
            // What a client reads back it can send again (read-modify-write).
            let again = post(
                &format!("{base}/services"),
                service_body(ver, &sid, &format!("{name}2"), got.clone()),
            );
            assert_eq!(again.status, 201, "{ver} {name}: {:?}", again.body);
            assert_eq!(
                again.body["launchConfig"]["healthCheck"], got["healthCheck"],
                "{ver} {name}"
            );
        }
        // Bad shapes are refused by name.
        let bad: &[(Value, &str, &str)] = &[
            (
                json!({"imageUuid": "docker:busybox", "healthCheck": {"requestLine": ""}}),
                "InvalidFormat",
                "healthCheck.port",
            ),
            (
                json!({"imageUuid": "docker:busybox", "healthCheck": {"port": 80, "strategy": "sometimes"}}),
                "InvalidFormat",
                "healthCheck.strategy",
            ),
            (
                json!({"imageUuid": "docker:busybox", "dataVolumes": ["data"]}),
                "InvalidFormat",
                "dataVolumes",
            ),
        ];
        for (i, (lc, code, says)) in bad.iter().enumerate() {
            let r = post(
                &format!("{base}/services"),
                service_body(ver, &sid, &format!("bad{i}"), lc.clone()),
            );
            assert_eq!(r.status, 422, "{ver} {lc}: {:?}", r.body);
            assert_eq!(r.code(), *code, "{ver} {lc}");
            assert_eq!(r.body["fieldName"], "launchConfig", "{ver} {lc}");
            let msg = r.body["message"].as_str().unwrap_or("");
            assert!(msg.contains(says), "{ver} {lc}: {msg}");
        }
    }
}

#[test]
fn tcp_check_written_with_an_empty_request_line_reaches_the_agent_as_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    let (_, ak, sk) = register(u, "1a5", &"t".repeat(32), "node1");
    let sid = stack(u, "v2-beta", "tcp");
    let r = post(
        &format!("{u}/v2-beta/projects/1a5/services"),
        json!({"name": "web", "stackId": sid, "startOnCreate": true,
               "launchConfig": {"imageUuid": "docker:busybox",
                                "healthCheck": {"port": 80, "requestLine": ""}}}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let inst = loop {
        let got = sync(u, (&ak, &sk), json!({"waitMs": 0})).body["instances"].clone();
        if let Some(i) = got.as_array().and_then(|a| a.first()).cloned() {
            break i;
        }
        assert!(std::time::Instant::now() < deadline, "no instance placed");
        std::thread::sleep(Duration::from_millis(100));
    };
    let hc = &inst["healthCheck"];
    assert_eq!(hc["port"], 80, "{inst}");
    assert!(hc["requestLine"].is_null(), "a TCP check: {inst}");
}

#[test]
fn metadata_on_create_from_the_api_and_from_rancher_compose() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    for ver in VERSIONS {
        let base = format!("{u}/{ver}/projects/1a5");
        let sid = stack(u, ver, &format!("meta-{}", ver.replace('.', "")));
        let mut body = service_body(ver, &sid, "web", json!({"imageUuid": "docker:busybox"}));
        body["metadata"] = json!({"tier": "web", "nested": {"n": 1}});
        let r = post(&format!("{base}/services"), body);
        assert_eq!(r.status, 201, "{:?}", r.body);
        assert_eq!(r.body["metadata"]["tier"], "web", "{ver}");
        let id = r.body["id"].as_str().unwrap();
        let again = get(&format!("{base}/services/{id}")).body;
        assert_eq!(again["metadata"]["nested"]["n"], 1, "{ver}");
    }
    let st = post(
        &format!("{u}/v2-beta/projects/1a5/stacks"),
        json!({"name": "metacompose",
               "dockerCompose": "version: '2'\nservices:\n  web:\n    image: busybox\n",
               "rancherCompose": "version: '2'\nservices:\n  web:\n    metadata:\n      tier: web\n      ports: [80, 443]\n"}),
    );
    assert_eq!(st.status, 201, "{:?}", st.body);
    let sid = st.body["id"].as_str().unwrap();
    let web = get(&format!(
        "{u}/v2-beta/projects/1a5/stacks/{sid}/services?name=web"
    ))
    .body["data"][0]
        .clone();
    assert_eq!(web["metadata"]["tier"], "web", "{web}");
    assert_eq!(web["metadata"]["ports"], json!([80, 443]), "{web}");
}

#[test]
fn stack_and_service_names_follow_rancher_rules() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    let long = "a".repeat(64);
    let ok63 = "b".repeat(63);
    let rows: &[(&str, Option<&str>)] = &[
        ("web", None),
        ("web-1", None),
        (&ok63, None),
        ("web-", Some("InvalidCharacters")),
        ("-web", Some("InvalidCharacters")),
        ("we--b", Some("InvalidCharacters")),
        ("we_b", Some("InvalidCharacters")),
        ("we.b", Some("InvalidCharacters")),
        (&long, Some("MaxLengthExceeded")),
    ];
    for ver in VERSIONS {
        let coll = if ver == "v1" {
            "environments"
        } else {
            "stacks"
        };
        let base = format!("{u}/{ver}/projects/1a5");
        let holder = stack(u, ver, &format!("names-{}", ver.replace('.', "")));
        for (name, want) in rows {
            let st = post(&format!("{base}/{coll}"), json!({ "name": name }));
            let svc = post(
                &format!("{base}/services"),
                service_body(ver, &holder, name, json!({"imageUuid": "docker:busybox"})),
            );
            for (what, r) in [("stack", &st), ("service", &svc)] {
                match want {
                    None => assert_eq!(r.status, 201, "{ver} {what} {name}: {:?}", r.body),
                    Some(code) => {
                        assert_eq!(r.status, 422, "{ver} {what} {name}: {:?}", r.body);
                        assert_eq!(r.code(), *code, "{ver} {what} {name}");
                        assert_eq!(r.body["fieldName"], "name", "{ver} {what} {name}");
                    }
                }
            }
            if want.is_none() {
                // Names are unique per project (stacks) / stack (services).
                let id = st.body["id"].as_str().unwrap();
                call("DELETE", &format!("{base}/{coll}/{id}"), None, None);
                let sid = svc.body["id"].as_str().unwrap();
                call("DELETE", &format!("{base}/services/{sid}"), None, None);
            }
        }
    }
}

#[test]
fn start_count_and_purge_follow_the_container() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    let (host, ak, sk) = register(u, "1a5", &"p".repeat(32), "node1");
    let c = post(
        &format!("{u}/v2-beta/projects/1a5/containers"),
        json!({"name": "one", "imageUuid": "docker:busybox", "requestedHostId": host}),
    );
    assert_eq!(c.status, 201, "{:?}", c.body);
    let cid = c.body["id"].as_str().unwrap().to_string();
    let url = format!("{u}/v2-beta/projects/1a5/containers/{cid}");
    assert!(get(&url).body["startCount"].is_null());
    sync(
        u,
        (&ak, &sk),
        json!({"reports": [{"instanceId": cid, "state": "running", "externalId": "x1"}]}),
    );
    assert_eq!(
        get(&url).body["startCount"],
        1,
        "Rancher counts the first start"
    );

    let rm = call("DELETE", &url, None, None);
    assert_eq!(rm.status, 200, "{:?}", rm.body);
    sync(
        u,
        (&ak, &sk),
        json!({"reports": [{"instanceId": cid, "state": "removed"}]}),
    );
    assert_eq!(get(&url).body["state"], "removed");
    // A heartbeat before the delay leaves it removed …
    sync(u, (&ak, &sk), json!({"waitMs": 1}));
    assert_eq!(get(&url).body["state"], "removed");
    // … one after the delay purges it.
    {
        let _g = s.app.write.blocking_lock();
        let n = crate::cluster::model::parse_id(Kind::Container, &cid).unwrap();
        let mut row = s.app.store.get(Kind::Container, n).unwrap().unwrap();
        let t = row.data[super::super::agent_api::PURGE_CLOCK]
            .as_i64()
            .unwrap();
        row.set(
            super::super::agent_api::PURGE_CLOCK,
            t - super::super::agent_api::PURGE_AFTER_MS,
        );
        s.app.store.commit(&[row]).unwrap();
    }
    sync(u, (&ak, &sk), json!({"waitMs": 1}));
    let got = get(&url).body;
    assert_eq!(got["state"], "purged", "{got}");
    assert!(got.get("_removedMs").is_none());
    let purged = s.app.store.list(Kind::Container, Scope::All).unwrap();
    assert!(purged.iter().all(|c| c.is_removed()));
    let listed = get(&format!("{u}/v2-beta/projects/1a5/containers?state=purged"));
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(1));
}

#[test]
fn launch_config_version_and_previous_across_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    for ver in VERSIONS {
        let base = format!("{u}/{ver}/projects/1a5");
        let sid = stack(u, ver, &format!("ver-{}", ver.replace('.', "")));
        let body = service_body(ver, &sid, "web", json!({"imageUuid": "docker:busybox:1"}));
        let r = post(&format!("{base}/services"), body);
        assert_eq!(r.status, 201, "{:?}", r.body);
        assert_eq!(r.body["launchConfig"]["version"], "0");
        let id = r.body["id"].as_str().unwrap().to_string();
        let svc = format!("{base}/services/{id}");
        let mut lc = get(&svc).body["launchConfig"].clone();
        lc["imageUuid"] = json!("docker:busybox:2");
        let up = post(
            &format!("{svc}?action=upgrade"),
            json!({"inServiceStrategy": {"launchConfig": lc}}),
        );
        assert_eq!(up.status, 200, "{:?}", up.body);
        let b = &up.body;
        let v = b["launchConfig"]["version"].as_str().unwrap_or("");
        assert_eq!(v.len(), 36, "a UUID: {v}");
        assert_eq!(b["previousLaunchConfig"]["version"], "0");
        assert_eq!(b["previousLaunchConfig"]["imageUuid"], "docker:busybox:1");
        let st = &b["upgrade"]["inServiceStrategy"];
        assert_eq!(st["previousLaunchConfig"]["version"], "0", "{b}");
        assert_eq!(st["launchConfig"]["version"], v, "{b}");
        assert_eq!(st["batchSize"], 1, "{b}");
        assert_eq!(st["intervalMillis"], 2000, "{b}");
        assert_eq!(st["startFirst"], false, "{b}");
    }
}

#[test]
fn pagination_links_are_percent_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    for i in 0..3 {
        stack(u, "v2-beta", &format!("web-{i}"));
    }
    for ver in VERSIONS {
        let coll = if ver == "v1" {
            "environments"
        } else {
            "stacks"
        };
        let r = get(&format!(
            "{u}/{ver}/projects/1a5/{coll}?name_like=web-%25&limit=1"
        ));
        assert_eq!(r.status, 200, "{:?}", r.body);
        let next = r.body["pagination"]["next"].as_str().unwrap().to_string();
        assert!(next.contains("name_like=web-%25"), "{next}");
        assert!(!next.contains("web-%&"), "{next}");
        // Following it gives the second page.
        let n = get(&next);
        assert_eq!(n.body["data"][0]["name"], "web-1", "{:?}", n.body);
    }
}

#[test]
fn v1_names_a_stack_an_environment() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    let sid = stack(u, "v1", "app");
    let v1 = get(&format!("{u}/v1/projects/1a5/environments/{sid}")).body;
    assert_eq!(v1["type"], "environment", "{v1}");
    assert!(v1["links"]["self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v1/projects/1a5/environments/{sid}")));
    let v2 = get(&format!("{u}/v2-beta/projects/1a5/stacks/{sid}")).body;
    assert_eq!(v2["type"], "stack", "{v2}");
    let svc = post(
        &format!("{u}/v1/projects/1a5/services"),
        json!({"name": "web", "environmentId": sid, "launchConfig": {"imageUuid": "docker:busybox"}}),
    );
    assert_eq!(svc.status, 201, "{:?}", svc.body);
    assert_eq!(svc.body["environmentId"], sid);
    assert_eq!(svc.body["stackId"], sid);
    let listed = get(&format!("{u}/v1/projects/1a5/environments/{sid}/services"));
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.body["data"][0]["name"], "web");
    let by_env = get(&format!("{u}/v1/projects/1a5/services?environmentId={sid}"));
    assert_eq!(by_env.body["data"].as_array().map(Vec::len), Some(1));
    let coll = get(&format!("{u}/v1/projects/1a5/environments")).body;
    assert_eq!(coll["resourceType"], "environment");
    assert!(coll["createTypes"]["environment"].is_string(), "{coll}");
    // The v1 id spelling `1e<n>` names the same stack.
    let n = sid.trim_start_matches("1st");
    let e = get(&format!("{u}/v1/projects/1a5/environments/1e{n}"));
    assert_eq!(e.status, 200, "{:?}", e.body);
    assert_eq!(e.body["id"], sid);
}

#[test]
fn every_advertised_link_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    let (host, ak, sk) = register(u, "1a5", &"l".repeat(32), "node1");
    let st = post(
        &format!("{u}/v2-beta/projects/1a5/stacks"),
        json!({"name": "app", "startOnCreate": true,
               "dockerCompose": "version: '2'\nservices:\n  web:\n    image: busybox\n  lb:\n    image: rancher/lb-service-haproxy\n    ports: ['8080:8080']\n",
               "rancherCompose": "version: '2'\nservices:\n  lb:\n    lb_config:\n      port_rules:\n      - source_port: 8080\n        target_port: 80\n        service: web\n"}),
    );
    assert_eq!(st.status, 201, "{:?}", st.body);
    let sid = st.body["id"].as_str().unwrap().to_string();
    let svcs = get(&format!("{u}/v2-beta/projects/1a5/services")).body;
    for svc in svcs["data"].as_array().unwrap() {
        post(
            &format!(
                "{u}/v2-beta/projects/1a5/services/{}?action=activate",
                svc["id"].as_str().unwrap()
            ),
            json!({}),
        );
    }
    post(
        &format!("{u}/v2-beta/projects/1a5/containers"),
        json!({"name": "solo", "imageUuid": "docker:busybox", "requestedHostId": host}),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sync(u, (&ak, &sk), json!({"waitMs": 0})).body["instances"]
        .as_array()
        .map_or(0, Vec::len)
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no service containers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    post(
        &format!("{u}/v2-beta/projects/1a5/registrationtokens"),
        json!({}),
    );
    post(&format!("{u}/v2-beta/projects/1a5/apikeys"), json!({}));
    for ver in VERSIONS {
        let stacks = if ver == "v1" {
            "environments"
        } else {
            "stacks"
        };
        let colls = [
            "projects".to_string(),
            format!("projects/1a5/{stacks}"),
            "projects/1a5/services".into(),
            "projects/1a5/loadbalancerservices".into(),
            "projects/1a5/containers".into(),
            "projects/1a5/instances".into(),
            "projects/1a5/hosts".into(),
            "projects/1a5/registrationtokens".into(),
            "projects/1a5/apikeys".into(),
        ];
        let mut kinds = std::collections::BTreeSet::new();
        let mut walked = 0;
        for c in colls {
            let list = get(&format!("{u}/{ver}/{c}"));
            assert_eq!(list.status, 200, "{ver} {c}: {:?}", list.body);
            let data = list.body["data"].as_array().cloned().unwrap_or_default();
            assert!(!data.is_empty(), "{ver} {c} is empty");
            for r in data {
                kinds.insert(r["type"].as_str().unwrap_or("").to_string());
                for (name, link) in r["links"].as_object().unwrap() {
                    let link = link.as_str().unwrap();
                    assert!(link.contains(&format!("/{ver}/")), "{ver} {name}: {link}");
                    let got = get(link);
                    assert_eq!(
                        got.status, 200,
                        "{ver} {} {name} → {link}: {:?}",
                        r["type"], got.body
                    );
                    walked += 1;
                }
            }
        }
        let want_stack = if ver == "v1" { "environment" } else { "stack" };
        for k in [
            "project",
            want_stack,
            "service",
            "loadBalancerService",
            "container",
            "host",
            "registrationToken",
            "apiKey",
        ] {
            assert!(kinds.contains(k), "{ver}: no {k} walked ({kinds:?})");
        }
        assert!(walked > 30, "{ver}: {walked} links");
        // `include=` embeds a link's resources.
        let inc = get(&format!(
            "{u}/{ver}/projects/1a5/services?include=instances&name=web"
        ));
        let web = &inc.body["data"][0];
        assert_eq!(web["instances"].as_array().map(Vec::len), Some(1), "{web}");
        assert_eq!(web["instances"][0]["serviceId"], web["id"]);
        let inc = get(&format!("{u}/{ver}/projects/1a5/{stacks}?include=services"));
        assert_eq!(
            inc.body["data"][0]["services"].as_array().map(Vec::len),
            Some(2)
        );
        // The stack's services sub-collection holds its services.
        let sub = get(&format!("{u}/{ver}/projects/1a5/{stacks}/{sid}/services"));
        assert_eq!(sub.body["data"].as_array().map(Vec::len), Some(2));
    }
}

#[test]
fn schemas_cover_every_type_with_methods_actions_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    for ver in VERSIONS {
        for at in [format!("{u}/{ver}"), format!("{u}/{ver}/projects/1a5")] {
            let all = get(&format!("{at}/schemas"));
            assert_eq!(all.status, 200, "{:?}", all.body);
            let data = all.body["data"].as_array().unwrap().clone();
            let by_id = |id: &str| {
                data.iter()
                    .find(|s| s["id"] == id)
                    .cloned()
                    .unwrap_or_else(|| panic!("{at}: no schema {id}"))
            };
            let stack = if ver == "v1" { "environment" } else { "stack" };
            let resources = [
                ("project", &["activate", "deactivate", "remove"][..]),
                ("host", &["activate", "deactivate", "remove"][..]),
                ("container", &["start", "stop", "restart", "remove"][..]),
                ("instance", &["start", "stop", "restart", "remove"][..]),
                (
                    stack,
                    &["activateservices", "deactivateservices", "remove"][..],
                ),
                (
                    "service",
                    &[
                        "activate",
                        "deactivate",
                        "upgrade",
                        "finishupgrade",
                        "cancelupgrade",
                        "continueupgrade",
                        "rollback",
                        "restart",
                        "remove",
                    ][..],
                ),
                (
                    "loadBalancerService",
                    &["activate", "upgrade", "rollback", "restart"][..],
                ),
                ("dnsService", &["activate", "upgrade", "rollback"][..]),
                ("externalService", &["activate", "deactivate"][..]),
                ("registrationToken", &["activate", "deactivate"][..]),
                ("apiKey", &["activate", "deactivate"][..]),
            ];
            for (id, actions) in resources {
                let sc = by_id(id);
                for a in actions {
                    assert!(sc["resourceActions"].get(a).is_some(), "{at} {id}: no {a}");
                }
                for k in ["resourceFields", "collectionFilters", "resourceActions"] {
                    assert!(sc[k].is_object(), "{at} {id}: no {k}");
                }
                assert!(
                    sc["collectionMethods"]
                        .as_array()
                        .unwrap()
                        .contains(&json!("GET")),
                    "{at} {id}"
                );
                assert!(sc["resourceFields"]["state"].is_object(), "{at} {id}");
                assert!(sc["collectionFilters"]["name"]["modifiers"]
                    .as_array()
                    .is_some_and(|m| m.contains(&json!("like"))));
                let coll = sc["links"]["collection"].as_str().unwrap();
                let got = get(coll);
                assert_eq!(got.status, 200, "{at} {id} → {coll}: {:?}", got.body);
                let one = get(sc["links"]["self"].as_str().unwrap());
                assert_eq!(one.status, 200, "{at} {id}");
                assert_eq!(one.body["id"], id);
            }
            // Action inputs are types of their own.
            let svc = by_id("service");
            assert_eq!(svc["resourceActions"]["upgrade"]["input"], "serviceUpgrade");
            for t in [
                "serviceUpgrade",
                "inServiceUpgradeStrategy",
                "toServiceUpgradeStrategy",
                "instanceHealthCheck",
                "launchConfig",
                "serviceRestart",
            ] {
                by_id(t);
            }
            let name = &by_id("service")["resourceFields"]["name"];
            assert_eq!(name["maxLength"], 63);
            assert_eq!(svc["collectionMethods"], json!(["GET", "POST"]));
            let link_field = if ver == "v1" {
                "environmentId"
            } else {
                "stackId"
            };
            assert!(svc["resourceFields"][link_field].is_object(), "{at}");
            assert!(by_id(stack)["collectionMethods"]
                .as_array()
                .unwrap()
                .contains(&json!("POST")));
        }
        // Inside a project the schemas header keeps clients in it.
        let r = get(&format!("{u}/{ver}/projects/1a5/services"));
        assert_eq!(
            r.schemas.as_deref(),
            Some(&*format!("{u}/{ver}/projects/1a5/schemas"))
        );
    }
}

#[test]
fn upgrade_refusals_sort_links_and_state_enum_as_rancher() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.as_str();
    for ver in VERSIONS {
        let base = format!("{u}/{ver}/projects/1a5");
        let sid = stack(u, ver, &format!("refuse-{}", ver.replace('.', "")));
        let mut body = service_body(ver, &sid, "web", json!({"imageUuid": "docker:busybox"}));
        body["retainIp"] = json!(true);
        let r = post(&format!("{base}/services"), body);
        assert_eq!(r.status, 201, "{:?}", r.body);
        let svc = format!("{base}/services/{}", r.body["id"].as_str().unwrap());
        let rows: &[(Value, &str, &str)] = &[
            (json!({}), "MissingRequired", "inServiceStrategy"),
            (
                json!({"inServiceStrategy": {"batchSize": 2}}),
                "InvalidOption",
                "launchConfig",
            ),
            (
                json!({"inServiceStrategy": {"startFirst": true,
                                             "launchConfig": {"imageUuid": "docker:busybox:2"}}}),
                "InvalidOption",
                "startFirst",
            ),
        ];
        for (b, code, field) in rows {
            let r = post(&format!("{svc}?action=upgrade"), b.clone());
            assert_eq!(r.status, 422, "{ver} {b}: {:?}", r.body);
            assert_eq!(r.code(), *code, "{ver} {b}");
            assert_eq!(r.body["fieldName"], *field, "{ver} {b}");
        }
        assert_eq!(
            get(&svc).body["state"],
            "inactive",
            "{ver}: nothing started"
        );
        let coll = get(&format!("{base}/services?name_like=w%25")).body;
        let by_name = coll["sortLinks"]["name"].as_str().unwrap();
        assert!(
            by_name.contains("name_like=w%25") && by_name.ends_with("sort=name"),
            "{by_name}"
        );
        assert_eq!(get(by_name).status, 200);
    }
    let sc = get(&format!("{u}/v2-beta/schemas/container")).body;
    let states: Vec<&str> = sc["resourceFields"]["state"]["options"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut want = vec![
        "requested",
        "creating",
        "starting",
        "running",
        "updating-running",
        "restarting",
        "stopping",
        "stopped",
        "updating-stopped",
        "migrating",
        "erroring",
        "error",
        "removing",
        "removed",
        "purging",
        "purged",
    ];
    let mut got = states.clone();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "Rancher's exact container states");
}
