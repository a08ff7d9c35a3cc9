//! Secure by default: a server without `open_api` refuses anonymous
//! requests from the first start, the pre-shared join token registers
//! hosts and nothing else, agent keys reach only their own host's agent
//! endpoints, environment keys only their environment, and failed logins
//! slow down without telling whether the user exists.

use std::time::Instant;

use serde_json::json;

use super::*;
use crate::cluster::api::access;

const PW: &str = "first-admin-pw";
const JOIN: &str = "preshared-join-token-0123";

/// A secure server (as `ros cluster server` runs by default) with the
/// admin password [`PW`] and the join token [`JOIN`].
fn secure(db: &Path) -> Srv {
    {
        let store = SqliteStore::open(db).unwrap();
        assert_eq!(access::ensure_admin(&store, Some(PW)).unwrap(), None);
    }
    start_with(
        db,
        ServerConfig {
            open_api: false,
            join_token: Some(JOIN.into()),
            ..fast()
        },
    )
}

fn admin(method: &str, url: &str, body: Option<Value>) -> Resp {
    let b = body.map(|v| v.to_string());
    call(
        method,
        url,
        Some(("admin", PW)),
        b.as_deref().map(str::as_bytes),
    )
}

fn header(url: &str, name: &str) -> Option<String> {
    let r = match ureq::get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    r.header(name).map(str::to_string)
}

#[test]
fn fresh_server_refuses_anonymous_and_accepts_the_admin() {
    let dir = tempfile::tempdir().unwrap();
    let s = secure(&dir.path().join("db"));
    let u = &s.url;
    for path in [
        "/v1",
        "/v1/projects",
        "/v1/schemas",
        "/v2-beta/projects/1a5/hosts",
    ] {
        let r = get(&format!("{u}{path}"));
        assert_eq!((r.status, r.code()), (401, "Unauthorized"), "{path}");
        assert_eq!(r.body["type"], "error");
        assert!(r.challenge.as_deref().unwrap().starts_with("Basic realm="));
    }
    assert_eq!(header(&format!("{u}/v1"), api::INSECURE_HEADER), None);
    let ok = admin("GET", &format!("{u}/v1/projects"), None);
    assert_eq!(ok.status, 200);
    // Turning access control off is refused on a secure server.
    let off = admin(
        "POST",
        &format!("{u}/v1/localauthconfigs"),
        Some(json!({"enabled": false, "username": "admin", "password": "x-x-x-x"})),
    );
    assert_eq!(
        (off.status, off.body["fieldName"].as_str()),
        (422, Some("enabled"))
    );
    // A second ensure_admin (a restart with another cloud-config
    // password) keeps the account.
    assert_eq!(
        access::ensure_admin(s.app.store.as_ref(), Some("other")).unwrap(),
        None
    );
    assert_eq!(admin("GET", &format!("{u}/v1/projects"), None).status, 200);

    // An open server says so on every response.
    let d2 = tempfile::tempdir().unwrap();
    let open = start(&d2.path().join("db"), fast());
    for path in ["/v1/projects", "/ping", "/nope"] {
        assert_eq!(
            header(&format!("{}{path}", open.url), api::INSECURE_HEADER).as_deref(),
            Some("open-api"),
            "{path}"
        );
    }
}

#[test]
fn failed_logins_slow_down_and_do_not_tell_which_part_was_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let s = secure(&dir.path().join("db"));
    let u = &s.url;
    let no_user = post(&format!("{u}/v1/token"), json!({"code": "nobody:x"}));
    let bad_pw = post(&format!("{u}/v1/token"), json!({"code": "admin:x"}));
    assert_eq!(no_user.status, 401);
    assert_eq!(no_user.body, bad_pw.body);
    let basic_no_user = call("GET", &format!("{u}/v1"), Some(("nobody", "x")), None);
    let basic_bad_pw = call("GET", &format!("{u}/v1"), Some(("admin", "x")), None);
    assert_eq!(basic_no_user.body, basic_bad_pw.body);
    // 4 failures so far; one more is free, then the address must wait:
    // attempts inside the wait get a 429 at once (never checked, so
    // parallel guesses gain nothing), even with the right password.
    let fifth = post(&format!("{u}/v1/token"), json!({"code": "admin:y"}));
    assert_eq!(fifth.status, 401);
    let braked = post(
        &format!("{u}/v1/token"),
        json!({"code": format!("admin:{PW}")}),
    );
    assert_eq!(braked.status, 429, "{:?}", braked.body);
    assert_eq!(
        braked.body["message"],
        "too many failed logins from your address: wait 1 s"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let good = post(
        &format!("{u}/v1/token"),
        json!({"code": format!("admin:{PW}")}),
    );
    assert_eq!(good.status, 201, "{:?}", good.body);
    assert_eq!(admin("GET", &format!("{u}/v1"), None).status, 200);
    // Each further failure doubles the wait (250 ms, then 500 ms) …
    post(&format!("{u}/v1/token"), json!({"code": "admin:z"}));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let still = post(
        &format!("{u}/v1/token"),
        json!({"code": format!("admin:{PW}")}),
    );
    assert_eq!(still.status, 429);
    // … while a credential already verified is not slowed.
    let t = Instant::now();
    assert_eq!(admin("GET", &format!("{u}/v1"), None).status, 200);
    assert!(
        t.elapsed() < std::time::Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let good = post(
        &format!("{u}/v1/token"),
        json!({"code": format!("admin:{PW}")}),
    );
    assert_eq!(good.status, 201);
}

/// Register with the pre-shared join token (or `token`); `(host, ak, sk)`.
fn join(u: &str, token: &str, key: &str, hostname: &str) -> Resp {
    post(
        &format!("{u}/v1/agent/register"),
        json!({"token": token, "key": key, "facts": {"hostname": hostname, "agentIp": "10.0.0.9",
               "cpuCount": 1, "memoryMb": 512}}),
    )
}

#[test]
fn preshared_token_registers_hosts_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let s = secure(&dir.path().join("db"));
    let u = &s.url;
    assert_eq!(
        join(u, "wrong-token-000000", &"a".repeat(20), "n").status,
        401
    );
    let a = join(u, JOIN, &"a".repeat(20), "node-a");
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["projectId"], "1a5");
    // The script endpoint takes it too.
    let sc = ureq::get(&format!("{u}/v1/scripts/{JOIN}")).call().unwrap();
    assert!(sc
        .into_string()
        .unwrap()
        .contains(&format!("/v1/scripts/{JOIN}")));
    // A token pinned to some other CA is not this server's token.
    let pinned = format!("{JOIN}.{}", "ab".repeat(32));
    assert_eq!(join(u, &pinned, &"c".repeat(20), "n").status, 401);
    // Tokens made in the API keep working beside it.
    let t = admin(
        "POST",
        &format!("{u}/v1/projects/1a5/registrationtokens"),
        Some(json!({})),
    );
    let tok = t.body["token"].as_str().unwrap();
    assert_eq!(join(u, tok, &"b".repeat(20), "node-b").status, 201);
}

#[test]
fn every_route_family_refuses_callers_outside_their_scope() {
    let dir = tempfile::tempdir().unwrap();
    let s = secure(&dir.path().join("db"));
    let u = s.url.clone();
    // Environment B and its key; a key of A (1a5).
    let b = admin(
        "POST",
        &format!("{u}/v1/projects"),
        Some(json!({"name": "b"})),
    );
    let bid = b.body["id"].as_str().unwrap().to_string();
    let key = |p: &str| {
        let k = admin(
            "POST",
            &format!("{u}/v1/projects/{p}/apikeys"),
            Some(json!({})),
        );
        (
            k.body["publicValue"].as_str().unwrap().to_string(),
            k.body["secretValue"].as_str().unwrap().to_string(),
        )
    };
    let (bk, bs) = key(&bid);
    let (ak_env, as_env) = key("1a5");
    // Two hosts of A, by the join token; a container on host 2.
    let h1 = join(&u, JOIN, &"1".repeat(20), "h1");
    let h2 = join(&u, JOIN, &"2".repeat(20), "h2");
    let creds = |r: &Resp| {
        (
            r.body["accessKey"].as_str().unwrap().to_string(),
            r.body["secretKey"].as_str().unwrap().to_string(),
        )
    };
    let (a1, s1) = creds(&h1);
    let (a2, s2) = creds(&h2);
    let host2 = h2.body["hostId"].as_str().unwrap().to_string();
    let c = admin(
        "POST",
        &format!("{u}/v1/projects/1a5/containers"),
        Some(json!({"name": "web", "imageUuid": "docker:busybox", "requestedHostId": host2})),
    );
    assert_eq!(c.status, 201, "{:?}", c.body);
    let cid = c.body["id"].as_str().unwrap().to_string();
    let st = admin(
        "POST",
        &format!("{u}/v1/projects/1a5/stacks"),
        Some(json!({"name": "s"})),
    );
    let sid = st.body["id"].as_str().unwrap().to_string();

    // Every route family of environment A.
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/v1".into(), None),
        ("GET", "/v1/projects".into(), None),
        ("GET", "/v1/projects/1a5".into(), None),
        (
            "PUT",
            "/v1/projects/1a5".into(),
            Some(json!({"description": "x"})),
        ),
        ("GET", "/v1/projects/1a5/hosts".into(), None),
        ("GET", format!("/v1/projects/1a5/hosts/{host2}"), None),
        (
            "GET",
            format!("/v1/projects/1a5/hosts/{host2}/instances"),
            None,
        ),
        ("GET", "/v1/projects/1a5/containers".into(), None),
        ("GET", format!("/v1/projects/1a5/containers/{cid}"), None),
        (
            "GET",
            format!("/v1/projects/1a5/containers/{cid}/logs"),
            None,
        ),
        (
            "POST",
            format!("/v1/projects/1a5/containers/{cid}?action=stop"),
            Some(json!({})),
        ),
        ("DELETE", format!("/v1/projects/1a5/containers/{cid}"), None),
        (
            "POST",
            "/v1/projects/1a5/containers".into(),
            Some(json!({"name": "x", "imageUuid": "docker:busybox"})),
        ),
        ("GET", "/v1/projects/1a5/stacks".into(), None),
        (
            "GET",
            format!("/v1/projects/1a5/stacks/{sid}/services"),
            None,
        ),
        (
            "POST",
            "/v1/projects/1a5/stacks".into(),
            Some(json!({"name": "t"})),
        ),
        ("GET", "/v1/projects/1a5/services".into(), None),
        ("GET", "/v1/projects/1a5/apikeys".into(), None),
        ("POST", "/v1/projects/1a5/apikeys".into(), Some(json!({}))),
        ("GET", "/v1/projects/1a5/registrationtokens".into(), None),
        (
            "POST",
            "/v1/projects/1a5/registrationtokens".into(),
            Some(json!({})),
        ),
        ("GET", "/v1/accounts".into(), None),
        ("GET", "/v1/localauthconfigs".into(), None),
        ("POST", "/v1/projects".into(), Some(json!({"name": "c"}))),
    ];
    let send = |m: &str, path: &str, who: Option<(&str, &str)>, body: &Option<Value>| {
        let b = body.as_ref().map(|v| v.to_string());
        call(
            m,
            &format!("{u}{path}"),
            who,
            b.as_deref().map(str::as_bytes),
        )
    };
    let bearer = |m: &str, path: &str, tok: &str| {
        let r = ureq::request(m, &format!("{u}{path}"))
            .set("Authorization", &format!("Bearer {tok}"))
            .call();
        match r {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, _)) => c,
            Err(e) => panic!("{e}"),
        }
    };
    for (m, path, body) in &routes {
        // The refusals below come from one address on purpose: no brake.
        s.app.throttle.clear();
        // Nobody, the join token (as Basic or Bearer), an agent key.
        for who in [
            None,
            Some((JOIN, JOIN)),
            Some(("token", JOIN)),
            Some((a1.as_str(), s1.as_str())),
        ] {
            let r = send(m, path, who, body);
            assert_eq!(r.status, 401, "{m} {path} as {who:?}: {:?}", r.body);
        }
        assert_eq!(
            bearer(m, path, JOIN),
            401,
            "{m} {path} with the join token as Bearer"
        );
        // A key of environment B: environment A does not exist for it
        // (404, so ids do not leak), admin routes are forbidden (403).
        let r = send(m, path, Some((&bk, &bs)), body);
        let outside = match path.as_str() {
            "/v1" => 200,
            "/v1/projects" if *m == "GET" => 200,
            "/v1/accounts" | "/v1/localauthconfigs" | "/v1/projects" => 403,
            _ => 404,
        };
        assert_eq!(
            r.status, outside,
            "{m} {path} with a key of {bid}: {:?}",
            r.body
        );
        if *m == "GET" && path == "/v1/projects" {
            let ids: Vec<&str> = r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["id"].as_str())
                .collect();
            assert_eq!(ids, vec![bid.as_str()]);
        }
    }
    // A's own key reaches its environment (but not admin routes).
    assert_eq!(
        send(
            "GET",
            "/v1/projects/1a5/containers",
            Some((&ak_env, &as_env)),
            &None
        )
        .status,
        200
    );
    assert_eq!(
        send("GET", "/v1/accounts", Some((&ak_env, &as_env)), &None).status,
        403
    );

    // Agent endpoints: only agent keys, and each sees its own host only.
    let sync =
        |who: Option<(&str, &str)>| call("POST", &format!("{u}/v1/agent/sync"), who, Some(b"{}"));
    for who in [
        None,
        Some((JOIN, JOIN)),
        Some((ak_env.as_str(), as_env.as_str())),
        Some(("admin", PW)),
    ] {
        assert_eq!(sync(who).status, 401, "sync as {who:?}");
        let r = call("POST", &format!("{u}/v1/agent/reply"), who, Some(b"{}"));
        assert_eq!(r.status, 401, "reply as {who:?}");
    }
    let mine = sync(Some((&a2, &s2)));
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body["instances"].as_array().unwrap().len(), 1);
    let other = sync(Some((&a1, &s1)));
    assert_eq!(other.status, 200);
    assert!(
        other.body["instances"].as_array().unwrap().is_empty(),
        "host 1 sees host 2's container"
    );
    // Host 1 reporting on host 2's container changes nothing.
    let r = call(
        "POST",
        &format!("{u}/v1/agent/sync"),
        Some((&a1, &s1)),
        Some(
            json!({"reports": [{"instanceId": cid, "state": "running"}]})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let c = admin(
        "GET",
        &format!("{u}/v1/projects/1a5/containers/{cid}"),
        None,
    );
    assert_ne!(c.body["state"], "running");
}

/// The fuzz target's property over a deterministic corpus in every test
/// run: random bytes, and every one-byte change, truncation and
/// extension of a real JWT and Basic header.
#[test]
fn credential_parsers_never_panic_nor_accept_mutations() {
    use rand::{Rng, SeedableRng};
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"fuzz-key");
    let good = access::sign_jwt(&key, "admin", 4_000_000_000);
    assert!(access::jwt_valid(&key, &good, 0));
    assert!(!access::jwt_valid(&key, &good, i64::MAX));
    let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"other-key");
    assert!(!access::jwt_valid(&other, &good, 0));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xa17);
    let seeds = [
        good.clone(),
        format!("Bearer {good}"),
        crate::cluster::auth::basic_header("admin", "pw:with:colons"),
        format!("{JOIN}.{}", "ab".repeat(32)),
        "http://s:8080/v1/scripts/tok.abcd".to_string(),
    ];
    for seed in &seeds {
        let b = seed.as_bytes();
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] = m[i].wrapping_add(1 + rng.random_range(0..254u8));
            access::fuzz_credentials(&m);
            access::fuzz_credentials(&b[..i]);
        }
        let mut longer = b.to_vec();
        longer.extend_from_slice(b".x");
        access::fuzz_credentials(&longer);
    }
    for _ in 0..20_000 {
        let n = rng.random_range(0..96);
        let data: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        access::fuzz_credentials(&data);
    }
    // Typical malformed Basic values parse to nothing.
    for bad in [
        "Basic",
        "Basic ",
        "Basic !!!",
        "Basic YWRtaW4=",
        "Bearer x",
        "",
    ] {
        assert_eq!(crate::cluster::auth::parse_basic(bad), None, "{bad:?}");
    }
}

#[test]
fn api_keys_expire_and_revoke_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = secure(&dir.path().join("db"));
    let u = &s.url;
    let mk = |body: Value| {
        let k = admin("POST", &format!("{u}/v1/projects/1a5/apikeys"), Some(body));
        assert_eq!(k.status, 201, "{:?}", k.body);
        (
            k.body["id"].as_str().unwrap().to_string(),
            k.body["publicValue"].as_str().unwrap().to_string(),
            k.body["secretValue"].as_str().unwrap().to_string(),
        )
    };
    let hosts = format!("{u}/v1/projects/1a5/hosts");
    let (_, ea, es) = mk(json!({"expiresInSeconds": 1}));
    assert_eq!(call("GET", &hosts, Some((&ea, &es)), None).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(1300));
    // Refused although its verification was cached.
    assert_eq!(call("GET", &hosts, Some((&ea, &es)), None).status, 401);
    let (kid, ra, rs) = mk(json!({}));
    assert_eq!(call("GET", &hosts, Some((&ra, &rs)), None).status, 200);
    let del = admin(
        "DELETE",
        &format!("{u}/v1/projects/1a5/apikeys/{kid}"),
        None,
    );
    assert_eq!(del.status, 200, "{:?}", del.body);
    assert_eq!(call("GET", &hosts, Some((&ra, &rs)), None).status, 401);

    // Every mutating request is in the audit log: who, what, when, where.
    let (aa, asec) = (ea.clone(), es.clone());
    let refused = call(
        "POST",
        &format!("{u}/v1/projects/1a5/stacks"),
        Some((&aa, &asec)),
        Some(b"{}"),
    );
    assert_eq!(refused.status, 401);
    let log = admin("GET", &format!("{u}/v1/auditlogs"), None);
    assert_eq!(log.status, 200);
    let data = log.body["data"].as_array().unwrap();
    let newest = &data[0];
    assert_eq!(newest["authenticatedAs"], ea.as_str());
    assert_eq!(newest["method"], "POST");
    assert_eq!(newest["path"], "/v1/projects/1a5/stacks");
    assert_eq!(newest["responseCode"], 401);
    assert_eq!(newest["clientIp"], "127.0.0.1");
    assert!(newest["created"].as_str().unwrap().ends_with('Z'));
    assert!(data.iter().any(|e| e["method"] == "DELETE"
        && e["authenticatedAs"] == "admin"
        && e["path"] == format!("/v1/projects/1a5/apikeys/{kid}")));
    assert!(data.iter().all(|e| e["method"] != "GET"));
    let (_, ka, ks) = mk(json!({}));
    assert_eq!(
        call("GET", &format!("{u}/v1/auditlogs"), Some((&ka, &ks)), None).status,
        403
    );
}

#[test]
fn privileged_launch_options_need_the_admin_or_a_marked_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = secure(&dir.path().join("db"));
    let u = &s.url;
    let key = |body: Value| {
        let k = admin("POST", &format!("{u}/v1/projects/1a5/apikeys"), Some(body));
        assert_eq!(k.status, 201, "{:?}", k.body);
        (
            k.body["publicValue"].as_str().unwrap().to_string(),
            k.body["secretValue"].as_str().unwrap().to_string(),
        )
    };
    let (pa, ps) = key(json!({}));
    let (ma, ms) = key(json!({"privileged": true}));
    // A plain key cannot mint a privileged one.
    let mint = call(
        "POST",
        &format!("{u}/v1/projects/1a5/apikeys"),
        Some((&pa, &ps)),
        Some(br#"{"privileged":true}"#),
    );
    assert_eq!(
        (mint.status, mint.body["fieldName"].as_str()),
        (403, Some("privileged"))
    );
    let st = admin(
        "POST",
        &format!("{u}/v1/projects/1a5/stacks"),
        Some(json!({"name": "base"})),
    );
    let sid = st.body["id"].as_str().unwrap().to_string();
    let cases: Vec<(&str, &str)> = vec![
        ("privileged", "    privileged: true\n"),
        ("capAdd", "    cap_add: [NET_ADMIN]\n"),
        ("pidMode", "    pid: host\n"),
        ("ipcMode", "    ipc: host\n"),
        ("networkMode", "    network_mode: host\n"),
        ("dataVolumes", "    volumes: [\"/etc:/host-etc\"]\n"),
        ("devices", "    devices: [\"/dev/fuse\"]\n"),
    ];
    for (i, (field, extra)) in cases.iter().enumerate() {
        let dc = format!(
            "web:\n  image: busybox\n{}",
            extra.replacen("    ", "  ", 1)
        );
        let body = |n: &str| json!({"name": n, "dockerCompose": dc}).to_string();
        let plain = call(
            "POST",
            &format!("{u}/v1/projects/1a5/stacks"),
            Some((&pa, &ps)),
            Some(body(&format!("p{i}")).as_bytes()),
        );
        assert_eq!(
            (plain.status, plain.body["fieldName"].as_str()),
            (403, Some(*field)),
            "{dc}: {:?}",
            plain.body
        );
        let marked = call(
            "POST",
            &format!("{u}/v1/projects/1a5/stacks"),
            Some((&ma, &ms)),
            Some(body(&format!("m{i}")).as_bytes()),
        );
        assert_eq!(marked.status, 201, "{dc}: {:?}", marked.body);
        let by_admin = admin(
            "POST",
            &format!("{u}/v1/projects/1a5/stacks"),
            Some(json!({"name": format!("a{i}"), "dockerCompose": dc})),
        );
        assert_eq!(by_admin.status, 201, "{dc}: {:?}", by_admin.body);
    }
    // A privileged option hidden behind a variable is seen after the
    // server's substitution from `environment`.
    let hidden = call(
        "POST",
        &format!("{u}/v1/projects/1a5/stacks"),
        Some((&pa, &ps)),
        Some(
            json!({"name": "hidden", "dockerCompose": "web:\n  image: busybox\n  privileged: ${P}\n",
                   "environment": {"P": "true"}})
            .to_string()
            .as_bytes(),
        ),
    );
    assert_eq!(
        (hidden.status, hidden.body["fieldName"].as_str()),
        (403, Some("privileged")),
        "{:?}",
        hidden.body
    );
    // The same through POST /services and a direct container.
    let svc = call(
        "POST",
        &format!("{u}/v1/projects/1a5/services"),
        Some((&pa, &ps)),
        Some(
            json!({"name": "s", "stackId": sid, "launchConfig": {"imageUuid": "docker:busybox", "privileged": true}})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(
        (svc.status, svc.body["fieldName"].as_str()),
        (403, Some("privileged")),
        "{:?}",
        svc.body
    );
    let plain_ok = call(
        "POST",
        &format!("{u}/v1/projects/1a5/services"),
        Some((&pa, &ps)),
        Some(
            json!({"name": "s", "stackId": sid, "launchConfig": {"imageUuid": "docker:busybox"}})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(plain_ok.status, 201, "{:?}", plain_ok.body);
    let ct = call(
        "POST",
        &format!("{u}/v1/projects/1a5/containers"),
        Some((&pa, &ps)),
        Some(br#"{"name":"c","imageUuid":"docker:busybox","networkMode":"host"}"#),
    );
    assert_eq!(
        (ct.status, ct.body["fieldName"].as_str()),
        (403, Some("networkMode"))
    );
}
