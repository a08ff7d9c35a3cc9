//! The `ros` command line: clap commands that call the library.
//!
//! Each subcommand lives in its own file and stays thin; errors are
//! `anyhow` here (and only here and in main.rs), with context that names the
//! file or key involved.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::paths::{Paths, ENV_ROOT};

pub mod config;
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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ros: {e:#}");
            1
        }
    }
}
