//! Every well-known path, socket, label and default, in one place.
//!
//! All paths hang off a root (`/` on a booted node). `--root DIR` or
//! `ROS_ROOT=DIR` moves every one of them below DIR, so the CLI, the service
//! manager and the cluster server run unchanged on a development machine.

use std::path::{Path, PathBuf};

/// Environment variable naming the root prefix.
pub const ENV_ROOT: &str = "ROS_ROOT";
/// Filesystem label of the state partition.
pub const STATE_LABEL: &str = "ROS_STATE";
/// Volume label of an OpenStack config drive.
pub const CONFIG_DRIVE_LABEL: &str = "config-2";
/// Volume label of a NoCloud seed.
pub const CIDATA_LABEL: &str = "cidata";
/// Bridge that system-docker owns (never `none`: see PLATFORM-NOTES).
pub const SYSTEM_BRIDGE: &str = "docker-sys";
/// Address of the system-docker bridge.
pub const SYSTEM_BRIDGE_CIDR: &str = "172.18.42.1/16";
/// The image's compressed read-only store (squashfs: the engine binaries
/// and the image archives), at the initramfs root; build/initrd.sh makes it.
pub const STORE_IMAGE: &str = "/ros-store.sqfs";
/// Volume label of the boot medium (dist/ros.iso, build/iso.sh `-volid`).
pub const MEDIUM_LABEL: &str = "ROS";
/// The store's file on the boot medium: an ISO boot keeps it there (read
/// from the CD when used, never held in RAM) instead of in the initramfs.
pub const MEDIUM_STORE: &str = "ros-store.sqfs";
/// Where PID 1 mounts the boot medium (read-only) when the store is on it.
pub const MEDIUM_DIR: &str = "/media/ros-boot";
/// Where PID 1 mounts [`STORE_IMAGE`]; the initramfs links the engine
/// binaries and archive directories into it.
pub const STORE_DIR: &str = "/usr/lib/ros-store";
/// First in system-containerd's `PATH`: its `containerd-shim-runc-v2` is
/// `ros-shim` (src/bin/ros-shim.rs), which puts every system container in
/// one shim. The user engine's containerd does not look there.
pub const SHIM_DIR: &str = "/usr/lib/ros/shim";
/// The runc v2 shim's group annotation (in a container's OCI spec): the
/// containers naming one group share one shim.
pub const SHIM_GROUP_KEY: &str = "io.containerd.runc.v2.group";
/// The group every system container joins (`ros-shim` adds it).
pub const SHIM_GROUP: &str = "ros-system";
/// Version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The set of well-known paths below one root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    root: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths::new("/")
    }
}

impl Paths {
    /// Paths below `root` (`/` on a node).
    pub fn new(root: impl Into<PathBuf>) -> Paths {
        Paths { root: root.into() }
    }

    /// The root prefix.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when running below a prefix rather than on a real node.
    pub fn is_prefixed(&self) -> bool {
        self.root != Path::new("/")
    }

    /// `rel` (an absolute node path such as `/var/lib/ros`) below the root.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// The shipped defaults on a node.
    pub fn os_config(&self) -> PathBuf {
        self.at("/usr/share/ros/os-config.yml")
    }

    /// Directory of the preloaded system image archives.
    pub fn preload_dir(&self) -> PathBuf {
        self.at("/usr/share/ros/images")
    }

    /// Image archives the user engine loads when it starts (`busybox`).
    pub fn user_images_dir(&self) -> PathBuf {
        self.at("/usr/share/ros/user-images")
    }

    /// Image archives only a clustered node needs (the load balancer's
    /// HAProxy image): `ros cluster up` loads them into the user engine, so
    /// a node outside a cluster never unpacks them into its root.
    pub fn cluster_images_dir(&self) -> PathBuf {
        self.at("/usr/share/ros/cluster-images")
    }

    /// The config directory.
    pub fn conf_dir(&self) -> PathBuf {
        self.at("/var/lib/ros/conf")
    }

    /// Saved user-data layers.
    pub fn cloud_config_d(&self) -> PathBuf {
        self.conf_dir().join("cloud-config.d")
    }

    /// The layer `ros config set/merge` writes.
    pub fn cloud_config(&self) -> PathBuf {
        self.conf_dir().join("cloud-config.yml")
    }

    /// The last config that validated, used when a newer one does not.
    pub fn last_good_config(&self) -> PathBuf {
        self.conf_dir().join("last-good.yml")
    }

    /// A `#!` user-data script, kept for cloud-init-execute.
    pub fn user_script(&self) -> PathBuf {
        self.conf_dir().join("cloud-config-script")
    }

    /// The kernel command line. Under a prefix it is `ROOT/proc/cmdline`
    /// (absent means empty), never the development machine's own.
    pub fn cmdline(&self) -> PathBuf {
        self.at("/proc/cmdline")
    }

    /// State of `ros` itself (stamps, identities, the cluster store).
    pub fn state_dir(&self) -> PathBuf {
        self.at("/var/lib/ros")
    }

    /// system-docker's API socket.
    pub fn system_docker_sock(&self) -> PathBuf {
        self.at("/var/run/system-docker.sock")
    }

    /// system-docker's data root.
    pub fn system_docker_data(&self) -> PathBuf {
        self.at("/var/lib/system-docker")
    }

    /// system-docker's exec root.
    pub fn system_docker_exec(&self) -> PathBuf {
        self.at("/var/run/system-docker")
    }

    /// system-docker's pidfile.
    pub fn system_docker_pid(&self) -> PathBuf {
        self.at("/var/run/system-docker.pid")
    }

    /// The user engine's socket.
    pub fn docker_sock(&self) -> PathBuf {
        self.at("/var/run/docker.sock")
    }

    /// The user engine's data root.
    pub fn docker_data(&self) -> PathBuf {
        self.at("/var/lib/docker")
    }

    /// Logs of ros and the engines.
    pub fn log_dir(&self) -> PathBuf {
        self.at("/var/log")
    }

    /// Optional service definitions shipped with the image (`NAME.yml`).
    pub fn services_dir(&self) -> PathBuf {
        self.at("/usr/share/ros/services")
    }

    /// Optional service definitions added on the node (`NAME.yml`).
    pub fn local_services_dir(&self) -> PathBuf {
        self.conf_dir().join("services")
    }

    /// Runtime state of `ros` (cleared at boot): markers and status files.
    pub fn run_dir(&self) -> PathBuf {
        self.at("/var/run/ros")
    }

    /// Marker written by PID 1 on a live boot (no state partition, no
    /// user-data): the consoles log `rancher` in unless `ros.autologin` says
    /// otherwise. Its text says why the boot is live.
    pub fn live_marker(&self) -> PathBuf {
        self.run_dir().join("live")
    }

    /// World-readable facts for the login message (`ros motd`), written by
    /// `ros console-init` (the config itself is readable by root only).
    pub fn motd_facts(&self) -> PathBuf {
        self.run_dir().join("motd-facts")
    }

    /// Marker: the operator stopped this service; do not respawn it.
    pub fn service_stopped_marker(&self, service: &str) -> PathBuf {
        self.run_dir().join("stopped").join(service)
    }

    /// A one-shot system service's exit code, written by its own `ros`
    /// command as its last act (`ros cloud-init-execute` does). sysinit goes
    /// on once it is there instead of waiting for the engine to report the
    /// exit: the container's teardown (engine, containerd, shim) took
    /// ~0.5 s under TCG, on the way to `login:`.
    pub fn oneshot_exit(&self, service: &str) -> PathBuf {
        self.run_dir().join("exited").join(service)
    }

    /// Written by `ros sysinit` once every service was brought up: one
    /// line per service, `NAME<TAB>OUTCOME[<TAB>DETAIL]`.
    pub fn sysinit_status(&self) -> PathBuf {
        self.run_dir().join("sysinit.status")
    }

    /// The `ros` binary on a node (bind-mounted into system containers).
    pub fn ros_binary(&self) -> PathBuf {
        self.at("/usr/bin/ros")
    }

    /// Mount point of a config drive.
    pub fn config_drive_mount(&self) -> PathBuf {
        self.at("/media/config-2")
    }

    /// Mount point of a NoCloud seed.
    pub fn cidata_mount(&self) -> PathBuf {
        self.at("/media/cidata")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_applies_to_every_path() {
        let p = Paths::new("/tmp/r");
        assert_eq!(
            p.cloud_config(),
            PathBuf::from("/tmp/r/var/lib/ros/conf/cloud-config.yml")
        );
        assert_eq!(
            p.system_docker_sock(),
            PathBuf::from("/tmp/r/var/run/system-docker.sock")
        );
        assert!(p.is_prefixed());
        assert!(!Paths::default().is_prefixed());
        assert_eq!(Paths::default().cmdline(), PathBuf::from("/proc/cmdline"));
    }
}
