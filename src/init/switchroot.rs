//! Move off the initramfs root: runc's pivot_root fails on rootfs
//! (PLATFORM-NOTES), so the contents move to a tmpfs which becomes `/`.
//!
//! Files are copied and then unlinked one by one, so memory use stays flat
//! (the initramfs pages are freed as their copies are made), then the API
//! filesystems are moved and the tmpfs is moved over `/` (busybox
//! switch_root's sequence, done in-process so PID 1 stays PID 1).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::sys::{MountArgs, MsFlags, SysError, Syscall};

/// Where the new root is assembled.
pub const NEW_ROOT: &str = "/.newroot";

/// Mounts carried into the new root.
pub const MOVED: &[&str] = &["/dev", "/proc", "/sys", "/run"];

/// Errors while switching roots.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// A mount-level step failed.
    #[error("switch root")]
    Sys(#[from] SysError),
    /// Copying a file failed.
    #[error("copy {path}")]
    Copy {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// True when `/` is the initramfs (rootfs), which pivot_root cannot leave.
pub fn on_initramfs() -> bool {
    fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines().any(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                f.len() > 2 && f[1] == "/" && f[2] == "rootfs"
            })
        })
        .unwrap_or(false)
}

/// Copy `src` into `dst` (both directories) and unlink each source file
/// once copied. `skip` names top-level entries left alone.
pub fn move_tree(src: &Path, dst: &Path, skip: &[&str]) -> Result<u64, SwitchError> {
    let err = |p: &Path| {
        let path = p.display().to_string();
        move |source| SwitchError::Copy { path, source }
    };
    let mut bytes = 0;
    for entry in fs::read_dir(src).map_err(err(src))? {
        let entry = entry.map_err(err(src))?;
        let name = entry.file_name();
        if skip.iter().any(|s| name.to_str() == Some(s)) {
            continue;
        }
        let from = entry.path();
        let to = dst.join(&name);
        let meta = fs::symlink_metadata(&from).map_err(err(&from))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&to).map_err(err(&to))?;
            bytes += move_tree(&from, &to, &[])?;
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(err(&to))?;
            let _ = std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()));
            let _ = fs::remove_dir(&from);
        } else if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(err(&from))?;
            std::os::unix::fs::symlink(&target, &to).map_err(err(&to))?;
            let _ = std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()));
            let _ = fs::remove_file(&from);
        } else if ft.is_file() {
            bytes += fs::copy(&from, &to).map_err(err(&to))?;
            let _ = std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()));
            let _ = fs::remove_file(&from);
        }
    }
    Ok(bytes)
}

/// The mount sequence of a switch: tmpfs on [`NEW_ROOT`] is made by
/// [`prepare`]; this moves the API mounts and the new root over `/`.
pub fn switch(sys: &dyn Syscall, new_root: &Path) -> Result<(), SysError> {
    for m in MOVED {
        let target = new_root.join(m.trim_start_matches('/'));
        sys.mkdir(&target, 0o755)?;
        sys.mount(&MountArgs::new(
            Some(m),
            target,
            None,
            MsFlags::MS_MOVE,
            None,
        ))?;
    }
    sys.chdir(new_root)?;
    sys.mount(&MountArgs::new(
        Some("."),
        "/",
        None,
        MsFlags::MS_MOVE,
        None,
    ))?;
    sys.chroot(Path::new("."))?;
    sys.chdir(Path::new("/"))
}

/// Mount the image's squashfs store from loop device `dev` read-only on
/// `at` (inside the new root, so it moves with it).
pub fn mount_store(sys: &dyn Syscall, dev: &Path, at: &Path) -> Result<(), SysError> {
    sys.mkdir(at, 0o755)?;
    sys.mount(&MountArgs::new(
        Some(&dev.display().to_string()),
        at,
        Some("squashfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        None,
    ))
}

/// Mount the boot medium read-only on `at`: the first device in `devs`
/// (with its probed filesystem and label) labelled `label` on which
/// `has_store(at)` holds once mounted; others are unmounted again. Returns
/// the device, or None when no device qualifies (yet).
pub fn mount_medium(
    sys: &dyn Syscall,
    devs: &[(std::path::PathBuf, crate::init::state::Probed)],
    label: &str,
    at: &Path,
    has_store: &dyn Fn(&Path) -> bool,
) -> Result<Option<std::path::PathBuf>, SysError> {
    sys.mkdir(at, 0o755)?;
    for (dev, p) in devs.iter().filter(|(_, p)| p.label == label) {
        let mounted = sys.mount(&MountArgs::new(
            Some(&dev.display().to_string()),
            at,
            Some(p.fstype),
            MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
            None,
        ));
        if mounted.is_err() {
            continue;
        }
        if has_store(at) {
            return Ok(Some(dev.clone()));
        }
        sys.umount(at, false)?;
    }
    Ok(None)
}

/// Mount the tmpfs that becomes `/`.
pub fn prepare(sys: &dyn Syscall, new_root: &Path) -> Result<(), SysError> {
    sys.mkdir(new_root, 0o755)?;
    sys.mount(&MountArgs::new(
        Some("rootfs"),
        new_root,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{Call, RecordingSyscall};
    use std::path::PathBuf;

    #[test]
    fn switch_sequence() {
        let sys = RecordingSyscall::default();
        prepare(&sys, Path::new(NEW_ROOT)).unwrap();
        switch(&sys, Path::new(NEW_ROOT)).unwrap();
        let calls = sys.calls.borrow();
        let mounts: Vec<(String, String)> = sys
            .mounts()
            .iter()
            .map(|m| {
                (
                    m.source.clone().unwrap_or_default(),
                    m.target.display().to_string(),
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [
                ("rootfs", "/.newroot"),
                ("/dev", "/.newroot/dev"),
                ("/proc", "/.newroot/proc"),
                ("/sys", "/.newroot/sys"),
                ("/run", "/.newroot/run"),
                (".", "/"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let n = calls.len();
        assert_eq!(calls[n - 2], Call::Chroot(PathBuf::from(".")));
        assert_eq!(calls[n - 1], Call::Chdir(PathBuf::from("/")));
    }

    #[test]
    fn medium_is_the_labelled_device_that_holds_the_store() {
        use crate::init::state::Probed;
        let iso = |l: &str| Probed {
            fstype: "iso9660",
            label: l.into(),
        };
        let devs = vec![
            (PathBuf::from("/dev/sr0"), iso("cidata")),
            (PathBuf::from("/dev/sr1"), iso("ROS")),
            (PathBuf::from("/dev/sr2"), iso("ROS")),
        ];
        let at = Path::new("/.newroot/media/ros-boot");
        // sr1 is labelled ROS but lacks the store (another ISO of the same
        // name): it is mounted, found wanting and unmounted; sr2 is kept.
        let sys = RecordingSyscall::default();
        let seen = std::cell::Cell::new(0);
        let got = mount_medium(&sys, &devs, "ROS", at, &|_| {
            seen.set(seen.get() + 1);
            seen.get() == 2
        })
        .unwrap();
        assert_eq!(got, Some(PathBuf::from("/dev/sr2")));
        let m = sys.mounts();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].source.as_deref(), Some("/dev/sr1"));
        assert_eq!(m[1].source.as_deref(), Some("/dev/sr2"));
        assert!(m[1].flags.contains(MsFlags::MS_RDONLY));
        assert_eq!(m[1].fstype.as_deref(), Some("iso9660"));
        assert!(sys
            .calls
            .borrow()
            .iter()
            .any(|c| matches!(c, Call::Umount(p, false) if p == at)));
        // nothing labelled ROS: no mount at all
        let sys = RecordingSyscall::default();
        let none = mount_medium(&sys, &devs[..1], "ROS", at, &|_| true).unwrap();
        assert_eq!(none, None);
        assert!(sys.mounts().is_empty());
    }

    #[test]
    fn store_mounts_read_only_inside_the_new_root() {
        let sys = RecordingSyscall::default();
        mount_store(
            &sys,
            Path::new("/dev/loop0"),
            Path::new("/.newroot/usr/lib/ros-store"),
        )
        .unwrap();
        let m = &sys.mounts()[0];
        assert_eq!(m.source.as_deref(), Some("/dev/loop0"));
        assert_eq!(m.target, PathBuf::from("/.newroot/usr/lib/ros-store"));
        assert_eq!(m.fstype.as_deref(), Some("squashfs"));
        assert!(m.flags.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn move_tree_copies_and_unlinks() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("usr/bin")).unwrap();
        fs::write(src.path().join("usr/bin/ros"), b"binary").unwrap();
        std::os::unix::fs::symlink("usr/bin/ros", src.path().join("init")).unwrap();
        fs::create_dir_all(src.path().join("proc")).unwrap();
        let n = move_tree(src.path(), dst.path(), &["proc"]).unwrap();
        assert_eq!(n, 6);
        assert_eq!(fs::read(dst.path().join("usr/bin/ros")).unwrap(), b"binary");
        assert_eq!(
            fs::read_link(dst.path().join("init")).unwrap(),
            PathBuf::from("usr/bin/ros")
        );
        assert!(!src.path().join("usr").exists());
        assert!(src.path().join("proc").exists());
        assert!(!dst.path().join("proc").exists());
    }
}
