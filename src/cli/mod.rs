//! The `ros` command line: clap commands that call the library.
//!
//! Each subcommand lives in its own file and stays thin; errors are
//! `anyhow` here (and only here and in main.rs), with context that names the
//! file or key involved.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser, Subcommand};

use crate::paths::{Paths, ENV_ROOT};

pub mod cluster;
mod cluster_secrets;
mod cluster_status;
mod cluster_up;
pub mod compose;
pub mod config;
pub mod os;
pub mod service;
pub mod sysinit;
mod user_engine;

/// ros: a minimal container operating system.
#[derive(Debug, Parser)]
#[command(name = "ros", version, about, long_about = None)]
pub struct Cli {
    /// Run every path below DIR instead of / (for development and tests).
    #[arg(long, global = true, env = ENV_ROOT, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read and change the cloud-config.
    #[command(visible_alias = "c")]
    Config {
        #[command(subcommand)]
        cmd: config::ConfigCmd,
    },
    /// Run or talk to the cluster server and agents.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Deploy and manage stacks on the cluster (rancher-compose's commands).
    Compose(compose::ComposeArgs),
    /// Manage the system services on system-docker.
    #[command(visible_alias = "s")]
    Service {
        #[command(subcommand)]
        cmd: service::ServiceCmd,
    },
    /// The service manager (started by PID 1; by hand under --root).
    #[command(hide = true)]
    Sysinit(sysinit::SysinitArgs),
    /// Run the user dockerd from ros.docker (the `docker` system service).
    #[command(hide = true)]
    UserDocker {
        /// Only load the archives of /usr/share/ros/user-images into the
        /// running user engine (started in the background by user-docker).
        #[arg(long)]
        preload: bool,
    },
    /// The docker CLI against system-docker (`system-docker ps`).
    SystemDocker {
        /// Arguments for docker.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run as PID 1 (normally reached through argv[0] = init).
    #[command(hide = true)]
    Init,
    /// Power and version of the node.
    Os {
        #[command(subcommand)]
        cmd: os::OsCmd,
    },
    /// Configure the network (the `network` system service).
    Netconf,
    /// Logins: agetty and sshd (the `console` system service).
    ConsoleInit,
    /// agetty's login program: refuses a locked account in words, else
    /// runs `login` (a link `console-login -> ros` in the console image).
    #[command(hide = true)]
    ConsoleLogin {
        /// agetty's arguments for login (`-- NAME` or `-f NAME`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The login message: this node's version, IP and role, and the first
    /// commands to try.
    Motd,
    /// Apply write_files, sysctl and runcmd (a system service).
    CloudInitExecute {
        /// Accepted for RancherOS compatibility.
        #[arg(long)]
        pre_console: bool,
    },
    /// Coldplug devices with udev (the `udev-cold` system service).
    UdevSettle,
}

impl Cli {
    /// The paths this invocation works on.
    pub fn paths(&self) -> Paths {
        match &self.root {
            Some(r) => Paths::new(r),
            None => Paths::default(),
        }
    }
}

/// `ros` in a container: a binary called by a subcommand's name (a symlink
/// `/usr/bin/user-docker -> ros`, or argv[0] set by a service's command)
/// runs that subcommand, so images need only the one binary.
pub fn role_args(args: Vec<OsString>) -> Vec<OsString> {
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("ros")
        .to_string();
    let is_role = name != "ros"
        && name != "help"
        && Cli::command()
            .get_subcommands()
            .any(|c| c.get_name() == name);
    if !is_role {
        return args;
    }
    let mut out = vec![OsString::from("ros"), OsString::from(name)];
    out.extend(args.into_iter().skip(1));
    out
}

/// Whether this command needs root that this user lacks on a node: the
/// config files (mode 0600), system-docker's socket, PID 1's signals. A
/// command that would work as it is (or runs below `--root`) never does.
fn needs_sudo(cli: &Cli, paths: &Paths) -> bool {
    use nix::unistd::{access, geteuid, AccessFlags};
    if cli.root.is_some() || geteuid().is_root() {
        return false;
    }
    let denied = |p: &Path, f: AccessFlags| p.exists() && access(p, f).is_err();
    let rw = AccessFlags::R_OK | AccessFlags::W_OK;
    match &cli.command {
        Command::Config { cmd } => {
            let write = matches!(
                cmd,
                config::ConfigCmd::Set { .. } | config::ConfigCmd::Merge { .. }
            );
            let conf = paths.conf_dir();
            denied(&conf, AccessFlags::R_OK | AccessFlags::X_OK)
                || denied(&paths.cloud_config(), AccessFlags::R_OK)
                || (write && denied(&conf, AccessFlags::W_OK))
        }
        Command::Service { .. } | Command::SystemDocker { .. } => {
            denied(&paths.system_docker_sock(), rw)
        }
        Command::Os { cmd } => {
            !matches!(cmd, os::OsCmd::Version) && paths.system_docker_sock().exists()
        }
        _ => false,
    }
}

/// Run `argv` again through `sudo -n` when sudo is installed; returns
/// only when it is not (or cannot run).
fn rerun_with_sudo(argv: &[OsString]) {
    use std::os::unix::process::CommandExt;
    let Some(sudo) = ["/usr/bin/sudo", "/bin/sudo", "/usr/sbin/sudo"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
    else {
        return;
    };
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/bin/ros"));
    let err = std::process::Command::new(sudo)
        .arg("-n")
        .arg("--")
        .arg(exe)
        .args(argv.iter().skip(1))
        .exec();
    eprintln!("ros: cannot run {}: {err}", sudo.display());
}

/// Parse arguments, run, and return the exit code.
pub fn main() -> i32 {
    let argv = role_args(std::env::args_os().collect());
    let cli = Cli::parse_from(argv.clone());
    crate::logging::init(cli.debug);
    let paths = cli.paths();
    if needs_sudo(&cli, &paths) {
        rerun_with_sudo(&argv);
    }
    let result = match cli.command {
        Command::Config { cmd } => config::run(&paths, cmd),
        Command::Cluster { cmd } => cluster::run(&paths, cmd),
        Command::Compose(args) => compose::run(args),
        Command::Service { cmd } => service::run(&paths, cmd),
        Command::Sysinit(args) => sysinit::run(&paths, args),
        Command::UserDocker { preload: false } => sysinit::user_docker(&paths),
        Command::UserDocker { preload: true } => sysinit::preload_user_images(&paths),
        Command::SystemDocker { args } => sysinit::system_docker(&paths, &args),
        Command::Init => return crate::init::main(),
        Command::Os { cmd } => return os::run(cmd),
        Command::Netconf => crate::guest::netconf::netconf(&crate::guest::config(&paths))
            .map(|()| 0)
            .map_err(Into::into),
        Command::ConsoleInit => {
            crate::guest::console::console_init(&crate::guest::config(&paths), &paths)
                .map(|()| 0)
                .map_err(Into::into)
        }
        Command::ConsoleLogin { args } => crate::guest::console::console_login(&args)
            .map(|()| 0)
            .map_err(Into::into),
        Command::Motd => {
            let host = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "?".into());
            let facts = std::fs::read_to_string(paths.motd_facts()).unwrap_or_default();
            let ip = crate::guest::console::primary_ip();
            print!(
                "{}",
                crate::guest::console::motd(crate::paths::VERSION, &host, ip.as_deref(), &facts)
            );
            Ok(0)
        }
        Command::CloudInitExecute { .. } => Ok(crate::guest::cloudinit::execute(
            &crate::guest::config(&paths),
            &paths,
        )),
        Command::UdevSettle => crate::guest::udev_settle().map(|()| 0).map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ros: {e:#}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_selects_the_role() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let rows: &[(&[&str], &[&str])] = &[
            (&["/usr/bin/user-docker"], &["ros", "user-docker"]),
            (&["sysinit", "--once"], &["ros", "sysinit", "--once"]),
            (
                &["/usr/bin/ros", "service", "list"],
                &["/usr/bin/ros", "service", "list"],
            ),
            (&["something-else", "x"], &["something-else", "x"]),
        ];
        for (input, want) in rows {
            assert_eq!(role_args(args(input)), args(want), "{input:?}");
        }
    }

    #[test]
    fn agetty_arguments_reach_console_login() {
        for (argv, want) in [
            (&["console-login", "--", "rancher"][..], &["rancher"][..]),
            (
                &["console-login", "-f", "rancher"][..],
                &["-f", "rancher"][..],
            ),
        ] {
            let argv = role_args(argv.iter().map(OsString::from).collect());
            let cli = Cli::try_parse_from(argv).unwrap();
            match cli.command {
                Command::ConsoleLogin { args } => assert_eq!(args, want),
                other => panic!("{other:?}"),
            }
        }
    }
}
