//! `ros cluster up`: start the cluster role named by `ros.cluster` in the
//! merged cloud-config (what the `cluster` system service runs on a node).

use std::time::Duration;

use anyhow::{bail, Result};

use super::cluster::{agent_run, server, AgentOpts, ServerArgs};
use crate::config::types::{ClusterConfig, ClusterRole};
use crate::paths::Paths;

/// The registration URL from `server_url` and `token` (a full
/// `…/scripts/<token>` URL in `server_url` is taken as is). `server_url`
/// may name several servers separated by commas: the agent gets them all,
/// in order (see `ros cluster agent --url`).
pub fn registration_url(c: &ClusterConfig) -> Option<String> {
    let mut urls = Vec::new();
    for server in c.server_url.as_deref()?.split(',') {
        let server = server.trim().trim_end_matches('/');
        if server.is_empty() {
            continue;
        }
        if server.contains("/scripts/") {
            urls.push(server.to_string());
            continue;
        }
        let base = server.trim_end_matches("/v1").trim_end_matches("/v2-beta");
        urls.push(format!("{base}/v1/scripts/{}", c.token.as_deref()?));
    }
    (!urls.is_empty()).then(|| urls.join(","))
}

fn agent_opts(c: &ClusterConfig) -> AgentOpts {
    AgentOpts {
        ip: c.agent_ip.clone(),
        labels: c
            .labels
            .0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        hostname: None,
        docker_socket: None,
        interval: 2.0,
        usage_interval: 10.0,
        dns_listen: "169.254.169.250:53".into(),
        dns_upstreams: Vec::new(),
        metadata_listen: "169.254.169.250:80".into(),
        vxlan_port: 4789,
    }
}

fn server_args(c: &ClusterConfig) -> ServerArgs {
    ServerArgs {
        listen: c.listen.clone().unwrap_or_else(|| "0.0.0.0:8080".into()),
        // This server's own URL: the first of the list.
        advertise_url: c
            .server_url
            .as_deref()
            .and_then(|u| u.split(',').next())
            .map(|u| u.trim().to_string()),
        tls_listen: None,
        tls_sans: c.tls_sans.clone(),
        reconnecting_after: c.reconnecting_after.unwrap_or(30.0),
        disconnected_after: c.disconnected_after.unwrap_or(180.0),
        token: c.token.clone(),
        admin_password_file: None,
        insecure_open_api: false,
        // HTTPS on ros.cluster.listen; plain HTTP only to the node itself
        // (its CLI, its own agent with role `both`) unless asked for.
        insecure_http: c.insecure_http.unwrap_or(false),
        // Read from the cloud-config here, so the plain password is never
        // in argv or the environment of the server.
        admin_password: c.admin_password.clone(),
    }
}

/// Run the configured role (blocks while it runs).
pub fn up(paths: &Paths) -> Result<i32> {
    exit_on_term();
    let (_, cfg, _) = crate::config::disk::load(paths).resolve();
    let c = cfg.ros.cluster;
    match c.role {
        None => {
            eprintln!("ros.cluster.role is not set: this node is not clustered");
            Ok(0)
        }
        Some(ClusterRole::Server) => server(paths, server_args(&c)),
        Some(ClusterRole::Agent) => {
            let Some(url) = registration_url(&c) else {
                bail!("ros.cluster.role is agent but ros.cluster.server_url/token are not set");
            };
            agent_run(paths, url, agent_opts(&c))
        }
        Some(ClusterRole::Both) => {
            // The node's own agent joins with the server's join token.
            let token = super::cluster_secrets::join_token(paths, c.token.as_deref())?;
            let mut args = server_args(&c);
            args.token = Some(token.clone());
            let port = args.listen.rsplit(':').next().unwrap_or("8080").to_string();
            let local = format!("http://127.0.0.1:{port}");
            let p = paths.clone();
            std::thread::spawn(move || {
                if let Err(e) = server(&p, args) {
                    eprintln!("ros: cluster server: {e:#}");
                    std::process::exit(1);
                }
            });
            wait_for_local(&port);
            let url = format!("{local}/v1/scripts/{token}");
            agent_run(paths, url, agent_opts(&c))
        }
    }
}

/// Exit at once on SIGTERM/SIGINT: `ros cluster up` is PID 1 of the
/// `cluster` container, where an unhandled TERM is ignored and `docker
/// stop` waited its full timeout at every poweroff. Nothing is lost: the
/// store commits each change durably (SQLite WAL) and the agent's state is
/// rebuilt from the engine and the server when it starts again.
fn exit_on_term() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(mut sigs) => {
            std::thread::spawn(move || {
                if let Some(sig) = sigs.forever().next() {
                    eprintln!("ros cluster: signal {sig}: stopping");
                    std::process::exit(0);
                }
            });
        }
        Err(e) => eprintln!("ros cluster: cannot watch SIGTERM: {e}"),
    }
}

/// Wait (up to 10 s) until the local server accepts connections.
fn wait_for_local(port: &str) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_urls_from_config() {
        let mut c = ClusterConfig {
            server_url: Some("http://10.0.0.1:8080".into()),
            token: Some("T".into()),
            ..ClusterConfig::default()
        };
        assert_eq!(
            registration_url(&c).as_deref(),
            Some("http://10.0.0.1:8080/v1/scripts/T")
        );
        c.server_url = Some("http://a:8080, http://b:8080/".into());
        assert_eq!(
            registration_url(&c).as_deref(),
            Some("http://a:8080/v1/scripts/T,http://b:8080/v1/scripts/T")
        );
        c.server_url = Some("http://s:8080/v1/scripts/X".into());
        assert_eq!(
            registration_url(&c).as_deref(),
            Some("http://s:8080/v1/scripts/X")
        );
        c.server_url = None;
        assert_eq!(registration_url(&c), None);
    }

    #[test]
    fn booted_servers_serve_https_by_default() {
        let mut c = ClusterConfig {
            role: Some(ClusterRole::Server),
            tls_sans: vec!["cluster.example".into()],
            ..ClusterConfig::default()
        };
        let a = server_args(&c);
        assert!(!a.insecure_http, "plain HTTP only to the node itself");
        assert_eq!(a.listen, "0.0.0.0:8080");
        assert_eq!(a.tls_sans, ["cluster.example"]);
        c.insecure_http = Some(true);
        assert!(server_args(&c).insecure_http);
    }
}
