//! `ros cluster` CLI against a real `ros cluster server` process: tables by
//! default, `-o json`, ROS_* and RANCHER_* environment names.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ros() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ros"));
    for v in [
        "ROS_URL",
        "ROS_ACCESS_KEY",
        "ROS_SECRET_KEY",
        "RANCHER_URL",
        "RANCHER_ACCESS_KEY",
        "RANCHER_SECRET_KEY",
    ] {
        c.env_remove(v);
    }
    c
}

fn out(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{:?}: {}",
        c,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn cluster_cli_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    // Secure from the first start: the admin password from a file (as
    // ros.cluster.admin_password on a node).
    let pwf = dir.path().join("admin-pw");
    std::fs::write(&pwf, "pw-pw-pw\n").unwrap();
    let _s = Server(
        ros()
            .args([
                "--root",
                dir.path().to_str().unwrap(),
                "cluster",
                "server",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--admin-password-file",
                pwf.to_str().unwrap(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("{url}/ping")).call().is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let anon = ros()
        .args(["cluster", "hosts", "--url", &url])
        .output()
        .unwrap();
    assert!(!anon.status.success());
    assert!(String::from_utf8_lossy(&anon.stderr).contains("401"));
    let admin = |c: &mut Command| {
        c.env("ROS_ACCESS_KEY", "admin")
            .env("RANCHER_SECRET_KEY", "pw-pw-pw");
    };
    let mut c = ros();
    c.args(["cluster", "projects", "--url", &url]);
    admin(&mut c);
    let p = out(&mut c);
    assert!(p.lines().next().unwrap().starts_with("ID"), "{p}");
    assert!(p.contains("1a5") && p.contains("Default"), "{p}");
    let mut c = ros();
    c.args(["cluster", "tokens", "create"]).env("ROS_URL", &url);
    admin(&mut c);
    let t = out(&mut c);
    assert!(t.contains("curl -fsSL http://"), "{t}");
    let mut c = ros();
    c.args(["cluster", "tokens", "-o", "json"])
        .env("RANCHER_URL", &url);
    admin(&mut c);
    let tj = out(&mut c);
    let v: serde_json::Value = serde_json::from_str(&tj).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let mut c = ros();
    c.args([
        "cluster", "keys", "create", "--name", "ci", "-o", "json", "--url", &url,
    ]);
    admin(&mut c);
    let k = out(&mut c);
    let k: serde_json::Value = serde_json::from_str(&k).unwrap();
    let (ak, sk) = (
        k["data"][0]["publicValue"].as_str().unwrap(),
        k["data"][0]["secretValue"].as_str().unwrap(),
    );
    // (Plain HTTP from other machines, HTTPS with the CA pin:
    // tests/cluster_tls.rs.)
    let h = out(ros()
        .args(["cluster", "hosts"])
        .env("RANCHER_URL", &url)
        .env("RANCHER_ACCESS_KEY", ak)
        .env("ROS_SECRET_KEY", sk));
    assert!(h.starts_with("ID"), "{h}");
}
