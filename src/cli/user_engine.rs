//! `ros user-docker` with a containerd beside the user dockerd: start
//! containerd, then dockerd pointed at it (`--containerd`), and stay as
//! the pair's parent.
//!
//! dockerd 20.10 would start its containerd itself, but only once its own
//! start-up is done; started first, containerd pages in and boots while
//! dockerd does (see `config::engine::companion`). What dockerd's own
//! supervision gave is kept here:
//! - containerd ending on its own is started again (1 s apart; more than
//!   five times in a minute ends the pair: the service's restart policy
//!   takes over);
//! - SIGTERM/SIGINT stop dockerd first, then containerd, then this
//!   process ends with dockerd's code; SIGHUP and SIGUSR1 go to dockerd
//!   (reload its config, dump its stacks);
//! - dockerd ending on its own stops containerd and ends this process
//!   with dockerd's code (the service is restarted as before).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use tracing::{info, warn};

use crate::config::engine::{Companion, CONTAINERD, DOCKERD};
use crate::sys::process::{self, Signals};

/// containerd restarts allowed within [`RESTART_WINDOW`].
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// How long containerd gets to stop once dockerd is gone.
const CONTAINERD_GRACE: Duration = Duration::from_secs(10);

fn spawn(program: &str, args: &[String], env: &[(String, String)]) -> Result<i32> {
    let mut cmd = Command::new(program);
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    process::unblock_in_child(&mut cmd);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    Ok(i32::try_from(child.id()).unwrap_or(-1))
}

/// Run containerd and dockerd (`dockerd_args` plus `--containerd`) until
/// dockerd ends; returns dockerd's exit code.
pub fn run_pair(cd: &Companion, dockerd_args: &[String], env: &[(String, String)]) -> Result<i32> {
    let signals = Signals::new().context("cannot take the signals")?;
    cd.write()
        .with_context(|| format!("cannot write {}", cd.config.display()))?;
    let mut containerd = Some(spawn(CONTAINERD, &cd.args(), env)?);
    let mut args = dockerd_args.to_vec();
    args.push(cd.dockerd_flag());
    info!(args = ?args, containerd = %cd.socket.display(), "starting the user dockerd beside its containerd");
    let dockerd = spawn(DOCKERD, &args, env)?;
    let mut restarts: Vec<Instant> = Vec::new();
    let mut restart_at: Option<Instant> = None;
    let mut stopping = false;
    loop {
        let wait = restart_at.map_or(Duration::from_secs(5), |t| {
            t.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10))
        });
        match signals.wait(wait) {
            Some(s @ (Signal::SIGTERM | Signal::SIGINT)) => {
                if !stopping {
                    info!(signal = %s, "stopping the user dockerd, then its containerd");
                }
                stopping = true;
                process::kill(dockerd, Signal::SIGTERM);
            }
            Some(s @ (Signal::SIGHUP | Signal::SIGUSR1)) => process::kill(dockerd, s),
            _ => {}
        }
        for r in process::reap_all() {
            if r.pid == dockerd {
                if !stopping {
                    warn!(
                        code = r.code,
                        "the user dockerd ended; stopping its containerd"
                    );
                }
                if let Some(pid) = containerd.take() {
                    stop(&signals, pid);
                }
                return Ok(r.code);
            }
            if Some(r.pid) == containerd {
                containerd = None;
                if stopping {
                    continue;
                }
                let now = Instant::now();
                restarts.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
                restarts.push(now);
                if restarts.len() > MAX_RESTARTS {
                    warn!(
                        code = r.code,
                        "containerd ended {} times within {}s; stopping the user dockerd",
                        restarts.len(),
                        RESTART_WINDOW.as_secs()
                    );
                    stopping = true;
                    process::kill(dockerd, Signal::SIGTERM);
                } else {
                    warn!(code = r.code, "containerd ended; starting it again in 1s");
                    restart_at = Some(now + Duration::from_secs(1));
                }
            }
        }
        if restart_at.is_some_and(|t| t <= Instant::now()) && !stopping {
            restart_at = None;
            match spawn(CONTAINERD, &cd.args(), env) {
                Ok(pid) => containerd = Some(pid),
                Err(e) => {
                    warn!("{e:#}; stopping the user dockerd");
                    stopping = true;
                    process::kill(dockerd, Signal::SIGTERM);
                }
            }
        }
    }
}

/// SIGTERM `pid`, then SIGKILL after [`CONTAINERD_GRACE`].
fn stop(signals: &Signals, pid: i32) {
    process::kill(pid, Signal::SIGTERM);
    let end = Instant::now() + CONTAINERD_GRACE;
    loop {
        if process::reap_all().iter().any(|r| r.pid == pid) || !process::alive(pid) {
            return;
        }
        if Instant::now() >= end {
            warn!("containerd did not stop; killing it");
            process::kill(pid, Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(200));
            process::reap_all();
            return;
        }
        signals.wait(Duration::from_millis(100));
    }
}
