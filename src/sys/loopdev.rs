//! Loop devices: attach a filesystem image file read-only, so PID 1 can
//! mount the image's compressed store (squashfs) without busybox.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// `LOOP_SET_FD` (linux/loop.h).
const LOOP_SET_FD: u64 = 0x4C00;
/// `LOOP_CTL_GET_FREE` (linux/loop.h).
const LOOP_CTL_GET_FREE: u64 = 0x4C82;
/// The loop control device (the `loop` module makes it).
pub const LOOP_CONTROL: &str = "/dev/loop-control";

/// Errors attaching a file to a loop device.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// A device or the image could not be opened.
    #[error("open {path}")]
    Open {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An ioctl on a loop device failed.
    #[error("{op} on {path}")]
    Ioctl {
        /// Which request.
        op: &'static str,
        /// The device.
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
}

fn open(path: &Path) -> Result<File, LoopError> {
    File::open(path).map_err(|source| LoopError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// Attach `image` read-only to a free loop device; returns the device
/// (`/dev/loopN`). The device keeps the file open, so the file may be
/// unlinked afterwards. A device taken by someone else between asking for
/// it and attaching (EBUSY) is retried with the next free one.
pub fn attach_read_only(image: &Path) -> Result<PathBuf, LoopError> {
    let file = open(image)?;
    let ctl_path = Path::new(LOOP_CONTROL);
    let ctl = open(ctl_path)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a number.
        let n = unsafe { nix::libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(LoopError::Ioctl {
                op: "LOOP_CTL_GET_FREE",
                path: ctl_path.to_path_buf(),
                source: std::io::Error::last_os_error(),
            });
        }
        let dev = PathBuf::from(format!("/dev/loop{n}"));
        // Read-only open: the kernel then marks the loop device read-only.
        let d = open(&dev)?;
        // SAFETY: LOOP_SET_FD takes the backing file's descriptor by value.
        let r = unsafe { nix::libc::ioctl(d.as_raw_fd(), LOOP_SET_FD as _, file.as_raw_fd()) };
        if r == 0 {
            return Ok(dev);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(nix::libc::EBUSY) || attempt >= 8 {
            return Err(LoopError::Ioctl {
                op: "LOOP_SET_FD",
                path: dev,
                source: e,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_image_is_named() {
        let e = attach_read_only(Path::new("/nonexistent/ros.sqfs")).unwrap_err();
        assert_eq!(e.to_string(), "open /nonexistent/ros.sqfs");
    }
}
