//! The cloud-config schema as typed structs.
//!
//! Every field is optional in YAML (`#[serde(default)]`); the shipped
//! defaults live in os-config.yml, not here, so that `ros config get` shows
//! the value the system really uses. Keys a struct does not declare are
//! reported by [`super::de`], never silently dropped.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::network::NetworkConfig;
use super::service::ServiceConfig;
use super::values::{Command, KeyValues, StringList, Text};

/// The whole cloud-config document.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct CloudConfig {
    /// The node's hostname.
    pub hostname: Option<String>,
    /// Keys for the `rancher` user's authorized_keys.
    pub ssh_authorized_keys: Vec<String>,
    /// Files written at boot.
    pub write_files: Vec<WriteFile>,
    /// Commands run late in boot (by the console).
    pub runcmd: Vec<Command>,
    /// Commands run early in boot.
    pub bootcmd: Vec<Command>,
    /// Mounts: `[device, mountpoint, fstype, options]`.
    pub mounts: Vec<Vec<Text>>,
    /// The OS's own settings (`rancher:` is accepted as an alias).
    pub ros: RosConfig,
}

/// One `write_files` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct WriteFile {
    /// Absolute path of the file.
    pub path: String,
    /// Content, encoded as `encoding` says.
    pub content: String,
    /// How `content` is encoded.
    pub encoding: Encoding,
    /// `user[:group]`.
    pub owner: Option<String>,
    /// Octal mode such as `"0644"`.
    pub permissions: Option<Text>,
    /// Write the file inside this system container instead of the host.
    pub container: Option<String>,
    /// Append instead of replacing.
    pub append: bool,
}

/// `write_files[].encoding`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// Plain text.
    #[default]
    Plain,
    /// Base64 (`b64`, `base64`).
    Base64,
    /// Gzip (`gzip`, `gz`).
    Gzip,
    /// Gzip, then base64 (`gz+b64`, `gzip+base64` …).
    GzipBase64,
}

impl<'de> Deserialize<'de> for Encoding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Text(s) = Text::deserialize(d)?;
        match s.to_ascii_lowercase().as_str() {
            "" | "text/plain" | "plain" => Ok(Encoding::Plain),
            "b64" | "base64" => Ok(Encoding::Base64),
            "gz" | "gzip" => Ok(Encoding::Gzip),
            "gz+b64" | "gz+base64" | "gzip+b64" | "gzip+base64" => Ok(Encoding::GzipBase64),
            other => Err(serde::de::Error::custom(format!(
                "expected one of b64, base64, gzip, gz, gz+b64, gzip+base64, found {other:?}"
            ))),
        }
    }
}

/// `ros:` — the OS's own settings.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct RosConfig {
    /// Network configuration (netconf).
    pub network: NetworkConfig,
    /// System services, by name, on system-docker.
    pub services: BTreeMap<String, ServiceConfig>,
    /// Optional services turned on (true) or off (false) by name.
    pub services_include: BTreeMap<String, bool>,
    /// The system-docker engine.
    pub system_docker: DockerConfig,
    /// The user docker engine.
    pub docker: DockerConfig,
    /// The console flavour (`default`).
    pub console: Option<String>,
    /// Autologin on the consoles (`tty1,ttyS0`, or true for all).
    pub autologin: Option<Text>,
    /// Password for the `rancher` user (hashed or plain; hidden on export).
    pub password: Option<String>,
    /// Features switched off: `password`, `autologin`.
    pub disable: Vec<String>,
    /// SSH daemon settings.
    pub ssh: SshConfig,
    /// The state partition.
    pub state: StateConfig,
    /// Kernel modules to load (`name [param=value …]`).
    pub modules: Vec<String>,
    /// sysctl settings (`net.ipv4.ip_forward: 1`).
    pub sysctl: BTreeMap<String, Text>,
    /// Environment for system services.
    pub environment: KeyValues,
    /// OS upgrade source.
    pub upgrade: UpgradeConfig,
    /// Cluster membership.
    pub cluster: ClusterConfig,
    /// Debug logging everywhere.
    pub debug: bool,
    /// Logging to the console.
    pub log: Option<bool>,
    /// Datasources for user-data.
    pub cloud_init: CloudInitConfig,
    /// Defaults used when nothing else is set.
    pub defaults: DefaultsConfig,
    /// Seconds to wait for services at shutdown.
    pub shutdown_timeout: Option<u32>,
    /// Retries for HTTP loads (url datasource).
    pub http_load_retries: Option<u32>,
    /// Service repositories (kept for RancherOS compatibility).
    pub repositories: BTreeMap<String, Repository>,
    /// Registry credentials by registry host.
    pub registry_auths: BTreeMap<String, RegistryAuth>,
    /// Grow this device's first partition to the disk.
    pub resize_device: Option<String>,
    /// Services restarted after cloud-init-execute.
    pub restart_services: Vec<String>,
    /// Run the hypervisor's guest tools when detected.
    pub hypervisor_service: Option<bool>,
    /// Wait for preloaded images before starting services.
    pub preload_wait: Option<bool>,
    /// Recreate the console container at every boot.
    pub force_console_rebuild: Option<bool>,
    /// Boot to a recovery console.
    pub recovery: Option<bool>,
    /// RancherOS compatibility: accepted, no effect here.
    pub rm_usr: Option<bool>,
    /// RancherOS compatibility: accepted, no effect here.
    pub no_sharedroot: Option<bool>,
    /// Services of the bootstrap phase (RancherOS compatibility).
    pub bootstrap: BTreeMap<String, ServiceConfig>,
    /// Services of the cloud-init phase (RancherOS compatibility).
    pub cloud_init_services: BTreeMap<String, ServiceConfig>,
    /// The bootstrap engine (RancherOS compatibility).
    pub bootstrap_docker: DockerConfig,
}

/// Options for a dockerd (system-docker or the user engine).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct DockerConfig {
    /// Engine name (`docker-20.10`).
    pub engine: Option<String>,
    /// Listen with TLS.
    pub tls: Option<bool>,
    /// Extra TLS flags.
    pub tls_args: Vec<String>,
    /// Extra dockerd flags, appended as given.
    pub extra_args: Vec<String>,
    /// TLS server certificate (PEM; hidden on export).
    pub server_cert: Option<String>,
    /// TLS server key (PEM; hidden on export).
    pub server_key: Option<String>,
    /// TLS CA certificate (PEM; hidden on export).
    pub ca_cert: Option<String>,
    /// TLS CA key (PEM; hidden on export).
    pub ca_key: Option<String>,
    /// Environment for dockerd (`KEY=VALUE`).
    pub environment: Vec<String>,
    /// SELinux storage context.
    pub storage_context: Option<String>,
    /// Use the exec form (RancherOS compatibility).
    pub exec: Option<bool>,
    /// `--bridge`.
    pub bridge: Option<String>,
    /// `--bip`.
    pub bip: Option<String>,
    /// `--config-file`.
    pub config_file: Option<String>,
    /// `--containerd`.
    pub containerd: Option<String>,
    /// `--debug`.
    pub debug: Option<bool>,
    /// `--exec-root`.
    pub exec_root: Option<String>,
    /// `--group`.
    pub group: Option<String>,
    /// `--data-root` (old name).
    pub graph: Option<String>,
    /// `--data-root`.
    pub data_root: Option<String>,
    /// `--host` (one per entry).
    pub host: StringList,
    /// `--insecure-registry`.
    pub insecure_registry: StringList,
    /// `--live-restore`.
    pub live_restore: Option<bool>,
    /// `--log-driver`.
    pub log_driver: Option<String>,
    /// `--log-opt` pairs.
    pub log_opts: KeyValues,
    /// `--pidfile`.
    pub pid_file: Option<String>,
    /// `--registry-mirror`.
    pub registry_mirror: StringList,
    /// `--restart` (old engines).
    pub restart: Option<bool>,
    /// `--selinux-enabled`.
    pub selinux_enabled: Option<bool>,
    /// `--storage-driver`.
    pub storage_driver: Option<String>,
    /// `--userland-proxy`.
    pub userland_proxy: Option<bool>,
    /// `--iptables`.
    pub iptables: Option<bool>,
    /// `--ip-masq`.
    pub ip_masq: Option<bool>,
    /// `--mtu`.
    pub mtu: Option<u32>,
}

/// `ros.ssh`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct SshConfig {
    /// Host keys by type (PEM; hidden on export).
    pub keys: BTreeMap<String, String>,
    /// Run sshd.
    pub daemon: Option<bool>,
    /// Port.
    pub port: Option<u16>,
    /// Listen address.
    pub listen_address: Option<String>,
}

/// `ros.state`: the persistent partition.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct StateConfig {
    /// Subdirectory of the partition used as root.
    pub directory: Option<String>,
    /// Filesystem type (`auto`, `ext4`).
    pub fstype: Option<String>,
    /// Device: a path, `LABEL=…` or `UUID=…`.
    pub dev: Option<String>,
    /// Wait for the device to appear.
    pub wait: Option<bool>,
    /// Fail the boot (emergency console) when it is missing.
    pub required: Option<bool>,
    /// Blank disks that may be formatted as the state partition.
    pub autoformat: StringList,
    /// Assemble MD RAID first.
    pub mdadm_scan: Option<bool>,
    /// Scan LVM first.
    pub lvm_scan: Option<bool>,
    /// Open LUKS first.
    pub cryptsetup: Option<bool>,
    /// Start rngd.
    pub rngd: Option<bool>,
    /// A script run before mounting.
    pub script: Option<String>,
    /// OEM partition fstype.
    pub oem_fstype: Option<String>,
    /// OEM partition device.
    pub oem_dev: Option<String>,
    /// Boot partition fstype.
    pub boot_fstype: Option<String>,
    /// Boot partition device.
    pub boot_dev: Option<String>,
}

/// `ros.upgrade`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct UpgradeConfig {
    /// Release list URL.
    pub url: Option<String>,
    /// OS image name.
    pub image: Option<String>,
    /// Version to roll back to.
    pub rollback: Option<String>,
    /// `download` or `auto`.
    pub policy: Option<String>,
}

/// The role of this node in a cluster.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClusterRole {
    /// Runs the server (API, store, reconcilers).
    Server,
    /// Runs the agent and joins a server.
    Agent,
    /// Both on one node.
    Both,
}

/// `ros.cluster`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ClusterConfig {
    /// This node's role; none means not clustered.
    pub role: Option<ClusterRole>,
    /// The server's URL (for agents).
    pub server_url: Option<String>,
    /// The registration token (hidden on export); on a server node, the
    /// pre-shared join token it accepts.
    pub token: Option<String>,
    /// The first admin password of a server node (never exported; hashed
    /// by the server at first start).
    pub admin_password: Option<String>,
    /// Server listen address (`ip:port`, default `0.0.0.0:8080`): HTTPS
    /// with the cluster CA; plain HTTP to the node itself only.
    pub listen: Option<String>,
    /// Extra names or IPs for the server certificate (the node's hostname
    /// and addresses are always in it).
    pub tls_sans: Vec<String>,
    /// DEVELOPMENT ONLY: serve plain HTTP to every client, not only to the
    /// node itself (`ros cluster server --insecure-http`).
    pub insecure_http: Option<bool>,
    /// The agent's IP as other hosts reach it.
    pub agent_ip: Option<String>,
    /// Seconds without a sync before the server marks a host
    /// `reconnecting` (default 30).
    pub reconnecting_after: Option<f64>,
    /// Seconds without a sync before a host is `disconnected` and its
    /// health-checked containers are replaced elsewhere (default 180).
    pub disconnected_after: Option<f64>,
    /// Host labels (`a=b`).
    pub labels: KeyValues,
}

/// `ros.cloud_init`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct CloudInitConfig {
    /// Datasources tried in order (`configdrive`, `cidata`, `file:PATH`, `url:URL`, `cmdline`).
    pub datasources: Vec<String>,
}

/// `ros.defaults`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct DefaultsConfig {
    /// Hostname when none is set.
    pub hostname: Option<String>,
    /// Engine name when none is set.
    pub docker: Option<DockerConfig>,
    /// Network defaults.
    pub network: Option<NetworkConfig>,
    /// Where system-docker logs.
    pub system_docker_logs: Option<String>,
}

/// A service repository.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Repository {
    /// Its URL.
    pub url: String,
}

/// Registry credentials.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct RegistryAuth {
    /// `user:password` in base64.
    pub auth: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Email.
    pub email: Option<String>,
}

impl WriteFile {
    /// The file's bytes after undoing `encoding`.
    pub fn decoded(&self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        use std::io::Read;
        let b64 = |s: &str| {
            let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(clean)
                .map_err(|e| format!("{}: content is not base64: {e}", self.path))
        };
        let gunzip = |b: &[u8]| {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(b)
                .take(super::datasource::MAX_USER_DATA as u64)
                .read_to_end(&mut out)
                .map(|_| out)
                .map_err(|e| format!("{}: content is not gzip: {e}", self.path))
        };
        match self.encoding {
            Encoding::Plain => Ok(self.content.clone().into_bytes()),
            Encoding::Base64 => b64(&self.content),
            Encoding::Gzip => gunzip(self.content.as_bytes()),
            Encoding::GzipBase64 => gunzip(&b64(&self.content)?),
        }
    }

    /// The octal mode from `permissions` (default 0644).
    pub fn mode(&self) -> Result<u32, String> {
        match &self.permissions {
            None => Ok(0o644),
            Some(Text(p)) => u32::from_str_radix(p.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("{}: permissions {p:?} is not an octal mode", self.path)),
        }
    }
}
