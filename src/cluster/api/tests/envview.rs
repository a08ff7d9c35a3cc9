//! The environment view on the agents' long-poll: a full copy first, then
//! only the entries that changed; a container turning unhealthy on one
//! host (or being removed) answers the other host's waiting long-poll
//! within a second, with that one entry.

use std::time::Instant;

use serde_json::{json, Value};

use super::*;

fn sync(u: &str, creds: (&str, &str), body: Value) -> Value {
    let r = call(
        "POST",
        &format!("{u}/v1/agent/sync"),
        Some(creds),
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

/// Long-poll as host B until `want` holds for a delta (at most 5 s);
/// the deltas seen, the time it took and B's new (generation, epoch,
/// revision).
fn poll_until(
    u: &str,
    b: (&str, &str),
    state: &mut (u64, u64, u64),
    want: impl Fn(&Value) -> bool,
) -> (Vec<Value>, Duration) {
    let t0 = Instant::now();
    let mut seen = Vec::new();
    while t0.elapsed() < Duration::from_secs(5) {
        let r = sync(
            u,
            b,
            json!({"generation": state.0, "waitMs": 5000,
                   "viewEpoch": state.1, "viewRevision": state.2}),
        );
        state.0 = r["generation"].as_u64().unwrap();
        if let Some(v) = r.get("view").filter(|v| !v.is_null()) {
            state.1 = v["epoch"].as_u64().unwrap();
            state.2 = v["revision"].as_u64().unwrap();
            let done = want(v);
            seen.push(v.clone());
            if done {
                return (seen, t0.elapsed());
            }
        }
    }
    panic!("timed out; deltas seen: {seen:?}");
}

fn container_health(v: &Value, id: &str) -> Option<String> {
    v["containers"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["healthState"].as_str().unwrap_or("").to_string())
}

#[test]
fn agents_get_changes_incrementally_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        &dir.path().join("db"),
        ServerConfig {
            max_wait: Duration::from_secs(5),
            reconnecting_after: Duration::from_secs(60),
            disconnected_after: Duration::from_secs(120),
            ..fast()
        },
    );
    let u = s.url.as_str();
    let (ha, aka, ska) = register(u, "1a5", &"a".repeat(32), "node-a");
    let (_hb, akb, skb) = register(u, "1a5", &"b".repeat(32), "node-b");
    let a = (aka.as_str(), ska.as_str());
    let b = (akb.as_str(), skb.as_str());
    let mut ids = Vec::new();
    for i in 0..20 {
        let c = post(
            &format!("{u}/v1/projects/1a5/containers"),
            json!({"name": format!("c{i}"), "imageUuid": "docker:busybox", "requestedHostId": ha}),
        );
        ids.push(c.body["id"].as_str().unwrap().to_string());
    }
    let reports: Vec<Value> = ids
        .iter()
        .map(|id| json!({"instanceId": id, "state": "running", "healthState": "healthy"}))
        .collect();
    sync(u, a, json!({"reports": reports}));

    // B starts from nothing: one full copy, answered at once.
    let mut st = (0, 0, 0);
    let (seen, _) = poll_until(u, b, &mut st, |v| v["full"] == true);
    let full = seen.last().unwrap();
    assert_eq!(full["containers"].as_array().unwrap().len(), 20, "{full}");
    assert_eq!(full["hosts"].as_array().unwrap().len(), 2, "{full}");
    assert_eq!(full["environment"]["name"], "Default");
    assert_eq!(container_health(full, &ids[3]).as_deref(), Some("healthy"));

    // Health flips on host A reach B's waiting long-poll within 1 s, as
    // that one entry.
    let mut lat = Vec::new();
    for round in 0..2 * ids.len() {
        let id = &ids[round % ids.len()];
        let h = if round < ids.len() {
            "unhealthy"
        } else {
            "healthy"
        };
        let (u2, id2, a2) = (u.to_string(), id.clone(), (aka.clone(), ska.clone()));
        let h2 = h.to_string();
        let reporter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let t = Instant::now();
            sync(
                &u2,
                (&a2.0, &a2.1),
                json!({"reports": [{"instanceId": id2, "state": "", "healthState": h2}]}),
            );
            t
        });
        let (seen, _) = poll_until(u, b, &mut st, |v| {
            container_health(v, id).as_deref() == Some(h)
        });
        let got = Instant::now();
        let sent = reporter.join().unwrap();
        lat.push(got.duration_since(sent));
        for d in &seen {
            assert_eq!(d["full"], false, "{d}");
            assert!(
                d["containers"].as_array().unwrap().len() <= 1,
                "only the changed entry: {d}"
            );
        }
    }
    lat.sort();
    let p99 = lat[lat.len() * 99 / 100 - usize::from(lat.len() * 99 % 100 == 0)];
    eprintln!(
        "view propagation over {} flips: median {:?}, p99 {:?}",
        lat.len(),
        lat[lat.len() / 2],
        p99
    );
    assert!(p99 < Duration::from_secs(1), "{lat:?}");

    // A removed container reaches B as a removal.
    let gone = ids[5].clone();
    let r = call(
        "DELETE",
        &format!("{u}/v1/projects/1a5/containers/{gone}"),
        None,
        None,
    );
    assert!(r.status < 300, "{:?}", r.body);
    sync(
        u,
        a,
        json!({"reports": [{"instanceId": gone, "state": "removed"}]}),
    );
    let (seen, took) = poll_until(u, b, &mut st, |v| {
        v["removed"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == gone.as_str()))
    });
    assert!(took < Duration::from_secs(1), "{took:?} {seen:?}");
}
