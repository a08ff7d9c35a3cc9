//! Jobs that run inside the system containers: `ros netconf`,
//! `ros console-init`, `ros cloud-init-execute`, `ros udev-settle`.
//!
//! Each reads the merged cloud-config (the same layers as on the host: the
//! containers mount /var/lib/ros) and drives real tools: busybox `udhcpc`
//! and `ip`, `agetty`, dropbear, `udevadm`. The decisions are pure
//! functions with tests; the process plumbing stays thin.

use std::process::Command;

use crate::config::{disk, CloudConfig};
use crate::paths::Paths;

pub mod cloudinit;
pub mod console;
pub mod netconf;

/// Set once SIGTERM or SIGINT arrives. The long-running jobs run as PID 1
/// of their container, where a signal without a handler is ignored: without
/// this, `docker stop` waited out its whole timeout (10 s) and killed them,
/// which made up most of a poweroff (issue 16).
pub fn stop_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
            eprintln!("cannot watch signal {sig}: {e}");
        }
    }
    flag
}

/// Sleep for `d` in short steps; true when `flag` was set meanwhile.
pub fn sleep_unless(flag: &std::sync::atomic::AtomicBool, d: std::time::Duration) -> bool {
    let end = std::time::Instant::now() + d;
    loop {
        if flag.load(std::sync::atomic::Ordering::Relaxed) {
            return true;
        }
        let now = std::time::Instant::now();
        if now >= end {
            return false;
        }
        std::thread::sleep((end - now).min(std::time::Duration::from_millis(100)));
    }
}

/// Stop child processes at shutdown: TERM, up to a second's grace, KILL.
pub fn stop_children<'a>(children: impl IntoIterator<Item = &'a mut std::process::Child>) {
    let mut live: Vec<&mut std::process::Child> = children.into_iter().collect();
    for c in &live {
        if let Ok(pid) = i32::try_from(c.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let end = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while std::time::Instant::now() < end {
        live.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        if live.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for c in live {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Errors of the guest jobs.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// A command could not run or failed.
    #[error("{cmd}: {why}")]
    Command {
        /// The command line.
        cmd: String,
        /// What went wrong.
        why: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The merged config, problems printed as warnings.
pub fn config(paths: &Paths) -> CloudConfig {
    let (_, cfg, problems) = disk::load(paths).resolve();
    for p in problems.iter().filter(|p| !p.unknown_key) {
        eprintln!("ros: config: {p}");
    }
    cfg
}

/// Run a command to completion; failure is an error naming it.
pub fn run(argv: &[&str]) -> Result<(), GuestError> {
    let cmd = argv.join(" ");
    let (prog, args) = argv.split_first().ok_or(GuestError::Command {
        cmd: cmd.clone(),
        why: "empty".into(),
    })?;
    match Command::new(prog).args(args).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(GuestError::Command {
            cmd,
            why: s.to_string(),
        }),
        Err(e) => Err(GuestError::Command {
            cmd,
            why: e.to_string(),
        }),
    }
}

/// `ros udev-settle`: start udevd, replay the kernel's uevents
/// (coldplug), wait for the queue to drain, stop the temporary udevd.
pub fn udev_settle() -> Result<(), GuestError> {
    run(&["/lib/systemd/systemd-udevd", "--daemon"])?;
    run(&["udevadm", "trigger", "--action=add", "--type=subsystems"])?;
    run(&["udevadm", "trigger", "--action=add", "--type=devices"])?;
    let settled = run(&["udevadm", "settle", "--timeout=60"]);
    let _ = run(&["udevadm", "control", "--exit"]);
    settled
}
