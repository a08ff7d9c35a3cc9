//! The `ros` command line: clap commands that call the library.
//!
//! Each subcommand lives in its own file and stays thin; errors are
//! `anyhow` here (and only here and in main.rs), with context that names the
//! file or key involved.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::paths::{Paths, ENV_ROOT};

pub mod config;
pub mod os;
pub mod service;
pub mod sysinit;

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
    UserDocker,
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

/// Parse arguments, run, and return the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    crate::logging::init(cli.debug);
    let paths = cli.paths();
    let result = match cli.command {
        Command::Config { cmd } => config::run(&paths, cmd),
        Command::Service { cmd } => service::run(&paths, cmd),
        Command::Sysinit(args) => sysinit::run(&paths, args),
        Command::UserDocker => sysinit::user_docker(&paths),
        Command::Init => return crate::init::main(),
        Command::Os { cmd } => return os::run(cmd),
        Command::Netconf => crate::guest::netconf::netconf(&crate::guest::config(&paths))
            .map(|()| 0)
            .map_err(Into::into),
        Command::ConsoleInit => crate::guest::console::console_init(&crate::guest::config(&paths))
            .map(|()| 0)
            .map_err(Into::into),
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
