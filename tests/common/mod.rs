//! A sandbox for tests against a real dockerd: a temp root with its own
//! bridge(s), the busybox test image as a `docker save` archive in the
//! preload directory, `ros sysinit` run as a child, and a cleanup that
//! removes everything it started even when the test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Test image tag (written by build/test-image.sh).
pub const IMAGE: &str = "ros-test/busybox:1";

pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|v| v.split_whitespace().next().unwrap().to_string())
        })
        .unwrap();
    assert_eq!(
        uid, "0",
        "this test starts a real dockerd and must run as root (CI does); it does not skip"
    );
    assert!(
        Path::new("/usr/sbin/dockerd").exists(),
        "dockerd missing: run build/deps.sh (docker.io)"
    );
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub bridges: Vec<String>,
    pub sysinit: Option<Child>,
    pub log: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn ros_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ros"))
}

/// Poll `f` every 200 ms until it returns Some, or panic after `secs`.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Sandbox {
    /// A temp root with bridges `names` (each a /24 of its own).
    pub fn new(tag: &str, bridges: &[&str]) -> Sandbox {
        require_root();
        // Short and unique per process: interface names are at most 15 bytes.
        let dir = tempfile::Builder::new()
            .prefix(&format!("ros-{tag}-"))
            .tempdir_in("/tmp")
            .unwrap();
        let log = dir.path().join("sysinit.log");
        let mut sb = Sandbox {
            dir,
            bridges: Vec::new(),
            sysinit: None,
            log,
        };
        let pid = std::process::id();
        for (i, b) in bridges.iter().enumerate() {
            let name = format!("{b}{}", pid % 100000);
            let _ = Command::new("ip").args(["link", "del", &name]).output();
            let net = format!("10.{}.{}.1/24", 200 + i, pid % 250);
            for args in [
                vec!["link", "add", &name, "type", "bridge"],
                vec!["addr", "add", &net, "dev", &name],
                vec!["link", "set", &name, "up"],
            ] {
                let o = Command::new("ip").args(&args).output().unwrap();
                assert!(
                    o.status.success(),
                    "ip {args:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            sb.bridges.push(name);
        }
        let archive = sb.path("/usr/share/ros/images/busybox.tar");
        let o = Command::new("bash")
            .arg(repo().join("build/test-image.sh"))
            .arg(&archive)
            .arg(IMAGE)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "test-image.sh: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        sb
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A node path below the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel.trim_start_matches('/'))
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// The shipped-defaults layer for this sandbox: system-docker on the
    /// first bridge, then `rest` (YAML indented under `ros:`).
    pub fn os_config(&self, rest: &str) {
        let text = format!(
            "ros:\n  system_docker:\n    host: [unix:///var/run/system-docker.sock]\n    data_root: /var/lib/system-docker\n    exec_root: /var/run/system-docker\n    pid_file: /var/run/system-docker.pid\n    bridge: {}\n    iptables: false\n    ip_masq: false\n    userland_proxy: false\n    storage_driver: overlay2\n    log_opts: {{max-size: 10m, max-file: \"2\"}}\n{rest}",
            self.bridges[0]
        );
        self.write("/usr/share/ros/os-config.yml", &text);
    }

    pub fn ros(&self, args: &[&str]) -> Output {
        Command::new(ros_bin())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env_remove("ROS_ROOT")
            .output()
            .unwrap()
    }

    pub fn sysinit(&mut self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(ros_bin())
            .arg("--root")
            .arg(self.root())
            .arg("sysinit")
            .args(extra)
            .env_remove("ROS_ROOT")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.sysinit = Some(child);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait for sysinit's status file; returns service → outcome line.
    pub fn wait_status(&self) -> std::collections::BTreeMap<String, String> {
        let status = self.path("/var/run/ros/sysinit.status");
        let text = wait_for("sysinit.status", 180, || {
            std::fs::read_to_string(&status).ok()
        });
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// docker CLI against the engine at `sock` (a node path).
    pub fn docker(&self, sock: &str, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.path(sock).display()))
            .args(args)
            .output()
            .unwrap()
    }

    pub fn sdocker(&self, args: &[&str]) -> String {
        let o = self.docker("/var/run/system-docker.sock", args);
        assert!(
            o.status.success(),
            "system docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn inspect(&self, name: &str, fmt: &str) -> String {
        self.sdocker(&["inspect", "-f", fmt, name])
    }

    /// SIGTERM sysinit and wait for it (up to `secs`); returns its exit code.
    pub fn stop_sysinit(&mut self, secs: u64) -> Option<i32> {
        let mut child = self.sysinit.take()?;
        unsafe_kill(child.id() as i32, 15);
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            if start.elapsed() > Duration::from_secs(secs) {
                unsafe_kill(child.id() as i32, 9);
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Processes whose command line mentions the sandbox root (dockerd,
    /// containerd and shims started for it).
    pub fn our_processes(&self) -> Vec<(i32, String)> {
        let root = self.root().display().to_string();
        let me = std::process::id() as i32;
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&root) {
                out.push((pid, cmd));
            }
        }
        out
    }

    /// Mount points below the sandbox root.
    pub fn our_mounts(&self) -> Vec<String> {
        let root = self.root().display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
            .filter(|m| m.starts_with(&root))
            .collect()
    }
}

pub fn unsafe_kill(pid: i32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .output();
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.stop_sysinit(90);
        // If sysinit died without cleaning up: remove the system containers
        // while their engine still runs, so host-namespace processes die too.
        let ids = self.docker("/var/run/system-docker.sock", &["ps", "-aq"]);
        let ids = String::from_utf8_lossy(&ids.stdout).to_string();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.docker("/var/run/system-docker.sock", &args);
        }
        // A user dockerd (in a host-pid container) that outlived it.
        for pidfile in ["/var/run/docker.pid", "/var/run/system-docker.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.path(pidfile)) {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                    if exe.to_string_lossy().contains("dockerd") {
                        unsafe_kill(pid, 9);
                    }
                }
            }
        }
        // Whatever is left that we started: dockerd, containerd, shims.
        for _ in 0..50 {
            let left = self.our_processes();
            if left.is_empty() {
                break;
            }
            for (pid, _) in left {
                unsafe_kill(pid, 9);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut mounts = self.our_mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).output();
        }
        for b in &self.bridges {
            let _ = Command::new("ip").args(["link", "del", b]).output();
        }
        if std::thread::panicking() {
            eprintln!("--- sysinit log ---\n{}", self.log_text());
            let dlog = self.path("/var/log/system-docker.log");
            let text = std::fs::read_to_string(dlog).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("--- system-docker.log (last lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}
