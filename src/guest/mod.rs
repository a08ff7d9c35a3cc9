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
