//! `containerd-shim-runc-v2` as system-containerd finds it (PID 1 puts
//! [`ros::paths::SHIM_DIR`] first in its `PATH`): every system container
//! joins one shim instead of starting one each.
//!
//! containerd runs `containerd-shim-runc-v2 … start` in the container's
//! bundle for every new task. The runc v2 shim reads the bundle's
//! `config.json` there, and when its annotations name a group
//! (`io.containerd.runc.v2.group`, what containerd's CRI uses for a pod)
//! it hands back the group's running shim instead of starting a new one.
//! Docker 20.10 cannot set OCI annotations, so this program adds the
//! group to `config.json` before it runs the real shim with the same
//! arguments, standard input and directory.
//!
//! Why: each shim is a Go daemon with ~2 MB of its own memory and a Go
//! start (~0.1 s of CPU under TCG) on the way of every container start; a
//! node runs ~10 system containers. What it costs: one shim for all of
//! them, so a shim that dies takes every system container with it (their
//! restart policies bring them back). Any error here leaves the container
//! a shim of its own, said on stderr (containerd's log).
//!
//! A second saving: for a container that joins a group whose shim runs,
//! the real shim's `start` only works out the group's socket, finds it
//! answering, writes its address to the bundle's `address` file and prints
//! it — a Go program's start (~0.2 s of CPU under TCG) to print a line.
//! This program does those steps itself ([`running_group_shim`]) and runs
//! the real shim only when the group has none yet (or anything differs
//! from what containerd 1.6's runc v2 shim does there).
//!
//! A third: containerd runs the shim's `delete` after every task's
//! removal (a clean-up that finds nothing left in the normal case); this
//! program does its steps itself ([`delete`]), without a Go start beside
//! the next container's start.
//!
//! Small on purpose (of the `ros` library only a path): it runs at every
//! container start.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use ros::paths::{SHIM_GROUP as GROUP, SHIM_GROUP_KEY as GROUP_KEY};

/// Add the group to the OCI spec at `path` unless it names one already.
/// Written to a temporary file and renamed over it.
fn join_group(path: &Path) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut spec: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let root = spec
        .as_object_mut()
        .ok_or_else(|| format!("{}: not a JSON object", path.display()))?;
    let notes = root
        .entry("annotations")
        .or_insert_with(|| serde_json::Value::Object(Default::default()))
        .as_object_mut()
        .ok_or_else(|| format!("{}: annotations: not an object", path.display()))?;
    if notes.contains_key(GROUP_KEY) {
        return Ok(());
    }
    notes.insert(GROUP_KEY.into(), GROUP.into());
    let tmp = path.with_extension("json.ros-shim");
    let out = serde_json::to_vec(&spec).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(&tmp, out).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Say `msg` where containerd shows a shim's words: the bundle's `log`
/// FIFO (containerd copies it to its own log), else the kernel log. Never
/// standard error: containerd takes `start`'s whole output, standard error
/// included, as the shim's address.
fn say(msg: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let line = format!("ros-shim: {msg}\n");
    let open = |p: &str| {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(p)
    };
    for p in ["log", "/dev/kmsg"] {
        if open(p)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .is_ok()
        {
            return;
        }
    }
}

/// The runc v2 shim's group annotations, in the order it reads them.
const GROUP_KEYS: [&str; 2] = [GROUP_KEY, "io.kubernetes.cri.sandbox-id"];
/// Where containerd 1.6's shims put their sockets (`defaults.DefaultStateDir`
/// + `/s`).
const SOCKET_DIR: &str = "/run/containerd/s";

/// The value of flag `name` in a Go `flag` command line (`-name value`,
/// `--name value`, `-name=value`), up to the first argument that is not a
/// flag (the action). `-debug` and `-v` take no value.
fn flag(args: &[OsString], name: &str) -> Option<String> {
    let mut it = args.iter().map(|a| a.to_str());
    while let Some(Some(a)) = it.next() {
        // the first argument that is no flag ends them
        let f = a.strip_prefix("--").or_else(|| a.strip_prefix('-'))?;
        let (key, inline) = match f.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (f, None),
        };
        let value = match inline {
            Some(v) => Some(v),
            None if key == "debug" || key == "v" => None,
            None => it.next().flatten().map(str::to_string),
        };
        if key == name {
            return value;
        }
    }
    None
}

/// Go's `filepath.Join` of absolute `parts` (joined, then cleaned: no empty
/// or `.` elements, `..` taken back).
fn go_join(parts: &[&str]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for el in parts.iter().flat_map(|p| p.split('/')) {
        match el {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            e => out.push(e),
        }
    }
    format!("/{}", out.join("/"))
}

/// The socket address the runc v2 shim serves a group on: its
/// `shim.SocketAddress(containerd's address, namespace, group)`.
fn group_socket(dir: &str, containerd: &str, namespace: &str, group: &str) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        go_join(&[containerd, namespace, group]).as_bytes(),
    );
    format!("unix://{dir}/{}", hex::encode(d.as_ref()))
}

/// The group named in the OCI spec at `path`, if any.
fn group_of(path: &Path) -> Option<String> {
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    GROUP_KEYS
        .iter()
        .find_map(|k| spec["annotations"][k].as_str().map(str::to_string))
}

/// Does a process accept connections on the unix socket at `path`? Not
/// blocking (a full backlog counts as no), as the shim's 100 ms dial.
fn answers(path: &str) -> bool {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let Ok(fd) = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return false;
    };
    let Ok(addr) = UnixAddr::new(path) else {
        return false;
    };
    use std::os::fd::AsRawFd;
    connect(fd.as_raw_fd(), &addr).is_ok()
}

/// The shim's `WriteAddress`: `.address` created exclusively and synced,
/// then renamed to `address`, in the bundle (the working directory).
fn write_address(dir: &Path, address: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(".address");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_SYNC)
        .mode(0o666)
        .open(&tmp)?;
    f.write_all(address.as_bytes())?;
    drop(f);
    std::fs::rename(&tmp, dir.join("address"))
}

/// `start` for a container whose group's shim runs already: the group's
/// socket address (written to the bundle's `address`), as the real shim
/// hands it back; `None` when the real shim must run. `dir`: where the
/// shims' sockets are ([`SOCKET_DIR`]).
fn running_group_shim(args: &[OsString], bundle: &Path, dir: &str) -> Option<String> {
    let namespace = flag(args, "namespace")?;
    let containerd = flag(args, "address")?;
    let group = group_of(&bundle.join("config.json"))?;
    if namespace.is_empty() || containerd.is_empty() {
        return None;
    }
    let address = group_socket(dir, &containerd, &namespace, &group);
    if !answers(address.trim_start_matches("unix://")) {
        return None;
    }
    match write_address(bundle, &address) {
        Ok(()) => Some(address),
        Err(e) => {
            say(&format!("{}: {e}", bundle.join("address").display()));
            let _ = std::fs::remove_file(bundle.join(".address"));
            None
        }
    }
}

/// Where the runc v2 shim keeps its runtime's state unless the task's
/// options name a root (`process.RuncRoot`).
const RUNC_ROOT: &str = "/run/containerd/runc";

/// The task options the runc v2 shim kept in the bundle
/// (`options.json`, the JSON of its `Options` message); `None` when it
/// cannot be read.
fn task_options(bundle: &Path) -> Option<serde_json::Value> {
    match std::fs::read(bundle.join("options.json")) {
        Ok(text) => serde_json::from_slice(&text).ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(serde_json::json!({})),
        Err(_) => None,
    }
}

/// Append a protobuf varint.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The shim API's `DeleteResponse { pid = 1; exit_status = 2; exited_at =
/// 3 (google.protobuf.Timestamp { seconds = 1; nanos = 2 }) }`, encoded.
fn delete_response(pid: u32, status: u32, at: std::time::Duration) -> Vec<u8> {
    let mut ts = Vec::new();
    if at.as_secs() != 0 {
        ts.push(0x08);
        varint(&mut ts, at.as_secs());
    }
    if at.subsec_nanos() != 0 {
        ts.push(0x10);
        varint(&mut ts, u64::from(at.subsec_nanos()));
    }
    let mut out = Vec::new();
    if pid != 0 {
        out.push(0x08);
        varint(&mut out, u64::from(pid));
    }
    if status != 0 {
        out.push(0x10);
        varint(&mut out, u64::from(status));
    }
    out.push(0x1a);
    varint(&mut out, ts.len() as u64);
    out.extend(ts);
    out
}

/// `delete`, which containerd 1.6 runs after every task's removal (its
/// clean-up once the task's shim connection closes) and after a shim
/// died: the runc v2 shim's steps (`manager.Stop`) without its Go start
/// (~0.2 s of CPU under TCG, beside the next container's start): the
/// runtime's `delete --force`, the rootfs unmounted, the init pid read;
/// problems are warnings on standard error, as there. Returns the answer
/// for standard output, or `None` when the real shim must do it (flags
/// or options this does not know).
fn delete(args: &[OsString], cwd: &Path, warn: &mut dyn FnMut(String)) -> Option<Vec<u8>> {
    let namespace = flag(args, "namespace").filter(|n| !n.is_empty())?;
    let id = flag(args, "id").filter(|i| !i.is_empty() && !i.contains('/'))?;
    let bundle = cwd.parent()?.join(&id);
    let runtime = std::fs::read_to_string(bundle.join("runtime")).ok()?;
    let opts = task_options(&bundle)?;
    // what the shim would pass on and this does not: the real one
    let set = |k: &str| {
        !matches!(
            &opts[k],
            serde_json::Value::Null | serde_json::Value::Bool(false)
        )
    };
    if set("systemd_cgroup") || set("criu_path") {
        return None;
    }
    let root = opts["root"]
        .as_str()
        .filter(|r| !r.is_empty())
        .unwrap_or(RUNC_ROOT);
    let state = go_join(&[root, &namespace]);
    let log = bundle.join("log.json");
    match Command::new(&runtime)
        .arg("--root")
        .arg(&state)
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "delete", "--force", &id])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => warn(format!(
            "failed to remove runc container: {}: {}",
            String::from_utf8_lossy(&o.stderr).trim(),
            o.status
        )),
        Err(e) => warn(format!("failed to remove runc container: {runtime}: {e}")),
    }
    let rootfs = bundle.join("rootfs");
    loop {
        match nix::mount::umount2(&rootfs, nix::mount::MntFlags::empty()) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => break,
            Err(e) => {
                warn(format!(
                    "failed to cleanup rootfs mount: {}: {e}",
                    rootfs.display()
                ));
                break;
            }
        }
    }
    let pid = match std::fs::read_to_string(bundle.join("init.pid")) {
        Ok(t) => t.trim().parse::<u32>().unwrap_or(0),
        Err(e) => {
            warn(format!("failed to read init pid file: {e}"));
            0
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // 128 + SIGKILL, as the shim says of a task it cleans up after
    Some(delete_response(pid, 128 + 9, now))
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // `… -id ID start`: the action is the last argument
    if args.last().is_some_and(|a| a == "start") {
        if let Err(e) = join_group(Path::new("config.json")) {
            say(&format!("{e}: this container gets a shim of its own"));
        } else if let Some(address) = running_group_shim(&args, Path::new("."), SOCKET_DIR) {
            // containerd reads the address from the output (no newline)
            use std::io::Write;
            let mut out = std::io::stdout();
            if out
                .write_all(address.as_bytes())
                .and_then(|()| out.flush())
                .is_ok()
            {
                return;
            }
            std::process::exit(1);
        }
    }
    if args.last().is_some_and(|a| a == "delete") {
        let cwd = std::env::current_dir().unwrap_or_default();
        let mut warn = |w: String| eprintln!("ros-shim: {w}");
        if let Some(answer) = delete(&args, &cwd, &mut warn) {
            use std::io::Write;
            let mut out = std::io::stdout();
            if out.write_all(&answer).and_then(|()| out.flush()).is_ok() {
                return;
            }
            std::process::exit(1);
        }
    }
    // the shim this stands in front of
    let real = Path::new(ros::paths::STORE_DIR).join("containerd-shim-runc-v2");
    let err = Command::new(&real).args(&args).exec();
    say(&format!("cannot run {}: {err}", real.display()));
    eprintln!("ros-shim: cannot run {}: {err}", real.display());
    std::process::exit(127);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_is_added_once_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, r#"{"ociVersion":"1.0.2","process":{"args":["sh"]}}"#).unwrap();
        join_group(&p).unwrap();
        join_group(&p).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["annotations"][GROUP_KEY], GROUP);
        assert_eq!(v["process"]["args"][0], "sh");
        assert_eq!(v["annotations"].as_object().unwrap().len(), 1);
        // a group named already stays
        std::fs::write(
            &p,
            r#"{"annotations":{"io.containerd.runc.v2.group":"pod"}}"#,
        )
        .unwrap();
        join_group(&p).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["annotations"][GROUP_KEY], "pod");
    }

    /// containerd's arguments for `start`, in its order.
    fn start_args(ns: &str, address: &str) -> Vec<OsString> {
        [
            "-namespace",
            ns,
            "-address",
            address,
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "abc",
            "-debug",
            "start",
        ]
        .map(OsString::from)
        .to_vec()
    }

    #[test]
    fn flags_are_read_as_go_reads_them() {
        let a = start_args("moby", "/var/run/system-docker/containerd/containerd.sock");
        assert_eq!(flag(&a, "namespace").as_deref(), Some("moby"));
        assert_eq!(flag(&a, "id").as_deref(), Some("abc"));
        assert_eq!(flag(&a, "debug"), None);
        assert_eq!(flag(&a, "start"), None);
        let b: Vec<OsString> = ["--namespace=k8s.io", "-v", "-address", "/a", "start"]
            .map(OsString::from)
            .to_vec();
        assert_eq!(flag(&b, "namespace").as_deref(), Some("k8s.io"));
        assert_eq!(flag(&b, "address").as_deref(), Some("/a"));
        assert_eq!(
            go_join(&["/var/run//x/", "moby", "./g"]),
            "/var/run/x/moby/g"
        );
        assert_eq!(go_join(&["/a/b/..", "c"]), "/a/c");
    }

    #[test]
    fn the_group_socket_is_the_shims_own() {
        // sha256 of "/var/run/system-docker/containerd/containerd.sock/moby/ros-system",
        // as the runc v2 shim names it (shim.SocketAddress)
        assert_eq!(
            group_socket(
                SOCKET_DIR,
                "/var/run/system-docker/containerd/containerd.sock",
                "moby",
                GROUP
            ),
            "unix:///run/containerd/s/ce942272d37d216b27590fcebbe6ebda2cee8caf097846f2a075ff44d2d99dee"
        );
    }

    /// Held by the tests that start processes and by the one that needs a
    /// closed listener to be gone: a child forked meanwhile would hold the
    /// listener's descriptor until its exec.
    static FORKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_running_group_shim_is_handed_back_without_the_real_one() {
        let _forks = FORKS.lock().unwrap_or_else(|e| e.into_inner());
        let socks = tempfile::tempdir().unwrap();
        let bundle = tempfile::tempdir().unwrap();
        let dir = socks.path().to_str().unwrap();
        let args = start_args("moby", "/run/c.sock");
        let spec = bundle.path().join("config.json");
        std::fs::write(&spec, r#"{"process":{}}"#).unwrap();
        // no group named: the real shim
        assert_eq!(running_group_shim(&args, bundle.path(), dir), None);
        join_group(&spec).unwrap();
        // a group with no shim serving it: the real shim (which starts one)
        assert_eq!(running_group_shim(&args, bundle.path(), dir), None);
        assert!(!bundle.path().join("address").exists());
        // the group's shim answers: its address, written as the shim writes it
        let address = group_socket(dir, "/run/c.sock", "moby", GROUP);
        let _l =
            std::os::unix::net::UnixListener::bind(address.trim_start_matches("unix://")).unwrap();
        assert_eq!(
            running_group_shim(&args, bundle.path(), dir).as_deref(),
            Some(address.as_str())
        );
        assert_eq!(
            std::fs::read_to_string(bundle.path().join("address")).unwrap(),
            address
        );
        assert!(!bundle.path().join(".address").exists());
        // a socket file nobody serves any more: the real shim (it removes it)
        drop(_l);
        assert_eq!(running_group_shim(&args, bundle.path(), dir), None);
    }

    #[test]
    fn the_delete_answer_is_the_shim_apis_message() {
        // pid 4660, exit 137, exited at 1700000000.5 s, in protobuf's wire
        // format: field 1 varint, field 2 varint, field 3 a 12-byte message
        // (its fields 1 and 2 varints)
        let b = delete_response(
            4660,
            137,
            std::time::Duration::new(1_700_000_000, 500_000_000),
        );
        assert_eq!(
            b,
            [
                0x08, 0xb4, 0x24, 0x10, 0x89, 0x01, 0x1a, 0x0c, 0x08, 0x80, 0xe2, 0xcf, 0xaa, 0x06,
                0x10, 0x80, 0xca, 0xb5, 0xee, 0x01
            ]
        );
        // zero fields are left out (proto3), the timestamp is always there
        assert_eq!(
            delete_response(0, 0, std::time::Duration::ZERO),
            [0x1a, 0x00]
        );
    }

    #[test]
    fn delete_runs_the_runtime_as_the_shim_does() {
        let _forks = FORKS.lock().unwrap_or_else(|e| e.into_inner());
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let bundle = tmp.path().join("moby").join("abc");
        std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
        // a runtime that says its arguments and fails (the task is gone)
        let rt = tmp.path().join("fake-crun");
        let said = tmp.path().join("said");
        std::fs::write(
            &rt,
            format!(
                "#!/bin/sh\necho \"$@\" > {}\necho 'no such container' >&2\nexit 1\n",
                said.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(bundle.join("runtime"), rt.to_str().unwrap()).unwrap();
        std::fs::write(
            bundle.join("options.json"),
            r#"{"binary_name":"crun","root":"/run/x/runtime-crun"}"#,
        )
        .unwrap();
        std::fs::write(bundle.join("init.pid"), "4660").unwrap();
        let args: Vec<OsString> = [
            "-namespace",
            "moby",
            "-address",
            "/c.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "abc",
            "-bundle",
            bundle.to_str().unwrap(),
            "delete",
        ]
        .map(OsString::from)
        .to_vec();
        let mut warnings = Vec::new();
        let answer = delete(&args, &bundle, &mut |w| warnings.push(w)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&said).unwrap().trim(),
            format!("--root /run/x/runtime-crun/moby --log {}/log.json --log-format json delete --force abc", bundle.display())
        );
        assert_eq!(&answer[..6], &[0x08, 0xb4, 0x24, 0x10, 0x89, 0x01]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("no such container"), "{warnings:?}");
        // no options file: the shim's default root
        std::fs::remove_file(bundle.join("options.json")).unwrap();
        std::fs::remove_file(bundle.join("init.pid")).unwrap();
        let mut warnings = Vec::new();
        let answer = delete(&args, &bundle, &mut |w| warnings.push(w)).unwrap();
        assert!(std::fs::read_to_string(&said)
            .unwrap()
            .starts_with("--root /run/containerd/runc/moby "));
        assert_eq!(answer[0], 0x10, "no pid: {answer:?}");
        assert!(
            warnings.iter().any(|w| w.contains("init pid")),
            "{warnings:?}"
        );
        // what this does not do itself: the real shim
        std::fs::write(bundle.join("options.json"), r#"{"systemd_cgroup":true}"#).unwrap();
        assert_eq!(delete(&args, &bundle, &mut |_| {}), None);
        std::fs::remove_file(bundle.join("options.json")).unwrap();
        std::fs::remove_file(bundle.join("runtime")).unwrap();
        assert_eq!(delete(&args, &bundle, &mut |_| {}), None);
    }

    #[test]
    fn a_bad_spec_is_said_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, "[1,2]").unwrap();
        let e = join_group(&p).unwrap_err();
        assert!(e.contains("not a JSON object"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "[1,2]");
        let e = join_group(&dir.path().join("missing.json")).unwrap_err();
        assert!(e.contains("missing.json"), "{e}");
    }
}
