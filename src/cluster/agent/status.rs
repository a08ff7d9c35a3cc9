//! What `ros cluster status` reads about the agent: a small JSON file under
//! the state directory (`cluster/agent-status.json`) that the sync loop
//! rewrites when the connection changes (connected ↔ failing, another host
//! id) and at most every [`REFRESH`] while it stays the same, so a healthy
//! agent does not write to the state disk on every long-poll.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cluster::model::now_ms;

/// Longest time between two writes of an unchanged status.
pub const REFRESH: Duration = Duration::from_secs(15);

/// The agent's connection as last seen by its sync loop.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// The server this agent talks to.
    pub server: String,
    /// Its host id there, once registered.
    pub host_id: Option<String>,
    /// When the last sync succeeded (ms since the epoch).
    pub last_sync_ms: Option<i64>,
    /// Why the last sync failed (None after a success).
    pub error: Option<String>,
    /// When this status was written (ms since the epoch).
    pub written_ms: i64,
    /// The agent's process id.
    pub pid: u32,
}

/// The status file below a state directory.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("cluster").join("agent-status.json")
}

/// Read the status file, if any.
pub fn read(state_dir: &Path) -> Option<AgentStatus> {
    serde_json::from_slice(&std::fs::read(path(state_dir)).ok()?).ok()
}

/// Keeps the status file up to date from the sync loop.
#[derive(Debug)]
pub(crate) struct StatusFile {
    path: PathBuf,
    server: String,
    last: Option<(Option<String>, Option<String>, Instant)>,
}

impl StatusFile {
    pub(crate) fn new(state_dir: &Path, server: &str) -> Self {
        StatusFile {
            path: path(state_dir),
            server: server.to_string(),
            last: None,
        }
    }

    /// A sync round ended: `Ok(host id)` or `Err(why)`.
    pub(crate) fn record(&mut self, outcome: Result<&str, String>) {
        let (host, error) = match outcome {
            Ok(h) => (Some(h.to_string()), None),
            Err(e) => (self.last.as_ref().and_then(|l| l.0.clone()), Some(e)),
        };
        if let Some((h, e, at)) = &self.last {
            if *h == host && *e == error && at.elapsed() < REFRESH {
                return;
            }
        }
        let now = now_ms();
        let prev_sync = read_sync(&self.path);
        let st = AgentStatus {
            server: self.server.clone(),
            host_id: host.clone(),
            last_sync_ms: if error.is_none() {
                Some(now)
            } else {
                prev_sync
            },
            error: error.clone(),
            written_ms: now,
            pid: std::process::id(),
        };
        let tmp = self.path.with_extension("json.tmp");
        let written = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, serde_json::to_vec(&st).unwrap_or_default()))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::debug!("cannot write {}: {e}", self.path.display());
        }
        self.last = Some((host, error, Instant::now()));
    }
}

fn read_sync(p: &Path) -> Option<i64> {
    serde_json::from_slice::<AgentStatus>(&std::fs::read(p).ok()?)
        .ok()?
        .last_sync_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_on_change_and_kept_last_sync_on_error() {
        let d = tempfile::tempdir().unwrap();
        let mut f = StatusFile::new(d.path(), "https://s:8443");
        assert!(read(d.path()).is_none());
        f.record(Ok("1h4"));
        let a = read(d.path()).unwrap();
        assert_eq!(a.host_id.as_deref(), Some("1h4"));
        assert!(a.error.is_none() && a.last_sync_ms.is_some());
        // The same outcome again within REFRESH is not written.
        std::fs::remove_file(path(d.path())).unwrap();
        f.record(Ok("1h4"));
        assert!(read(d.path()).is_none());
        // A failure is written at once and keeps the last good sync.
        f.record(Err("connection refused".into()));
        let b = read(d.path()).unwrap();
        assert_eq!(b.error.as_deref(), Some("connection refused"));
        assert_eq!(b.host_id.as_deref(), Some("1h4"));
        assert_eq!(b.server, "https://s:8443");
    }
}
