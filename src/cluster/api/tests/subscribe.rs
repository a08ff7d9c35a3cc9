//! The live subscription: `resource.change` events with the rendered
//! resource and `ping` events, over SSE and a websocket, only the
//! subscriber's project, a replay from a revision on reconnect, and the
//! same access control as the API.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;

use serde_json::json;

use super::*;

/// Open an SSE subscription; events `(id, JSON)` arrive on the channel.
fn sse(url: &str, auth: Option<(&str, &str)>) -> mpsc::Receiver<(Option<u64>, Value)> {
    let mut req = ureq::get(url);
    if let Some((u, p)) = auth {
        req = req.set("Authorization", &basic_header(u, p));
    }
    let r = req
        .call()
        .unwrap_or_else(|e| panic!("subscribe {url}: {e}"));
    assert_eq!(r.header("Content-Type"), Some("text/event-stream"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut id = None;
        for line in BufReader::new(r.into_reader()).lines() {
            let Ok(line) = line else { return };
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.parse().ok();
            } else if let Some(d) = line.strip_prefix("data: ") {
                let v: Value = serde_json::from_str(d).expect("event is JSON");
                if tx.send((id.take(), v)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// The next `resource.change` event of `kind` named `name`, skipping others.
fn change_of(
    rx: &mpsc::Receiver<(Option<u64>, Value)>,
    kind: &str,
    name: &str,
) -> (Option<u64>, Value) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (id, v) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no resource.change for {kind} {name}"));
        if v["name"] == "resource.change"
            && v["resourceType"] == kind
            && v["data"]["resource"]["name"] == name
        {
            return (id, v);
        }
    }
}

#[test]
fn changes_pings_projects_replay_and_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = &s.url;
    let rx = sse(&format!("{u}/v2-beta/projects/1a5/subscribe"), None);
    // A ping at once: the client knows the stream is live.
    let (_, first) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(first["name"], "ping");

    let other = post(&format!("{u}/v2-beta/projects"), json!({"name": "other"}));
    let other_id = other.body["id"].as_str().unwrap().to_string();
    post(
        &format!("{u}/v2-beta/projects/{other_id}/stacks"),
        json!({"name": "elsewhere"}),
    );
    let st = post(
        &format!("{u}/v2-beta/projects/1a5/stacks"),
        json!({"name": "web", "dockerCompose": "version: \"2\"\nservices:\n  app:\n    image: busybox\n"}),
    );
    assert_eq!(st.status, 201, "{:?}", st.body);
    // One commit brings the stack and its service (in either order).
    let (mut stack, mut svc) = (None, None);
    while stack.is_none() || svc.is_none() {
        let (id, v) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the stack and its service are seen");
        match v["data"]["resource"]["name"].as_str() {
            Some("web") if v["resourceType"] == "stack" => stack = Some((id, v)),
            Some("app") if v["resourceType"] == "service" => svc = Some(v),
            _ => {}
        }
    }
    let ((id, ev), svc) = (stack.unwrap(), svc.unwrap());
    let id = id.expect("changes carry the revision");
    let res = &ev["data"]["resource"];
    assert_eq!(ev["resourceId"], res["id"]);
    assert!(res["links"]["self"]
        .as_str()
        .unwrap()
        .contains("/v2-beta/projects/1a5/stacks/"));
    assert_eq!(svc["data"]["resource"]["stackId"], res["id"]);
    // Nothing of the other project reached this subscriber.
    while let Ok((_, v)) = rx.try_recv() {
        assert_ne!(v["data"]["resource"]["name"], "elsewhere", "{v}");
        assert_ne!(v["data"]["resource"]["name"], "other", "{v}");
    }

    // An action shows up as the service's new state.
    let sid = svc["data"]["resource"]["id"].as_str().unwrap();
    let act = post(
        &format!("{u}/v2-beta/projects/1a5/services/{sid}?action=activate"),
        json!({}),
    );
    assert_eq!(act.status, 200, "{:?}", act.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the activation is seen");
        if v["resourceId"] == sid && v["data"]["resource"]["state"] != "inactive" {
            break;
        }
    }

    // Reconnecting from a revision replays what came after it: the stack
    // is committed at `id`, so from `id - 1` it comes again.
    let again = sse(
        &format!("{u}/v1/projects/1a5/subscribe?since={}", id - 1),
        None,
    );
    let (rid, rev) = change_of(&again, "environment", "web");
    // (The stack may have changed since; the replay brings its latest row.)
    assert!(rid.unwrap() >= id, "{rid:?} {id}");
    assert!(rev["data"]["resource"]["links"]["self"]
        .as_str()
        .unwrap()
        .contains("/v1/"));
    assert_eq!(
        get(&format!("{u}/v1/projects/1a5/subscribe?since=x")).status,
        400
    );
    assert_eq!(get(&format!("{u}/v1/projects/1a99/subscribe")).status, 404);

    // Rancher's clients open a websocket; its first message is a ping.
    let addr = u.strip_prefix("http://").unwrap();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        tcp,
        "GET /v2-beta/projects/1a5/subscribe?eventNames=resource.change&eventNames=ping HTTP/1.1\r\n\
         Host: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed during the handshake");
        got.extend_from_slice(&buf[..n]);
    }
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut frame = got[head_end..].to_vec();
    while frame.len() < 2 || frame.len() < 2 + (frame[1] & 0x7f) as usize {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0);
        frame.extend_from_slice(&buf[..n]);
    }
    assert_eq!(frame[0], 0x81, "a text frame");
    let len = (frame[1] & 0x7f) as usize;
    let msg: Value = serde_json::from_slice(&frame[2..2 + len]).unwrap();
    assert_eq!(msg["name"], "ping");
}

#[test]
fn locked_subscription_needs_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = &s.url;
    let k = post(&format!("{u}/v1/projects/1a5/apikeys"), json!({}));
    let (a, sk) = (
        k.body["publicValue"].as_str().unwrap().to_string(),
        k.body["secretValue"].as_str().unwrap().to_string(),
    );
    let en = post(
        &format!("{u}/v1/localauthconfigs"),
        json!({"enabled": true, "username": "admin", "password": "s3cret-pw"}),
    );
    assert_eq!(en.status, 201);
    assert_eq!(
        get(&format!("{u}/v2-beta/projects/1a5/subscribe")).status,
        401
    );
    let other = call(
        "POST",
        &format!("{u}/v2-beta/projects"),
        Some(("admin", "s3cret-pw")),
        Some(json!({"name": "o"}).to_string().as_bytes()),
    );
    let oid = other.body["id"].as_str().unwrap();
    // A project key sees only its own project.
    let wrong = call(
        "GET",
        &format!("{u}/v2-beta/projects/{oid}/subscribe"),
        Some((&a, &sk)),
        None,
    );
    assert_eq!(wrong.status, 404);
    let rx = sse(
        &format!("{u}/v2-beta/projects/1a5/subscribe"),
        Some((&a, &sk)),
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap().1["name"],
        "ping"
    );
    // The login JWT works as a cookie (what a browser's websocket sends).
    let login = post(
        &format!("{u}/v2-beta/token"),
        json!({"code": "admin:s3cret-pw"}),
    );
    let jwt = login.body["jwt"].as_str().unwrap();
    let r = ureq::get(&format!("{u}/v2-beta/projects/1a5/subscribe"))
        .set("Cookie", &format!("token={jwt}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn the_ui_is_served_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let page = ureq::get(&format!("{}/", s.url)).call().unwrap();
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.into_string().unwrap();
    // The first page carries its style and module inline.
    assert!(html.contains("<style>") && html.contains("import('/ui/exec.js')"));
    for (name, ctype) in [
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("exec.js", "text/javascript"),
        ("xterm.mjs", "text/javascript"),
        ("xterm.css", "text/css"),
    ] {
        let r = ureq::get(&format!("{}/ui/{name}", s.url))
            .set("Accept-Encoding", "gzip")
            .call()
            .unwrap();
        assert!(r.header("Content-Type").unwrap().starts_with(ctype));
        assert_eq!(r.header("Content-Encoding"), Some("gzip"));
        let mut z = Vec::new();
        r.into_reader().read_to_end(&mut z).unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(
            text,
            crate::cluster::ui::ASSETS
                .iter()
                .find(|a| a.0 == name)
                .unwrap()
                .2
        );
    }
    assert_eq!(get(&format!("{}/ui/nothing.js", s.url)).status, 404);
}
