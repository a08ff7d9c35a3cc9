//! `ros cluster …`: run the server or an agent, and talk to a server
//! (`hosts`, `tokens`, `keys create`, `projects`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::cluster::agent::{self, facts, AgentConfig};
use crate::cluster::api::{self, App, ServerConfig};
use crate::cluster::client::Client;
use crate::cluster::store::SqliteStore;
use crate::cluster::tls;
use crate::paths::Paths;

/// Output format.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    #[default]
    Table,
    /// The API's JSON.
    Json,
}

/// Where the server is and who we are (RANCHER_* names work too).
#[derive(Debug, Args)]
pub struct Conn {
    /// Server URL [env: ROS_URL, RANCHER_URL].
    #[arg(long, global = true)]
    url: Option<String>,
    /// API access key [env: ROS_ACCESS_KEY, RANCHER_ACCESS_KEY].
    #[arg(long, global = true)]
    access_key: Option<String>,
    /// API secret key [env: ROS_SECRET_KEY, RANCHER_SECRET_KEY].
    #[arg(long, global = true)]
    secret_key: Option<String>,
    /// SHA-256 of the cluster CA an `https://` server must present (the
    /// part after the dot of a registration token; the server logs it as
    /// `ca_sha256`) [env: ROS_CA_PIN].
    #[arg(long, global = true)]
    ca_pin: Option<String>,
    /// Project (environment) id.
    #[arg(long, global = true, default_value = "1a5")]
    project: String,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
}

fn env2(a: &str, b: &str) -> Option<String> {
    std::env::var(a)
        .ok()
        .or_else(|| std::env::var(b).ok())
        .filter(|s| !s.is_empty())
}

impl Conn {
    /// The project id (`1a5`).
    pub(crate) fn project(&self) -> &str {
        &self.project
    }

    /// A client for the server, with the key pair when one is given,
    /// trusting only the pinned CA when a pin is given.
    pub(crate) fn client(&self) -> Result<Client> {
        let url = self
            .url
            .clone()
            .or_else(|| env2("ROS_URL", "RANCHER_URL"))
            .unwrap_or_else(|| "http://localhost:8080".into());
        let ak = self
            .access_key
            .clone()
            .or_else(|| env2("ROS_ACCESS_KEY", "RANCHER_ACCESS_KEY"));
        let sk = self
            .secret_key
            .clone()
            .or_else(|| env2("ROS_SECRET_KEY", "RANCHER_SECRET_KEY"));
        let creds = match (&ak, &sk) {
            (Some(a), Some(s)) => Some((a.as_str(), s.as_str())),
            _ => None,
        };
        let pin = self
            .ca_pin
            .clone()
            .or_else(|| env2("ROS_CA_PIN", "ROS_CA_PIN"));
        Ok(match pin {
            Some(p) => {
                if p.len() != 64 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!("--ca-pin {p:?}: expected the 64 hex digits of a SHA-256");
                }
                Client::pinned(&url, creds, &p).context("TLS client")?
            }
            None => Client::new(&url, creds),
        })
    }
}

/// `ros cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Run the cluster server (REST API under /v1, store under the state dir).
    Server(ServerArgs),
    /// Run the agent on this host: register with URL, then run containers.
    Agent(AgentArgs),
    /// Join this host to a cluster: `ros cluster join URL` (= agent --url URL).
    Join {
        /// The registration URL from `ros cluster tokens`.
        url: String,
        #[command(flatten)]
        agent: AgentOpts,
    },
    /// List hosts.
    Hosts {
        #[command(flatten)]
        conn: Conn,
    },
    /// List registration tokens (with the command to add a host).
    Tokens {
        #[command(subcommand)]
        cmd: Option<TokensCmd>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
        #[command(flatten)]
        conn: Conn,
    },
    /// Start what `ros.cluster` in the cloud-config asks for: the server,
    /// the agent (server_url + token), or both (the agent then joins the
    /// local server). How a booted node starts its cluster role.
    Up,
    /// This node in the cluster: role, server URL, host id, and whether
    /// the agent is connected (or why not); exit 1 when something is down.
    Status,
    /// Print the generated first admin password of the server on this node
    /// (root only).
    AdminPassword,
    /// List projects (environments).
    Projects {
        #[command(flatten)]
        conn: Conn,
    },
}

/// `ros cluster tokens create`.
#[derive(Debug, Subcommand)]
pub enum TokensCmd {
    /// Create a registration token.
    Create,
}

/// `ros cluster keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create an API key for the project (the secret is shown once).
    Create {
        /// Key name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List API keys.
    List,
}

/// `ros cluster server` flags.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address and port to serve on: HTTPS with the cluster CA (generated
    /// on first start, kept in the store), and plain HTTP to clients on
    /// this machine only (see `--insecure-http`).
    #[arg(long, env = "ROS_CLUSTER_LISTEN", default_value = "0.0.0.0:8080")]
    pub(crate) listen: String,
    /// URL agents reach this server on (for registration URLs); taken from
    /// each request's Host header when unset.
    #[arg(long, env = "ROS_CLUSTER_ADVERTISE_URL")]
    pub(crate) advertise_url: Option<String>,
    /// Also serve HTTPS only (no plain HTTP at all) here (ADDR:PORT).
    #[arg(long, env = "ROS_CLUSTER_TLS_LISTEN")]
    pub(crate) tls_listen: Option<String>,
    /// Extra names or IPs for the server certificate (repeatable).
    #[arg(long = "tls-san", env = "ROS_CLUSTER_TLS_SANS", value_delimiter = ',')]
    pub(crate) tls_sans: Vec<String>,
    /// Seconds without a heartbeat before a host is `reconnecting`.
    #[arg(long, env = "ROS_CLUSTER_RECONNECTING_AFTER", default_value = "30")]
    pub(crate) reconnecting_after: f64,
    /// Seconds without a heartbeat before a host is `disconnected`.
    #[arg(long, env = "ROS_CLUSTER_DISCONNECTED_AFTER", default_value = "180")]
    pub(crate) disconnected_after: f64,
    /// The pre-shared join token agents register with (Default
    /// environment); generated and kept under the state dir when unset.
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// A file holding the first admin password (read at first start only;
    /// a random one is generated and logged when neither this nor
    /// ros.cluster.admin_password is given).
    #[arg(long)]
    pub(crate) admin_password_file: Option<std::path::PathBuf>,
    /// FOR TESTS ONLY: no access control until local auth is enabled;
    /// every response carries `X-Ros-Insecure: open-api`.
    #[arg(long)]
    pub(crate) insecure_open_api: bool,
    /// DEVELOPMENT ONLY: serve plain HTTP on `--listen` to every client,
    /// not only to this machine (HTTPS stays available on the same port).
    #[arg(long)]
    pub(crate) insecure_http: bool,
    /// The first admin password from the cloud-config (never a flag, so it
    /// does not show in the process list).
    #[arg(skip)]
    pub(crate) admin_password: Option<String>,
}

/// Agent flags shared by `agent` and `join`.
#[derive(Debug, Args)]
pub struct AgentOpts {
    /// IP other hosts reach this one on (like CATTLE_AGENT_IP).
    #[arg(long, env = "ROS_AGENT_IP")]
    pub(crate) ip: Option<String>,
    /// Host labels, `a=b,c=d` (like CATTLE_HOST_LABELS).
    #[arg(long, env = "ROS_HOST_LABELS", default_value = "")]
    pub(crate) labels: String,
    /// Hostname to report (default: the kernel's).
    #[arg(long, env = "ROS_AGENT_HOSTNAME")]
    pub(crate) hostname: Option<String>,
    /// User docker socket (default: below --root).
    #[arg(long, env = "ROS_DOCKER_SOCKET")]
    pub(crate) docker_socket: Option<String>,
    /// Heartbeat/poll interval in seconds.
    #[arg(long, env = "ROS_AGENT_INTERVAL", default_value = "2")]
    pub(crate) interval: f64,
    /// Per-container usage report interval in seconds.
    #[arg(long, env = "ROS_AGENT_USAGE_INTERVAL", default_value = "10")]
    pub(crate) usage_interval: f64,
    /// Where the DNS server listens (UDP and TCP), `off` for none.
    #[arg(
        long,
        env = "ROS_AGENT_DNS_LISTEN",
        default_value = "169.254.169.250:53"
    )]
    pub(crate) dns_listen: String,
    /// Where the DNS server forwards other names (`ip[:port]`, repeatable;
    /// default: the host's resolv.conf).
    #[arg(
        long = "dns-upstream",
        env = "ROS_AGENT_DNS_UPSTREAMS",
        value_delimiter = ','
    )]
    pub(crate) dns_upstreams: Vec<String>,
    /// Where the metadata service listens, `off` for none.
    #[arg(
        long,
        env = "ROS_AGENT_METADATA_LISTEN",
        default_value = "169.254.169.250:80"
    )]
    pub(crate) metadata_listen: String,
    /// UDP port of the managed network's VXLAN tunnels (every host of an
    /// environment must use the same; 4789 is IANA's VXLAN port).
    #[arg(long, env = "ROS_VXLAN_PORT", default_value = "4789")]
    pub(crate) vxlan_port: u16,
}

/// `ros cluster agent` flags.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Registration URL (`http://server:8080/v1/scripts/<token>`).
    #[arg(long, env = "ROS_REGISTRATION_URL")]
    url: String,
    #[command(flatten)]
    opts: AgentOpts,
}

/// `ip:port`, or `None` for `off`; the error names the flag.
fn listen_addr(s: &str, what: &str) -> Result<Option<std::net::SocketAddr>> {
    if s == "off" {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .with_context(|| format!("{what} {s:?}: expected ip:port or off"))
}

/// `ip` or `ip:port` (port 53 by default); the error names the flag.
fn upstream_addr(s: &str) -> Result<std::net::SocketAddr> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok((ip, 53).into());
    }
    s.parse()
        .with_context(|| format!("--dns-upstream {s:?}: expected ip or ip:port"))
}

fn secs(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .with_context(|| format!("{what} must be a positive number of seconds"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Run a `ros cluster` command.
pub fn run(paths: &Paths, cmd: ClusterCmd) -> Result<i32> {
    match cmd {
        ClusterCmd::Server(a) => server(paths, a),
        ClusterCmd::Agent(a) => agent_run(paths, a.url, a.opts),
        ClusterCmd::Join { url, agent } => agent_run(paths, url, agent),
        ClusterCmd::Up => super::cluster_up::up(paths),
        ClusterCmd::Status => super::cluster_status::run(paths),
        ClusterCmd::AdminPassword => super::cluster_secrets::show_admin_password(paths),
        ClusterCmd::Hosts { conn } => {
            let v = conn
                .client()?
                .get(&format!("/v1/projects/{}/hosts", conn.project))?;
            print(
                &conn,
                &v,
                &[
                    "id",
                    "hostname",
                    "state",
                    "agentState",
                    "agentIpAddress",
                    "labels",
                ],
            );
            Ok(0)
        }
        ClusterCmd::Tokens { cmd, conn } => {
            let path = format!("/v1/projects/{}/registrationtokens", conn.project);
            let c = conn.client()?;
            if let Some(TokensCmd::Create) = cmd {
                let v = c.post(&path, &json!({}))?;
                print(&conn, &json!({"data": [v]}), &["id", "state", "command"]);
                return Ok(0);
            }
            let v = c.get(&path)?;
            print(&conn, &v, &["id", "state", "command"]);
            Ok(0)
        }
        ClusterCmd::Keys { cmd, conn } => {
            let path = format!("/v1/projects/{}/apikeys", conn.project);
            let c = conn.client()?;
            match cmd {
                KeysCmd::Create { name } => {
                    let body = name.map_or(json!({}), |n| json!({"name": n}));
                    let v = c.post(&path, &body)?;
                    print(
                        &conn,
                        &json!({"data": [v]}),
                        &["id", "name", "publicValue", "secretValue"],
                    );
                }
                KeysCmd::List => {
                    let v = c.get(&path)?;
                    print(&conn, &v, &["id", "name", "state", "publicValue"]);
                }
            }
            Ok(0)
        }
        ClusterCmd::Projects { conn } => {
            let v = conn.client()?.get("/v1/projects")?;
            print(&conn, &v, &["id", "name", "state", "description"]);
            Ok(0)
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

fn print(conn: &Conn, v: &Value, cols: &[&str]) {
    if let Output::Json = conn.output {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    let rows: Vec<Vec<String>> = v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| cols.iter().map(|c| cell(&r[*c])).collect())
                .collect()
        })
        .unwrap_or_default();
    let header: Vec<String> = cols.iter().map(|c| c.to_ascii_uppercase()).collect();
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    for r in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

fn host_of(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let hostport = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("").to_string();
    }
    hostport
        .rsplit_once(':')
        .map_or(hostport, |(h, _)| h)
        .to_string()
}

/// This machine's host name and interface addresses (for the server
/// certificate: agents may reach the server on any of them).
fn local_names() -> Vec<String> {
    let mut names: Vec<String> = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .into_iter()
        .collect();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(sa) = a.address else { continue };
            if let Some(v4) = sa.as_sockaddr_in() {
                names.push(v4.ip().to_string());
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                // Link-local addresses need a zone; no client names them.
                if v6.ip().segments()[0] & 0xffc0 != 0xfe80 {
                    names.push(v6.ip().to_string());
                }
            }
        }
    }
    names
}

/// The cluster CA and server certificate for this server's names, with
/// the CA's PEM copied to `STATE/cluster/ca.pem` for tools on the node.
fn server_tls(paths: &Paths, store: &SqliteStore, a: &ServerArgs) -> Result<tls::ServerTls> {
    let mut names = a.tls_sans.clone();
    names.push(host_of(&a.listen));
    if let Some(l) = &a.tls_listen {
        names.push(host_of(l));
    }
    if let Some(u) = &a.advertise_url {
        names.push(host_of(u));
    }
    names.extend(local_names());
    names.retain(|n| n != "0.0.0.0" && n != "::" && !n.is_empty());
    let t = tls::load_or_create(store, &names).context("cannot set up TLS")?;
    let pem = paths.state_dir().join("cluster").join("ca.pem");
    if std::fs::read_to_string(&pem).ok().as_deref() != Some(t.ca_pem.as_str()) {
        std::fs::write(&pem, &t.ca_pem)
            .with_context(|| format!("cannot write {}", pem.display()))?;
    }
    Ok(t)
}

pub(crate) fn server(paths: &Paths, a: ServerArgs) -> Result<i32> {
    let listen: std::net::SocketAddr = a
        .listen
        .parse()
        .with_context(|| format!("--listen {:?}: expected ip:port", a.listen))?;
    let db = paths.state_dir().join("cluster").join("server.db");
    let store = Arc::new(
        SqliteStore::open(&db)
            .with_context(|| format!("cannot open the store {}", db.display()))?,
    );
    let tls = server_tls(paths, &store, &a)?;
    let join_token = super::cluster_secrets::join_token(paths, a.token.as_deref())?;
    if a.insecure_open_api {
        tracing::warn!(
            "--insecure-open-api: the API is open to anyone who reaches it (tests only)"
        );
    } else {
        let from_file = match &a.admin_password_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("--admin-password-file {}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let given = a.admin_password.clone().or(from_file);
        super::cluster_secrets::first_admin(paths, store.as_ref(), given.as_deref())?;
    }
    let plain = if a.insecure_http {
        tracing::warn!("--insecure-http: plain HTTP is served to every client (development only)");
        tls::listener::Plain::Anyone
    } else {
        tls::listener::Plain::Loopback
    };
    let config = ServerConfig {
        tls_ca: Some((tls.ca_pem.clone(), tls.ca_hash.clone())),
        ca_proof: Some(tls::ca_proof(&join_token, &tls.ca_hash).context("CA proof")?),
        open_api: a.insecure_open_api,
        join_token: Some(join_token),
        reconnecting_after: secs(a.reconnecting_after, "--reconnecting-after")?,
        disconnected_after: secs(a.disconnected_after, "--disconnected-after")?,
        advertise_url: a.advertise_url,
        ..ServerConfig::default()
    };
    if config.disconnected_after <= config.reconnecting_after {
        bail!("--disconnected-after must be longer than --reconnecting-after");
    }
    let app = App::new(store, config).context("cannot seed the store")?;
    runtime()?.block_on(async move {
        if let Some(l) = &a.tls_listen {
            let tcp = tokio::net::TcpListener::bind(l)
                .await
                .with_context(|| format!("cannot listen on {l}"))?;
            let listener =
                tls::listener::Listener::new(tcp, tls.config.clone(), tls::listener::Plain::Never)
                    .context("tls listener")?;
            tracing::info!(listen = %l, "cluster server HTTPS-only listener ready");
            let app = app.clone();
            tokio::spawn(async move {
                if let Err(e) = api::serve_on(app, listener).await {
                    tracing::error!(error = %e, "tls server failed");
                }
            });
        }
        let tcp = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let listener =
            tls::listener::Listener::new(tcp, tls.config.clone(), plain).context("listener")?;
        tracing::info!(
            listen = %listen, store = %db.display(), ca_sha256 = %tls.ca_hash,
            names = %tls.names.join(","), plain_http = ?plain,
            "cluster server ready (HTTPS with the cluster CA)"
        );
        crate::cluster::server::serve_listener(app, listener)
            .await
            .context("server failed")
    })?;
    Ok(0)
}

pub(crate) fn agent_run(paths: &Paths, url: String, o: AgentOpts) -> Result<i32> {
    let labels = facts::parse_labels(&o.labels).map_err(anyhow::Error::msg)?;
    let cfg = AgentConfig {
        url,
        root: paths.root().to_path_buf(),
        state_dir: paths.state_dir(),
        docker_socket: o
            .docker_socket
            .unwrap_or_else(|| paths.docker_sock().display().to_string()),
        ip: o.ip,
        hostname: o.hostname,
        labels,
        interval: secs(o.interval, "--interval")?,
        usage_interval: secs(o.usage_interval, "--usage-interval")?,
        dns_listen: listen_addr(&o.dns_listen, "--dns-listen")?,
        dns_upstreams: o
            .dns_upstreams
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| upstream_addr(s))
            .collect::<Result<_>>()?,
        metadata_listen: listen_addr(&o.metadata_listen, "--metadata-listen")?,
        vxlan_port: o.vxlan_port,
    };
    agent::parse_registration_url(&cfg.url)?;
    runtime()?.block_on(agent::run(cfg))?;
    Ok(0)
}
