//! Block devices by filesystem label (ROS_STATE, cidata, config-2), and
//! the state partition: wait, autoformat a blank disk, mount, and bind its
//! persistent directories over the tmpfs root.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Persistent directories kept on the state partition.
pub const PERSISTENT: &[&str] = &[
    "/var/lib/ros",
    "/var/lib/system-docker",
    "/var/lib/docker",
    "/home",
    "/opt",
    "/var/log",
];

/// A filesystem found on a block device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probed {
    /// Filesystem type for mount(2).
    pub fstype: &'static str,
    /// Its label (volume id), trimmed.
    pub label: String,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// Recognise ext2/3/4, iso9660 and vfat from the first 64 KiB of a device.
pub fn probe(head: &[u8]) -> Option<Probed> {
    if head.len() >= 1024 + 0x78 + 16 && head[1024 + 0x38..1024 + 0x3a] == [0x53, 0xef] {
        return Some(Probed {
            fstype: "ext4",
            label: text(&head[1024 + 0x78..1024 + 0x78 + 16]),
        });
    }
    if head.len() >= 32768 + 72 && &head[32769..32774] == b"CD001" {
        return Some(Probed {
            fstype: "iso9660",
            label: text(&head[32768 + 40..32768 + 72]),
        });
    }
    if head.len() >= 512 && head[510..512] == [0x55, 0xaa] {
        if &head[0x52..0x57] == b"FAT32" {
            return Some(Probed {
                fstype: "vfat",
                label: text(&head[0x47..0x52]),
            });
        }
        if &head[0x36..0x39] == b"FAT" {
            return Some(Probed {
                fstype: "vfat",
                label: text(&head[0x2b..0x36]),
            });
        }
    }
    None
}

/// True when `head` is all zeroes (a blank disk that autoformat may take).
pub fn is_blank(head: &[u8]) -> bool {
    !head.is_empty() && head.iter().all(|b| *b == 0)
}

/// Read the first `n` bytes of a device.
pub fn read_head(dev: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(dev)?;
    f.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match f.read(&mut buf[got..])? {
            0 => break,
            k => got += k,
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Block devices from /sys/class/block (`/dev/vda`, `/dev/vda1`, `/dev/sr0`).
pub fn block_devices() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/sys/class/block")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(|s| s.to_string()))
                .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
                .map(|n| PathBuf::from("/dev").join(n))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every block device with a filesystem this module recognises.
pub fn probed_devices() -> Vec<(PathBuf, Probed)> {
    block_devices()
        .into_iter()
        .filter_map(|d| {
            let head = read_head(&d, 65536).ok()?;
            probe(&head).map(|p| (d, p))
        })
        .collect()
}

/// The first device whose filesystem has `label`.
pub fn find_label(label: &str) -> Option<(PathBuf, Probed)> {
    probed_devices().into_iter().find(|(_, p)| p.label == label)
}

/// Wait up to `timeout` for a device labelled `label` to appear.
pub fn wait_label(label: &str, timeout: Duration) -> Option<(PathBuf, Probed)> {
    let start = Instant::now();
    loop {
        if let Some(f) = find_label(label) {
            return Some(f);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `LABEL=X` → `X`; anything else is a device path.
pub fn label_of(dev: &str) -> Option<&str> {
    dev.strip_prefix("LABEL=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_labels() {
        let mut ext = vec![0u8; 4096];
        ext[1024 + 0x38] = 0x53;
        ext[1024 + 0x39] = 0xef;
        ext[1024 + 0x78..1024 + 0x78 + 9].copy_from_slice(b"ROS_STATE");
        assert_eq!(
            probe(&ext),
            Some(Probed {
                fstype: "ext4",
                label: "ROS_STATE".into()
            })
        );
        let mut iso = vec![0u8; 40000];
        iso[32769..32774].copy_from_slice(b"CD001");
        iso[32808..32814].copy_from_slice(b"cidata");
        iso[32814..32840].fill(b' ');
        assert_eq!(probe(&iso).unwrap().label, "cidata");
        let mut fat = vec![0u8; 512];
        fat[510] = 0x55;
        fat[511] = 0xaa;
        fat[0x36..0x39].copy_from_slice(b"FAT");
        fat[0x2b..0x36].copy_from_slice(b"config-2   ");
        assert_eq!(
            probe(&fat),
            Some(Probed {
                fstype: "vfat",
                label: "config-2".into()
            })
        );
        assert!(probe(&[0u8; 70000]).is_none());
        assert!(is_blank(&[0u8; 16]));
        assert!(!is_blank(&ext));
        assert_eq!(label_of("LABEL=ROS_STATE"), Some("ROS_STATE"));
        assert_eq!(label_of("/dev/vda"), None);
    }
}
