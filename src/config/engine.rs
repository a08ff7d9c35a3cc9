//! dockerd command lines from `ros.system_docker` / `ros.docker`.
//!
//! Pure: the same flags whether PID 1 starts system-dockerd on a node or
//! `ros sysinit` starts it under `--root` in a test. Every path-valued
//! option (sockets, data and exec roots, pidfile) is moved below the root.

use super::types::DockerConfig;
use crate::paths::Paths;

/// The dockerd binary.
pub const DOCKERD: &str = "dockerd";

fn flag_bool(args: &mut Vec<String>, name: &str, v: Option<bool>) {
    if let Some(v) = v {
        args.push(format!("--{name}={v}"));
    }
}

fn flag(args: &mut Vec<String>, name: &str, v: Option<&str>) {
    if let Some(v) = v {
        args.push(format!("--{name}={v}"));
    }
}

/// Move a `unix://` host (or bare socket path) below the root.
fn host_below(paths: &Paths, host: &str) -> String {
    match host.strip_prefix("unix://") {
        Some(p) => format!("unix://{}", paths.at(p).display()),
        None if host.starts_with('/') => format!("unix://{}", paths.at(host).display()),
        None => host.to_string(),
    }
}

/// The engine's data root as configured: `data_root`, else the old
/// `graph` (node path, not below the root).
pub fn configured_data_root(cfg: &DockerConfig) -> Option<&str> {
    cfg.data_root.as_deref().or(cfg.graph.as_deref())
}

/// True when `extra_args` give one of `flags` (`--flag` or `--flag=…`).
fn extra_args_set(cfg: &DockerConfig, flags: &[&str]) -> bool {
    cfg.extra_args.iter().any(|a| {
        flags
            .iter()
            .any(|f| a == f || a.starts_with(&format!("{f}=")))
    })
}

/// The engine's data root below the root: `data_root` (or the old
/// `graph`), else dockerd's default `/var/lib/docker`; `None` when
/// `extra_args` set it (`--data-root`, `--graph`, `-g`), which is not
/// parsed here.
pub fn data_root(cfg: &DockerConfig, paths: &Paths) -> Option<std::path::PathBuf> {
    if cfg.extra_args.iter().any(|a| a == "-g") || extra_args_set(cfg, &["--data-root", "--graph"])
    {
        return None;
    }
    Some(paths.at(configured_data_root(cfg).unwrap_or("/var/lib/docker")))
}

/// The arguments (without the `dockerd` itself) for an engine.
pub fn dockerd_args(cfg: &DockerConfig, paths: &Paths) -> Vec<String> {
    let mut a = Vec::new();
    for h in &cfg.host.0 {
        a.push(format!("--host={}", host_below(paths, h)));
    }
    let at = |p: &Option<String>| p.as_ref().map(|p| paths.at(p).display().to_string());
    let data_root = configured_data_root(cfg).map(|p| paths.at(p).display().to_string());
    flag(&mut a, "data-root", data_root.as_deref());
    flag(&mut a, "exec-root", at(&cfg.exec_root).as_deref());
    flag(&mut a, "pidfile", at(&cfg.pid_file).as_deref());
    flag(&mut a, "config-file", at(&cfg.config_file).as_deref());
    flag(&mut a, "containerd", at(&cfg.containerd).as_deref());
    flag(&mut a, "bridge", cfg.bridge.as_deref());
    flag(&mut a, "bip", cfg.bip.as_deref());
    flag(&mut a, "group", cfg.group.as_deref());
    flag(&mut a, "storage-driver", cfg.storage_driver.as_deref());
    flag(&mut a, "log-driver", cfg.log_driver.as_deref());
    for (k, v) in &cfg.log_opts.0 {
        a.push(format!("--log-opt={k}={v}"));
    }
    flag_bool(&mut a, "iptables", cfg.iptables);
    flag_bool(&mut a, "ip-masq", cfg.ip_masq);
    flag_bool(&mut a, "userland-proxy", cfg.userland_proxy);
    flag_bool(&mut a, "live-restore", cfg.live_restore);
    flag_bool(&mut a, "selinux-enabled", cfg.selinux_enabled);
    if cfg.debug == Some(true) {
        a.push("--debug".to_string());
    }
    if let Some(mtu) = cfg.mtu {
        a.push(format!("--mtu={mtu}"));
    }
    for r in &cfg.insecure_registry.0 {
        a.push(format!("--insecure-registry={r}"));
    }
    for r in &cfg.registry_mirror.0 {
        a.push(format!("--registry-mirror={r}"));
    }
    if cfg.tls == Some(true) {
        a.push("--tlsverify".to_string());
        a.extend(cfg.tls_args.iter().cloned());
    }
    a.extend(cfg.extra_args.iter().cloned());
    a
}

/// The arguments for system-dockerd: [`dockerd_args`] plus
/// `--restart=false` (dockerd's daemon-wide switch, hidden and
/// deprecated but honoured by the shipped 20.10: no container is started
/// by the engine itself when it starts; restart policies still act when
/// a container exits). `ros sysinit` starts the system services in their
/// order at every boot; the engine starting some of them first, unordered
/// and before its API answers, is what a poweroff that leaves the
/// foundation to PID 1's SIGTERM (`ros sysinit --leave-foundation`) would
/// otherwise cause at the next boot.
pub fn system_dockerd_args(cfg: &DockerConfig, paths: &Paths) -> Vec<String> {
    let mut a = dockerd_args(cfg, paths);
    a.push("--restart=false".to_string());
    a
}

/// The containerd binary.
pub const CONTAINERD: &str = "/usr/bin/containerd";

/// An engine's containerd started beside its dockerd instead of by it.
///
/// dockerd 20.10 starts its containerd only once its own start-up is done
/// and then dials it with a backoff: two Go programs paging in from the
/// store one after the other (~2.5 s of the system engine's 8 s under TCG,
/// issue 16). Started first, containerd is up by the time dockerd asks,
/// and dockerd is told where (`--containerd`). The files are the ones
/// dockerd would use: its state carries over either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Companion {
    /// `<exec-root>/containerd/containerd.toml`.
    pub config: std::path::PathBuf,
    /// `<exec-root>/containerd/containerd.sock`.
    pub socket: std::path::PathBuf,
    /// The config's text.
    pub toml: String,
    /// `--log-level`.
    pub level: &'static str,
}

impl Companion {
    /// containerd's arguments.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--config".to_string(),
            self.config.display().to_string(),
            "--log-level".to_string(),
            self.level.to_string(),
        ]
    }

    /// The flag that points dockerd at it.
    pub fn dockerd_flag(&self) -> String {
        format!("--containerd={}", self.socket.display())
    }

    /// Write the config (its directory made as needed).
    pub fn write(&self) -> std::io::Result<()> {
        if let Some(dir) = self.config.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.config, &self.toml)
    }
}

/// The containerd to start beside the engine `cfg`, whose dockerd defaults
/// are `/var/lib/docker` and `/var/run/docker`; `None` when the config
/// already names a containerd (`containerd`) or `extra_args` choose the
/// roots or the containerd themselves (dockerd then starts its own).
pub fn companion(cfg: &DockerConfig, paths: &Paths) -> Option<Companion> {
    if cfg.containerd.is_some() {
        return None;
    }
    if extra_args_set(cfg, &["--containerd", "--exec-root"]) {
        return None;
    }
    let data = data_root(cfg, paths)?;
    let exec = paths.at(cfg.exec_root.as_deref().unwrap_or("/var/run/docker"));
    let dir = exec.join("containerd");
    let socket = dir.join("containerd.sock");
    let level = if cfg.debug == Some(true) {
        "debug"
    } else {
        "info"
    };
    // What dockerd writes for its own containerd, less the plugins an
    // engine never uses (dockerd keeps images and layers itself: no
    // snapshotter of containerd's is asked for).
    let q = |p: &std::path::Path| toml_string(&p.display().to_string());
    let toml = format!(
        "# written by ros for the containerd beside dockerd; rewritten at every start\n\
         version = 2\n\
         root = {root}\n\
         state = {state}\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.aufs\", \
         \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.devmapper\", \
         \"io.containerd.snapshotter.v1.zfs\"]\n\
         \n[grpc]\n  address = {sock}\n\
         \n[debug]\n  address = {debug}\n  level = \"{level}\"\n",
        root = q(&data.join("containerd").join("daemon")),
        state = q(&dir.join("daemon")),
        sock = q(&socket),
        debug = q(&dir.join("containerd-debug.sock")),
    );
    Some(Companion {
        config: dir.join("containerd.toml"),
        socket,
        toml,
        level,
    })
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `KEY=VALUE` environment for dockerd (from `environment`).
pub fn dockerd_env(cfg: &DockerConfig) -> Vec<(String, String)> {
    cfg.environment
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::parse_document;
    use crate::config::{validate, OS_CONFIG_YML};

    #[test]
    fn shipped_system_docker_flags_below_a_root() {
        let tree = parse_document("os-config.yml", OS_CONFIG_YML.as_bytes()).unwrap();
        let (cfg, _) = validate(&tree);
        let args = system_dockerd_args(&cfg.ros.system_docker, &Paths::new("/tmp/r"));
        for want in [
            "--host=unix:///tmp/r/var/run/system-docker.sock",
            "--data-root=/tmp/r/var/lib/system-docker",
            "--exec-root=/tmp/r/var/run/system-docker",
            "--pidfile=/tmp/r/var/run/system-docker.pid",
            "--bridge=docker-sys",
            "--iptables=false",
            "--userland-proxy=false",
            "--log-opt=max-size=10m",
            "--restart=false",
            "--add-runtime=crun=/usr/bin/crun",
            "--default-runtime=crun",
        ] {
            assert!(
                args.contains(&want.to_string()),
                "{want} missing from {args:?}"
            );
        }
        assert!(!args.iter().any(|a| a == "--bridge=none"));
        let user = dockerd_args(&cfg.ros.docker, &Paths::default());
        assert!(!user.iter().any(|a| a.starts_with("--restart")));
        // workloads under crun too; runc stays dockerd's built-in `runc`
        for want in ["--add-runtime=crun=/usr/bin/crun", "--default-runtime=crun"] {
            assert!(
                user.contains(&want.to_string()),
                "{want} missing from {user:?}"
            );
        }
        assert!(user.contains(&"--host=unix:///var/run/docker.sock".to_string()));
        assert!(user.contains(&"--group=docker".to_string()));
    }

    #[test]
    fn companion_containerd_uses_dockerds_own_files() {
        let tree = parse_document("os-config.yml", OS_CONFIG_YML.as_bytes()).unwrap();
        let (cfg, _) = validate(&tree);
        let c = companion(&cfg.ros.system_docker, &Paths::new("/tmp/r")).unwrap();
        assert_eq!(
            c.config,
            std::path::Path::new("/tmp/r/var/run/system-docker/containerd/containerd.toml")
        );
        assert_eq!(
            c.dockerd_flag(),
            "--containerd=/tmp/r/var/run/system-docker/containerd/containerd.sock"
        );
        let lines: Vec<&str> = c.toml.lines().map(str::trim).collect();
        for want in [
            "version = 2",
            r#"root = "/tmp/r/var/lib/system-docker/containerd/daemon""#,
            r#"state = "/tmp/r/var/run/system-docker/containerd/daemon""#,
            "[grpc]",
            r#"address = "/tmp/r/var/run/system-docker/containerd/containerd.sock""#,
            r#"level = "info""#,
        ] {
            assert!(lines.contains(&want), "{want} missing from\n{}", c.toml);
        }
        assert_eq!(c.args()[..2], ["--config", c.config.to_str().unwrap()]);
        // The user engine: dockerd's default exec root.
        let u = companion(&cfg.ros.docker, &Paths::default()).unwrap();
        assert_eq!(
            u.socket,
            std::path::Path::new("/var/run/docker/containerd/containerd.sock")
        );
        assert!(u
            .toml
            .contains(r#"root = "/var/lib/docker/containerd/daemon""#));
        // dockerd starts its own when the config chose otherwise.
        for yaml in [
            "containerd: /run/other.sock",
            "extra_args: [--exec-root=/x]",
            "extra_args: [-g, /x]",
            "extra_args: [--containerd, /run/c.sock]",
        ] {
            let doc = format!("ros:\n  docker:\n    {yaml}\n");
            let (cfg, problems) = validate(&parse_document("t", doc.as_bytes()).unwrap());
            assert!(problems.is_empty(), "{yaml}: {problems:?}");
            assert_eq!(
                companion(&cfg.ros.docker, &Paths::default()),
                None,
                "{yaml}"
            );
        }
        // Odd characters stay inside their TOML string.
        assert_eq!(toml_string("a\"b\\c\n"), r#""a\"b\\c\u000A""#);
    }

    #[test]
    fn flags_table() {
        let rows: &[(&str, &[&str])] = &[
            ("debug: true", &["--debug"]),
            ("debug: false", &[]),
            (
                "insecure_registry: [a:5000, b]",
                &["--insecure-registry=a:5000", "--insecure-registry=b"],
            ),
            ("extra_args: [--foo, bar]", &["--foo", "bar"]),
            (
                "tls: true\ntls_args: [--tlscacert=/x]",
                &["--tlsverify", "--tlscacert=/x"],
            ),
            ("host: tcp://0.0.0.0:2375", &["--host=tcp://0.0.0.0:2375"]),
            ("mtu: 1400", &["--mtu=1400"]),
        ];
        for (yaml, want) in rows {
            let doc = format!("ros:\n  docker:\n    {}\n", yaml.replace('\n', "\n    "));
            let (cfg, problems) = validate(&parse_document("t", doc.as_bytes()).unwrap());
            assert!(problems.is_empty(), "{yaml}: {problems:?}");
            assert_eq!(
                dockerd_args(&cfg.ros.docker, &Paths::default()),
                *want,
                "{yaml}"
            );
        }
    }
}
