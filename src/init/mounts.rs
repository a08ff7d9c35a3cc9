//! Early mounts and cgroups as data tables with one executor (kata's
//! `INIT_ROOTFS_MOUNTS`).
//!
//! cgroups: **v1 hierarchies** (one per controller, `cpu,cpuacct` and
//! `net_cls,net_prio` joined, with the usual symlinks). Debian's docker 20.10
//! and runc 1.1 support v2 too, but the user engine runs *inside* a system
//! container; under v2 that nested dockerd hits the "no internal processes"
//! rule when it creates child groups (dind has to move itself into a
//! sub-group first). v1 has no such rule, and is what RancherOS shipped.

use std::path::Path;

use crate::sys::{MountArgs, MsFlags, SysError, Syscall};

/// One row of a mount table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountRow {
    /// Source.
    pub source: &'static str,
    /// Mount point.
    pub target: &'static str,
    /// Filesystem type.
    pub fstype: &'static str,
    /// Flags.
    pub flags: MsFlags,
    /// Data.
    pub data: &'static str,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// The first mounts PID 1 makes, in order.
pub const EARLY_MOUNTS: &[MountRow] = &[
    MountRow {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    MountRow {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    MountRow {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
    },
    MountRow {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "mode=0620,ptmxmode=0666,gid=5",
    },
    MountRow {
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=1777",
    },
    MountRow {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=0755",
    },
];

/// v1 controller hierarchies: (mount point name, controllers).
pub const CGROUPS: &[(&str, &str)] = &[
    ("cpuset", "cpuset"),
    ("cpu,cpuacct", "cpu,cpuacct"),
    ("blkio", "blkio"),
    ("memory", "memory"),
    ("devices", "devices"),
    ("freezer", "freezer"),
    ("net_cls,net_prio", "net_cls,net_prio"),
    ("perf_event", "perf_event"),
    ("hugetlb", "hugetlb"),
    ("pids", "pids"),
];

/// Symlinks beside joined hierarchies.
pub const CGROUP_LINKS: &[(&str, &str)] = &[
    ("cpu,cpuacct", "cpu"),
    ("cpu,cpuacct", "cpuacct"),
    ("net_cls,net_prio", "net_cls"),
    ("net_cls,net_prio", "net_prio"),
];

fn is_mounted(target: &str) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|m| m.lines().any(|l| l.split(' ').nth(1) == Some(target)))
        .unwrap_or(false)
}

/// Mount [`EARLY_MOUNTS`] below `root`. With `skip_mounted`, rows already
/// mounted (the kernel may have mounted devtmpfs) are skipped.
pub fn early(sys: &dyn Syscall, root: &Path, skip_mounted: bool) -> Result<(), SysError> {
    for row in EARLY_MOUNTS {
        if skip_mounted && is_mounted(row.target) {
            continue;
        }
        let target = root.join(row.target.trim_start_matches('/'));
        sys.mkdir(&target, 0o755)?;
        let data = (!row.data.is_empty()).then_some(row.data);
        sys.mount(&MountArgs::new(
            Some(row.source),
            target,
            Some(row.fstype),
            row.flags,
            data,
        ))?;
    }
    Ok(())
}

/// Mount the v1 cgroup hierarchies below `root`/sys/fs/cgroup for the
/// controllers the kernel lists in `available` (the first column of
/// /proc/cgroups).
pub fn cgroups(sys: &dyn Syscall, root: &Path, available: &[String]) -> Result<(), SysError> {
    let base = root.join("sys/fs/cgroup");
    sys.mount(&MountArgs::new(
        Some("cgroup"),
        base.clone(),
        Some("tmpfs"),
        NOSUID_NODEV_NOEXEC,
        Some("mode=0755"),
    ))?;
    for (dir, ctrls) in CGROUPS {
        if !ctrls.split(',').all(|c| available.iter().any(|a| a == c)) {
            continue;
        }
        let target = base.join(dir);
        sys.mkdir(&target, 0o755)?;
        sys.mount(&MountArgs::new(
            Some("cgroup"),
            target,
            Some("cgroup"),
            NOSUID_NODEV_NOEXEC,
            Some(ctrls),
        ))?;
    }
    for (dir, link) in CGROUP_LINKS {
        if available.iter().any(|a| dir.split(',').any(|c| c == a)) {
            sys.symlink(dir, &base.join(link))?;
        }
    }
    Ok(())
}

/// Controllers the kernel has enabled, from /proc/cgroups text.
pub fn parse_proc_cgroups(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[3] == "1").then(|| f[0].to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{Call, RecordingSyscall};
    use std::path::PathBuf;

    #[test]
    fn early_mount_sequence_is_exact() {
        let sys = RecordingSyscall::default();
        early(&sys, Path::new("/"), false).unwrap();
        let m = sys.mounts();
        let got: Vec<(&str, &str, &str)> = m
            .iter()
            .map(|a| {
                (
                    a.source.as_deref().unwrap(),
                    a.target.to_str().unwrap(),
                    a.fstype.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("proc", "/proc", "proc"),
                ("sysfs", "/sys", "sysfs"),
                ("devtmpfs", "/dev", "devtmpfs"),
                ("devpts", "/dev/pts", "devpts"),
                ("shm", "/dev/shm", "tmpfs"),
                ("tmpfs", "/run", "tmpfs"),
            ]
        );
        assert_eq!(m[3].data.as_deref(), Some("mode=0620,ptmxmode=0666,gid=5"));
        assert!(m[0].flags.contains(MsFlags::MS_NOEXEC));
        // every mount point is created first
        let calls = sys.calls.borrow();
        assert_eq!(calls[0], Call::Mkdir(PathBuf::from("/proc"), 0o755));
    }

    #[test]
    fn cgroups_follow_the_kernel() {
        let text = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n\
                    cpuset\t0\t1\t1\ncpu\t0\t1\t1\ncpuacct\t0\t1\t1\n\
                    memory\t0\t1\t0\npids\t0\t1\t1\n";
        let avail = parse_proc_cgroups(text);
        assert_eq!(avail, ["cpuset", "cpu", "cpuacct", "pids"]);
        let sys = RecordingSyscall::default();
        cgroups(&sys, Path::new("/r"), &avail).unwrap();
        let targets: Vec<String> = sys
            .mounts()
            .iter()
            .map(|m| m.target.display().to_string())
            .collect();
        assert_eq!(
            targets,
            [
                "/r/sys/fs/cgroup",
                "/r/sys/fs/cgroup/cpuset",
                "/r/sys/fs/cgroup/cpu,cpuacct",
                "/r/sys/fs/cgroup/pids"
            ]
        );
        assert!(sys.calls.borrow().contains(&Call::Symlink(
            "cpu,cpuacct".into(),
            PathBuf::from("/r/sys/fs/cgroup/cpu")
        )));
    }
}
