//! Load balancers in the API: certificates (checked PEM, the key never
//! shown), `lbConfig.certificateIds` / `defaultCertificateId` by id over
//! names kept in the spec, compose `certs` naming certificates that must
//! exist, https rules that need one, and the stats route's refusals.

use serde_json::json;

use super::*;

const DC: &str = "version: '2'\nservices:\n  web:\n    image: busybox\n  lb:\n    image: rancher/lb-service-haproxy\n    ports: ['443:443']\n";

fn rc(certs: &str) -> String {
    format!(
        "version: '2'\nservices:\n  lb:\n    lb_config:\n      {certs}\n      port_rules:\n      - {{source_port: 443, target_port: 80, service: web, protocol: https}}\n"
    )
}

fn call_json(method: &str, url: &str, v: serde_json::Value) -> Resp {
    call(method, url, None, Some(v.to_string().as_bytes()))
}

#[test]
fn certificates_back_https_rules_by_id_and_never_show_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let u = format!("{}/v2-beta/projects/1a5", s.url);
    let site = rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).unwrap();
    let (cert, key) = (site.cert.pem(), site.key_pair.serialize_pem());

    let bad = post(
        &format!("{u}/certificates"),
        json!({"name": "site", "cert": "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n", "key": key}),
    );
    assert_eq!(
        (bad.status, bad.code()),
        (422, "InvalidFormat"),
        "{:?}",
        bad.body
    );
    assert_eq!(bad.body["fieldName"], "cert", "{:?}", bad.body);
    let missing = post(
        &format!("{u}/certificates"),
        json!({"name": "site", "cert": cert}),
    );
    assert_eq!(missing.status, 422, "{:?}", missing.body);
    assert_eq!(missing.body["fieldName"], "key", "{:?}", missing.body);

    let c = post(
        &format!("{u}/certificates"),
        json!({"name": "site", "cert": cert, "key": key}),
    );
    assert_eq!(c.status, 201, "{:?}", c.body);
    let id = c.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("1c"), "{id}");
    let again = post(
        &format!("{u}/certificates"),
        json!({"name": "site", "cert": cert, "key": key}),
    );
    assert_eq!((again.status, again.code()), (422, "NotUnique"));
    let list = get(&format!("{u}/certificates"));
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert!(
        !list.body.to_string().contains("PRIVATE KEY"),
        "{:?}",
        list.body
    );
    assert!(list.body["data"][0]["certFingerprint"]
        .as_str()
        .unwrap()
        .contains(':'));

    // A compose LB naming a certificate that does not exist.
    let st = post(
        &format!("{u}/stacks"),
        json!({"name": "bad", "dockerCompose": DC, "rancherCompose": rc("certs: [nope]")}),
    );
    assert_eq!(st.status, 422, "{:?}", st.body);
    let msg = st.body["message"].as_str().unwrap();
    assert!(
        msg.contains("lb: lb_config.certs[0]: no certificate named \"nope\""),
        "{msg}"
    );
    // An https rule with no certificate at all.
    let st = post(
        &format!("{u}/stacks"),
        json!({"name": "bad", "dockerCompose": DC, "rancherCompose": rc("config: ''")}),
    );
    assert_eq!(st.status, 422, "{:?}", st.body);
    assert!(
        st.body["message"]
            .as_str()
            .unwrap()
            .contains("terminates TLS and needs a certificate"),
        "{:?}",
        st.body
    );

    // Names in compose, ids in the API.
    let st = post(
        &format!("{u}/stacks"),
        json!({"name": "app", "dockerCompose": DC, "rancherCompose": rc("certs: [site]\n      default_cert: site")}),
    );
    assert_eq!(st.status, 201, "{:?}", st.body);
    let lb = get(&format!("{u}/loadbalancerservices?name=lb")).body["data"][0].clone();
    assert_eq!(lb["lbConfig"]["certificateIds"], json!([id]), "{lb}");
    assert_eq!(lb["lbConfig"]["defaultCertificateId"], json!(id), "{lb}");
    let lb_id = lb["id"].as_str().unwrap();
    let rules = lb["lbConfig"]["portRules"].clone();
    let put = call_json(
        "PUT",
        &format!("{u}/loadbalancerservices/{lb_id}"),
        json!({"lbConfig": {"portRules": rules, "certificateIds": ["1c999"]}}),
    );
    assert_eq!(put.status, 422, "{:?}", put.body);
    assert!(
        put.body["message"]
            .as_str()
            .unwrap()
            .starts_with("lbConfig.certificateIds[0]: no such certificate 1c999"),
        "{:?}",
        put.body
    );

    // A renewed certificate replaces the old one; the key stays hidden.
    let renewed = rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).unwrap();
    let put = call_json(
        "PUT",
        &format!("{u}/certificates/{id}"),
        json!({"cert": renewed.cert.pem(), "key": renewed.key_pair.serialize_pem()}),
    );
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_ne!(put.body["certFingerprint"], c.body["certFingerprint"]);
    assert!(put.body.get("key").is_none(), "{:?}", put.body);
    let mismatched = call_json(
        "PUT",
        &format!("{u}/certificates/{id}"),
        json!({"cert": cert}),
    );
    assert_eq!(mismatched.status, 422, "{:?}", mismatched.body);
    assert_eq!(mismatched.body["fieldName"], "key", "{:?}", mismatched.body);

    // In use: not removable.
    let del = call("DELETE", &format!("{u}/certificates/{id}"), None, None);
    assert_eq!(
        (del.status, del.code()),
        (422, "InvalidState"),
        "{:?}",
        del.body
    );
    assert!(
        del.body["message"]
            .as_str()
            .unwrap()
            .contains("is used by load balancer lb"),
        "{:?}",
        del.body
    );

    let spare = post(
        &format!("{u}/certificates"),
        json!({"name": "spare", "cert": cert, "key": key}),
    );
    assert_eq!(spare.status, 201, "{:?}", spare.body);
    let sid = spare.body["id"].as_str().unwrap();
    let del = call("DELETE", &format!("{u}/certificates/{sid}"), None, None);
    assert_eq!(del.status, 200, "{:?}", del.body);
    assert_eq!(del.body["state"], "removed", "{:?}", del.body);

    // Stats are for load balancers only; one with no container yet has none.
    let web = get(&format!("{u}/services?name=web")).body["data"][0].clone();
    let r = get(&format!(
        "{u}/services/{}/stats",
        web["id"].as_str().unwrap()
    ));
    assert_eq!((r.status, r.code()), (422, "InvalidType"), "{:?}", r.body);
    let r = get(&format!(
        "{}/v1/projects/1a5/loadbalancerservices/{lb_id}/stats",
        s.url
    ));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["type"], "loadBalancerStats");
}
