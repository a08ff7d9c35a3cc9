//! The only code that calls the kernel for PID 1's jobs: mounts, signals,
//! reaping, module loading and power.
//!
//! Policy code (`src/init`) talks to the kernel through the small
//! [`Syscall`] trait, youki-style: [`LinuxSyscall`] is the real one and
//! [`RecordingSyscall`] records every call so a unit test asserts the exact
//! mount sequence. Process-wide operations that tests never run (signalfd,
//! reaping, reboot) are plain functions in [`process`].

use std::cell::RefCell;
use std::path::{Path, PathBuf};

pub mod loopdev;
pub mod netdev;
pub mod process;

pub use nix::mount::MsFlags;

/// Errors from one syscall, naming what it acted on.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// mount(2) failed.
    #[error("mount {target}")]
    Mount {
        /// Mount point.
        target: PathBuf,
        /// The kernel's answer.
        #[source]
        source: nix::Error,
    },
    /// umount2(2) failed.
    #[error("umount {target}")]
    Umount {
        /// Mount point.
        target: PathBuf,
        /// The kernel's answer.
        #[source]
        source: nix::Error,
    },
    /// A filesystem call (mkdir, symlink, chdir, chroot) failed.
    #[error("{op} {path}")]
    Fs {
        /// Which call.
        op: &'static str,
        /// Its path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// One mount(2) call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountArgs {
    /// Source (device, or a name such as `proc`).
    pub source: Option<String>,
    /// Mount point.
    pub target: PathBuf,
    /// Filesystem type.
    pub fstype: Option<String>,
    /// Flags.
    pub flags: MsFlags,
    /// Filesystem-specific data (`mode=0755`).
    pub data: Option<String>,
}

impl MountArgs {
    /// A mount of `source` (or none) on `target`.
    pub fn new(
        source: Option<&str>,
        target: impl Into<PathBuf>,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> MountArgs {
        MountArgs {
            source: source.map(str::to_string),
            target: target.into(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        }
    }
}

/// Every call the policy code makes: one line per syscall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// mount(2).
    Mount(MountArgs),
    /// umount2(2) (`detach` = MNT_DETACH).
    Umount(PathBuf, bool),
    /// mkdir -p with a mode.
    Mkdir(PathBuf, u32),
    /// symlink(target, link).
    Symlink(String, PathBuf),
    /// chdir(2).
    Chdir(PathBuf),
    /// chroot(2).
    Chroot(PathBuf),
}

/// The seam: what PID 1's policy code needs from the kernel, nothing more.
pub trait Syscall {
    /// mount(2).
    fn mount(&self, args: &MountArgs) -> Result<(), SysError>;
    /// umount2(2), lazily when `detach`.
    fn umount(&self, target: &Path, detach: bool) -> Result<(), SysError>;
    /// Create a directory and its parents with `mode`.
    fn mkdir(&self, path: &Path, mode: u32) -> Result<(), SysError>;
    /// Create a symlink `link` → `target` (existing links are kept).
    fn symlink(&self, target: &str, link: &Path) -> Result<(), SysError>;
    /// chdir(2).
    fn chdir(&self, path: &Path) -> Result<(), SysError>;
    /// chroot(2).
    fn chroot(&self, path: &Path) -> Result<(), SysError>;
}

fn fs_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SysError + 'a {
    move |source| SysError::Fs {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The real kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn mount(&self, a: &MountArgs) -> Result<(), SysError> {
        nix::mount::mount(
            a.source.as_deref(),
            &a.target,
            a.fstype.as_deref(),
            a.flags,
            a.data.as_deref(),
        )
        .map_err(|source| SysError::Mount {
            target: a.target.clone(),
            source,
        })
    }

    fn umount(&self, target: &Path, detach: bool) -> Result<(), SysError> {
        let flags = if detach {
            nix::mount::MntFlags::MNT_DETACH
        } else {
            nix::mount::MntFlags::empty()
        };
        nix::mount::umount2(target, flags).map_err(|source| SysError::Umount {
            target: target.to_path_buf(),
            source,
        })
    }

    fn mkdir(&self, path: &Path, mode: u32) -> Result<(), SysError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(fs_err("mkdir", path))
    }

    fn symlink(&self, target: &str, link: &Path) -> Result<(), SysError> {
        if link.symlink_metadata().is_ok() {
            return Ok(());
        }
        std::os::unix::fs::symlink(target, link).map_err(fs_err("symlink", link))
    }

    fn chdir(&self, path: &Path) -> Result<(), SysError> {
        std::env::set_current_dir(path).map_err(fs_err("chdir", path))
    }

    fn chroot(&self, path: &Path) -> Result<(), SysError> {
        std::os::unix::fs::chroot(path).map_err(fs_err("chroot", path))
    }
}

/// A fake kernel that records every call and succeeds (or fails the mounts
/// whose target is in `fail_mounts`).
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    /// Calls in order.
    pub calls: RefCell<Vec<Call>>,
    /// Mount targets that fail with EINVAL.
    pub fail_mounts: Vec<PathBuf>,
}

impl RecordingSyscall {
    /// The recorded mount calls only.
    pub fn mounts(&self) -> Vec<MountArgs> {
        self.calls
            .borrow()
            .iter()
            .filter_map(|c| match c {
                Call::Mount(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

impl Syscall for RecordingSyscall {
    fn mount(&self, a: &MountArgs) -> Result<(), SysError> {
        self.calls.borrow_mut().push(Call::Mount(a.clone()));
        if self.fail_mounts.contains(&a.target) {
            return Err(SysError::Mount {
                target: a.target.clone(),
                source: nix::Error::EINVAL,
            });
        }
        Ok(())
    }
    fn umount(&self, target: &Path, detach: bool) -> Result<(), SysError> {
        self.calls
            .borrow_mut()
            .push(Call::Umount(target.to_path_buf(), detach));
        Ok(())
    }
    fn mkdir(&self, path: &Path, mode: u32) -> Result<(), SysError> {
        self.calls
            .borrow_mut()
            .push(Call::Mkdir(path.to_path_buf(), mode));
        Ok(())
    }
    fn symlink(&self, target: &str, link: &Path) -> Result<(), SysError> {
        self.calls
            .borrow_mut()
            .push(Call::Symlink(target.to_string(), link.to_path_buf()));
        Ok(())
    }
    fn chdir(&self, path: &Path) -> Result<(), SysError> {
        self.calls
            .borrow_mut()
            .push(Call::Chdir(path.to_path_buf()));
        Ok(())
    }
    fn chroot(&self, path: &Path) -> Result<(), SysError> {
        self.calls
            .borrow_mut()
            .push(Call::Chroot(path.to_path_buf()));
        Ok(())
    }
}
