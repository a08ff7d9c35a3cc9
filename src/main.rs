//! The `ros` multi-call binary: `argv[0]` of `init` runs PID 1, anything
//! else is the `ros` command line.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("ros")
        .to_string();
    let code = match name.as_str() {
        "init" => ros::init::main(),
        "reboot" => ros::init::request(ros::sys::process::Power::Reboot),
        "poweroff" => ros::init::request(ros::sys::process::Power::Poweroff),
        "halt" => ros::init::request(ros::sys::process::Power::Halt),
        _ => ros::cli::main(),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
