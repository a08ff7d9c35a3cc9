//! `ros console-init`: the `rancher` user's SSH keys, dropbear (the sshd)
//! and agetty on the consoles, all restarted when they exit.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use crate::config::CloudConfig;

use super::{run, GuestError};

/// The login user.
pub const USER: &str = "rancher";
/// Its uid/gid in the console image.
pub const UID: u32 = 1100;
/// Where dropbear's host keys persist.
pub const HOST_KEY_DIR: &str = "/var/lib/ros/ssh";

/// Consoles with a getty: (tty, TERM).
pub const TTYS: &[(&str, &str)] = &[("ttyS0", "vt100"), ("tty1", "linux")];

/// Whether `tty` logs in automatically: `ros.autologin` is `true`/`all`
/// or a comma list of ttys; `ros.disable: [autologin]` wins.
pub fn autologin(cfg: &CloudConfig, tty: &str) -> bool {
    if cfg.ros.disable.iter().any(|d| d == "autologin") {
        return false;
    }
    match cfg.ros.autologin.as_ref().map(|t| t.0.trim()) {
        None | Some("") | Some("false") => false,
        Some("true") | Some("all") => true,
        Some(list) => list.split(',').any(|t| t.trim() == tty),
    }
}

/// The agetty argv for one console.
pub fn getty_argv(tty: &str, term: &str, auto: bool) -> Vec<String> {
    let mut v: Vec<String> = ["agetty", "--noclear", "--login-program", "/bin/login"]
        .map(String::from)
        .to_vec();
    if auto {
        v.extend(["--autologin".to_string(), USER.to_string()]);
    }
    if tty.starts_with("ttyS") {
        v.extend(["-L".to_string(), "115200".to_string()]);
    }
    v.extend([tty.to_string(), term.to_string()]);
    v
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), GuestError> {
    let err = |source| GuestError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(err)?;
    }
    std::fs::write(path, text).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)
}

/// Install `ssh_authorized_keys` for `rancher` below `home`.
pub fn install_keys(home: &Path, keys: &[String]) -> Result<(), GuestError> {
    let ssh = home.join(".ssh");
    let text: String = keys.iter().map(|k| format!("{}\n", k.trim())).collect();
    write(&ssh.join("authorized_keys"), &text, 0o600)?;
    let _ = std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700));
    for p in [home, ssh.as_path(), ssh.join("authorized_keys").as_path()] {
        let _ = std::os::unix::fs::chown(p, Some(UID), Some(UID));
    }
    Ok(())
}

fn spawn(argv: &[String]) -> Option<Child> {
    let (p, a) = argv.split_first()?;
    match Command::new(p).args(a).spawn() {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("console: {p}: {e}");
            None
        }
    }
}

/// `shadow` with `user`'s password hash replaced by `hash`.
pub fn set_shadow(shadow: &str, user: &str, hash: &str) -> String {
    shadow
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(':').collect();
            if f.first() == Some(&user) && f.len() > 1 {
                f[1] = hash;
            }
            format!("{}\n", f.join(":"))
        })
        .collect()
}

/// Set `rancher`'s password from `ros.password` (a crypt hash, or plain
/// text hashed with busybox `cryptpw`).
fn set_password(pw: &str) -> Result<(), GuestError> {
    let hash = if pw.starts_with('$') {
        pw.to_string()
    } else {
        let out = Command::new("cryptpw")
            .args(["-m", "sha512", pw])
            .output()
            .map_err(|e| GuestError::Command {
                cmd: "cryptpw".into(),
                why: e.to_string(),
            })?;
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let path = Path::new("/etc/shadow");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    write(path, &set_shadow(&old, USER, &hash), 0o640)
}

/// `ros console-init`. Runs until killed.
pub fn console_init(cfg: &CloudConfig) -> Result<(), GuestError> {
    let home = Path::new("/home").join(USER);
    install_keys(&home, &cfg.ssh_authorized_keys)?;
    if let Some(pw) = cfg.ros.password.as_deref() {
        if !cfg.ros.disable.iter().any(|d| d == "password") {
            set_password(pw)?;
        }
    }
    let mut argvs: Vec<Vec<String>> = Vec::new();
    if cfg.ros.ssh.daemon != Some(false) {
        std::fs::create_dir_all(HOST_KEY_DIR).map_err(|source| GuestError::Write {
            path: HOST_KEY_DIR.into(),
            source,
        })?;
        let key = format!("{HOST_KEY_DIR}/dropbear_ed25519_host_key");
        if !Path::new(&key).exists() {
            run(&["dropbearkey", "-t", "ed25519", "-f", &key])?;
        }
        let port = cfg.ros.ssh.port.unwrap_or(22).to_string();
        argvs.push(
            ["dropbear", "-F", "-E", "-s", "-p", &port, "-r", &key]
                .map(String::from)
                .to_vec(),
        );
    }
    for (tty, term) in TTYS {
        if Path::new("/dev").join(tty).exists() {
            argvs.push(getty_argv(tty, term, autologin(cfg, tty)));
        }
    }
    let mut children: Vec<Option<Child>> = argvs.iter().map(|a| spawn(a)).collect();
    println!("console: ready ({} processes)", children.len());
    loop {
        std::thread::sleep(Duration::from_millis(500));
        for (i, c) in children.iter_mut().enumerate() {
            let done = match c {
                Some(ch) => !matches!(ch.try_wait(), Ok(None)),
                None => true,
            };
            if done {
                *c = spawn(&argvs[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{node::parse_document, validate};

    fn cfg(doc: &str) -> CloudConfig {
        validate(&parse_document("t", doc.as_bytes()).unwrap()).0
    }

    #[test]
    fn autologin_only_when_asked() {
        assert!(!autologin(&cfg("{}"), "ttyS0"));
        assert!(autologin(&cfg("ros: {autologin: ttyS0}"), "ttyS0"));
        assert!(!autologin(&cfg("ros: {autologin: ttyS0}"), "tty1"));
        assert!(autologin(&cfg("ros: {autologin: true}"), "tty1"));
        assert!(!autologin(
            &cfg("ros: {autologin: true, disable: [autologin]}"),
            "tty1"
        ));
        let a = getty_argv("ttyS0", "vt100", true);
        assert!(a.windows(2).any(|w| w == ["--autologin", "rancher"]));
        assert!(!getty_argv("tty1", "linux", false).contains(&"--autologin".to_string()));
    }

    #[test]
    fn shadow_line_replaced() {
        let s = "root:*:1::::::\nrancher:*:19000:0:99999:7:::\n";
        assert_eq!(
            set_shadow(s, "rancher", "$6$x$y"),
            "root:*:1::::::\nrancher:$6$x$y:19000:0:99999:7:::\n"
        );
    }

    #[test]
    fn keys_written_private() {
        let d = tempfile::tempdir().unwrap();
        install_keys(d.path(), &["ssh-ed25519 AAAA x".into()]).unwrap();
        let f = d.path().join(".ssh/authorized_keys");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "ssh-ed25519 AAAA x\n");
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
