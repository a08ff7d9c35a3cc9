//! Shared harness of the multi-host tests: a real cluster on one machine —
//! the server in the root network namespace, three agents each in its own
//! network namespace with its own dockerd (started with `nsenter --net=…`,
//! `--iptables=false`), joined by a bridge. Needs root and Debian's
//! docker.io + busybox-static. Everything it starts it stops, and it removes
//! its namespaces, links and directories, also when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const IMAGE: &str = "ros-test/busybox:latest";

pub fn sh(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn stop(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub struct Host {
    pub ns: String,
    pub root: PathBuf,
    pub dockerd: Option<Child>,
    pub agent: Option<Child>,
    pub ip: String,
}

impl Host {
    pub fn sock(&self) -> String {
        format!("unix://{}", self.root.join("var/run/docker.sock").display())
    }
    pub fn docker(&self, args: &[&str]) -> Result<String, String> {
        let s = self.sock();
        let mut a = vec!["-H", &*s];
        a.extend_from_slice(args);
        sh("docker", &a)
    }
}

/// Everything the test created; dropping it tears it all down.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub bridge: String,
    pub veths: Vec<String>,
    pub hosts: Vec<Host>,
    pub server: Option<Child>,
    pub url: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in [
                "server.log",
                "agent1.log",
                "agent2.log",
                "agent3.log",
                "dockerd1.log",
            ] {
                let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- {name} (last lines) ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        for h in &mut self.hosts {
            if let Some(a) = h.agent.as_mut() {
                stop(a, Duration::from_secs(5));
            }
            stop_script_agent(h);
        }
        for h in &mut self.hosts {
            if h.dockerd.is_some() {
                if let Ok(ids) = h.docker(&["ps", "-aq"]) {
                    for id in ids.split_whitespace() {
                        let _ = h.docker(&["rm", "-f", id]);
                    }
                }
            }
            if let Some(d) = h.dockerd.as_mut() {
                stop(d, Duration::from_secs(20));
            }
            let _ = sh("ip", &["netns", "del", &h.ns]);
        }
        if let Some(s) = self.server.as_mut() {
            stop(s, Duration::from_secs(5));
        }
        for v in &self.veths {
            let _ = sh("ip", &["link", "del", v]);
        }
        let _ = sh("ip", &["link", "del", &self.bridge]);
        // Docker may leave mounts below its data root; unmount before removing.
        if let Ok(m) = std::fs::read_to_string("/proc/self/mounts") {
            let base = self.dir.path().display().to_string();
            let mut points: Vec<&str> = m
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter(|p| p.starts_with(&base))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = sh("umount", &["-l", p]);
            }
        }
    }
}

pub fn ros() -> &'static str {
    env!("CARGO_BIN_EXE_ros")
}

pub fn log_file(dir: &Path, name: &str) -> Stdio {
    std::fs::File::create(dir.join(name))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

pub fn is_busybox(p: &Path) -> bool {
    Command::new(p)
        .arg("--help")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).contains("BusyBox")
                || String::from_utf8_lossy(&o.stderr).contains("BusyBox")
        })
        .unwrap_or(false)
}

/// A busybox binary: the installed one (build/deps.sh installs
/// busybox-static), or, when that file is not busybox, one unpacked from
/// Debian's busybox-static package.
pub fn find_busybox(dir: &Path) -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if is_busybox(Path::new(p)) {
            return PathBuf::from(p);
        }
    }
    let dl = dir.join("deb");
    std::fs::create_dir_all(&dl).unwrap();
    let st = Command::new("apt-get")
        .args(["download", "busybox-static"])
        .current_dir(&dl)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "no busybox: install busybox-static (build/deps.sh)"
    );
    let deb = std::fs::read_dir(&dl)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap();
    sh(
        "dpkg",
        &["-x", deb.to_str().unwrap(), dl.join("x").to_str().unwrap()],
    )
    .unwrap();
    let bb = dl.join("x/bin/busybox");
    assert!(is_busybox(&bb), "busybox-static package has no busybox");
    bb
}

/// A rootfs with busybox; a dynamic busybox gets its `ldd` libraries.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    let bb = find_busybox(dir);
    std::fs::copy(&bb, root.join("bin/busybox")).unwrap();
    let ldd = Command::new("ldd")
        .arg(&bb)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    for lib in ldd
        .unwrap_or_default()
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let dest = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(lib, &dest).unwrap();
    }
    for app in ["sh", "sleep", "true", "ls", "cat", "hostname"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(app)).unwrap();
    }
    let tar = dir.join("rootfs.tar");
    sh(
        "tar",
        &[
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    )
    .unwrap();
    tar
}

/// The admin credentials of every rig server this test process starts
/// (`user`, `password`): the servers run secure by default, and the rig
/// uses the real admin account (`--admin-password-file`) so the tests go
/// through the product's access control.
pub fn admin() -> &'static (String, String) {
    static ADMIN: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    ADMIN.get_or_init(|| {
        let pw: String = format!(
            "rig-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        // `ros compose`, `ros cluster …` and gdapi children inherit these.
        for (k, v) in [
            ("ROS_ACCESS_KEY", "admin"),
            ("RANCHER_ACCESS_KEY", "admin"),
            ("ROS_SECRET_KEY", pw.as_str()),
            ("RANCHER_SECRET_KEY", pw.as_str()),
        ] {
            std::env::set_var(k, v);
        }
        ("admin".to_string(), pw)
    })
}

/// `Authorization: Basic …` of [`admin`].
pub fn admin_header() -> String {
    use base64::Engine;
    let (u, p) = admin();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    )
}

/// Adds the admin credentials unless the request has its own.
#[allow(clippy::result_large_err)] // ureq's `Middleware` signature
fn with_admin(
    req: ureq::Request,
    next: ureq::MiddlewareNext,
) -> Result<ureq::Response, ureq::Error> {
    if req.header("Authorization").is_some() {
        next.handle(req)
    } else {
        next.handle(req.set("Authorization", &admin_header()))
    }
}

/// An HTTP client that sends the admin credentials with every request that
/// has no `Authorization` of its own.
pub fn api() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .middleware(with_admin)
        .build()
}

/// An HTTP client without credentials.
pub fn anonymous() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
}

pub fn get(url: &str) -> Value {
    let body = api().get(url).call().unwrap().into_string().unwrap();
    serde_json::from_str(&body).unwrap()
}

pub fn post(url: &str, body: Value) -> Value {
    let body = api()
        .post(url)
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
        .into_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn start_agent(c: &Cluster, i: usize, token_url: &str) -> Child {
    let h = &c.hosts[i];
    Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{}", h.ns))
        .arg(ros())
        .args([
            "--root",
            h.root.to_str().unwrap(),
            "cluster",
            "agent",
            "--url",
            token_url,
        ])
        .args([
            "--hostname",
            &format!("node{}", i + 1),
            "--interval",
            "0.5",
            "--usage-interval",
            "1",
        ])
        .args(["--labels", &format!("node=n{},zone=z", i + 1)])
        .env("RUST_LOG", "ros=debug")
        .stdout(Stdio::null())
        .stderr(log_file(c.dir.path(), &format!("agent{}.log", i + 1)))
        .spawn()
        .unwrap()
}

/// Join host `i` the way Rancher's Add Host did: run the registration
/// token's `command` (`curl … | sudo sh`) in the host's network namespace,
/// with the agent options after `--` and the host's own root. The script
/// fetches the `ros` binary from the server and starts the agent detached,
/// writing its pid to `ROOT/var/run/ros-agent.pid` (stopped on drop).
pub fn join_by_script(c: &Cluster, i: usize, command: &str) {
    let h = &c.hosts[i];
    let (fetch, rest) = command
        .split_once(" | sudo sh")
        .unwrap_or_else(|| panic!("not a `curl … | sudo sh` command: {command}"));
    // Options the command already passes (`sh -s -- --labels …`) come
    // first; the rig's own follow.
    let given = rest.trim().strip_prefix("-s --").unwrap_or("").trim();
    let labels = if given.contains("--labels") {
        String::new()
    } else {
        format!(" --labels node=n{},zone=z", i + 1)
    };
    let line = format!(
        "{fetch} | ROS_BIN={bin} ROS_ROOT={root} ROS_LOG={log} sh -s -- {given} \\
         --hostname node{n} --interval 0.5 --usage-interval 1{labels}",
        bin = h.root.join("usr/local/bin/ros").display(),
        root = h.root.display(),
        log = c.dir.path().join(format!("agent{}.log", i + 1)).display(),
        n = i + 1,
    );
    let out = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{}", h.ns))
        .args(["sh", "-c", &line])
        .env("RUST_LOG", "ros=debug")
        .output()
        .unwrap();
    eprintln!(
        "add host script on node{}: {}\n{}{}",
        i + 1,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the Add Host script failed");
}

/// Stop an agent started by the Add Host script on `h` (its pid file), if
/// it is still the agent of this host.
pub fn stop_script_agent(h: &Host) {
    let pidf = h.root.join("var/run/ros-agent.pid");
    let Ok(pid) = std::fs::read_to_string(&pidf) else {
        return;
    };
    let _ = std::fs::remove_file(&pidf);
    let Ok(pid) = pid.trim().parse::<i32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let root = h.root.display().to_string();
    if !String::from_utf8_lossy(&cmdline).contains(&root) {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    for _ in 0..50 {
        if nix::sys::signal::kill(pid, None).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
}

pub fn setup() -> Cluster {
    let tag = std::process::id() % 10_000;
    let net = 100 + (std::process::id() % 150);
    let mut c = Cluster {
        dir: tempfile::tempdir().unwrap(),
        bridge: format!("rcb{tag}"),
        veths: Vec::new(),
        hosts: Vec::new(),
        server: None,
        url: String::new(),
    };
    let gw = format!("10.231.{net}.1");
    sh("ip", &["link", "add", &c.bridge, "type", "bridge"]).unwrap();
    sh(
        "ip",
        &["addr", "add", &format!("{gw}/24"), "dev", &c.bridge],
    )
    .unwrap();
    sh("ip", &["link", "set", &c.bridge, "up"]).unwrap();
    let tar = busybox_rootfs(c.dir.path());
    for i in 1..=3 {
        let ns = format!("rosc{tag}h{i}");
        let veth = format!("rcv{tag}h{i}");
        let ip = format!("10.231.{net}.{}", 10 + i);
        c.hosts.push(Host {
            ns: ns.clone(),
            root: c.dir.path().join(format!("h{i}")),
            dockerd: None,
            agent: None,
            ip: ip.clone(),
        });
        sh("ip", &["netns", "add", &ns]).unwrap();
        c.veths.push(veth.clone());
        sh(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )
        .unwrap();
        sh("ip", &["link", "set", &veth, "master", &c.bridge, "up"]).unwrap();
        for args in [
            vec!["addr", "add", &*format!("{ip}/24"), "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
            vec!["link", "set", "lo", "up"],
            vec!["route", "add", "default", "via", &gw],
        ] {
            let mut a = vec!["-n", &*ns];
            a.extend(args.iter().copied());
            sh("ip", &a).unwrap();
        }
    }
    for i in 0..3 {
        let r = c.hosts[i].root.clone();
        for d in ["var/run", "var/lib/docker", "var/lib/ros"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", c.hosts[i].ns))
            .arg("dockerd")
            .args(["--host", &c.hosts[i].sock()])
            .args(["--data-root", r.join("var/lib/docker").to_str().unwrap()])
            .args(["--exec-root", r.join("var/run/docker").to_str().unwrap()])
            .args(["--pidfile", r.join("var/run/docker.pid").to_str().unwrap()])
            .args(["--iptables=false", "--ip-masq=false"])
            .stdout(Stdio::null())
            .stderr(log_file(c.dir.path(), &format!("dockerd{}.log", i + 1)))
            .spawn()
            .unwrap();
        c.hosts[i].dockerd = Some(child);
    }
    for h in &c.hosts {
        wait_for("dockerd", 60, || h.docker(&["version"]).ok());
        h.docker(&["import", tar.to_str().unwrap(), IMAGE]).unwrap();
    }
    // Two free ports on the bridge address: both probes stay bound until
    // both ports are known (one dropped at once could be handed out again
    // to the second, and the server then cannot listen twice on it).
    let probes = [0, 1].map(|_| std::net::TcpListener::bind(format!("{gw}:0")).unwrap());
    let [port, tls_port] = probes.each_ref().map(|l| l.local_addr().unwrap().port());
    drop(probes);
    c.url = format!("http://{gw}:{port}");
    let pw_file = c.dir.path().join("admin-password");
    std::fs::write(&pw_file, &admin().1).unwrap();
    // Agents register and sync over HTTPS, pinning the generated CA from
    // the token; the test itself uses the plain listener.
    let server = Command::new(ros())
        .args(["--root", c.dir.path().join("server").to_str().unwrap()])
        .args(["cluster", "server", "--listen", &format!("{gw}:{port}")])
        .args(["--tls-listen", &format!("{gw}:{tls_port}")])
        .args(["--advertise-url", &format!("https://{gw}:{tls_port}")])
        .args(["--reconnecting-after", "2", "--disconnected-after", "5"])
        .args(["--admin-password-file", pw_file.to_str().unwrap()])
        // The test talks plain HTTP on the bridge address.
        .arg("--insecure-http")
        .stdout(Stdio::null())
        .stderr(log_file(c.dir.path(), "server.log"))
        .spawn()
        .unwrap();
    c.server = Some(server);
    let ping = format!("{}/ping", c.url);
    wait_for("server", 30, || api().get(&ping).call().ok());
    c
}

/// Stop the server (SIGTERM) and start it again with the same arguments
/// and state directory; returns when it answers again.
pub fn restart_server(c: &mut Cluster) {
    let mut old = c.server.take().expect("a running server");
    let args: Vec<String> = std::fs::read(format!("/proc/{}/cmdline", old.id()))
        .unwrap()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    stop(&mut old, Duration::from_secs(10));
    let server = Command::new(ros())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(log_file(c.dir.path(), "server-restarted.log"))
        .spawn()
        .unwrap();
    c.server = Some(server);
    let ping = format!("{}/ping", c.url);
    wait_for("server after a restart", 30, || {
        api().get(&ping).call().ok()
    });
}

pub fn host_by_name(url: &str, name: &str) -> Option<Value> {
    get(&format!("{url}/v1/projects/1a5/hosts?hostname={name}"))["data"]
        .as_array()?
        .first()
        .cloned()
}

pub fn container_state(url: &str, id: &str) -> String {
    get(&format!("{url}/v1/projects/1a5/containers/{id}"))["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Make a registration token, start the three agents with it and wait
/// until all three hosts are active; the registration URL.
pub fn join_agents(c: &mut Cluster) -> String {
    let token = post(
        &format!("{}/v1/projects/1a5/registrationtokens", c.url),
        serde_json::json!({}),
    );
    let reg = token["registrationUrl"].as_str().unwrap().to_string();
    for i in 0..3 {
        let a = start_agent(c, i, &reg);
        c.hosts[i].agent = Some(a);
    }
    let url = c.url.clone();
    wait_for("3 active hosts", 90, || {
        let v = get(&format!("{url}/v1/projects/1a5/hosts?agentState=active"));
        (v["data"].as_array()?.len() == 3).then_some(())
    });
    reg
}

/// `ros compose ARGS` in `dir` against the cluster, its output echoed to
/// the test log.
pub fn ros_compose(c: &Cluster, dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(ros())
        .args(["compose", "--url", &c.url])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    eprintln!(
        "ros compose {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
