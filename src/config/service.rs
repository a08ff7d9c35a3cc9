//! A system service in compose (v1) form, as written under `ros.services`
//! and in os-config.yml, plus the ordering labels the service manager reads.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::values::{Command, KeyValues, StringList, Text, Ulimit};

/// Label: run on system-docker (`system`) or the user engine.
pub const LABEL_SCOPE: &str = "io.rancher.os.scope";
/// Label: start after these services (comma-separated).
pub const LABEL_AFTER: &str = "io.rancher.os.after";
/// Label: our own spelling of `after`.
pub const LABEL_ROS_AFTER: &str = "ros.after";
/// Label: start before these services (comma-separated).
pub const LABEL_BEFORE: &str = "io.rancher.os.before";
/// Label: `"false"` makes a one-shot service (wait for it to exit).
pub const LABEL_DETACH: &str = "io.rancher.os.detach";
/// Label: `"true"` creates the container but never starts it (volume holders).
pub const LABEL_CREATE_ONLY: &str = "io.rancher.os.createonly";
/// Label: reload the config after the service is up.
pub const LABEL_RELOAD_CONFIG: &str = "io.rancher.os.reloadconfig";
/// Label: the path of a Docker API socket (below the root) the service
/// serves; it counts as up, for the services after it, once that API
/// answers `/_ping` (the user engine: its dependents start when it can
/// take their containers, not while it is still starting up).
pub const LABEL_READY_SOCKET: &str = "io.rancher.os.ready";
/// Label: the console flavour (`default`, …); marks the console service.
pub const LABEL_CONSOLE: &str = "io.rancher.os.console";

/// One compose service.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ServiceConfig {
    /// Image reference (must be preloaded; nothing is pulled at boot).
    pub image: String,
    /// Command (shell or exec form).
    pub command: Option<Command>,
    /// Entrypoint override.
    pub entrypoint: Option<Command>,
    /// Environment variables.
    pub environment: KeyValues,
    /// Container labels, including the ordering labels above.
    pub labels: KeyValues,
    /// Run privileged.
    pub privileged: bool,
    /// Network mode (`host`, `none`, `bridge`, `container:NAME`).
    #[serde(alias = "network_mode")]
    pub net: Option<String>,
    /// PID namespace (`host`).
    pub pid: Option<String>,
    /// IPC namespace (`host`).
    pub ipc: Option<String>,
    /// UTS namespace (`host`).
    pub uts: Option<String>,
    /// Volumes: `HOST:CONTAINER[:ro]` or a named/anonymous volume.
    pub volumes: Vec<Text>,
    /// Services (or containers) whose volumes to mount.
    pub volumes_from: Vec<Text>,
    /// Devices: `HOST[:CONTAINER[:PERMS]]`.
    pub devices: Vec<Text>,
    /// Capabilities to add.
    pub cap_add: Vec<Text>,
    /// Capabilities to drop.
    pub cap_drop: Vec<Text>,
    /// Restart policy: `no`, `always`, `on-failure[:N]`, `unless-stopped`.
    pub restart: Option<Text>,
    /// Read-only root filesystem.
    pub read_only: bool,
    /// tmpfs mounts.
    pub tmpfs: StringList,
    /// ulimits by name.
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Log driver.
    pub log_driver: Option<String>,
    /// Log driver options.
    pub log_opt: KeyValues,
    /// Container name (default `NAME`).
    pub container_name: Option<String>,
    /// Hostname.
    pub hostname: Option<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// User to run as.
    pub user: Option<Text>,
    /// Published ports.
    pub ports: Vec<Text>,
    /// Exposed ports.
    pub expose: Vec<Text>,
    /// DNS servers.
    pub dns: StringList,
    /// DNS search domains.
    pub dns_search: StringList,
    /// Extra /etc/hosts lines `HOST:IP`.
    pub extra_hosts: Vec<Text>,
    /// Security options.
    pub security_opt: Vec<Text>,
    /// OOM score adjustment.
    pub oom_score_adj: Option<i64>,
    /// CPU weight against the other containers (the engine's default is
    /// 1024; coldplug runs at 128, behind the way to `login:`).
    pub cpu_shares: Option<u64>,
    /// Memory limit (`512m`).
    pub mem_limit: Option<Text>,
    /// /dev/shm size.
    pub shm_size: Option<Text>,
    /// Allocate a TTY.
    pub tty: bool,
    /// Keep stdin open.
    pub stdin_open: bool,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// Cgroup parent.
    pub cgroup_parent: Option<String>,
    /// Links (accepted for compatibility; system services use host networking).
    pub links: Vec<Text>,
    /// Compose-style dependencies, treated like `io.rancher.os.after`.
    pub depends_on: Vec<Text>,
}

impl ServiceConfig {
    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.0.get(key).map(String::as_str)
    }

    /// Services this one starts after: `after` labels plus `depends_on`.
    pub fn after(&self) -> Vec<String> {
        let mut v: Vec<String> = [LABEL_AFTER, LABEL_ROS_AFTER]
            .iter()
            .filter_map(|k| self.label(k))
            .flat_map(split_names)
            .collect();
        v.extend(self.depends_on.iter().map(|t| t.0.clone()));
        v.sort();
        v.dedup();
        v
    }

    /// Services this one starts before.
    pub fn before(&self) -> Vec<String> {
        self.label(LABEL_BEFORE)
            .map(split_names)
            .unwrap_or_default()
    }

    /// The console (label `io.rancher.os.console`): the way in to mend a
    /// node, so a failed dependency never keeps it down.
    pub fn is_console(&self) -> bool {
        self.label(LABEL_CONSOLE).is_some()
    }

    /// A one-shot service: started, waited for, its exit code checked.
    pub fn is_oneshot(&self) -> bool {
        self.label(LABEL_DETACH) == Some("false")
    }

    /// The Docker API socket whose answer makes this service up.
    pub fn ready_socket(&self) -> Option<&str> {
        self.label(LABEL_READY_SOCKET)
            .filter(|s| !s.trim().is_empty())
    }

    /// Created but never started (a volume holder).
    pub fn is_create_only(&self) -> bool {
        self.label(LABEL_CREATE_ONLY) == Some("true")
    }
}

fn split_names(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect()
}
