//! Who this agent is to the server: the registration URL it was given
//! (server root, token, CA pin), the identity it keeps under the state
//! directory (so a restart is the same host), and registering until the
//! server answers.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{blocking, AgentConfig, AgentError};
use crate::cluster::client::Client;
use crate::cluster::protocol::{HostFacts, RegisterRequest, RegisterResponse};
use crate::cluster::tls;

/// What the agent persists: who it is and how to authenticate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Identity {
    /// Server root URL.
    pub server: String,
    /// The agent's own key (sent at registration; same key → same host).
    pub key: String,
    /// Registration answer, once registered.
    pub registration: Option<RegisterResponse>,
}

/// The CA pin carried in a token (`<secret>.<sha256-hex>`), if any.
pub fn token_pin(token: &str) -> Option<&str> {
    token
        .rsplit_once('.')
        .map(|(_, h)| h)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `(server root, token)` from a registration URL.
pub fn parse_registration_url(url: &str) -> Result<(String, String), AgentError> {
    let bad = || AgentError::BadUrl(url.to_string());
    let (server, token) = url
        .trim_end_matches('/')
        .rsplit_once("/scripts/")
        .ok_or_else(bad)?;
    let server = server.trim_end_matches("/v1").trim_end_matches("/v2-beta");
    let server = match server.find("/projects/") {
        Some(i) => server[..i]
            .trim_end_matches("/v1")
            .trim_end_matches("/v2-beta"),
        None => server,
    };
    if token.is_empty()
        || token.contains('/')
        || !(server.starts_with("http://") || server.starts_with("https://"))
    {
        return Err(bad());
    }
    Ok((server.to_string(), token.to_string()))
}

/// The server named by a registration URL.
#[derive(Clone, Debug)]
pub(crate) struct Server {
    /// Root URL (`http://server:8080`).
    pub root: String,
    /// The registration token.
    pub token: String,
    /// The CA pin the token carries, if any.
    pub pin: Option<String>,
    /// Every server root the agent may use, in the order given; `root` is
    /// the one in use.
    pub roots: Vec<String>,
}

impl Server {
    /// The server of registration URL `url`, or of several separated by
    /// commas or spaces (servers sharing one store, tried in order: the
    /// agent moves to the next when one stops answering). The token and CA
    /// pin are those of the first.
    pub(crate) fn from_url(url: &str) -> Result<Server, AgentError> {
        let mut urls = url
            .split([',', ' ', '\n', '\t'])
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let first = urls.next().unwrap_or_default();
        let (root, token) = parse_registration_url(first)?;
        let mut roots = vec![root.clone()];
        for u in urls {
            let (r, _) = parse_registration_url(u)?;
            if !roots.contains(&r) {
                roots.push(r);
            }
        }
        let pin = token_pin(&token).map(str::to_string);
        Ok(Server {
            root,
            token,
            pin,
            roots,
        })
    }

    /// Move to the next server of the list (after the last, the first);
    /// false when there is only one.
    pub(crate) fn failover(&mut self) -> bool {
        if self.roots.len() < 2 {
            return false;
        }
        let at = self.roots.iter().position(|r| *r == self.root).unwrap_or(0);
        self.root = self.roots[(at + 1) % self.roots.len()].clone();
        tracing::warn!(server = %self.root, "trying the next server");
        true
    }

    /// `host[:port]` of each root URL, the one in use first.
    pub(crate) fn host_parts(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&self.root)
            .chain(self.roots.iter().filter(|r| **r != self.root))
            .map(|r| {
                r.split("://")
                    .nth(1)
                    .unwrap_or("")
                    .split('/')
                    .next()
                    .unwrap_or("")
            })
    }

    /// A client of the server, pinned to the CA when the token carries a
    /// pin.
    pub(crate) fn client(&self, creds: Option<(&str, &str)>) -> Result<Client, AgentError> {
        Ok(match &self.pin {
            Some(p) => Client::pinned(&self.root, creds, p)?,
            None => Client::new(&self.root, creds),
        })
    }
}

fn identity_path(cfg: &AgentConfig) -> PathBuf {
    cfg.state_dir.join("cluster").join("agent.json")
}

/// Write `id` under the state directory, owner-only, whole or not at all.
pub(crate) fn save(cfg: &AgentConfig, id: &Identity) -> Result<(), AgentError> {
    let path = identity_path(cfg);
    let err = |source| AgentError::Identity {
        path: path.display().to_string(),
        source,
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(id).unwrap_or_default();
    // It holds the agent's secret: owner-only, written whole or not at all.
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?
    };
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

/// The saved identity, or a new one for `server` (an identity saved with
/// any server of the list is the same cluster: servers share one store).
pub(crate) fn load_identity(cfg: &AgentConfig, server: &Server) -> Identity {
    std::fs::read_to_string(identity_path(cfg))
        .ok()
        .and_then(|s| serde_json::from_str::<Identity>(&s).ok())
        .filter(|i| server.roots.contains(&i.server))
        .unwrap_or_else(|| Identity {
            server: server.root.clone(),
            key: crate::cluster::auth::random_token(64),
            registration: None,
        })
}

/// The SHA-256 of the CA of an `https://` server reached with a token
/// that carries no pin (the pre-shared `ros.cluster.token`): the CA
/// certificate is fetched without checking (nothing secret is sent), and
/// trusted only when the server proves with it that it knows the token
/// ([`tls::ca_proof`]). `Err((refused, why))`: refused is true when the
/// server answered but failed the proof.
fn learn_pin(root: &str, token: &str) -> Result<String, (bool, String)> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .tls_config(tls::unverified_client().map_err(|e| (false, e.to_string()))?)
        .build();
    let url = format!("{root}/v1/cacert");
    let r = agent.get(&url).call().map_err(|e| {
        (
            false,
            format!("cannot fetch the cluster CA from {url}: {e}"),
        )
    })?;
    let proof = r.header(tls::PROOF_HEADER).unwrap_or_default().to_string();
    let pem = r
        .into_string()
        .map_err(|e| (false, format!("cannot read {url}: {e}")))?;
    let der = tls::pem_der(&pem)
        .ok_or_else(|| (true, format!("{url} did not answer with a certificate")))?;
    let hash = tls::sha256_hex(&der);
    let want = tls::ca_proof(token, &hash).map_err(|e| (false, e.to_string()))?;
    if proof.is_empty() || !crate::cluster::auth::same_secret(&proof, &want) {
        return Err((
            true,
            format!(
                "refusing the server at {root}: it presents CA {hash} but cannot prove that it \
                 knows the join token ({} {}) — a man in the middle, or a server with another \
                 token. Check ros.cluster.token, or give the token with the CA pin \
                 (<token>.<sha256 of the CA DER>) to trust one CA only",
                tls::PROOF_HEADER,
                if proof.is_empty() { "missing" } else { "wrong" }
            ),
        ));
    }
    Ok(hash)
}

/// Make sure an `https://` server has a CA pin: the token's, or one
/// learned with [`learn_pin`] (retried every `cfg.interval` while the
/// server cannot be reached or fails the proof).
async fn ensure_pin(
    cfg: &AgentConfig,
    server: &mut Server,
    status: &mut super::status::StatusFile,
) -> Result<(), AgentError> {
    while server.pin.is_none() && server.root.starts_with("https://") {
        let (root, token) = (server.root.clone(), server.token.clone());
        let r = tokio::task::spawn_blocking(move || learn_pin(&root, &token))
            .await
            .map_err(|_| AgentError::Task)?;
        match r {
            Ok(pin) => {
                tracing::info!(server = %server.root, ca_sha256 = %pin,
                    "the server proved it knows the join token: pinned its CA");
                server.pin = Some(pin);
            }
            Err((refused, why)) => {
                if refused {
                    tracing::error!("{why}");
                } else {
                    tracing::warn!(error = %why, "cannot fetch the cluster CA; retrying");
                }
                status.record(Err(why));
                server.failover();
                tokio::time::sleep(cfg.interval).await;
            }
        }
    }
    Ok(())
}

/// The registration of `identity`: the saved one, or a new one from the
/// server (retried every `cfg.interval` until it answers, then saved).
/// True in the second element when it is new.
pub(crate) async fn register(
    cfg: &AgentConfig,
    server: &mut Server,
    identity: &mut Identity,
    facts: &HostFacts,
    status: &mut super::status::StatusFile,
) -> Result<(RegisterResponse, bool), AgentError> {
    ensure_pin(cfg, server, status).await?;
    loop {
        if let Some(r) = &identity.registration {
            return Ok((r.clone(), false));
        }
        let req = RegisterRequest {
            token: server.token.clone(),
            key: identity.key.clone(),
            facts: facts.clone(),
        };
        let anon = server.client(None)?;
        match blocking(move || {
            anon.call::<RegisterResponse>("POST", "/v1/agent/register", Some(&req))
        })
        .await
        {
            Ok(r) => {
                tracing::info!(host = %r.host_id, project = %r.project_id, "registered");
                identity.registration = Some(r.clone());
                save(cfg, identity)?;
                return Ok((r, true));
            }
            Err(e) => {
                tracing::warn!(error = ?e, "registration failed; retrying");
                status.record(Err(format!("cannot register with {}: {e}", server.root)));
                server.failover();
                tokio::time::sleep(cfg.interval).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_urls() {
        assert_eq!(
            parse_registration_url("http://10.0.0.1:8080/v1/scripts/abc").unwrap(),
            ("http://10.0.0.1:8080".to_string(), "abc".to_string())
        );
        assert_eq!(
            parse_registration_url("http://s:8080/v1/projects/1a5/scripts/T/").unwrap(),
            ("http://s:8080".to_string(), "T".to_string())
        );
        assert!(parse_registration_url("http://s:8080/v1/hosts").is_err());
        assert!(parse_registration_url("s:8080/v1/scripts/x").is_err());
        let mut s = Server::from_url(
            "http://a:8080/v1/scripts/T, http://b:8080/v1/scripts/T http://a:8080/v1/scripts/T",
        )
        .unwrap();
        assert_eq!(s.roots, ["http://a:8080", "http://b:8080"]);
        assert_eq!((s.root.as_str(), s.token.as_str()), ("http://a:8080", "T"));
        assert!(s.failover());
        assert_eq!(s.root, "http://b:8080");
        assert!(s.failover());
        assert_eq!(s.root, "http://a:8080");
        assert!(Server::from_url("http://a:8080/v1/scripts/T,nope").is_err());
        let mut one = Server::from_url("http://a:8080/v1/scripts/T").unwrap();
        assert!(!one.failover());
        let pin = "ab".repeat(32);
        assert_eq!(token_pin(&format!("secret.{pin}")), Some(pin.as_str()));
        assert_eq!(token_pin("secret"), None);
        assert_eq!(token_pin("a.b"), None);
    }

    #[test]
    fn server_of_a_registration_url() {
        let pin = "ab".repeat(32);
        let s = Server::from_url(&format!("https://10.0.0.1:8443/v1/scripts/t.{pin}")).unwrap();
        assert_eq!(s.root, "https://10.0.0.1:8443");
        assert_eq!(s.host_parts().next().unwrap(), "10.0.0.1:8443");
        assert_eq!(s.pin.as_deref(), Some(pin.as_str()));
        let s = Server::from_url("http://server/v1/scripts/t").unwrap();
        assert_eq!(
            (s.host_parts().next().unwrap(), s.pin.as_deref()),
            ("server", None)
        );
    }
}
