//! PID 1's children and its event loop: start system-dockerd and
//! `ros sysinit`, reap every child, restart those two with backoff, route
//! power signals, and shut down cleanly.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys::process::{self, Power, Sig, Signals};

use super::say;

/// Backoff after a child exits: 1 s doubling to 30 s; a child that ran
/// for a minute starts over at 1 s.
pub fn next_backoff(prev: Duration, ran_for: Duration) -> Duration {
    if ran_for >= Duration::from_secs(60) {
        return Duration::from_secs(1);
    }
    (prev * 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// What a signal asks PID 1 to do (busybox init's meanings).
pub fn signal_action(sig: Sig) -> Option<Power> {
    match sig {
        Sig::SIGTERM | Sig::SIGINT => Some(Power::Reboot),
        Sig::SIGUSR2 => Some(Power::Poweroff),
        Sig::SIGUSR1 => Some(Power::Halt),
        _ => None,
    }
}

/// A supervised child: how to start it and its current state.
#[derive(Debug)]
pub struct Child {
    /// Name in logs.
    pub name: &'static str,
    /// Program.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Output file (the console when `None`).
    pub log: Option<PathBuf>,
    /// Running pid.
    pub pid: Option<i32>,
    started: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
}

impl Child {
    /// A child not yet started.
    pub fn new(name: &'static str, program: impl Into<PathBuf>, args: Vec<String>) -> Child {
        Child {
            name,
            program: program.into(),
            args,
            env: Vec::new(),
            log: None,
            pid: None,
            started: Instant::now(),
            backoff: Duration::from_secs(0),
            restart_at: None,
        }
    }

    fn output(&self) -> (Stdio, Stdio) {
        let open = |p: &Path| OpenOptions::new().create(true).append(true).open(p);
        match &self.log {
            Some(p) => match (open(p), open(p)) {
                (Ok(a), Ok(b)) => (Stdio::from(a), Stdio::from(b)),
                _ => (Stdio::inherit(), Stdio::inherit()),
            },
            None => (Stdio::inherit(), Stdio::inherit()),
        }
    }

    /// Start it, with PID 1's blocked signals unblocked in the child.
    pub fn start(&mut self) -> std::io::Result<i32> {
        let (out, err) = self.output();
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        process::unblock_in_child(&mut cmd);
        let child = cmd.spawn()?;
        let pid = i32::try_from(child.id()).unwrap_or(-1);
        self.pid = Some(pid);
        self.started = Instant::now();
        self.restart_at = None;
        Ok(pid)
    }

    /// Record its exit and schedule a restart.
    fn exited(&mut self, code: i32) {
        let ran = self.started.elapsed();
        self.backoff = next_backoff(self.backoff, ran);
        say(&format!(
            "{} exited ({code}) after {:.1}s; restarting in {}s",
            self.name,
            ran.as_secs_f64(),
            self.backoff.as_secs()
        ));
        self.pid = None;
        self.restart_at = Some(Instant::now() + self.backoff);
    }

    fn start_logged(&mut self) {
        if let Err(e) = self.start() {
            say(&format!("cannot start {}: {e}", self.name));
            self.backoff = next_backoff(self.backoff, Duration::ZERO);
            self.restart_at = Some(Instant::now() + self.backoff);
        }
    }
}

/// Reap, restart and route signals until a power signal arrives; then shut
/// down and call reboot(2). Never returns.
pub fn event_loop(signals: &Signals, children: &mut [Child], shutdown_timeout: Duration) -> ! {
    loop {
        let now = Instant::now();
        let wait = children
            .iter()
            .filter_map(|c| c.restart_at)
            .map(|t| t.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(30));
        let sig = signals.wait(wait.max(Duration::from_millis(10)));
        for r in process::reap_all() {
            if let Some(c) = children.iter_mut().find(|c| c.pid == Some(r.pid)) {
                c.exited(r.code);
            }
        }
        if let Some(how) = sig.and_then(signal_action) {
            shutdown(signals, children, how, shutdown_timeout);
        }
        let now = Instant::now();
        for c in children.iter_mut() {
            if c.pid.is_none() && c.restart_at.is_some_and(|t| t <= now) {
                c.start_logged();
            }
        }
    }
}

/// Wait until `pid` is gone (reaping as we go) or `timeout` passes.
fn wait_gone(signals: &Signals, pid: i32, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    loop {
        let reaped = process::reap_all();
        if reaped.iter().any(|r| r.pid == pid) || !process::alive(pid) {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        signals.wait(Duration::from_millis(200));
    }
}

/// Stop one child: SIGTERM, then SIGKILL after `timeout` (at once when
/// `timeout` is zero).
fn stop(signals: &Signals, c: &mut Child, timeout: Duration) {
    let Some(pid) = c.pid.take() else { return };
    say(&format!("stopping {}", c.name));
    let t = Instant::now();
    if timeout.is_zero() {
        process::kill(pid, Sig::SIGKILL);
        wait_gone(signals, pid, Duration::from_secs(2));
    } else {
        process::kill(pid, Sig::SIGTERM);
        if !wait_gone(signals, pid, timeout) {
            say(&format!("{} did not stop; killing it", c.name));
            process::kill(pid, Sig::SIGKILL);
            wait_gone(signals, pid, Duration::from_secs(2));
        }
    }
    say(&format!(
        "{} stopped in {} ms",
        c.name,
        t.elapsed().as_millis()
    ));
}

/// Mount points to unmount at shutdown, deepest first.
pub fn unmount_order(mounts: &str) -> Vec<String> {
    let keep = ["/", "/proc", "/sys", "/dev"];
    let mut v: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| !keep.contains(&m.as_str()))
        .collect();
    v.reverse();
    v
}

/// How long system-dockerd (and its containerd) gets at shutdown, once sysinit has stopped
/// every service, before it is killed: none (SIGKILL at once; see below
/// why that is safe). Under TCG its own shutdown took longer than a second
/// and was killed anyway at 1 s and at 0.5 s: a grace only made the
/// poweroff slower. Its network state is per boot (a tmpfs), so what it
/// leaves costs the next boot nothing there.
const ENGINE_GRACE: Duration = Duration::ZERO;

/// Stop sysinit (it stops the services in reverse order), then
/// system-dockerd, then everything else; unmount, sync, reboot(2).
pub fn shutdown(signals: &Signals, children: &mut [Child], how: Power, timeout: Duration) -> ! {
    say(&format!("shutdown: {how:?}"));
    let t0 = Instant::now();
    // Children are in start order: stop them in reverse. sysinit stops the
    // services and waits for their processes; system-dockerd then only has
    // its own bookkeeping of them left (runc deletes, unmounts, state
    // files: seconds of CPU under TCG), which a poweroff can drop — its
    // state files are written atomically, and a restart recovers stale
    // ones as after a power cut — so it is killed without one.
    for c in children.iter_mut().rev() {
        let grace = if c.name == "system-dockerd" || c.name == "system-containerd" {
            timeout.min(ENGINE_GRACE)
        } else {
            timeout
        };
        stop(signals, c, grace);
    }
    say("sending TERM to all processes");
    process::kill(-1, Sig::SIGTERM);
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end && process::alive_any() {
        process::reap_all();
        signals.wait(Duration::from_millis(100));
    }
    process::kill(-1, Sig::SIGKILL);
    process::reap_all();
    let sys = crate::sys::LinuxSyscall;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for m in unmount_order(&mounts) {
        let _ = crate::sys::Syscall::umount(&sys, Path::new(&m), true);
    }
    say(&format!(
        "{how:?} now ({} ms after the signal)",
        t0.elapsed().as_millis()
    ));
    process::power(how);
    // reboot(2) refused: stay alive, never exit.
    loop {
        signals.wait(Duration::from_secs(60));
        process::reap_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let s = Duration::from_secs;
        assert_eq!(next_backoff(s(0), s(0)), s(1));
        assert_eq!(next_backoff(s(1), s(2)), s(2));
        assert_eq!(next_backoff(s(16), s(2)), s(30));
        assert_eq!(next_backoff(s(30), s(2)), s(30));
        assert_eq!(next_backoff(s(30), s(61)), s(1));
    }

    #[test]
    fn signals_map_like_busybox() {
        assert_eq!(signal_action(Sig::SIGTERM), Some(Power::Reboot));
        assert_eq!(signal_action(Sig::SIGINT), Some(Power::Reboot));
        assert_eq!(signal_action(Sig::SIGUSR2), Some(Power::Poweroff));
        assert_eq!(signal_action(Sig::SIGUSR1), Some(Power::Halt));
        assert_eq!(signal_action(Sig::SIGCHLD), None);
    }

    #[test]
    fn unmounts_deepest_first() {
        let m = "rootfs / rootfs rw 0 0\nproc /proc proc rw 0 0\n/dev/vda /mnt/state ext4 rw 0 0\n\
                 /dev/vda /var/lib/docker ext4 rw 0 0\ncgroup /sys/fs/cgroup tmpfs rw 0 0\n";
        assert_eq!(
            unmount_order(m),
            ["/sys/fs/cgroup", "/var/lib/docker", "/mnt/state"]
        );
    }
}
