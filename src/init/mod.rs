//! PID 1: `ros init`.
//!
//! Synchronous and single-threaded (no tokio: nothing may race the reaper).
//! The boot is a table of stages ([`stages::STAGES`]) run in order and
//! logged `[i/n] name` on the console; then [`supervise::event_loop`] reaps
//! children, restarts system-dockerd and `ros sysinit` with backoff and
//! turns power signals into a clean shutdown. PID 1 never exits and never
//! panics: a fatal stage error prints its error chain and starts an
//! emergency shell on the console, forever.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::sys::process::{self, Power};

pub mod groupshim;
pub mod modules;
pub mod mounts;
pub mod stages;
pub mod state;
pub mod supervise;
pub mod switchroot;
pub mod userdata;

/// Print one line on the console (errors writing it are ignored: PID 1
/// must not die because the console is gone).
pub fn say(msg: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "ros init: {msg}");
}

/// An error and its sources, `: `-joined.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Entry point when the binary runs as `init`.
pub fn main() -> i32 {
    if std::process::id() != 1 {
        say("not PID 1: use `ros os reboot|poweroff|halt` to control the node");
        return 1;
    }
    let start = Instant::now();
    raise_open_files();
    // A panic anywhere below is caught here: PID 1 must not die.
    let outcome = std::panic::catch_unwind(|| stages::boot(start));
    let reason = match outcome {
        Ok(()) => "boot returned".to_string(),
        Err(p) => format!(
            "panic: {}",
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        ),
    };
    emergency(&reason)
}

/// The hard open-file limit every process of the node inherits: the
/// kernel gives init 4096, and the engines and their containers inherit it,
/// so HAProxy in a load balancer container could not raise its limit to
/// what its `maxconn` needs ("Cannot raise FD limit to 8239, limit is 4096")
/// and exited at every start on booted nodes. 1,048,576 (`fs.nr_open`'s
/// default) is what docker's own units allow; the soft limit stays 1024, as
/// under systemd (Go programs such as dockerd raise their own).
pub const NOFILE_HARD: u64 = 1_048_576;

fn raise_open_files() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(s, _)| s);
    if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, soft, NOFILE_HARD) {
        say(&format!(
            "cannot raise the open-file limit to {NOFILE_HARD}: {e}"
        ));
    }
}

/// The emergency console: print why, then run a shell on the console and
/// restart it whenever it exits. Power signals still work. Never returns.
pub fn emergency(reason: &str) -> ! {
    say(&format!("FATAL: {reason}"));
    say("starting an emergency shell on the console (exit restarts it)");
    let signals = process::Signals::new().ok();
    loop {
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.env("PS1", "(emergency) # ");
        process::unblock_in_child(&mut cmd);
        let shell = cmd.spawn();
        let pid = match shell {
            Ok(c) => i32::try_from(c.id()).unwrap_or(-1),
            Err(e) => {
                say(&format!("cannot start /bin/sh: {e}"));
                -1
            }
        };
        loop {
            let sig = match &signals {
                Some(s) => s.wait(Duration::from_secs(5)),
                None => {
                    std::thread::sleep(Duration::from_secs(5));
                    None
                }
            };
            if let Some(how) = sig.and_then(supervise::signal_action) {
                if let Some(s) = &signals {
                    supervise::shutdown(s, &mut [], how, Duration::from_secs(10));
                }
            }
            if process::reap_all().iter().any(|r| r.pid == pid) || pid < 0 {
                break;
            }
        }
    }
}

/// `reboot`, `poweroff`, `halt` (argv[0]) and `ros os reboot|poweroff|halt`:
/// only signal PID 1, which does the shutdown.
pub fn request(how: Power) -> i32 {
    match process::request_power(how) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ros: cannot signal PID 1: {e}");
            1
        }
    }
}
