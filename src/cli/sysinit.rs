//! `ros sysinit`: the service manager process (a child of PID 1 at boot),
//! and `ros user-docker`: the command the `docker` system service runs.
//!
//! sysinit finds system-dockerd at `paths.system_docker_sock()`. On a node
//! PID 1 has started it: sysinit waits (up to `--wait` seconds) until it
//! answers. With `--start-dockerd`, or under `--root` when nothing answers
//! on the socket, sysinit starts system-dockerd itself, restarts it with
//! backoff if it dies, and stops it last at shutdown. Then: preload images,
//! bring every enabled service up in order, write
//! `/var/run/ros/sysinit.status`, log `ros VERSION started`, and respawn
//! dead services until SIGTERM/SIGINT, which stop the services in reverse
//! order (then the dockerd it started) before it exits 0. SIGHUP re-reads
//! the config and brings every service up again (recreating changed ones).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bollard::query_parameters::EventsOptions;
use clap::Args;
use futures_util::{Stream, StreamExt};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::config::engine::{dockerd_args, dockerd_env, DOCKERD};
use crate::config::{disk, CloudConfig};
use crate::paths::{Paths, VERSION};
use crate::system::dockerd::{wait_ready, Dockerd};
use crate::system::engine::{DockerEngine, Engine, LABEL_SERVICE};
use crate::system::manager::{remove_retired, Manager, Outcome, Respawner};
use crate::system::spec::Privilege;
use crate::system::{chain, preload, services};

/// `ros sysinit` options.
#[derive(Debug, Args)]
pub struct SysinitArgs {
    /// Start system-dockerd (default: only under --root when its socket
    /// does not answer; on a node PID 1 starts it).
    #[arg(long, conflicts_with = "no_start_dockerd")]
    pub start_dockerd: bool,
    /// Never start system-dockerd; wait for it instead.
    #[arg(long)]
    pub no_start_dockerd: bool,
    /// Seconds to wait for system-dockerd to answer.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub wait: u64,
    /// Seconds each service gets to stop at shutdown before SIGKILL.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub stop_timeout: u64,
    /// Bring everything up, then stop it all and exit (for benchmarks).
    #[arg(long, hide = true)]
    pub once: bool,
    /// At SIGTERM stop only the user engine and what waits for it; leave
    /// the rest to the caller's own SIGTERM (PID 1 at poweroff, which
    /// kills system-dockerd first).
    #[arg(long)]
    pub leave_foundation: bool,
}

/// A tokio runtime for one command: current-thread keeps sysinit small.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Run `ros sysinit`.
pub fn run(paths: &Paths, args: SysinitArgs) -> Result<i32> {
    runtime()?.block_on(sysinit(paths, args))
}

fn die_events(engine: &DockerEngine) -> Pin<Box<dyn Stream<Item = ()> + Send>> {
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("event".to_string(), vec!["die".to_string()]),
        ("label".to_string(), vec![LABEL_SERVICE.to_string()]),
    ]);
    let opts = EventsOptions {
        filters: Some(filters),
        ..Default::default()
    };
    let s = engine.client().events(Some(opts));
    // The stream ends (or errors) when dockerd goes away; the caller
    // re-subscribes.
    Box::pin(s.take_while(|r| std::future::ready(r.is_ok())).map(|_| ()))
}

async fn sysinit(paths: &Paths, args: SysinitArgs) -> Result<i32> {
    let t0 = Instant::now();
    let (_, cfg, problems) = disk::load(paths).resolve();
    for p in &problems {
        warn!("config: {p}");
    }
    let run_dir = paths.run_dir();
    let _ = std::fs::remove_dir_all(run_dir.join("stopped"));
    let _ = std::fs::remove_file(paths.sysinit_status());
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;

    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;

    let socket = paths.system_docker_sock();
    let answering = async {
        match DockerEngine::connect(&socket) {
            Ok(e) => e.ping().await.is_ok(),
            Err(_) => false,
        }
    };
    let start =
        args.start_dockerd || (!args.no_start_dockerd && paths.is_prefixed() && !answering.await);
    let deadline = Duration::from_secs(args.wait);
    let (mut dockerd, engine) = if start {
        let (d, e) = Dockerd::start(&cfg.ros.system_docker, paths, deadline)
            .await
            .context("system-dockerd")?;
        (Some(d), e)
    } else {
        info!(socket = %socket.display(), "waiting for system-dockerd");
        (
            None,
            wait_ready(&socket, deadline)
                .await
                .context("system-dockerd")?,
        )
    };
    let dockerd_ready = t0.elapsed();
    info!(
        ms = dockerd_ready.as_millis() as u64,
        "system-dockerd answering"
    );

    let report = preload::preload(&engine, paths).await;
    info!(
        loaded = report.loaded.len(),
        skipped = report.skipped.len(),
        failed = report.failed.len(),
        "preload done"
    );

    let stop_timeout = Duration::from_secs(args.stop_timeout);
    let mut manager = load_manager(paths, &cfg, &engine, stop_timeout);
    // the boot's services start from new containers (Manager::set_fresh)
    if let Some(m) = manager.as_mut() {
        m.set_fresh(true);
    }
    let failed = bring_up(paths, manager.as_ref()).await;
    if let Some(m) = manager.as_mut() {
        m.set_fresh(false);
    }
    // the old containers the boot moved aside go now: in the background
    // (a sysinit that stays), or before `--once` returns
    if args.once {
        remove_retired(&engine).await;
    } else {
        let retired = engine.clone();
        tokio::spawn(async move { remove_retired(&retired).await });
    }
    let all_up = t0.elapsed();
    info!(
        dockerd_ms = dockerd_ready.as_millis() as u64,
        total_ms = all_up.as_millis() as u64,
        failed,
        "ros {VERSION} started"
    );

    if !args.once {
        let mut respawner = Respawner::default();
        let mut events = die_events(&engine);
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: shutting down"); break; }
                _ = int.recv() => { info!("SIGINT: shutting down"); break; }
                _ = hup.recv() => {
                    info!("SIGHUP: reloading the config and bringing services up");
                    let (_, cfg, problems) = disk::load(paths).resolve();
                    for p in &problems {
                        warn!("config: {p}");
                    }
                    manager = load_manager(paths, &cfg, &engine, stop_timeout);
                    let failed = bring_up(paths, manager.as_ref()).await;
                    info!(failed, "reload done");
                }
                ev = events.next() => {
                    if ev.is_none() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        events = die_events(&engine);
                    }
                    if let Some(m) = &manager { m.respawn_pass(&mut respawner).await; }
                }
                _ = tick.tick() => {
                    if let Some(m) = &manager { m.respawn_pass(&mut respawner).await; }
                }
                exit = async {
                    match dockerd.as_mut() {
                        Some(d) => d.exited().await,
                        None => std::future::pending().await,
                    }
                } => {
                    warn!(status = %exit, "system-dockerd exited");
                    if let Some(d) = dockerd.as_mut() {
                        if let Err(e) = d.restart(deadline).await {
                            error!("{}", chain(&e));
                        }
                    }
                }
            }
        }
    }
    if let Some(m) = &manager {
        m.shutdown_leaving(args.leave_foundation && !args.once)
            .await;
    }
    if let Some(d) = dockerd {
        d.stop(Duration::from_secs(30)).await;
    }
    info!("sysinit stopped");
    Ok(0)
}

/// The manager for the enabled services of `cfg`; None (logged) when they
/// cannot be ordered, so a bad config never stops sysinit itself.
fn load_manager(
    paths: &Paths,
    cfg: &CloudConfig,
    engine: &DockerEngine,
    stop_timeout: Duration,
) -> Option<Manager<DockerEngine>> {
    let (services, include_problems) = services::enabled(paths, cfg);
    for p in &include_problems {
        error!("{p} (service left out)");
    }
    let privilege = Privilege::detect();
    if let Privilege::Fallback { missing } = &privilege {
        warn!(
            missing = missing.join(","),
            "the capability bounding set is incomplete: privileged services get every other capability instead of --privileged"
        );
    }
    let env = cfg.ros.environment.0.clone();
    match Manager::new(
        engine.clone(),
        paths.clone(),
        services,
        privilege,
        env,
        stop_timeout,
    ) {
        Ok(m) => Some(m),
        Err(e) => {
            error!("cannot order the services: {e}; no service was started");
            None
        }
    }
}

/// Bring every service up and write the status file; returns the number
/// of services that are not up.
async fn bring_up(paths: &Paths, manager: Option<&Manager<DockerEngine>>) -> usize {
    let mut status = String::new();
    let mut failed = 0;
    if let Some(m) = manager {
        for (name, o) in &m.up(None).await {
            let _ = writeln!(status, "{name}\t{o}");
            if !matches!(o, Outcome::Running | Outcome::Completed | Outcome::Created) {
                failed += 1;
            }
        }
    }
    let _ = disk::write_atomic(&paths.sysinit_status(), status.as_bytes(), 0o644);
    failed
}

/// Run `ros user-docker`: the user dockerd with the flags from
/// `ros.docker` (its socket `/var/run/docker.sock`, data `/var/lib/docker`,
/// all below the root), beside a containerd started first
/// (`user_engine::run_pair`, which returns dockerd's exit code); exec'd
/// alone when the config names the containerd or the roots in
/// `extra_args` (then only returns on error).
pub fn user_docker(paths: &Paths) -> Result<i32> {
    let (_, cfg, problems) = disk::load(paths).resolve();
    for p in &problems {
        warn!("config: {p}");
    }
    let args = dockerd_args(&cfg.ros.docker, paths);
    // A second boot: a store holding only the predefined networks goes,
    // so dockerd does not set up the default bridge only to delete and
    // recreate it (see `system::netstore`).
    match crate::config::engine::data_root(&cfg.ros.docker, paths) {
        Some(root) => {
            if let Some(done) = crate::system::netstore::reset_if_predefined_only(&root) {
                info!("user engine network store: {done}");
            }
        }
        None => info!("user engine network store: left alone (the data root is set in extra_args)"),
    }
    // The preloaded user images go in once dockerd answers: a background
    // `ros user-docker --preload` (through `sh -c '… &'`, so it is not
    // dockerd's child once dockerd replaces this process).
    if let (Ok(exe), true) = (std::env::current_exe(), paths.user_images_dir().is_dir()) {
        let root = paths.root().display().to_string();
        let _ = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("\"$0\" --root \"$1\" user-docker --preload &")
            .arg(exe)
            .arg(root)
            .status();
    }
    if let Some(cd) = crate::config::engine::companion(&cfg.ros.docker, paths) {
        return super::user_engine::run_pair(&cd, &args, &dockerd_env(&cfg.ros.docker));
    }
    info!(args = ?args, "starting the user dockerd");
    let err = std::process::Command::new(DOCKERD)
        .args(&args)
        .envs(dockerd_env(&cfg.ros.docker))
        .exec();
    Err(err).with_context(|| format!("cannot run {DOCKERD}"))
}

/// Where a node keeps its own preloaded user images (RancherOS's
/// `/var/lib/rancher/preload/docker`): `docker save` archives put on the
/// state disk (or a data drive mounted there) by the operator.
pub fn user_preload_dirs(paths: &Paths) -> Vec<std::path::PathBuf> {
    vec![
        paths.user_images_dir(),
        paths.state_dir().join("preload").join("docker"),
    ]
}

/// `ros user-docker --preload`: wait (up to 5 minutes) for the user engine,
/// then `docker load` every archive of [`user_preload_dirs`] whose content
/// was not loaded before (a stamp per content hash under
/// `/var/lib/ros/preload/user/`), so a second boot on a state disk loads
/// nothing and a changed archive is loaded again.
pub fn preload_user_images(paths: &Paths) -> Result<i32> {
    preload_into_user_engine(paths, &user_preload_dirs(paths))
}

/// `docker load` into the user engine (once it answers, up to 5 minutes)
/// every archive of `dirs` not loaded before (stamped by content hash).
pub fn preload_into_user_engine(paths: &Paths, dirs: &[std::path::PathBuf]) -> Result<i32> {
    let mut archives = Vec::new();
    for dir in dirs {
        archives.extend(crate::system::preload::archives(dir));
    }
    let stamps = paths.state_dir().join("preload").join("user");
    let sock = paths.docker_sock();
    let t = std::time::Instant::now();
    while !crate::init::stages::docker_answers(&sock) {
        if t.elapsed() > std::time::Duration::from_secs(300) {
            bail!(
                "the user engine did not answer on {} within 300s",
                sock.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let host = format!("unix://{}", sock.display());
    let mut failed = 0;
    for a in &archives {
        let hash = match crate::system::preload::file_hash(a) {
            Ok(h) => h,
            Err(e) => {
                warn!("cannot preload {}: cannot read it: {e}", a.display());
                failed += 1;
                continue;
            }
        };
        let done = stamps.join(format!("{hash}.done"));
        if done.exists() {
            info!("preload {}: already loaded", a.display());
            continue;
        }
        let out = std::process::Command::new("docker")
            .args(["-H", &host, "load", "-q", "-i"])
            .arg(a)
            .output()
            .context("cannot run docker")?;
        let text = String::from_utf8_lossy(if out.status.success() {
            &out.stdout
        } else {
            &out.stderr
        });
        if out.status.success() {
            info!("preloaded {}: {}", a.display(), text.trim());
            let _ = std::fs::create_dir_all(&stamps);
            if let Err(e) = std::fs::write(&done, a.display().to_string()) {
                warn!("cannot write {}: {e}", done.display());
            }
        } else {
            warn!("cannot preload {}: {}", a.display(), text.trim());
            failed += 1;
        }
    }
    Ok(i32::from(failed > 0))
}

/// Run `ros system-docker ARGS`: exec the docker CLI on system-docker's
/// socket. Only returns on error.
pub fn system_docker(paths: &Paths, args: &[std::ffi::OsString]) -> Result<i32> {
    let host = format!("unix://{}", paths.system_docker_sock().display());
    let err = std::process::Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .exec();
    Err(err).context("cannot run docker")
}
