//! system-dockerd lifecycle for `ros sysinit` when nobody else runs it
//! (under `--root`, or with `--start-dockerd`): create its own bridge,
//! start it with the flags from `ros.system_docker`, wait until it answers,
//! restart it with backoff when it dies, stop it cleanly.
//!
//! On a booted node PID 1 starts system-dockerd itself with the same flags
//! ([`crate::config::engine::dockerd_args`]); sysinit then only connects.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tracing::{info, warn};

use super::engine::{DockerEngine, Engine};
use crate::config::engine::{dockerd_env, system_dockerd_args, DOCKERD};
use crate::config::types::DockerConfig;
use crate::paths::{Paths, SYSTEM_BRIDGE, SYSTEM_BRIDGE_CIDR};

/// Errors running system-dockerd.
#[derive(Debug, thiserror::Error)]
pub enum DockerdError {
    /// The bridge could not be created.
    #[error("cannot create bridge {bridge}: {message}")]
    Bridge {
        /// The bridge.
        bridge: String,
        /// What `ip` said.
        message: String,
    },
    /// dockerd could not be started.
    #[error("cannot start {binary}")]
    Spawn {
        /// The binary.
        binary: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// dockerd did not answer in time.
    #[error("dockerd on {socket} did not answer within {secs} s (log: {log})")]
    Timeout {
        /// Its socket.
        socket: PathBuf,
        /// How long we waited.
        secs: u64,
        /// Its log file.
        log: PathBuf,
    },
    /// dockerd exited while we waited for it.
    #[error("dockerd exited with {status} before answering (log: {log})")]
    Exited {
        /// The exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
    },
    /// A connection problem.
    #[error(transparent)]
    Engine(#[from] super::engine::EngineError),
}

fn run_ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Make sure the engine's bridge exists. On a node `docker-sys` is created
/// with [`SYSTEM_BRIDGE_CIDR`]; any other bridge, and every bridge under
/// `--root` (a development machine: no side effects on its network), must
/// already exist.
pub fn ensure_bridge(name: &str, paths: &Paths) -> Result<(), DockerdError> {
    if Path::new("/sys/class/net").join(name).exists() {
        return Ok(());
    }
    let err = |message: String| DockerdError::Bridge {
        bridge: name.to_string(),
        message,
    };
    if name != SYSTEM_BRIDGE || paths.is_prefixed() {
        return Err(err(format!(
            "it does not exist; create it first (ip link add {name} type bridge; ip addr add CIDR dev {name}; ip link set {name} up)"
        )));
    }
    run_ip(&["link", "add", name, "type", "bridge"]).map_err(err)?;
    run_ip(&["addr", "add", SYSTEM_BRIDGE_CIDR, "dev", name]).map_err(err)?;
    run_ip(&["link", "set", name, "up"]).map_err(err)
}

/// Wait until the engine at `socket` answers, up to `deadline`.
pub async fn wait_ready(socket: &Path, deadline: Duration) -> Result<DockerEngine, DockerdError> {
    let start = Instant::now();
    loop {
        if socket.exists() {
            let engine = DockerEngine::connect(socket)?;
            if engine.ping().await.is_ok() {
                return Ok(engine);
            }
        }
        if start.elapsed() > deadline {
            return Err(DockerdError::Timeout {
                socket: socket.to_path_buf(),
                secs: deadline.as_secs(),
                log: PathBuf::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A system-dockerd this process started.
pub struct Dockerd {
    child: Child,
    cfg: DockerConfig,
    paths: Paths,
    restarts: u32,
}

impl Dockerd {
    /// The log file of system-dockerd.
    pub fn log_path(paths: &Paths) -> PathBuf {
        paths.log_dir().join("system-docker.log")
    }

    fn spawn(cfg: &DockerConfig, paths: &Paths) -> Result<Child, DockerdError> {
        if let Some(bridge) = cfg.bridge.as_deref() {
            if bridge != "none" {
                ensure_bridge(bridge, paths)?;
            }
        }
        for dir in [paths.log_dir(), paths.at("/var/run"), paths.state_dir()] {
            let _ = std::fs::create_dir_all(dir);
        }
        let log = Self::log_path(paths);
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
        };
        let spawn_err = |source| DockerdError::Spawn {
            binary: DOCKERD.to_string(),
            source,
        };
        let (out, err) = (open().map_err(spawn_err)?, open().map_err(spawn_err)?);
        let args = system_dockerd_args(cfg, paths);
        info!(args = ?args, "starting system-dockerd");
        let mut cmd = Command::new(DOCKERD);
        cmd.args(&args)
            .envs(dockerd_env(cfg))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(false);
        // Its own process group: a terminal's ^C reaches sysinit, which then
        // stops the services before it stops dockerd.
        cmd.process_group(0);
        cmd.spawn().map_err(spawn_err)
    }

    /// Start system-dockerd and wait (up to `deadline`) until it answers.
    pub async fn start(
        cfg: &DockerConfig,
        paths: &Paths,
        deadline: Duration,
    ) -> Result<(Dockerd, DockerEngine), DockerdError> {
        let child = Self::spawn(cfg, paths)?;
        let mut d = Dockerd {
            child,
            cfg: cfg.clone(),
            paths: paths.clone(),
            restarts: 0,
        };
        let engine = d.wait_answering(deadline).await?;
        Ok((d, engine))
    }

    async fn wait_answering(&mut self, deadline: Duration) -> Result<DockerEngine, DockerdError> {
        let socket = self.paths.system_docker_sock();
        tokio::select! {
            r = wait_ready(&socket, deadline) => r.map_err(|e| match e {
                DockerdError::Timeout { socket, secs, .. } => DockerdError::Timeout {
                    socket, secs, log: Self::log_path(&self.paths),
                },
                e => e,
            }),
            status = self.child.wait() => Err(DockerdError::Exited {
                status: status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                log: Self::log_path(&self.paths),
            }),
        }
    }

    /// Resolves when dockerd exits.
    pub async fn exited(&mut self) -> String {
        match self.child.wait().await {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        }
    }

    /// Restart after an exit, waiting the backoff first (1 s doubling to 30 s).
    pub async fn restart(&mut self, deadline: Duration) -> Result<DockerEngine, DockerdError> {
        let delay = Duration::from_secs(1u64 << self.restarts.min(5)).min(Duration::from_secs(30));
        self.restarts += 1;
        warn!(
            attempt = self.restarts,
            delay_s = delay.as_secs(),
            "system-dockerd died: restarting"
        );
        tokio::time::sleep(delay).await;
        self.child = Self::spawn(&self.cfg, &self.paths)?;
        self.wait_answering(deadline).await
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM, wait up to `timeout`, then SIGKILL.
    pub async fn stop(mut self, timeout: Duration) {
        let Some(pid) = self.child.id() else { return };
        let pid = Pid::from_raw(pid as i32);
        info!(pid = pid.as_raw(), "stopping system-dockerd");
        let _ = kill(pid, Signal::SIGTERM);
        if tokio::time::timeout(timeout, self.child.wait())
            .await
            .is_err()
        {
            warn!(
                "system-dockerd did not stop in {} s: killing it",
                timeout.as_secs()
            );
            let _ = kill(pid, Signal::SIGKILL);
            let _ = self.child.wait().await;
        }
        // dockerd leaves its `netns/default` bind mount (and, when killed,
        // overlay mounts) behind: detach whatever remains below its roots.
        let roots: Vec<PathBuf> = [&self.cfg.exec_root, &self.cfg.data_root]
            .into_iter()
            .flatten()
            .map(|p| self.paths.at(p))
            .collect();
        for m in mounts_below(&roots) {
            if let Err(e) = nix::mount::umount2(m.as_path(), nix::mount::MntFlags::MNT_DETACH) {
                warn!(mount = %m.display(), "cannot unmount: {e}");
            }
        }
    }
}

/// Mount points below any of `roots`, deepest first.
fn mounts_below(roots: &[PathBuf]) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        // mountinfo escapes spaces and the like as octal; our roots have none.
        .map(PathBuf::from)
        .filter(|m| roots.iter().any(|r| m.starts_with(r)))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    v.dedup();
    v
}
