//! `ros cloud-init-execute`: apply the user's cloud-config to the host —
//! `write_files`, `sysctl`, `runcmd` and a `#!` user-data script. The
//! service mounts the host's `/` at `/host`; files are written below it
//! and commands run chrooted into it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::CloudConfig;
use crate::paths::Paths;

/// Where the host's root is mounted in the service container.
pub const HOST: &str = "/host";

/// `path` of a write_files entry below the host root.
pub fn host_path(host: &Path, path: &str) -> PathBuf {
    host.join(path.trim_start_matches('/'))
}

/// `/proc/sys/...` for a sysctl key (`net.ipv4.ip_forward`).
pub fn sysctl_path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

/// Apply write_files below `host`; returns one line per problem.
pub fn write_files(cfg: &CloudConfig, host: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for f in &cfg.write_files {
        if f.container.is_some() {
            continue;
        }
        let res = (|| -> Result<(), String> {
            let bytes = f.decoded()?;
            let mode = f.mode()?;
            let p = host_path(host, &f.path);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(f.append)
                .truncate(!f.append)
                .open(&p)
                .map_err(|e| e.to_string())?;
            file.write_all(&bytes).map_err(|e| e.to_string())?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                .map_err(|e| e.to_string())
        })();
        match res {
            Ok(()) => println!("cloud-init: wrote {}", f.path),
            Err(e) => problems.push(format!("write_files {}: {e}", f.path)),
        }
    }
    problems
}

/// `ros cloud-init-execute`.
pub fn execute(cfg: &CloudConfig, paths: &Paths) -> i32 {
    let host = Path::new(HOST);
    let mut problems = write_files(cfg, host);
    for (k, v) in &cfg.ros.sysctl {
        if let Err(e) = std::fs::write(sysctl_path(k), v.0.as_bytes()) {
            problems.push(format!("sysctl {k}: {e}"));
        }
    }
    let chroot = host.join("bin/sh").exists();
    let mut cmds: Vec<Vec<String>> = cfg.runcmd.iter().map(|c| c.argv()).collect();
    if paths.user_script().exists() {
        cmds.push(vec!["/var/lib/ros/conf/cloud-config-script".to_string()]);
    }
    for argv in cmds {
        let mut c = if chroot {
            let mut c = Command::new("chroot");
            c.arg(host).args(&argv);
            c
        } else {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        };
        match c.status() {
            Ok(s) if s.success() => println!("cloud-init: ran {argv:?}"),
            Ok(s) => problems.push(format!("runcmd {argv:?}: {s}")),
            Err(e) => problems.push(format!("runcmd {argv:?}: {e}")),
        }
    }
    for p in &problems {
        eprintln!("cloud-init: {p}");
    }
    let code = i32::from(!problems.is_empty());
    say_exit(&Paths::new(host), "cloud-init-execute", code);
    code
}

/// Tell sysinit this one-shot is done, and how ([`Paths::oneshot_exit`]):
/// written whole ([`crate::config::disk::write_atomic`]), below the host root.
pub fn say_exit(host: &Paths, service: &str, code: i32) {
    let path = host.oneshot_exit(service);
    let text = format!("{code}\n");
    if let Err(e) = crate::config::disk::write_atomic(&path, text.as_bytes(), 0o644) {
        // sysinit then waits for the engine to see the exit, as before
        eprintln!("cloud-init: {}", crate::system::chain(&e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{node::parse_document, validate};

    #[test]
    fn the_exit_is_said_whole_below_the_host_root() {
        let d = tempfile::tempdir().unwrap();
        let host = Paths::new(d.path());
        say_exit(&host, "cloud-init-execute", 1);
        let f = host.oneshot_exit("cloud-init-execute");
        assert!(f.starts_with(d.path()));
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "1\n");
        assert!(!f.with_extension("tmp").exists());
    }

    #[test]
    fn write_files_land_below_the_host_root() {
        let d = tempfile::tempdir().unwrap();
        let doc = "write_files:\n  - path: /etc/motd\n    content: hi\n    permissions: \"0600\"\n  - path: /x/b\n    encoding: b64\n    content: aGk=\n";
        let (cfg, p) = validate(&parse_document("t", doc.as_bytes()).unwrap());
        assert!(p.is_empty(), "{p:?}");
        assert!(write_files(&cfg, d.path()).is_empty());
        assert_eq!(
            std::fs::read_to_string(d.path().join("etc/motd")).unwrap(),
            "hi"
        );
        assert_eq!(std::fs::read_to_string(d.path().join("x/b")).unwrap(), "hi");
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
    }
}
