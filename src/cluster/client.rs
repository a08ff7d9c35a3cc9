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
    /// The pinned TLS configuration (for websockets, which ureq does not
    /// open).
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// A byte stream a websocket runs over (plain TCP or TLS).
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A websocket to the server.
pub type WebSocket = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

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
            tls: None,
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
        let tls = crate::cluster::tls::pinned_client(pin)?;
        c.agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .tls_config(tls.clone())
            .build();
        c.tls = Some(tls);
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

    /// Open a websocket to `path` (which starts with `/`) with this
    /// client's credentials, over TLS (pinned) for an `https://` server.
    pub async fn websocket(&self, path: &str) -> Result<WebSocket, ClientError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}{path}", self.server);
        let fail = |reason: String| ClientError::Transport {
            url: url.clone(),
            reason,
        };
        let (tls, rest) = match (
            self.server.strip_prefix("https://"),
            self.server.strip_prefix("http://"),
        ) {
            (Some(r), _) => (true, r),
            (_, Some(r)) => (false, r),
            _ => {
                return Err(fail(
                    "the server URL is neither http:// nor https://".into(),
                ))
            }
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = match authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        let addr = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:{}", if tls { 443 } else { 80 })
        };
        let tcp = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(&addr),
        )
        .await
        .map_err(|_| fail("connect timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
        let stream: Box<dyn Io> = if tls {
            let config = match &self.tls {
                Some(c) => c.clone(),
                None => return Err(fail("https:// needs the cluster CA pin".into())),
            };
            let name = rustls_pki_types::ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
            .map_err(|e| fail(e.to_string()))?;
            let s = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| fail(e.to_string()))?;
            Box::new(s)
        } else {
            Box::new(tcp)
        };
        let ws_url = format!(
            "{}{}",
            if tls { "wss://" } else { "ws://" },
            &url[url.find("://").map_or(0, |i| i + 3)..]
        );
        let mut req = ws_url
            .into_client_request()
            .map_err(|e| fail(e.to_string()))?;
        if let Some(a) = &self.auth {
            let v = a.parse().map_err(|_| fail("bad credentials".into()))?;
            req.headers_mut().insert("Authorization", v);
        }
        let (ws, _) = tokio_tungstenite::client_async(req, stream)
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(r) => ClientError::Api {
                    status: r.status().as_u16(),
                    code: String::new(),
                    message: String::from_utf8_lossy(r.body().as_deref().unwrap_or_default())
                        .into_owned(),
                },
                e => fail(e.to_string()),
            })?;
        Ok(ws)
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
