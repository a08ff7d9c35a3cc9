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

/// The program agetty runs with the login name (a link to `ros`: it says
/// in words when password login is off, then runs busybox `login`).
pub const LOGIN_PROGRAM: &str = "/usr/sbin/console-login";

/// Whether `tty` logs in automatically: `ros.autologin` is `true`/`all`
/// or a comma list of ttys (`false`: never); unset, a live boot (no state
/// partition, no user-data, as RancherOS's ISO) logs in; `ros.disable:
/// [autologin]` wins.
pub fn autologin(cfg: &CloudConfig, tty: &str, live: bool) -> bool {
    if cfg.ros.disable.iter().any(|d| d == "autologin") {
        return false;
    }
    match cfg.ros.autologin.as_ref().map(|t| t.0.trim()) {
        None | Some("") => live,
        Some("false") => false,
        Some("true") | Some("all") => true,
        Some(list) => list.split(',').any(|t| t.trim() == tty),
    }
}

/// The agetty argv for one console.
pub fn getty_argv(tty: &str, term: &str, auto: bool) -> Vec<String> {
    let mut v: Vec<String> = ["agetty", "--noclear", "--login-program", LOGIN_PROGRAM]
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
    use std::os::unix::process::CommandExt;
    let (p, a) = argv.split_first()?;
    let mut cmd = Command::new(p);
    cmd.args(a);
    // A session of its own, so agetty can make its tty the controlling
    // terminal (job control and Ctrl-C in the login shell).
    // SAFETY: setsid is async-signal-safe; nothing else runs after fork.
    unsafe {
        cmd.pre_exec(|| {
            let _ = nix::unistd::setsid();
            Ok(())
        });
    }
    match cmd.spawn() {
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
/// text hashed with busybox `mkpasswd`; Debian's busybox has no `cryptpw`).
fn set_password(pw: &str) -> Result<(), GuestError> {
    let hash = if pw.starts_with('$') {
        pw.to_string()
    } else {
        let out = Command::new("mkpasswd")
            .args(["-m", "sha512", pw])
            .output()
            .map_err(|e| GuestError::Command {
                cmd: "mkpasswd -m sha512".into(),
                why: e.to_string(),
            })?;
        let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || !hash.starts_with('$') {
            return Err(GuestError::Command {
                cmd: "mkpasswd -m sha512".into(),
                why: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        hash
    };
    let path = Path::new("/etc/shadow");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    write(path, &set_shadow(&old, USER, &hash), 0o640)
}

/// Whether `user`'s password field in `shadow` refuses every password
/// (`*`, `!…`, empty-but-missing entry): busybox `login` would answer
/// "bad salt". An empty field means no password and is not locked.
pub fn password_locked(shadow: &str, user: &str) -> bool {
    match shadow
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&user))
    {
        None => true,
        Some(f) => {
            let pw = f.get(1).copied().unwrap_or("");
            pw.starts_with('!') || pw.starts_with('*') || pw == "x"
        }
    }
}

/// What the console says when `user` cannot log in with a password.
pub fn locked_message(user: &str) -> String {
    if user == USER {
        format!(
            "password login is off for {user}: set ros.password in cloud-config, or log in with an SSH key"
        )
    } else {
        format!("password login is off for {user}: log in as {USER} (sudo works for {USER})")
    }
}

/// The login name in agetty's arguments to the login program
/// (`-- NAME`, or `-f NAME` for an automatic login).
pub fn login_name(args: &[String]) -> (Option<String>, bool) {
    let forced = args.iter().any(|a| a == "-f");
    let name = args
        .iter()
        .rev()
        .find(|a| !a.starts_with('-'))
        .map(String::from);
    (name, forced)
}

/// `console-login ARGS` (agetty's login program): a locked account is
/// refused in words, anything else goes to busybox `login` unchanged.
pub fn console_login(args: &[String]) -> Result<(), GuestError> {
    use std::os::unix::process::CommandExt;
    let (name, forced) = login_name(args);
    if let (Some(user), false) = (name.as_deref(), forced) {
        let known = std::fs::read_to_string("/etc/passwd")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(':').next() == Some(user));
        let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
        if known && password_locked(&shadow, user) {
            println!("\n{}\n", locked_message(user));
            std::thread::sleep(Duration::from_secs(2));
            return Ok(());
        }
    }
    let err = Command::new("/bin/login").args(args).exec();
    Err(GuestError::Command {
        cmd: "/bin/login".into(),
        why: err.to_string(),
    })
}

/// The facts `ros motd` shows that only root can read: `role=…`,
/// `live=…`, `password=…` lines.
pub fn motd_facts(cfg: &CloudConfig, live: bool) -> String {
    let role = match cfg.ros.cluster.role {
        None => "none",
        Some(crate::config::types::ClusterRole::Server) => "server",
        Some(crate::config::types::ClusterRole::Agent) => "agent",
        Some(crate::config::types::ClusterRole::Both) => "both",
    };
    format!(
        "role={role}\nlive={}\npassword={}\n",
        u8::from(live),
        u8::from(cfg.ros.password.is_some())
    )
}

/// The login message: what this node is and the first commands.
pub fn motd(version: &str, host: &str, ip: Option<&str>, facts: &str) -> String {
    let fact = |k: &str| {
        facts
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or("")
            .to_string()
    };
    let role = match fact("role").as_str() {
        "" | "none" => "not in a cluster".to_string(),
        r => format!("cluster role {r}"),
    };
    let live = if fact("live") == "1" {
        "\n  live boot: nothing is kept across a reboot (no state partition)"
    } else {
        ""
    };
    format!(
        "\nros {version} on {host}, {} — {role}{live}\n\n\
         \x20 ros service ps                          the system services (system-docker)\n\
         \x20 docker run --rm -it busybox sh          a container on the user engine\n\
         \x20 sudo ros config set hostname NAME       change the config (get, export, validate)\n\
         \x20 sudo ros config set ros.cluster.role both && sudo ros service up cluster\n\
         \x20                                         make this node a cluster server (API on :8080)\n\
         \x20 sudo ros cluster join http://SERVER:8080/v1/scripts/TOKEN\n\
         \x20                                         join a cluster as an agent\n\n",
        ip.map(|i| format!("IP {i}"))
            .unwrap_or_else(|| "no IP address yet".into()),
    )
}

/// The source address of the default route (no packet is sent).
pub fn primary_ip() -> Option<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("8.8.8.8:53").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then(|| ip.to_string())
}

/// dropbear's command line, with its host key made first when missing.
fn dropbear_argv(port: u16) -> Result<Vec<String>, GuestError> {
    std::fs::create_dir_all(HOST_KEY_DIR).map_err(|source| GuestError::Write {
        path: HOST_KEY_DIR.into(),
        source,
    })?;
    let key = format!("{HOST_KEY_DIR}/dropbear_ed25519_host_key");
    if !Path::new(&key).exists() {
        run(&["dropbearkey", "-t", "ed25519", "-f", &key])?;
    }
    let port = port.to_string();
    Ok(["dropbear", "-F", "-E", "-s", "-p", &port, "-r", &key]
        .map(String::from)
        .to_vec())
}

/// `ros console-init`. Runs until SIGTERM (then stops its gettys and sshd).
pub fn console_init(cfg: &CloudConfig, paths: &crate::paths::Paths) -> Result<(), GuestError> {
    let live = paths.live_marker().exists();
    let _ = write(&paths.motd_facts(), &motd_facts(cfg, live), 0o644);
    let home = Path::new("/home").join(USER);
    install_keys(&home, &cfg.ssh_authorized_keys)?;
    if let Some(pw) = cfg.ros.password.as_deref() {
        if !cfg.ros.disable.iter().any(|d| d == "password") {
            // The consoles come up even when the password cannot be set
            // (the login then says password login is off).
            if let Err(e) = set_password(pw) {
                eprintln!("console: ros.password not set: {e}");
            }
        }
    }
    // The gettys first: `login:` does not wait for the host key.
    let mut argvs: Vec<Vec<String>> = Vec::new();
    for (tty, term) in TTYS {
        if Path::new("/dev").join(tty).exists() {
            argvs.push(getty_argv(tty, term, autologin(cfg, tty, live)));
        }
    }
    let mut children: Vec<Option<Child>> = argvs.iter().map(|a| spawn(a)).collect();
    if cfg.ros.ssh.daemon != Some(false) {
        match dropbear_argv(cfg.ros.ssh.port.unwrap_or(22)) {
            Ok(argv) => {
                children.push(spawn(&argv));
                argvs.push(argv);
            }
            Err(e) => {
                super::stop_children(children.iter_mut().flatten());
                return Err(e);
            }
        }
    }
    let stop = super::stop_flag();
    println!("console: ready ({} processes)", children.len());
    loop {
        if super::sleep_unless(&stop, Duration::from_millis(500)) {
            super::stop_children(children.iter_mut().flatten());
            println!("console: stopped");
            return Ok(());
        }
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
    fn autologin_when_asked_or_live() {
        assert!(!autologin(&cfg("{}"), "ttyS0", false));
        assert!(autologin(&cfg("{}"), "ttyS0", true));
        assert!(autologin(&cfg("{}"), "tty1", true));
        assert!(!autologin(&cfg("ros: {autologin: false}"), "ttyS0", true));
        assert!(!autologin(&cfg("ros: {autologin: tty1}"), "ttyS0", true));
        assert!(!autologin(
            &cfg("ros: {disable: [autologin]}"),
            "ttyS0",
            true
        ));
        assert!(autologin(&cfg("ros: {autologin: ttyS0}"), "ttyS0", false));
        assert!(!autologin(&cfg("ros: {autologin: ttyS0}"), "tty1", false));
        assert!(autologin(&cfg("ros: {autologin: true}"), "tty1", false));
        assert!(!autologin(
            &cfg("ros: {autologin: true, disable: [autologin]}"),
            "tty1",
            true
        ));
        let a = getty_argv("ttyS0", "vt100", true);
        assert!(a.windows(2).any(|w| w == ["--autologin", "rancher"]));
        assert!(!getty_argv("tty1", "linux", false).contains(&"--autologin".to_string()));
    }

    #[test]
    fn locked_accounts_are_said_in_words() {
        let s = "root:*:1::::::\nrancher:!:19000:0:99999:7:::\nnopw::1::::::\nset:$6$a$b:1::::::\n";
        assert!(password_locked(s, "root"));
        assert!(password_locked(s, "rancher"));
        assert!(password_locked(s, "missing"));
        assert!(!password_locked(s, "nopw"));
        assert!(!password_locked(s, "set"));
        assert_eq!(
            locked_message("rancher"),
            "password login is off for rancher: set ros.password in cloud-config, or log in with an SSH key"
        );
        assert!(locked_message("root").contains("log in as rancher"));
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            login_name(&a(&["--", "rancher"])),
            (Some("rancher".into()), false)
        );
        assert_eq!(
            login_name(&a(&["-f", "rancher"])),
            (Some("rancher".into()), true)
        );
    }

    #[test]
    fn motd_names_the_node_and_the_next_commands() {
        let facts = motd_facts(&cfg("ros: {cluster: {role: both}}"), true);
        assert_eq!(facts, "role=both\nlive=1\npassword=0\n");
        let m = motd("0.1.0", "ros", Some("10.0.2.15"), &facts);
        assert!(
            m.contains("ros 0.1.0 on ros, IP 10.0.2.15 — cluster role both"),
            "{m}"
        );
        assert!(m.contains("live boot"));
        for c in [
            "ros service ps",
            "docker run",
            "ros config set",
            "ros cluster join",
        ] {
            assert!(m.contains(c), "{c} in {m}");
        }
        let m = motd("0.1.0", "n1", None, "role=none\nlive=0\n");
        assert!(m.contains("no IP address yet — not in a cluster"), "{m}");
        assert!(!m.contains("live boot"));
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
