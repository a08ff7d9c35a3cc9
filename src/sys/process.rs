//! Process-wide kernel calls for PID 1: blocked signals read from a
//! signalfd, reaping, killing, module loading, hostname and reboot(2).

use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

pub use nix::sys::signal::Signal as Sig;

/// Errors from process-wide calls.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Setting up signal delivery failed.
    #[error("signal setup")]
    Signals(#[source] nix::Error),
    /// finit_module(2) failed.
    #[error("load module {path}")]
    Module {
        /// The module file.
        path: String,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// sethostname(2) failed.
    #[error("set hostname")]
    Hostname(#[source] nix::Error),
}

/// The signals PID 1 handles; all are blocked and read from a signalfd.
pub const HANDLED: [Signal; 6] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGHUP,
];

/// Blocks [`HANDLED`] and returns a signalfd delivering them.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Block the handled signals and open the signalfd.
    pub fn new() -> Result<Signals, ProcessError> {
        let mut set = SigSet::empty();
        for s in HANDLED {
            set.add(s);
        }
        set.thread_block().map_err(ProcessError::Signals)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(ProcessError::Signals)?;
        Ok(Signals { fd })
    }

    /// Wait up to `timeout` for a signal; `None` on timeout.
    pub fn wait(&self, timeout: Duration) -> Option<Signal> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        let t = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, t) {
            Ok(n) if n > 0 => match self.fd.read_signal() {
                Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
                _ => None,
            },
            _ => None,
        }
    }
}

/// One reaped child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reaped {
    /// Its pid.
    pub pid: i32,
    /// Exit code, or 128 + signal.
    pub code: i32,
}

/// Reap every exited child without blocking.
pub fn reap_all() -> Vec<Reaped> {
    let mut out = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push(Reaped {
                pid: pid.as_raw(),
                code,
            }),
            Ok(WaitStatus::Signaled(pid, sig, _)) => out.push(Reaped {
                pid: pid.as_raw(),
                code: 128 + sig as i32,
            }),
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    out
}

/// Send `sig` to `pid` (-1: every process but us); errors are ignored.
pub fn kill(pid: i32, sig: Signal) {
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
}

/// True while `pid` exists.
pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
}

/// Load a kernel module from an (uncompressed) `.ko` file.
pub fn load_module(path: &Path, params: &str) -> Result<(), ProcessError> {
    let err = |source| ProcessError::Module {
        path: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(err)?;
    let params = CString::new(params).unwrap_or_default();
    match nix::kmod::finit_module(&f, &params, nix::kmod::ModuleInitFlags::empty()) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(e) => Err(err(std::io::Error::from(e))),
    }
}

/// sethostname(2).
pub fn set_hostname(name: &str) -> Result<(), ProcessError> {
    nix::unistd::sethostname(name).map_err(ProcessError::Hostname)
}

/// What reboot(2) does at the end of a shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    /// Restart the machine.
    Reboot,
    /// Switch it off.
    Poweroff,
    /// Stop the CPU.
    Halt,
}

/// sync(2), then reboot(2) as `how`. Returns only if the kernel refused.
pub fn power(how: Power) {
    use nix::sys::reboot::{reboot, RebootMode};
    nix::unistd::sync();
    let mode = match how {
        Power::Reboot => RebootMode::RB_AUTOBOOT,
        Power::Poweroff => RebootMode::RB_POWER_OFF,
        Power::Halt => RebootMode::RB_HALT_SYSTEM,
    };
    let _ = reboot(mode);
}

/// The signal that asks PID 1 for `how` (busybox init's meanings).
pub fn power_signal(how: Power) -> Signal {
    match how {
        Power::Reboot => Signal::SIGTERM,
        Power::Poweroff => Signal::SIGUSR2,
        Power::Halt => Signal::SIGUSR1,
    }
}

/// Ask PID 1 for `how`: the only thing `ros os reboot` / `poweroff` do.
pub fn request_power(how: Power) -> Result<(), nix::Error> {
    nix::sys::signal::kill(Pid::from_raw(1), power_signal(how))
}

/// True while any process other than PID 1 (and kernel threads) exists.
pub fn alive_any() -> bool {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten().any(|e| {
                let name = e.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    return false;
                };
                // kernel threads have an empty cmdline
                pid != me
                    && std::fs::read(e.path().join("cmdline"))
                        .map(|c| !c.is_empty())
                        .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

/// Make `cmd`'s child start with no blocked signals: PID 1 blocks the
/// signals it reads from its signalfd, and a child that inherited that mask
/// (tokio's handlers in `ros sysinit`) would never see SIGTERM.
pub fn unblock_in_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls
    // sigprocmask(2), which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let _ = SigSet::all().thread_unblock();
            Ok(())
        });
    }
}
