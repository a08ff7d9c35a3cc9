//! `ros cluster status`: what this node is in the cluster — its role from
//! `ros.cluster`, the server URL, its host id, and whether the agent is
//! connected (or why not), from the agent's status file; for a server
//! node, whether the local server answers.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;

use crate::cluster::agent::status::{self, AgentStatus};
use crate::cluster::model::now_ms;
use crate::config::types::ClusterRole;
use crate::paths::Paths;

/// An agent status older than this means the agent is not running.
const STALE_MS: i64 = 60_000;

/// Print the node's cluster status; exit 0 when what the config asks for
/// is up (server answering, agent connected), 1 otherwise.
pub fn run(paths: &Paths) -> Result<i32> {
    let (_, cfg, _) = crate::config::disk::load(paths).resolve();
    let c = cfg.ros.cluster;
    let agent = status::read(&paths.state_dir());
    let server = match c.role {
        Some(ClusterRole::Server | ClusterRole::Both) => {
            let listen = c.listen.clone().unwrap_or_else(|| "0.0.0.0:8080".into());
            Some((listen.clone(), local_server_answers(&listen)))
        }
        _ => None,
    };
    let (text, ok) = render(
        c.role,
        c.server_url.as_deref(),
        agent.as_ref(),
        server.as_ref().map(|(l, a)| (l.as_str(), *a)),
        now_ms(),
    );
    print!("{text}");
    Ok(i32::from(!ok))
}

fn local_server_answers(listen: &str) -> bool {
    let port = listen.rsplit(':').next().unwrap_or("8080");
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build()
        .get(&format!("http://127.0.0.1:{port}/ping"))
        .call()
        .is_ok()
}

fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 120 {
        format!("{s} s ago")
    } else if s < 7200 {
        format!("{} min ago", s / 60)
    } else {
        format!("{} h ago", s / 3600)
    }
}

/// The status text and whether everything asked for is up.
fn render(
    role: Option<ClusterRole>,
    server_url: Option<&str>,
    agent: Option<&AgentStatus>,
    server: Option<(&str, bool)>,
    now: i64,
) -> (String, bool) {
    let mut out = String::new();
    let Some(role) = role else {
        out.push_str(
            "role:       none (ros.cluster.role is not set: this node is not clustered)\n",
        );
        return (out, true);
    };
    let name = match role {
        ClusterRole::Server => "server",
        ClusterRole::Agent => "agent",
        ClusterRole::Both => "both (server and agent)",
    };
    let _ = writeln!(out, "role:       {name}");
    let mut ok = true;
    if let Some((listen, answers)) = server {
        if answers {
            let _ = writeln!(out, "server:     listening on {listen}, answering");
        } else {
            ok = false;
            let _ = writeln!(
                out,
                "server:     not answering on {listen} (see `ros service logs cluster`)"
            );
        }
    }
    if role == ClusterRole::Server {
        return (out, ok);
    }
    let _ = writeln!(
        out,
        "server url: {}",
        agent
            .map(|a| a.server.as_str())
            .or(server_url)
            .unwrap_or("(ros.cluster.server_url is not set)")
    );
    let Some(a) = agent else {
        let _ = writeln!(
            out,
            "agent:      not started yet (no status; see `ros service ps` and `ros service logs cluster`)"
        );
        return (out, false);
    };
    let _ = writeln!(
        out,
        "host id:    {}",
        a.host_id.as_deref().unwrap_or("(not registered yet)")
    );
    if now - a.written_ms > STALE_MS.max(status::REFRESH.as_millis() as i64 * 3) {
        let _ = writeln!(
            out,
            "agent:      not running (pid {} last wrote its status {}; see `ros service logs cluster`)",
            a.pid,
            ago(now - a.written_ms)
        );
        return (out, false);
    }
    match (&a.error, a.last_sync_ms) {
        (None, Some(t)) => {
            let _ = writeln!(out, "agent:      connected (last sync {})", ago(now - t));
        }
        (Some(e), last) => {
            ok = false;
            let since = last.map_or("never synced".to_string(), |t| {
                format!("last good sync {}", ago(now - t))
            });
            let _ = writeln!(out, "agent:      not connected: {e} ({since})");
        }
        (None, None) => {
            ok = false;
            let _ = writeln!(out, "agent:      starting");
        }
    }
    (out, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(error: Option<&str>, written: i64) -> AgentStatus {
        AgentStatus {
            server: "https://10.0.0.1:8443".into(),
            host_id: Some("1h3".into()),
            last_sync_ms: Some(1_000),
            error: error.map(Into::into),
            written_ms: written,
            pid: 42,
        }
    }

    #[test]
    fn says_role_server_host_and_connection() {
        let (t, ok) = render(None, None, None, None, 0);
        assert!(ok && t.contains("not clustered"), "{t}");
        let (t, ok) = render(
            Some(ClusterRole::Both),
            None,
            Some(&st(None, 2_000)),
            Some(("0.0.0.0:8080", true)),
            3_000,
        );
        assert!(ok, "{t}");
        assert!(t.contains("listening on 0.0.0.0:8080"), "{t}");
        assert!(
            t.contains("https://10.0.0.1:8443") && t.contains("1h3"),
            "{t}"
        );
        assert!(t.contains("connected (last sync 2 s ago)"), "{t}");
        let (t, ok) = render(
            Some(ClusterRole::Agent),
            Some("http://s:8080"),
            Some(&st(Some("sync failed: connection refused"), 9_000)),
            None,
            10_000,
        );
        assert!(!ok);
        assert!(
            t.contains("not connected: sync failed: connection refused"),
            "{t}"
        );
        let (t, ok) = render(
            Some(ClusterRole::Agent),
            Some("http://s:8080"),
            Some(&st(None, 0)),
            None,
            600_000,
        );
        assert!(!ok && t.contains("not running (pid 42"), "{t}");
        let (t, ok) = render(
            Some(ClusterRole::Agent),
            Some("http://s:8080"),
            None,
            None,
            0,
        );
        assert!(
            !ok && t.contains("http://s:8080") && t.contains("not started"),
            "{t}"
        );
        let (t, ok) = render(
            Some(ClusterRole::Server),
            None,
            None,
            Some(("0.0.0.0:8080", false)),
            0,
        );
        assert!(!ok && t.contains("not answering"), "{t}");
    }
}
