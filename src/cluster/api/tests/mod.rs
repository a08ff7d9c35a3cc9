//! API tests over a real server on an ephemeral port and a temp SQLite
//! store: CRUD, state-dependent actions, filters/sort/pagination, error
//! codes, auth on/off, project isolation, restart, registration and bad
//! input (including a property test over request decoding), and every
//! launch-config field from compose text to the agent's docker create body.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster::api::{self, App, ServerConfig};
use crate::cluster::auth::basic_header;
use crate::cluster::store::SqliteStore;

mod auth;
mod bad_input;
mod envview;
mod fidelity;
mod health;
mod launch;
mod lb;
mod lifecycle;
mod relay;
mod resources;
mod secure;
mod services;
mod subscribe;
mod tls;

/// A server running on its own runtime; dropping it stops the server.
pub struct Srv {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The app, for monitor passes.
    pub app: Arc<App>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Srv {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// Start an open server (`--insecure-open-api`) over the database at
/// `db`: these tests are about the API, not access control; `secure.rs`
/// starts secure servers with [`start_with`].
pub fn start(db: &Path, config: ServerConfig) -> Srv {
    start_with(
        db,
        ServerConfig {
            open_api: true,
            ..config
        },
    )
}

/// Start a server over the database at `db` with `config` as given.
pub fn start_with(db: &Path, config: ServerConfig) -> Srv {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = SqliteStore::open(db).unwrap();
    let app = App::new(Arc::new(store), config).unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(crate::cluster::server::serve(app.clone(), listener));
    Srv {
        url,
        app,
        rt: Some(rt),
    }
}

/// A response: status, `WWW-Authenticate`, `X-API-Schemas`, body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub challenge: Option<String>,
    pub schemas: Option<String>,
    pub body: Value,
}

impl Resp {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// Send a request with optional `(user, secret)` and raw body.
pub fn call(method: &str, url: &str, creds: Option<(&str, &str)>, body: Option<&[u8]>) -> Resp {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    let mut req = agent.request(method, url);
    if let Some((u, p)) = creds {
        req = req.set("Authorization", &basic_header(u, p));
    }
    let res = match body {
        Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
        None => req.call(),
    };
    let r = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = r.status();
    let challenge = r.header("WWW-Authenticate").map(str::to_string);
    let schemas = r.header("X-API-Schemas").map(str::to_string);
    let text = r.into_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    assert!(status < 500, "{method} {url} answered {status}: {body}");
    if status >= 400 {
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["status"], status, "{body}");
    }
    Resp {
        status,
        challenge,
        schemas,
        body,
    }
}

/// GET without credentials.
pub fn get(url: &str) -> Resp {
    call("GET", url, None, None)
}

/// POST JSON without credentials.
pub fn post(url: &str, v: Value) -> Resp {
    call("POST", url, None, Some(v.to_string().as_bytes()))
}

/// Fast test timings.
pub fn fast() -> ServerConfig {
    ServerConfig {
        reconnecting_after: Duration::from_millis(300),
        disconnected_after: Duration::from_millis(600),
        max_wait: Duration::from_millis(200),
        advertise_url: None,
        tls_ca: None,
        ca_proof: None,
        // These tests are about the API, not access control (tests/auth.rs
        // starts secure servers with `secure()`).
        open_api: true,
        join_token: None,
    }
}

/// Register a fake agent with `key` on a new token of `project`; returns
/// `(host id, access, secret)`.
pub fn register(url: &str, project: &str, key: &str, hostname: &str) -> (String, String, String) {
    let t = post(
        &format!("{url}/v1/projects/{project}/registrationtokens"),
        json!({}),
    );
    assert_eq!(t.status, 201, "{:?}", t.body);
    let token = t.body["token"].as_str().unwrap();
    let r = post(
        &format!("{url}/v1/agent/register"),
        json!({"token": token, "key": key, "facts": {"hostname": hostname, "agentIp": "10.0.0.9",
               "labels": {"zone": "a"}, "cpuCount": 2, "memoryMb": 1024}}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    (
        r.body["hostId"].as_str().unwrap().to_string(),
        r.body["accessKey"].as_str().unwrap().to_string(),
        r.body["secretKey"].as_str().unwrap().to_string(),
    )
}
