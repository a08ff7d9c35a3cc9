//! Access control: open by default, local auth, API keys, 401 with the
//! challenge, project isolation.

use serde_json::json;

use super::*;

#[test]
fn open_then_locked_with_isolation() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let s = start(&db, fast());
    let u = &s.url;
    // Open: any or no credentials work.
    assert_eq!(get(&format!("{u}/v1/projects")).status, 200);
    assert_eq!(
        call(
            "GET",
            &format!("{u}/v1/projects"),
            Some(("bad", "bad")),
            None
        )
        .status,
        200
    );
    let other = post(&format!("{u}/v1/projects"), json!({"name": "other"}));
    let other_id = other.body["id"].as_str().unwrap().to_string();
    let k5 = post(&format!("{u}/v1/projects/1a5/apikeys"), json!({}));
    let ko = post(
        &format!("{u}/v1/projects/{other_id}/apikeys"),
        json!({"name": "o"}),
    );
    let (a5, s5) = (
        k5.body["publicValue"].as_str().unwrap().to_string(),
        k5.body["secretValue"].as_str().unwrap().to_string(),
    );
    let (ao, so) = (
        ko.body["publicValue"].as_str().unwrap().to_string(),
        ko.body["secretValue"].as_str().unwrap().to_string(),
    );

    let short = post(
        &format!("{u}/v1/localauthconfigs"),
        json!({"username": "admin", "password": "x"}),
    );
    assert_eq!(short.code(), "MinLengthExceeded");
    let en = post(
        &format!("{u}/v1/localauthconfigs"),
        json!({"enabled": true, "username": "admin", "password": "s3cret-pw", "accessMode": "unrestricted"}),
    );
    assert_eq!(en.status, 201, "{:?}", en.body);
    assert!(en.body["password"].is_null());

    // Locked: no or wrong credentials → 401 with the Basic challenge.
    let no = get(&format!("{u}/v1/projects/1a5"));
    assert_eq!((no.status, no.code()), (401, "Unauthorized"));
    assert!(no.challenge.unwrap().starts_with("Basic realm="));
    let quiet = ureq::get(&format!("{u}/v1/projects/1a5"))
        .set("X-API-No-Challenge", "true")
        .call();
    match quiet {
        Err(ureq::Error::Status(401, r)) => assert!(r.header("WWW-Authenticate").is_none()),
        other => panic!("expected 401, got {other:?}"),
    }
    let wrong = call(
        "GET",
        &format!("{u}/v1/projects/1a5"),
        Some((&a5, "nope")),
        None,
    );
    assert_eq!(wrong.status, 401);
    let admin = call(
        "GET",
        &format!("{u}/v1/projects"),
        Some(("admin", "s3cret-pw")),
        None,
    );
    assert_eq!(admin.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        call(
            "GET",
            &format!("{u}/v1/projects"),
            Some(("admin", "wrong")),
            None
        )
        .status,
        401
    );

    // Login as the UI does: a JWT, then Bearer.
    let bad = post(&format!("{u}/v1/token"), json!({"code": "admin:nope"}));
    assert_eq!(bad.status, 401);
    let tok = post(
        &format!("{u}/v2-beta/token"),
        json!({"code": "admin:s3cret-pw"}),
    );
    assert_eq!(tok.status, 201, "{:?}", tok.body);
    let jwt = tok.body["jwt"].as_str().unwrap().to_string();
    let bearer = |j: &str| {
        ureq::get(&format!("{u}/v1/projects"))
            .set("Authorization", &format!("Bearer {j}"))
            .call()
            .map(|r| r.status())
            .unwrap_or_else(|e| match e {
                ureq::Error::Status(c, _) => c,
                _ => 0,
            })
    };
    assert_eq!(bearer(&jwt), 200);
    assert_eq!(bearer(&format!("{jwt}x")), 401);
    assert_eq!(bearer("a.b.c"), 401);
    // A project key sees its project only.
    let mine = call(
        "GET",
        &format!("{u}/v1/projects/1a5"),
        Some((&a5, &s5)),
        None,
    );
    assert_eq!(mine.status, 200);
    let list = call("GET", &format!("{u}/v1/projects"), Some((&a5, &s5)), None);
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    let theirs = call(
        "GET",
        &format!("{u}/v1/projects/{other_id}"),
        Some((&a5, &s5)),
        None,
    );
    assert_eq!(theirs.status, 404);
    let theirs_hosts = call(
        "GET",
        &format!("{u}/v1/projects/1a5/hosts"),
        Some((&ao, &so)),
        None,
    );
    assert_eq!(theirs_hosts.status, 404);
    let keys = call("GET", &format!("{u}/v1/apikeys"), Some((&ao, &so)), None);
    let ks = keys.body["data"].as_array().unwrap();
    assert_eq!(ks.len(), 1);
    assert_eq!(ks[0]["accountId"], other_id.as_str());
    let by_id = call(
        "GET",
        &format!("{u}/v1/apikeys/{}", k5.body["id"].as_str().unwrap()),
        Some((&ao, &so)),
        None,
    );
    assert_eq!(by_id.status, 404);
    let cross = call(
        "POST",
        &format!("{u}/v1/apikeys"),
        Some((&ao, &so)),
        Some(json!({"accountId": "1a5"}).to_string().as_bytes()),
    );
    assert_eq!(cross.code(), "InvalidReference");
    assert_eq!(
        call("GET", &format!("{u}/v1/accounts"), Some((&ao, &so)), None).status,
        403
    );
    assert_eq!(
        call(
            "POST",
            &format!("{u}/v1/projects"),
            Some((&ao, &so)),
            Some(b"{\"name\":\"x\"}")
        )
        .status,
        403
    );
    // A deactivated key stops working at once.
    let kid = ko.body["id"].as_str().unwrap();
    call(
        "POST",
        &format!("{u}/v1/apikeys/{kid}?action=deactivate"),
        Some(("admin", "s3cret-pw")),
        Some(b"{}"),
    );
    assert_eq!(
        call("GET", &format!("{u}/v1/projects"), Some((&ao, &so)), None).status,
        401
    );
    drop(s);
    // Auth survives a restart.
    let s = start(&db, fast());
    assert_eq!(get(&format!("{}/v1/projects", s.url)).status, 401);
    assert_eq!(
        call(
            "GET",
            &format!("{}/v1/projects/1a5", s.url),
            Some((&a5, &s5)),
            None
        )
        .status,
        200
    );
}

#[test]
fn agent_endpoints_need_agent_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = &s.url;
    let k = post(&format!("{u}/v1/projects/1a5/apikeys"), json!({}));
    let (a, sk) = (
        k.body["publicValue"].as_str().unwrap(),
        k.body["secretValue"].as_str().unwrap(),
    );
    assert_eq!(
        call(
            "POST",
            &format!("{u}/v1/agent/sync"),
            Some((a, sk)),
            Some(b"{}")
        )
        .status,
        401
    );
    assert_eq!(
        call("POST", &format!("{u}/v1/agent/sync"), None, Some(b"{}")).status,
        401
    );
    let (_, ak, ask) = register(u, "1a5", &"z".repeat(20), "n");
    // Agent keys are not API keys.
    post(
        &format!("{u}/v1/localauthconfigs"),
        json!({"username": "admin", "password": "pw-pw-pw"}),
    );
    assert_eq!(
        call("GET", &format!("{u}/v1/projects"), Some((&ak, &ask)), None).status,
        401
    );
}
