//! The boot as data: a table of named stages run in order, each logged
//! `[i/n] name` with the uptime, and what each one does.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::config::cmdline::{self, Cmdline};
use crate::config::engine::{companion, dockerd_env, system_dockerd_args, CONTAINERD, DOCKERD};
use crate::config::{disk, node::to_yaml, CloudConfig};
use crate::paths::{
    Paths, MEDIUM_DIR, MEDIUM_LABEL, MEDIUM_STORE, STATE_LABEL, STORE_DIR, STORE_IMAGE,
    SYSTEM_BRIDGE, SYSTEM_BRIDGE_CIDR,
};
use crate::sys::process::{self, Signals};
use crate::sys::{LinuxSyscall, MountArgs, MsFlags, Syscall};

use super::supervise::{self, Child};
use super::{chain, modules, mounts, say, state, switchroot, userdata};

/// Errors of a boot stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A syscall failed.
    #[error(transparent)]
    Sys(#[from] crate::sys::SysError),
    /// Moving off the initramfs failed.
    #[error(transparent)]
    Switch(#[from] switchroot::SwitchError),
    /// A process-wide call failed.
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

/// Everything the stages share.
pub struct Boot {
    /// The kernel.
    pub sys: LinuxSyscall,
    /// Node paths.
    pub paths: Paths,
    /// The kernel command line.
    pub cmdline: Cmdline,
    /// The merged config (defaults until the config stage).
    pub cfg: CloudConfig,
    /// Supervised children, in start order.
    pub children: Vec<Child>,
    /// When PID 1 started.
    pub start: Instant,
    /// Whether a state partition is mounted (else: running from memory).
    pub state_mounted: bool,
    /// [`modules::NETWORK_MODULES`] loading in the background (joined
    /// before sysinit starts).
    pub network_modules: Option<std::thread::JoinHandle<ModulesLoaded>>,
}

/// What [`load_list`] did: the count loaded and the failures in words.
type ModulesLoaded = Result<(usize, Vec<String>), StageError>;

/// One boot stage.
pub struct Stage {
    /// Its name in the log.
    pub name: &'static str,
    /// Whether a failure drops to the emergency shell (else: warn, go on).
    pub fatal: bool,
    /// What it does.
    pub run: fn(&mut Boot) -> Result<(), StageError>,
}

/// The boot, in order.
pub const STAGES: &[Stage] = &[
    Stage {
        name: "mounts",
        fatal: true,
        run: early_mounts,
    },
    Stage {
        name: "cmdline",
        fatal: false,
        run: read_cmdline,
    },
    Stage {
        name: "modules",
        fatal: false,
        run: load_modules,
    },
    Stage {
        name: "switch-root",
        fatal: true,
        run: switch_root,
    },
    Stage {
        name: "cgroups",
        fatal: true,
        run: cgroups,
    },
    Stage {
        name: "state",
        fatal: false,
        run: state_partition,
    },
    Stage {
        name: "datasources",
        fatal: false,
        run: datasources,
    },
    Stage {
        name: "config",
        fatal: false,
        run: load_config,
    },
    Stage {
        name: "hostname",
        fatal: false,
        run: hostname,
    },
    Stage {
        name: "network-base",
        fatal: false,
        run: network_base,
    },
    Stage {
        name: "system-docker",
        fatal: true,
        run: system_docker,
    },
    Stage {
        name: "sysinit",
        fatal: false,
        run: sysinit,
    },
];

/// Environment marker of a PID 1 that re-executed itself from the new
/// root after the switch (removed at once, so no child inherits it).
const RESUMED: &str = "ROS_INIT_RESUMED";

/// Stages whose effects outlive an exec (mounts, loaded modules): a
/// re-executed PID 1 does not run them again; the rest are cheap or no-ops
/// off the initramfs (switch-root).
const DONE_BEFORE_REEXEC: &[&str] = &["mounts"];

/// Run the stages, then the event loop. Returns only if the loop does
/// (never); a fatal stage goes to the emergency shell.
pub fn boot(start: Instant) {
    let _ = LinuxSyscall.mkdir(Path::new("/dev"), 0o755);
    let signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => super::emergency(&chain(&e)),
    };
    let _ = nix::sys::reboot::set_cad_enabled(false);
    let mut b = Boot {
        sys: LinuxSyscall,
        paths: Paths::default(),
        cmdline: cmdline::parse("cmdline", ""),
        cfg: CloudConfig::default(),
        children: Vec::new(),
        start,
        state_mounted: false,
        network_modules: None,
    };
    // The kernel starts PID 1 without a PATH.
    std::env::set_var("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let resumed = std::env::var_os(RESUMED).is_some();
    if resumed {
        std::env::remove_var(RESUMED);
        say("running from the tmpfs root (re-executed; the initramfs copy is freed)");
    } else {
        say(&format!("ros {} starting", crate::paths::VERSION));
    }
    let n = STAGES.len();
    for (i, st) in STAGES.iter().enumerate() {
        if resumed && DONE_BEFORE_REEXEC.contains(&st.name) {
            continue;
        }
        let t = Instant::now();
        let res = (st.run)(&mut b);
        let uptime = uptime();
        let took = t.elapsed().as_secs_f64();
        match res {
            Ok(()) => say(&format!(
                "[{}/{n}] {} ok ({took:.2}s, uptime {uptime:.2}s)",
                i + 1,
                st.name
            )),
            Err(e) if st.fatal => {
                say(&format!(
                    "[{}/{n}] {} FAILED: {}",
                    i + 1,
                    st.name,
                    chain(&e)
                ));
                super::emergency(&format!("stage {} failed", st.name));
            }
            Err(e) => say(&format!(
                "[{}/{n}] {} failed (continuing): {}",
                i + 1,
                st.name,
                chain(&e)
            )),
        }
    }
    say(&format!("boot done at uptime {:.2}s", uptime()));
    let timeout = Duration::from_secs(u64::from(b.cfg.ros.shutdown_timeout.unwrap_or(60)));
    supervise::event_loop(&signals, &mut b.children, timeout)
}

/// Seconds since the kernel started.
pub fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn other(e: impl std::fmt::Display) -> StageError {
    StageError::Other(e.to_string())
}

fn early_mounts(b: &mut Boot) -> Result<(), StageError> {
    mounts::early(&b.sys, Path::new("/"), true)?;
    Ok(())
}

fn read_cmdline(b: &mut Boot) -> Result<(), StageError> {
    let text = std::fs::read_to_string("/proc/cmdline").map_err(other)?;
    b.cmdline = cmdline::parse("/proc/cmdline", text.trim());
    // Defaults + command line, until the saved layers are readable.
    let (_, cfg, _) = disk::load(&b.paths).resolve();
    b.cfg = cfg;
    for p in &b.cmdline.problems {
        say(&format!("cmdline: {p}"));
    }
    Ok(())
}

/// Load `wanted` (name, parameters) with their dependencies from
/// `/lib/modules/<release>`: how many files loaded, and the failures.
/// Modules already loaded are skipped. Independent modules load on
/// parallel threads (one per CPU): under QEMU's TCG a module's relocation
/// and its init's RCU waits cost ~25 ms each, and one thread leaves the
/// other CPU idle.
fn load_list(wanted: &[(String, String)]) -> Result<(usize, Vec<String>), StageError> {
    use std::sync::{Arc, Condvar, Mutex};
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .map_err(other)?;
    let dir = PathBuf::from("/lib/modules").join(release);
    let dep =
        modules::ModDep::parse(&std::fs::read_to_string(dir.join("modules.dep")).map_err(other)?);
    let loaded_already = |m: &str| Path::new("/sys/module").join(m).join("initstate").exists();
    let plan = dep.plan(wanted, &loaded_already);
    if plan.is_empty() {
        return Ok((0, Vec::new()));
    }
    // per file: 0 waiting, 1 loading, 2 loaded, 3 failed
    struct Work {
        status: Vec<u8>,
        failed: Vec<String>,
        loaded: usize,
    }
    let index: std::collections::HashMap<PathBuf, usize> = plan
        .iter()
        .enumerate()
        .map(|(i, p)| (p.file.clone(), i))
        .collect();
    let shared = Arc::new((
        Mutex::new(Work {
            status: vec![0; plan.len()],
            failed: Vec::new(),
            loaded: 0,
        }),
        Condvar::new(),
    ));
    let plan = Arc::new(plan);
    let index = Arc::new(index);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let worker = {
        let (shared, plan, index, dir) = (shared.clone(), plan.clone(), index.clone(), dir.clone());
        move || loop {
            let (lock, cv) = &*shared;
            let mut w = lock.lock().unwrap_or_else(|e| e.into_inner());
            let pick = loop {
                let mut busy = false;
                let mut pick = None;
                for (i, item) in plan.iter().enumerate() {
                    match w.status[i] {
                        0 => {}
                        1 => {
                            busy = true;
                            continue;
                        }
                        _ => continue,
                    }
                    let needs: Vec<u8> = item
                        .needs
                        .iter()
                        .filter_map(|n| index.get(n).map(|&j| w.status[j]))
                        .collect();
                    if needs.contains(&3) {
                        w.status[i] = 3;
                        w.failed.push(format!(
                            "{}: a module it needs failed to load",
                            item.file.display()
                        ));
                        continue;
                    }
                    if needs.iter().all(|&st| st == 2) {
                        pick = Some(i);
                        break;
                    }
                }
                if let Some(i) = pick {
                    w.status[i] = 1;
                    break Some(i);
                }
                if !busy && w.status.iter().all(|&st| st >= 2) {
                    break None;
                }
                if !busy {
                    // waiting on nothing: a dependency outside the plan
                    for i in 0..plan.len() {
                        if w.status[i] == 0 {
                            w.status[i] = 3;
                            w.failed.push(format!(
                                "{}: its dependencies cannot load",
                                plan[i].file.display()
                            ));
                        }
                    }
                    cv.notify_all();
                    break None;
                }
                w = cv.wait(w).unwrap_or_else(|e| e.into_inner());
            };
            let Some(i) = pick else {
                cv.notify_all();
                return;
            };
            drop(w);
            let r = process::load_module(&dir.join(&plan[i].file), &plan[i].params);
            let mut w = lock.lock().unwrap_or_else(|e| e.into_inner());
            match r {
                Ok(()) => {
                    w.status[i] = 2;
                    w.loaded += 1;
                }
                Err(e) => {
                    w.status[i] = 3;
                    w.failed.push(chain(&e));
                }
            }
            cv.notify_all();
        }
    };
    let handles: Vec<_> = (1..threads)
        .map(|_| std::thread::spawn(worker.clone()))
        .collect();
    worker();
    for h in handles {
        let _ = h.join();
    }
    let (lock, _) = &*shared;
    let w = lock.lock().unwrap_or_else(|e| e.into_inner());
    Ok((w.loaded, w.failed.clone()))
}

/// In the initramfs: the drivers finding the boot medium needs
/// ([`modules::EARLY_MODULES`]). After the switch: `/lib/modules` becomes
/// the store's tree, and the rest ([`modules::BASE_MODULES`] and
/// `ros.modules`) load from it.
fn load_modules(b: &mut Boot) -> Result<(), StageError> {
    let early = switchroot::on_initramfs();
    let names = if early {
        modules::EARLY_MODULES
    } else {
        link_store_modules();
        modules::BASE_MODULES
    };
    let mut wanted: Vec<(String, String)> = names
        .iter()
        .map(|m| (m.to_string(), String::new()))
        .collect();
    if !early {
        wanted.extend(b.cfg.ros.modules.iter().map(|e| modules::split_entry(e)));
    }
    let (loaded, failed) = load_list(&wanted)?;
    if !early && b.network_modules.is_none() {
        // Off the way to system-docker (~0.5 s of module init under TCG);
        // the thread inherits the main thread's blocked signals.
        let network: Vec<(String, String)> = modules::NETWORK_MODULES
            .iter()
            .map(|m| (m.to_string(), String::new()))
            .collect();
        b.network_modules = Some(std::thread::spawn(move || load_list(&network)));
    }
    if early {
        std::env::set_var(STORAGE_AT, format!("{:.2}", uptime()));
    }
    if failed.is_empty() {
        say(&format!(
            "modules: {loaded} loaded{}",
            if early { " (the boot medium's)" } else { "" }
        ));
        Ok(())
    } else {
        Err(other(failed.join("; ")))
    }
}

/// Point `/lib/modules` at the store's module tree (the initramfs's few
/// early ones are dropped from the tmpfs root); a store without one (an
/// older image) leaves it as it is.
fn link_store_modules() {
    let store = Path::new(STORE_DIR).join("modules");
    let lib = Path::new("/lib/modules");
    if !store.is_dir() || lib.read_link().is_ok() {
        return;
    }
    let _ = std::fs::remove_dir_all(lib);
    if let Err(e) = std::os::unix::fs::symlink(&store, lib) {
        say(&format!(
            "modules: cannot link /lib/modules to {}: {e}",
            store.display()
        ));
    }
}

/// Environment: the uptime at which the storage drivers were loaded (set
/// in the initramfs, read by the state stage after the re-exec).
const STORAGE_AT: &str = "ROS_INIT_STORAGE_AT";

fn switch_root(b: &mut Boot) -> Result<(), StageError> {
    if !switchroot::on_initramfs() {
        return Ok(());
    }
    let new = Path::new(switchroot::NEW_ROOT);
    switchroot::prepare(&b.sys, new)?;
    // The store stays compressed and is never copied: squashfs on a loop
    // device, mounted inside the new root. A kernel+initrd boot (PXE,
    // `qemu -kernel`) carries it in the initramfs; an ISO boot leaves it on
    // the CD (GRUB then reads a small initrd, and the store's pages are read
    // from the medium when used instead of sitting in RAM for the uptime).
    let mut kept = vec!["proc", "sys", "dev", "run", ".newroot"];
    let in_initramfs = Path::new(STORE_IMAGE);
    let (store, whence) = if in_initramfs.exists() {
        kept.push(STORE_IMAGE.trim_start_matches('/'));
        (in_initramfs.to_path_buf(), "initramfs".to_string())
    } else {
        let dev = boot_medium(b, new)?;
        let file = new
            .join(MEDIUM_DIR.trim_start_matches('/'))
            .join(MEDIUM_STORE);
        (file, format!("medium {} {MEDIUM_DIR}", dev.display()))
    };
    let dev = crate::sys::loopdev::attach_read_only(&store).map_err(other)?;
    let at = new.join(STORE_DIR.trim_start_matches('/'));
    switchroot::mount_store(&b.sys, &dev, &at)?;
    // Also when the store is in the initramfs: its pages are in RAM, but
    // compressed; reading the engine's binaries ahead decompresses them
    // off the way to system-dockerd (~2 s of page faults under TCG).
    readahead(&at);
    let mb = std::fs::metadata(&store).map(|m| m.len()).unwrap_or(0) / 1_000_000;
    let store_note = format!(
        ", store {mb} MB squashfs on {} from the {whence}",
        dev.display()
    );
    let bytes = switchroot::move_tree(Path::new("/"), new, &kept)?;
    switchroot::switch(&b.sys, new)?;
    say(&format!(
        "root: tmpfs ({} MB moved{store_note})",
        bytes / 1_000_000
    ));
    // This process still runs the initramfs's /init, which the switch
    // unlinked but cannot free while it is mapped (15 MB held for the
    // uptime): exec the copy in the new root, same PID, no children yet.
    let e = reexec_from_new_root();
    say(&format!(
        "cannot re-execute /usr/bin/ros from the new root ({e}); continuing"
    ));
    // the modules stage that follows a re-exec, here instead
    load_modules(b)
}

/// The store's files the boot runs first, in the order it runs them: the
/// engine and what starts the system containers. Not the docker CLI (45 MB)
/// nor runc (the user engine's, for user containers): read ahead, they
/// took CPU from the boot on a 2-vCPU TCG guest (zstd at ~15 MB/s there)
/// for what nothing on the way to `login:` runs.
const READAHEAD: &[&str] = &[
    "dockerd",
    "containerd",
    "containerd-shim-runc-v2",
    "crun",
    "docker-init",
];

/// Read [`READAHEAD`] from the store (`at`) into the page cache in a
/// child process, while PID 1 goes on: on a CD under TCG the store reads at
/// ~20 MB/s, and a cold dockerd start waits ~2 s on it; from the initramfs
/// the reads cost zstd decompression only (136 MB in 4.6–6.4 s). The files are
/// opened here, before the switch moves the mount; the child survives
/// PID 1's re-exec, exits when done and is reaped as any orphan.
fn readahead(at: &Path) {
    let files: Vec<std::fs::File> = READAHEAD
        .iter()
        .filter_map(|f| std::fs::File::open(at.join(f)).ok())
        .collect();
    // SAFETY: PID 1 is single-threaded here (the module loader's threads
    // have joined); the child only reads and calls _exit.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let t = Instant::now();
            let mut buf = vec![0u8; 1 << 20];
            let mut bytes = 0usize;
            for mut f in files {
                while let Ok(n @ 1..) = f.read(&mut buf) {
                    bytes += n;
                }
            }
            say(&format!(
                "readahead: {} MB of the engine's binaries in {:.2}s",
                bytes / 1_000_000,
                t.elapsed().as_secs_f64()
            ));
            // SAFETY: ends the child without running the parent's exit path.
            unsafe { nix::libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => {}
        Err(e) => say(&format!("readahead: cannot fork: {e}")),
    }
}

/// exec `/usr/bin/ros` as `/init` with [`RESUMED`] set; returns only on
/// failure.
fn reexec_from_new_root() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    Command::new("/usr/bin/ros")
        .arg0("/init")
        .env(RESUMED, "1")
        .exec()
}

/// Find and mount the boot medium (labelled [`MEDIUM_LABEL`], holding
/// [`MEDIUM_STORE`]) inside the new root; the CD may appear a moment after
/// its driver loads, so this waits up to 15 s.
fn boot_medium(b: &Boot, new: &Path) -> Result<PathBuf, StageError> {
    let at = new.join(MEDIUM_DIR.trim_start_matches('/'));
    let start = Instant::now();
    let wait = Duration::from_secs(15);
    let mut drivers_loaded = false;
    loop {
        let devs = state::probed_devices();
        let has = |dir: &Path| dir.join(MEDIUM_STORE).is_file();
        if let Some(dev) = switchroot::mount_medium(&b.sys, &devs, MEDIUM_LABEL, &at, &has)? {
            return Ok(dev);
        }
        // Not on the drives QEMU and most VMs give (IDE/virtio CD): load
        // the drivers of real machines' media (SATA, USB) and look again.
        if !drivers_loaded && start.elapsed() >= Duration::from_millis(500) {
            drivers_loaded = true;
            let wanted: Vec<(String, String)> = modules::MEDIUM_MODULES
                .iter()
                .map(|m| (m.to_string(), String::new()))
                .collect();
            let (n, failed) = load_list(&wanted)?;
            say(&format!(
                "boot medium: not found yet; {n} more drivers loaded{}",
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" ({} failed: {})", failed.len(), failed.join("; "))
                }
            ));
        }
        if start.elapsed() >= wait {
            let seen: Vec<String> = devs
                .iter()
                .map(|(d, p)| format!("{} ({} {:?})", d.display(), p.fstype, p.label))
                .collect();
            return Err(other(format!(
                "no system store: /{} is not in the initramfs and no device labelled {MEDIUM_LABEL} \
                 holds {MEDIUM_STORE} (waited {} s; devices seen: {})",
                STORE_IMAGE.trim_start_matches('/'),
                wait.as_secs(),
                if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cgroups(b: &mut Boot) -> Result<(), StageError> {
    let text = std::fs::read_to_string("/proc/cgroups").map_err(other)?;
    mounts::cgroups(&b.sys, Path::new("/"), &mounts::parse_proc_cgroups(&text))?;
    Ok(())
}

fn mkfs_if_blank(dev: &str) -> Result<bool, StageError> {
    let head = state::read_head(Path::new(dev), 1 << 20).map_err(other)?;
    if !state::is_blank(&head) {
        return Ok(false);
    }
    say(&format!(
        "state: formatting blank {dev} as ext4 {STATE_LABEL}"
    ));
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", STATE_LABEL, dev])
        .status()
        .map_err(other)?;
    if !st.success() {
        return Err(other(format!("mkfs.ext4 {dev}: {st}")));
    }
    Ok(true)
}

fn state_partition(b: &mut Boot) -> Result<(), StageError> {
    let st = b.cfg.ros.state.clone();
    for dev in st.autoformat.0.iter() {
        if Path::new(dev).exists() {
            mkfs_if_blank(dev)?;
        }
    }
    let spec = st
        .dev
        .clone()
        .unwrap_or_else(|| format!("LABEL={STATE_LABEL}"));
    // Devices show up shortly after their drivers load: without `wait`,
    // give them a second from then (the early modules stage, before the
    // switch), not from now.
    let since = std::env::var(STORAGE_AT)
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        .map_or(0.0, |t| (uptime() - t).max(0.0));
    std::env::remove_var(STORAGE_AT);
    let wait = if st.wait == Some(true) {
        Duration::from_secs(10)
    } else {
        Duration::from_secs_f64((1.0 - since).clamp(0.1, 1.0))
    };
    let found = match state::label_of(&spec) {
        Some(label) => state::wait_label(label, wait),
        None => state::read_head(Path::new(&spec), 65536)
            .ok()
            .and_then(|h| state::probe(&h))
            .map(|p| (PathBuf::from(&spec), p)),
    };
    let Some((dev, probed)) = found else {
        let msg = format!("no state partition ({spec}): running from memory");
        return if st.required == Some(true) {
            Err(other(msg))
        } else {
            say(&format!("state: {msg}"));
            Ok(())
        };
    };
    let mnt = Path::new("/mnt/state");
    b.sys.mkdir(mnt, 0o755)?;
    let fstype = match st.fstype.as_deref() {
        None | Some("auto") => probed.fstype,
        Some(f) => f,
    };
    let devs = dev.display().to_string();
    b.sys.mount(&MountArgs::new(
        Some(&devs),
        mnt,
        Some(fstype),
        MsFlags::empty(),
        None,
    ))?;
    for d in state::PERSISTENT {
        let src = mnt.join(d.trim_start_matches('/'));
        b.sys.mkdir(&src, 0o755)?;
        b.sys.mkdir(Path::new(d), 0o755)?;
        b.sys.mount(&MountArgs::new(
            Some(&src.display().to_string()),
            *d,
            None,
            MsFlags::MS_BIND,
            None,
        ))?;
    }
    b.state_mounted = true;
    say(&format!(
        "state: {devs} ({fstype}) mounted; persistent: {}",
        state::PERSISTENT.join(" ")
    ));
    Ok(())
}

fn datasources(b: &mut Boot) -> Result<(), StageError> {
    userdata::mount_drives(&b.sys, &b.paths);
    let specs = b.cfg.ros.cloud_init.datasources.clone();
    match userdata::save(&b.paths, &specs, &b.cmdline) {
        userdata::Outcome::Nothing => say("datasources: no user-data"),
        userdata::Outcome::Saved(s) => say(&format!("datasources: user-data from {s} saved")),
        userdata::Outcome::Script(s) => say(&format!("datasources: script from {s} kept")),
        userdata::Outcome::Invalid(s, errs) => {
            for e in &errs {
                say(&format!("cloud-config error: {e}"));
            }
            return Err(other(format!(
                "invalid cloud-config from {s}: not saved; booting on the last good config"
            )));
        }
    }
    Ok(())
}

fn load_config(b: &mut Boot) -> Result<(), StageError> {
    let layers = disk::load(&b.paths);
    let (merged, cfg, problems) = layers.resolve();
    b.cfg = cfg;
    mark_live(b);
    let errs = userdata::errors(&problems);
    for p in &problems {
        let kind = if p.unknown_key {
            "warning"
        } else {
            "cloud-config error"
        };
        say(&format!("{kind}: {p}"));
    }
    if errs.is_empty() {
        userdata::keep_last_good(&b.paths.last_good_config(), &to_yaml(&merged));
        Ok(())
    } else {
        Err(other(format!(
            "{} config errors; valid parts applied",
            errs.len()
        )))
    }
}

/// Why this boot is live (no state partition and no saved user-data),
/// or None when it is not: a live node logs its consoles in.
pub fn live_reason(state_mounted: bool, user_layers: &[PathBuf]) -> Option<String> {
    if state_mounted || !user_layers.is_empty() {
        return None;
    }
    Some("live boot: no state partition, no user-data\n".into())
}

/// The saved user layers: `cloud-config.d/*.yml` and `cloud-config.yml`.
fn user_layers(paths: &Paths) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(paths.cloud_config_d())
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    if paths.cloud_config().exists() {
        v.push(paths.cloud_config());
    }
    v
}

fn mark_live(b: &Boot) {
    let marker = b.paths.live_marker();
    match live_reason(b.state_mounted, &user_layers(&b.paths)) {
        Some(why) => {
            let _ = std::fs::create_dir_all(b.paths.run_dir());
            let _ = std::fs::write(&marker, why);
        }
        None => {
            let _ = std::fs::remove_file(&marker);
        }
    }
}

fn hostname(b: &mut Boot) -> Result<(), StageError> {
    let name = b
        .cfg
        .hostname
        .clone()
        .or(b.cfg.ros.defaults.hostname.clone())
        .unwrap_or_else(|| "ros".to_string());
    process::set_hostname(&name)?;
    let _ = std::fs::create_dir_all("/etc");
    let _ = std::fs::write("/etc/hostname", format!("{name}\n"));
    let hosts = format!("127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost\n");
    std::fs::write("/etc/hosts", hosts).map_err(other)?;
    say(&format!("hostname: {name}"));
    Ok(())
}

fn network_base(b: &mut Boot) -> Result<(), StageError> {
    if !Path::new("/etc/resolv.conf").exists() {
        let ns: String = b
            .cfg
            .ros
            .network
            .dns
            .nameservers
            .0
            .iter()
            .map(|n| format!("nameserver {n}\n"))
            .collect();
        std::fs::write("/etc/resolv.conf", ns).map_err(other)?;
    }
    use crate::sys::netdev;
    let link = |e: netdev::LinkError| other(chain(&e));
    netdev::set_up("lo").map_err(link)?;
    if !Path::new("/sys/class/net").join(SYSTEM_BRIDGE).exists() {
        netdev::add_bridge(SYSTEM_BRIDGE).map_err(link)?;
        let (addr, prefix) = SYSTEM_BRIDGE_CIDR
            .split_once('/')
            .and_then(|(a, p)| Some((a.parse().ok()?, p.parse().ok()?)))
            .ok_or_else(|| other(format!("bad SYSTEM_BRIDGE_CIDR {SYSTEM_BRIDGE_CIDR}")))?;
        netdev::set_ipv4(SYSTEM_BRIDGE, addr, prefix).map_err(link)?;
    }
    netdev::set_up(SYSTEM_BRIDGE).map_err(link)
}

/// True when a Docker engine answers `GET /_ping` on `sock`.
pub fn docker_answers(sock: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"HTTP/1.") && buf[..n].windows(3).any(|w| w == b"200"))
}

/// system-docker's network state (libnetwork's store, `<data root>/network`)
/// lives for one boot: a tmpfs over it when the data root is on the state
/// disk. What it holds is runtime state — sandboxes and endpoints of the
/// containers of this boot, the predefined networks' ids — and system
/// services are created again at every boot (`Manager::fresh`), while
/// containers on the predefined networks find them by name. Kept on disk,
/// a poweroff (which does not wait for system-dockerd's per-container
/// bookkeeping) left a sandbox per running service in the store, and the
/// next boot's system-dockerd removed them one by one before answering:
/// ~1.4 s each under TCG, 6.9 s where a first boot takes 0.4 s
/// (qemu-tests case 046, issue 16). A user-defined network made by hand
/// in system-docker does not survive a reboot; ros makes none.
fn per_boot_network_state(b: &Boot) {
    let dir = b.paths.system_docker_data().join("network");
    let r = b.sys.mkdir(&dir, 0o750).and_then(|()| {
        b.sys.mount(&MountArgs::new(
            Some("sdnet"),
            dir.clone(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=0750,size=16m"),
        ))
    });
    if let Err(e) = r {
        say(&format!(
            "system-docker: network state stays on disk ({}: {e})",
            dir.display()
        ));
    }
}

fn system_docker(b: &mut Boot) -> Result<(), StageError> {
    let sd = &b.cfg.ros.system_docker;
    for d in [b.paths.log_dir(), b.paths.system_docker_data()] {
        b.sys.mkdir(&d, 0o755)?;
    }
    // The system images, built into the store at build time: linked into
    // the data root, never loaded (build/sysstore.sh, system::prebuilt).
    let store = b.paths.at(crate::paths::STORE_DIR).join("system-docker");
    if store.join("store-id").exists() {
        let t = Instant::now();
        match crate::system::prebuilt::install(&store, &b.paths.system_docker_data()) {
            Ok(r) if r.already => say("system images: in place (the image's store)"),
            Ok(r) => say(&format!(
                "system images: {} layers linked from the image's store, {} files copied in {} ms (no load)",
                r.layers,
                r.files,
                t.elapsed().as_millis()
            )),
            Err(e) => say(&format!(
                "system images: cannot install the image's store: {}",
                crate::system::chain(&e)
            )),
        }
    }
    if b.state_mounted {
        per_boot_network_state(b);
    }
    if !random_pool_ready() {
        say(
            "random: the kernel's pool is not initialized yet (no RDRAND, no virtio-rng?): \
             system-dockerd waits for it; give the machine an entropy source to boot faster",
        );
    }
    let log = b.paths.log_dir().join("system-docker.log");
    let env = || {
        let mut env = dockerd_env(sd);
        env.push(("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()));
        env
    };
    let mut args = system_dockerd_args(sd, &b.paths);
    // containerd first, beside dockerd rather than started by it: the two
    // start in parallel (config::engine::companion). PID 1 supervises it
    // like dockerd; dockerd reconnects to a restarted one by itself.
    let mut containerd_idx = None;
    let mut shim_pid = None;
    if let Some(cd) = companion(sd, &b.paths) {
        match cd.write() {
            Ok(()) => {
                let mut c = Child::new("system-containerd", CONTAINERD, cd.args());
                c.env = env();
                // its shim: ros-shim first (paths::SHIM_DIR)
                for (k, v) in c.env.iter_mut() {
                    if k == "PATH" {
                        *v = format!("{}:{v}", crate::paths::SHIM_DIR);
                    }
                }
                c.log = Some(log.clone());
                match c.start() {
                    Ok(_) => {
                        args.push(cd.dockerd_flag());
                        b.children.push(c);
                        containerd_idx = Some(b.children.len() - 1);
                        // the system containers' shim, off the way of the
                        // first container start (init::groupshim)
                        let dir = cd.socket.with_file_name("ros-shim");
                        let debug = sd.debug == Some(true);
                        match super::groupshim::start(&dir, &cd.socket, CONTAINERD, debug, &log) {
                            Ok(pid) => shim_pid = Some(pid),
                            Err(e) => say(&format!(
                                "system containers' shim: not started ahead ({e}); the first container starts it"
                            )),
                        }
                    }
                    Err(e) => say(&format!(
                        "system-containerd: cannot start {CONTAINERD} ({e}); dockerd starts its own"
                    )),
                }
            }
            Err(e) => say(&format!(
                "system-containerd: cannot write {} ({e}); dockerd starts its own",
                cd.config.display()
            )),
        }
    }
    let mut c = Child::new("system-dockerd", DOCKERD, args);
    c.env = env();
    c.log = Some(log);
    c.start().map_err(other)?;
    b.children.push(c);
    let idx = b.children.len() - 1;
    let sock = b.paths.system_docker_sock();
    let t = Instant::now();
    // dockerd gives its containerd a fixed time to come up and exits when
    // it does not; on a slow, loaded machine (TCG, one vCPU) that happens
    // on a first boot. It is started again, a few times, before the stage
    // fails: a slow machine is not a broken one.
    let mut exits = 0;
    while t.elapsed() < Duration::from_secs(180) {
        if docker_answers(&sock) {
            say(&format!(
                "system-docker answering after {:.2}s (uptime {:.2}s)",
                t.elapsed().as_secs_f64(),
                uptime()
            ));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
        for r in process::reap_all() {
            if Some(r.pid) == shim_pid {
                if r.code != 0 {
                    say(&format!(
                        "system containers' shim: its start exited {}; the first container starts it (see /var/log/system-docker.log)",
                        r.code
                    ));
                }
                continue;
            }
            // either engine process ending while the engine starts
            let Some(i) = [containerd_idx, Some(idx)]
                .into_iter()
                .flatten()
                .find(|i| b.children[*i].pid == Some(r.pid))
            else {
                continue;
            };
            let name = b.children[i].name;
            exits += 1;
            if exits >= 4 {
                return Err(other(format!(
                    "{name} exited ({}) {exits} times; see /var/log/system-docker.log",
                    r.code
                )));
            }
            say(&format!(
                "{name} exited ({}) while starting; starting it again ({exits}/3)",
                r.code
            ));
            b.children[i].pid = None;
            b.children[i].start().map_err(other)?;
        }
    }
    Err(other("system-docker did not answer within 180s"))
}

/// True when getrandom(2) answers without blocking (the kernel's CRNG is
/// initialized). dockerd's Go runtime blocks in it until then.
fn random_pool_ready() -> bool {
    let mut buf = [0u8; 1];
    // SAFETY: a valid one-byte buffer; GRND_NONBLOCK never waits.
    let n = unsafe { nix::libc::getrandom(buf.as_mut_ptr().cast(), 1, nix::libc::GRND_NONBLOCK) };
    n == 1
}

fn sysinit(b: &mut Boot) -> Result<(), StageError> {
    // the user engine and the cluster agent it starts need netfilter and
    // VXLAN: the modules loading since stage 3 first
    if let Some(h) = b.network_modules.take() {
        let t = Instant::now();
        let waited = |t: Instant| format!("{:.2}s", t.elapsed().as_secs_f64());
        match h.join() {
            Ok(Ok((n, failed))) if failed.is_empty() => say(&format!(
                "modules: {n} network modules loaded in the background (waited {})",
                waited(t)
            )),
            Ok(Ok((_, failed))) => say(&format!(
                "modules: network modules failed (the user engine's iptables and the overlay need them): {}",
                failed.join("; ")
            )),
            Ok(Err(e)) => say(&format!("modules: network modules: {}", chain(&e))),
            Err(_) => say("modules: the network modules' loader panicked"),
        }
    }
    // at poweroff PID 1 ends the foundation services itself (see
    // Manager::shutdown_leaving and supervise::shutdown)
    let mut c = Child::new(
        "sysinit",
        "/usr/bin/ros",
        vec!["sysinit".to_string(), "--leave-foundation".to_string()],
    );
    c.env
        .push(("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()));
    // sysinit logs to the console next to PID 1's plain `[i/n]` lines (and
    // the boot tests grep it): no colour codes there.
    c.env.push(("NO_COLOR".into(), "1".into()));
    let r = c.start();
    b.children.push(c);
    r.map(|_| ()).map_err(other)
}
