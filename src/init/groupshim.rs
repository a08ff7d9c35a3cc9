//! The system containers' shared shim, started ahead by PID 1.
//!
//! Every system container joins one runc v2 shim (`ros-shim`, group
//! [`SHIM_GROUP`]). The first container start of a boot used to start that
//! shim on its way: containerd runs the shim's `start`, a Go program that
//! starts the shim's server, a second Go program, and both start cold
//! under TCG (~0.9 s from `network`'s start request to its shim serving,
//! on the way to `login:`). PID 1 runs that same `start` here, beside the
//! engine's own start, the way containerd 1.6 runs it (same binary on the
//! same `PATH`, same flags and environment, a bundle directory holding a
//! `config.json` naming the group and a `log` FIFO), so the group's
//! socket answers before dockerd does and every container start, the first
//! too, finds it running.
//!
//! The bundle is PID 1's own (under the engine's exec root, not in
//! containerd's state: containerd never loads it as a task). The server
//! writes its log to the bundle's `log` FIFO for as long as it runs; a
//! thread of PID 1 copies it to system-docker's log (as containerd copies
//! the first container's). Nothing here is needed: when the shim cannot be
//! started ahead, the first container start starts it as before.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::paths::{SHIM_DIR, SHIM_GROUP, SHIM_GROUP_KEY};
use crate::sys::process;

/// The containerd namespace dockerd keeps its containers in.
const NAMESPACE: &str = "moby";
/// The task id the shim is started with (it names no task).
const ID: &str = "ros-system-shim";

/// Start the group's shim for the containerd at `containerd` (its gRPC
/// socket; `publish` is the containerd binary), with its bundle in `dir`
/// and its log copied to `log`. Returns the pid of the `start` process,
/// which exits once the server runs (exit 0) or fails.
pub fn start(
    dir: &Path,
    containerd: &Path,
    publish: &str,
    debug: bool,
    log: &Path,
) -> Result<i32, String> {
    let at = |e: std::io::Error, p: &Path| format!("{}: {e}", p.display());
    std::fs::create_dir_all(dir).map_err(|e| at(e, dir))?;
    let spec = dir.join("config.json");
    let text = serde_json::json!({ "annotations": { SHIM_GROUP_KEY: SHIM_GROUP } }).to_string();
    std::fs::write(&spec, text).map_err(|e| at(e, &spec))?;
    let fifo = dir.join("log");
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("{}: {e}", fifo.display()))?;
    // Read and write: the open never waits for a writer, the reads never
    // see the end, and the server's open for writing never waits either.
    let reader = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_CLOEXEC)
        .open(&fifo)
        .map_err(|e| at(e, &fifo))?;
    let open_log = || OpenOptions::new().create(true).append(true).open(log);
    let (out, err, copy_to) = match (open_log(), open_log(), open_log()) {
        (Ok(a), Ok(b), Ok(c)) => (Stdio::from(a), Stdio::from(b), c),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return Err(at(e, log)),
    };
    std::thread::Builder::new()
        .name("shim-log".into())
        .spawn(move || copy(reader, copy_to))
        .map_err(|e| format!("cannot start the shim's log thread: {e}"))?;
    let sock = containerd.display().to_string();
    let mut args = vec![
        "-namespace".to_string(),
        NAMESPACE.into(),
        "-address".into(),
        sock.clone(),
        "-publish-binary".into(),
        publish.into(),
        "-id".into(),
        ID.into(),
    ];
    if debug {
        args.push("-debug".into());
    }
    args.push("start".into());
    let path = format!("{SHIM_DIR}:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut cmd = Command::new(Path::new(SHIM_DIR).join("containerd-shim-runc-v2"));
    cmd.args(&args)
        .current_dir(dir)
        .env("PATH", path)
        .env("GOMAXPROCS", "2")
        .env("TTRPC_ADDRESS", format!("{sock}.ttrpc"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    process::unblock_in_child(&mut cmd);
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("{SHIM_DIR}/containerd-shim-runc-v2: {e}"))?;
    Ok(i32::try_from(child.id()).unwrap_or(-1))
}

/// Copy the shim's log lines to the engine's log for as long as PID 1
/// runs. The FIFO is the shim's standard error: with no reader its next
/// line would kill it (a Go program dies of EPIPE on fd 2), and every
/// system container with it. So a line the log cannot take is dropped,
/// and the reading goes on.
fn copy(mut from: std::fs::File, mut to: std::fs::File) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(n @ 1..) => {
                let _ = to.write_all(&buf[..n]);
            }
            // never the end (PID 1 holds the write side too)
            Ok(0) => std::thread::sleep(std::time::Duration::from_secs(1)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => std::thread::sleep(std::time::Duration::from_secs(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_names_the_group_and_the_log_is_copied() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bundle");
        let log = tmp.path().join("engine.log");
        // no shim at SHIM_DIR on a build host: the spawn fails, after the
        // bundle and the log's copier are in place
        let r = start(
            &dir,
            Path::new("/run/x/containerd.sock"),
            "/usr/bin/containerd",
            false,
            &log,
        );
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(spec["annotations"][SHIM_GROUP_KEY], SHIM_GROUP);
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata(dir.join("log"))
            .unwrap()
            .file_type()
            .is_fifo());
        if Path::new(SHIM_DIR).join("containerd-shim-runc-v2").exists() {
            return;
        }
        assert!(r.unwrap_err().contains("containerd-shim-runc-v2"));
        let mut w = OpenOptions::new()
            .write(true)
            .open(dir.join("log"))
            .unwrap();
        w.write_all(b"a shim line\n").unwrap();
        let t = std::time::Instant::now();
        while std::fs::read_to_string(&log).unwrap_or_default() != "a shim line\n" {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "not copied"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
