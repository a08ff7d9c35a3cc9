//! HTTPS with the generated cluster CA: tokens carry the CA pin, a pinned
//! client connects, a wrong pin or the system roots do not.

use serde_json::json;

use super::*;
use crate::cluster::agent::token_pin;
use crate::cluster::client::Client;
use crate::cluster::tls;

#[test]
fn pinned_https_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db")).unwrap();
    let t = tls::load_or_create(&store, &["127.0.0.1".into()]).unwrap();
    let config = ServerConfig {
        tls_ca: Some((t.ca_pem.clone(), t.ca_hash.clone())),
        ..fast()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = App::new(Arc::new(store), config).unwrap();
    let port = rt.block_on(async {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        let l = tls::listener::Listener::new(tcp, t.config.clone(), tls::listener::Plain::Never)
            .unwrap();
        tokio::spawn(api::serve_on(app, l));
        port
    });
    let https = format!("https://127.0.0.1:{port}");
    let c = Client::pinned(&https, None, &t.ca_hash).unwrap();
    let tok = c
        .post("/v1/projects/1a5/registrationtokens", &json!({}))
        .unwrap();
    let token = tok["token"].as_str().unwrap();
    assert_eq!(token_pin(token), Some(t.ca_hash.as_str()));
    assert!(tok["registrationUrl"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    let ca = ureq::AgentBuilder::new()
        .tls_config(tls::pinned_client(&t.ca_hash).unwrap())
        .build()
        .get(&format!("{https}/v1/cacert"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    let wrong = Client::pinned(&https, None, &"0".repeat(64)).unwrap();
    assert!(wrong.get("/v1/projects/1a5").is_err());
    assert!(Client::new(&https, None).get("/v1/projects/1a5").is_err());
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// A server with a certificate from a second CA (a man in the middle with
/// his own CA): a client pinned to the cluster CA refuses it and says why.
#[test]
fn a_second_ca_is_refused_with_the_reason() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let real = tls::load_or_create(
        &SqliteStore::open(&d1.path().join("db")).unwrap(),
        &["127.0.0.1".into()],
    )
    .unwrap();
    let store = SqliteStore::open(&d2.path().join("db")).unwrap();
    let mitm = tls::load_or_create(&store, &["127.0.0.1".into()]).unwrap();
    assert_ne!(real.ca_hash, mitm.ca_hash);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let app = App::new(Arc::new(store), fast()).unwrap();
    let port = rt.block_on(async {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        let l = tls::listener::Listener::new(tcp, mitm.config.clone(), tls::listener::Plain::Never)
            .unwrap();
        tokio::spawn(api::serve_on(app, l));
        port
    });
    let https = format!("https://127.0.0.1:{port}");
    let err = Client::pinned(&https, None, &real.ca_hash)
        .unwrap()
        .get("/v1/projects/1a5")
        .unwrap_err()
        .to_string();
    assert!(err.contains("pinned cluster CA"), "{err}");
    assert!(err.contains(&mitm.ca_hash), "{err}");
    // Pinned to the CA it really has, the same server answers.
    assert!(Client::pinned(&https, None, &mitm.ca_hash)
        .unwrap()
        .get("/v1/projects/1a5")
        .is_ok());
    rt.shutdown_timeout(Duration::from_secs(1));
}
