//! Requests relayed to agents over the long-poll: a fake agent (plain HTTP
//! with its agent credentials) receives `logs` and `pull` requests on its
//! sync answer and posts replies; the API caller gets them. Bad parameters,
//! replies from the wrong host and hosts that cannot answer fail clearly.

use serde_json::{json, Value};

use super::*;

fn raw(method: &str, url: &str, creds: Option<(&str, &str)>, body: Option<Value>) -> (u16, Value) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(40))
        .build();
    let mut req = agent.request(method, url);
    if let Some((u, p)) = creds {
        req = req.set("Authorization", &basic_header(u, p));
    }
    let res = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    let r = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = r.status();
    let text = r.into_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Sync as the fake agent until a request arrives.
fn next_request(url: &str, creds: (&str, &str)) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (st, v) = raw(
            "POST",
            &format!("{url}/v1/agent/sync"),
            Some(creds),
            Some(json!({"generation": 0, "waitMs": 200})),
        );
        assert_eq!(st, 200, "{v}");
        if let Some(r) = v["requests"].as_array().and_then(|a| a.first()) {
            return r.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no request came");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn logs_and_pulls_ride_the_long_poll() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        &dir.path().join("db"),
        ServerConfig {
            max_wait: Duration::from_millis(200),
            ..ServerConfig::default()
        },
    );
    let u = s.url.clone();
    let (host, ak, sk) = register(&u, "1a5", "relaytestkey000001", "n1");
    let (_h2, ak2, sk2) = register(&u, "1a5", "relaytestkey000002", "n2");
    let c = post(
        &format!("{u}/v1/projects/1a5/containers"),
        json!({"name": "web", "imageUuid": "docker:busybox", "requestedHostId": host}),
    );
    assert_eq!(c.status, 201, "{:?}", c.body);
    let cid = c.body["id"].as_str().unwrap().to_string();

    // Bad parameters are refused before anything is asked.
    let (st, v) = raw(
        "GET",
        &format!("{u}/v1/projects/1a5/containers/{cid}/logs?tail=x"),
        None,
        None,
    );
    assert_eq!((st, v["fieldName"].as_str()), (422, Some("tail")), "{v}");
    let (st, v) = raw(
        "GET",
        &format!("{u}/v1/projects/1a5/containers/{cid}/logs?since=-1"),
        None,
        None,
    );
    assert_eq!((st, v["fieldName"].as_str()), (422, Some("since")), "{v}");
    let (st, v) = raw(
        "POST",
        &format!("{u}/v1/projects/1a5/hosts/{host}/pull"),
        None,
        Some(json!({"images": []})),
    );
    assert_eq!((st, v["fieldName"].as_str()), (422, Some("images")), "{v}");
    let (st, _) = raw(
        "GET",
        &format!("{u}/v1/projects/1a5/hosts/{host}/logs"),
        None,
        None,
    );
    assert_eq!(st, 404);

    // Logs: the caller waits while the agent answers through its sync.
    let url = u.clone();
    let path = format!("{url}/v1/projects/1a5/containers/{cid}/logs?tail=2&since=5");
    let caller = std::thread::spawn(move || raw("GET", &path, None, None));
    let r = next_request(&u, (&ak, &sk));
    assert_eq!(r["kind"], "logs");
    assert_eq!(r["instanceId"], cid.as_str());
    assert_eq!(r["tail"], 2);
    assert_eq!(r["sinceNanos"], 5);
    // Only the host it was sent to may answer.
    let reply = json!({"requestId": r["requestId"],
        "lines": [{"timeNanos": 7, "stream": "stdout", "text": "hello"}]});
    let (st, _) = raw(
        "POST",
        &format!("{u}/v1/agent/reply"),
        Some((&ak2, &sk2)),
        Some(reply.clone()),
    );
    assert_eq!(st, 404);
    let (st, _) = raw(
        "POST",
        &format!("{u}/v1/agent/reply"),
        None,
        Some(reply.clone()),
    );
    assert_eq!(st, 401);
    let (st, v) = raw(
        "POST",
        &format!("{u}/v1/agent/reply"),
        Some((&ak, &sk)),
        Some(reply),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = caller.join().unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["lines"][0]["text"], "hello");
    assert_eq!(v["name"], "web");

    // An agent-side failure comes back as the caller's error.
    let path = format!("{u}/v1/projects/1a5/containers/{cid}/logs");
    let caller = std::thread::spawn(move || raw("GET", &path, None, None));
    let r = next_request(&u, (&ak, &sk));
    let reply = json!({"requestId": r["requestId"], "error": "no such container"});
    raw(
        "POST",
        &format!("{u}/v1/agent/reply"),
        Some((&ak, &sk)),
        Some(reply),
    );
    let (st, v) = caller.join().unwrap();
    assert_eq!(
        (st, v["message"].as_str()),
        (502, Some("no such container")),
        "{v}"
    );

    // Pull: per-image results.
    let path = format!("{u}/v1/projects/1a5/hosts/{host}/pull");
    let caller =
        std::thread::spawn(move || raw("POST", &path, None, Some(json!({"images": ["a:1", "b"]}))));
    let r = next_request(&u, (&ak, &sk));
    assert_eq!(r["kind"], "pull");
    assert_eq!(r["images"], json!(["a:1", "b"]));
    let reply = json!({"requestId": r["requestId"], "pulls": [
        {"image": "a:1", "ok": true}, {"image": "b", "ok": false, "message": "pull b: not found"}]});
    raw(
        "POST",
        &format!("{u}/v1/agent/reply"),
        Some((&ak, &sk)),
        Some(reply),
    );
    let (st, v) = caller.join().unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["results"][1]["message"], "pull b: not found");

    // Short transition syncs (waitMs 0) never take requests away.
    let path = format!("{u}/v1/projects/1a5/containers/{cid}/logs");
    let caller = std::thread::spawn(move || raw("GET", &path, None, None));
    std::thread::sleep(Duration::from_millis(300));
    let (_, v) = raw(
        "POST",
        &format!("{u}/v1/agent/sync"),
        Some((&ak, &sk)),
        Some(json!({})),
    );
    assert_eq!(v["requests"], json!([]), "{v}");
    let r = next_request(&u, (&ak, &sk));
    raw(
        "POST",
        &format!("{u}/v1/agent/reply"),
        Some((&ak, &sk)),
        Some(json!({"requestId": r["requestId"]})),
    );
    assert_eq!(caller.join().unwrap().0, 200);
}

#[test]
fn hosts_that_cannot_answer_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = s.url.clone();
    let (host, _, _) = register(&u, "1a5", "relaytestkey000003", "n3");
    let c = post(
        &format!("{u}/v1/projects/1a5/containers"),
        json!({"imageUuid": "docker:busybox", "requestedHostId": host}),
    );
    let cid = c.body["id"].as_str().unwrap().to_string();
    // No syncs: the monitor marks the host reconnecting, then disconnected.
    std::thread::sleep(Duration::from_millis(1000));
    let t = std::time::Instant::now();
    let (st, v) = raw(
        "GET",
        &format!("{u}/v1/projects/1a5/containers/{cid}/logs"),
        None,
        None,
    );
    assert_eq!(
        (st, v["code"].as_str()),
        (503, Some("HostUnavailable")),
        "{v}"
    );
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains(&host) && msg.contains("n3") && msg.contains("disconnected"),
        "{msg}"
    );
    assert!(t.elapsed() < Duration::from_secs(2));
    let (st, _) = raw(
        "POST",
        &format!("{u}/v1/projects/1a5/hosts/{host}/pull"),
        None,
        Some(json!({"images": ["x"]})),
    );
    assert_eq!(st, 503);
}

#[test]
fn a_silent_agent_times_out_after_15_s() {
    let dir = tempfile::tempdir().unwrap();
    // The monitor would call the host reconnecting only after 30 s.
    let s = start(&dir.path().join("db"), ServerConfig::default());
    let u = s.url.clone();
    let (host, _, _) = register(&u, "1a5", "relaytestkey000004", "n4");
    let t = std::time::Instant::now();
    let (st, v) = raw(
        "POST",
        &format!("{u}/v1/projects/1a5/hosts/{host}/pull"),
        None,
        Some(json!({"images": ["x"]})),
    );
    let took = t.elapsed();
    assert_eq!(
        (st, v["code"].as_str()),
        (503, Some("HostUnavailable")),
        "{v}"
    );
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("15 s") && msg.contains(&host), "{msg}");
    assert!(
        took >= Duration::from_secs(14) && took < Duration::from_secs(20),
        "{took:?}"
    );
}

/// The exec session: minted under the caller's scope, claimed once by a
/// browser websocket, relayed on the long-poll, and joined only by the
/// agent of the container's host; frames then pass both ways.
#[test]
fn exec_sessions_join_only_the_containers_agent() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let dir = tempfile::tempdir().unwrap();
    let s = start(
        &dir.path().join("db"),
        ServerConfig {
            max_wait: Duration::from_millis(200),
            ..ServerConfig::default()
        },
    );
    let u = s.url.clone();
    let (host, ak, sk) = register(&u, "1a5", "exectestkey0000001", "n1");
    let (_h2, ak2, sk2) = register(&u, "1a5", "exectestkey0000002", "n2");
    let c = post(
        &format!("{u}/v1/projects/1a5/containers"),
        json!({"name": "sh", "imageUuid": "docker:busybox", "requestedHostId": host}),
    );
    assert_eq!(c.status, 201, "{:?}", c.body);
    let cid = c.body["id"].as_str().unwrap().to_string();
    let exec = format!("{u}/v2-beta/projects/1a5/containers/{cid}/exec");
    // Not running yet: refused with the reason.
    let (st, v) = raw("POST", &exec, None, Some(json!({})));
    assert_eq!(st, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("not running"),
        "{v}"
    );
    let (st, v) = raw(
        "POST",
        &format!("{u}/v1/agent/sync"),
        Some((&ak, &sk)),
        Some(json!({"reports": [{"instanceId": cid, "state": "running"}], "waitMs": 1})),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = raw("POST", &exec, None, Some(json!({"command": 3})));
    assert_eq!((st, v["fieldName"].as_str()), (422, Some("command")), "{v}");
    let (st, v) = raw("POST", &exec, None, Some(json!({"command": ["hostname"]})));
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["type"], "hostAccess");
    let url = v["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with("ws://") && url.ends_with("/v1/exec/"),
        "{url}"
    );
    let token = v["token"].as_str().unwrap().to_string();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // An unknown token is refused before any upgrade.
        let bad = tokio_tungstenite::connect_async(format!("{url}?token=nope")).await;
        assert!(bad.is_err());
        let (mut browser, _) = tokio_tungstenite::connect_async(format!("{url}?token={token}"))
            .await
            .unwrap();
        // The token is used once.
        assert!(
            tokio_tungstenite::connect_async(format!("{url}?token={token}"))
                .await
                .is_err()
        );
        // The request rides the host's long-poll.
        let u2 = u.clone();
        let (ak1, sk1) = (ak.clone(), sk.clone());
        let req = tokio::task::spawn_blocking(move || next_request(&u2, (&ak1, &sk1)))
            .await
            .unwrap();
        assert_eq!(req["kind"], "exec");
        assert_eq!(req["instanceId"], cid.as_str());
        assert_eq!(req["command"], json!(["hostname"]));
        let id = req["requestId"].as_str().unwrap();
        let agent_url = format!("{}/v1/agent/exec/{id}", u.replacen("http://", "ws://", 1));
        let with = |creds: Option<(&str, &str)>| {
            let mut r = agent_url.as_str().into_client_request().unwrap();
            if let Some((a, s)) = creds {
                r.headers_mut()
                    .insert("Authorization", basic_header(a, s).parse().unwrap());
            }
            r
        };
        // No credentials, or another host's agent: refused.
        assert!(tokio_tungstenite::connect_async(with(None)).await.is_err());
        match tokio_tungstenite::connect_async(with(Some((&ak2, &sk2)))).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 404)
            }
            other => panic!("another host's agent joined: {:?}", other.is_ok()),
        }
        let (mut agent, _) = tokio_tungstenite::connect_async(with(Some((&ak, &sk))))
            .await
            .unwrap();
        agent
            .send(Message::Binary(b"n1\r\n".to_vec().into()))
            .await
            .unwrap();
        let got = browser.next().await.unwrap().unwrap();
        assert_eq!(got.into_data().as_ref(), b"n1\r\n");
        browser
            .send(Message::Text(r#"{"resize":[100,30]}"#.into()))
            .await
            .unwrap();
        let got = agent.next().await.unwrap().unwrap();
        assert_eq!(got.into_text().unwrap().as_str(), r#"{"resize":[100,30]}"#);
        // The agent ends the session: the browser's socket closes.
        agent.close(None).await.unwrap();
        loop {
            match browser.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    });
}
