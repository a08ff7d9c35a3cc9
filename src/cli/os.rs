//! `ros os reboot|poweroff|halt|version`: power requests only signal PID 1.

use clap::Subcommand;

use crate::sys::process::Power;

/// `ros os` subcommands.
#[derive(Debug, Subcommand)]
pub enum OsCmd {
    /// Reboot the node (signals PID 1).
    Reboot,
    /// Power the node off (signals PID 1).
    Poweroff,
    /// Halt the node (signals PID 1).
    Halt,
    /// Print the OS version.
    Version,
}

/// Run one `ros os` subcommand.
pub fn run(cmd: OsCmd) -> i32 {
    match cmd {
        OsCmd::Reboot => crate::init::request(Power::Reboot),
        OsCmd::Poweroff => crate::init::request(Power::Poweroff),
        OsCmd::Halt => crate::init::request(Power::Halt),
        OsCmd::Version => {
            println!("v{}", crate::paths::VERSION);
            0
        }
    }
}
