//! A small blocking HTTP client for the cluster API, shared by the CLI and
//! the agent (which runs it on tokio's blocking pool).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::auth::basic_header;

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error object.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
    /// The server could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The answer was not the expected JSON.
    #[error("unexpected answer from {url}")]
    Decode {
        /// The URL.
        url: String,
    },
}

impl ClientError {
    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    server: String,
    auth: Option<String>,
}

impl Client {
    /// A client of `server` (`http://host:8080`, with or without `/v1`).
    pub fn new(server: &str, creds: Option<(&str, &str)>) -> Client {
        let server = server
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .trim_end_matches("/v2-beta")
            .to_string();
        Client {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .build(),
            server,
            auth: creds.map(|(a, s)| basic_header(a, s)),
        }
    }

    /// The same client (made by [`Client::new`]) with a longer request
    /// timeout, for calls the server answers slowly (image pulls).
    pub fn with_timeout(mut self, t: Duration) -> Client {
        self.agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(t)
            .build();
        self
    }

    /// A client that trusts only the cluster CA with SHA-256 `pin` (for
    /// `https://` servers; plain `http://` ignores it).
    pub fn pinned(
        server: &str,
        creds: Option<(&str, &str)>,
        pin: &str,
    ) -> Result<Client, crate::cluster::tls::TlsError> {
        let mut c = Client::new(server, creds);
        c.agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .tls_config(crate::cluster::tls::pinned_client(pin)?)
            .build();
        Ok(c)
    }

    /// The server root URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `method path` with an optional JSON body; `path` starts with `/`.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.server);
        let mut req = self.agent.request(method, &url);
        if let Some(a) = &self.auth {
            req = req.set("Authorization", a);
        }
        let res = match body {
            Some(b) => {
                let text = serde_json::to_string(b)
                    .map_err(|_| ClientError::Decode { url: url.clone() })?;
                req.set("Content-Type", "application/json")
                    .send_string(&text)
            }
            None => req.call(),
        };
        match res {
            Ok(r) => r
                .into_string()
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .ok_or(ClientError::Decode { url }),
            Err(ureq::Error::Status(status, r)) => {
                let text = r.into_string().unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                // Not the API's error object (e.g. the listener's "this
                // port serves HTTPS"): the text itself says what is wrong.
                let message = match v["message"].as_str() {
                    Some(m) => m.to_string(),
                    None => text.trim().chars().take(300).collect(),
                };
                Err(ClientError::Api {
                    status,
                    code: v["code"].as_str().unwrap_or("").to_string(),
                    message,
                })
            }
            Err(e) => Err(ClientError::Transport {
                url,
                reason: e.to_string(),
            }),
        }
    }

    /// GET a JSON document.
    pub fn get(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.call("GET", path, None::<&()>)
    }

    /// POST a JSON body.
    pub fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.call("POST", path, Some(body))
    }
}
