//! Network links by ioctl: what PID 1's network-base stage needs (loopback
//! up, system-docker's bridge with its address) without running `ip` four
//! times (~0.2 s per exec of a dynamically linked binary under TCG, on the
//! way to system-docker).

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::libc;

/// `SIOCBRADDBR` (linux/sockios.h): make a bridge.
const SIOCBRADDBR: libc::c_ulong = 0x89a0;

/// An ioctl on a link failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {link}")]
pub struct LinkError {
    /// What was asked.
    pub op: &'static str,
    /// The link.
    pub link: String,
    /// The kernel's answer.
    #[source]
    pub source: std::io::Error,
}

fn socket(link: &str) -> Result<OwnedFd, LinkError> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(LinkError {
            op: "socket for",
            link: link.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `ifreq` naming `link` (at most 15 bytes, no NUL inside).
fn ifreq(link: &str) -> Result<libc::ifreq, LinkError> {
    if link.is_empty() || link.len() >= libc::IFNAMSIZ || link.contains('\0') {
        return Err(LinkError {
            op: "name",
            link: link.to_string(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(link.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

fn ioctl(
    fd: &OwnedFd,
    req: libc::c_ulong,
    arg: *mut libc::c_void,
    op: &'static str,
    link: &str,
) -> Result<(), LinkError> {
    // SAFETY: `arg` points at a live ifreq (or name buffer) of the size the
    // request reads and writes.
    if unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) } < 0 {
        return Err(LinkError {
            op,
            link: link.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Set `link` up (as `ip link set LINK up`).
pub fn set_up(link: &str) -> Result<(), LinkError> {
    let fd = socket(link)?;
    let mut r = ifreq(link)?;
    ioctl(
        &fd,
        libc::SIOCGIFFLAGS as _,
        (&mut r as *mut libc::ifreq).cast(),
        "get flags of",
        link,
    )?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { r.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(
        &fd,
        libc::SIOCSIFFLAGS as _,
        (&mut r as *mut libc::ifreq).cast(),
        "set up",
        link,
    )
}

/// Make the bridge `link` (as `ip link add LINK type bridge`); one that
/// exists already is left as it is. Needs the `bridge` module.
pub fn add_bridge(link: &str) -> Result<(), LinkError> {
    let fd = socket(link)?;
    let mut r = ifreq(link)?;
    match ioctl(
        &fd,
        SIOCBRADDBR,
        r.ifr_name.as_mut_ptr().cast(),
        "add bridge",
        link,
    ) {
        Err(e) if e.source.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r,
    }
}

/// Give `link` the IPv4 address `addr/prefix` (as `ip addr add`, plus the
/// broadcast address the kernel derives from the mask).
pub fn set_ipv4(link: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), LinkError> {
    if prefix > 32 {
        return Err(LinkError {
            op: "prefix of",
            link: link.to_string(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    let fd = socket(link)?;
    let sin = |a: Ipv4Addr| {
        // SAFETY: sockaddr_in is plain data; all-zero is valid.
        let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        s.sin_family = libc::AF_INET as libc::sa_family_t;
        s.sin_addr.s_addr = u32::from(a).to_be();
        // SAFETY: sockaddr_in fits in sockaddr (16 bytes each).
        unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(s) }
    };
    let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0));
    for (req, a, op) in [
        (libc::SIOCSIFADDR, addr, "set address of"),
        (libc::SIOCSIFNETMASK, mask, "set netmask of"),
    ] {
        let mut r = ifreq(link)?;
        // the address and the netmask are the same union member (a sockaddr)
        r.ifr_ifru.ifru_addr = sin(a);
        ioctl(&fd, req as _, (&mut r as *mut libc::ifreq).cast(), op, link)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(ifreq("").is_err());
        assert!(ifreq("a-name-of-16-byt").is_err());
        assert!(ifreq("docker-sys").is_ok());
        assert!(set_ipv4("x", Ipv4Addr::LOCALHOST, 33).is_err());
    }

    /// In a network namespace of a thread of its own (root only): the
    /// bridge, its address and its flags as `ip` sees them.
    #[test]
    fn bridge_with_address_in_a_netns() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
            set_up("lo").unwrap();
            if let Err(e) = add_bridge("ros-test-br") {
                // no bridge module on this host: nothing more to check
                eprintln!("skipped: {e}");
                return;
            }
            add_bridge("ros-test-br").expect("an existing bridge is fine");
            // /24, not the class-B /16 an address alone gets: the mask is set
            set_ipv4("ros-test-br", "172.18.42.1".parse().unwrap(), 24).unwrap();
            set_up("ros-test-br").unwrap();
            let out = std::process::Command::new("ip")
                .args(["-o", "-4", "addr", "show", "dev", "ros-test-br"])
                .output()
                .expect("ip");
            let s = String::from_utf8_lossy(&out.stdout);
            assert!(s.contains("inet 172.18.42.1/24"), "{s}");
            let out = std::process::Command::new("ip")
                .args(["-o", "link", "show", "dev", "lo"])
                .output()
                .expect("ip");
            assert!(String::from_utf8_lossy(&out.stdout).contains(",UP"));
            let e = set_up("no-such-link").unwrap_err();
            assert_eq!(e.to_string(), "get flags of no-such-link");
        })
        .join()
        .unwrap();
    }
}
