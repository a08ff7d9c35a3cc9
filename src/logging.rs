//! The tracing subscriber, set up in one place for every role.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Log to stderr; `ROS_LOG` (or `RUST_LOG`) sets the filter, default `info`.
pub fn init(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = std::env::var("ROS_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in log files, and never
        // when NO_COLOR is set (https://no-color.org; PID 1 sets it for the
        // console).
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(false)
        .try_init();
}
