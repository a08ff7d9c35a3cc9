//! TLS by default, against real `ros cluster server` and `ros cluster
//! agent` processes: a server started without TLS flags serves HTTPS with
//! its cluster CA on `--listen` and plain HTTP to this machine only; the
//! CLI trusts a pinned CA; agents pinned to the CA (a token from the API)
//! or proving it through the pre-shared token (no pin) join, and refuse a
//! man in the middle — a second server with a certificate from another CA
//! — saying which CA they expected and which they got; the Add Host line
//! refuses it too before anything is run. No root needed: the agents have
//! no docker (they register and sync; nothing is converged) and run with
//! DNS and metadata off.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Proc(Child);

impl Drop for Proc {
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
        "ROS_CA_PIN",
    ] {
        c.env_remove(v);
    }
    c
}

/// `N` distinct free ports: every probe stays bound until all are known
/// (a port dropped at once can be handed out again to the next probe).
fn free_ports<const N: usize>() -> [u16; N] {
    let probes = [(); N].map(|()| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    probes.each_ref().map(|l| l.local_addr().unwrap().port())
}

const PW: &str = "tls-test-admin-pw";

/// A server on `listen` with its data under `dir`, and its CA pin (read
/// from `STATE/cluster/ca.pem`, as an operator on the node would).
fn server(dir: &Path, listen: &str, token: &str) -> (Proc, String) {
    let pwf = dir.join("pw");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&pwf, PW).unwrap();
    let p = Proc(
        ros()
            .args(["--root", dir.to_str().unwrap(), "cluster", "server"])
            .args(["--listen", listen, "--token", token])
            .args(["--admin-password-file", pwf.to_str().unwrap()])
            .env("RUST_LOG", "ros=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let port = listen.rsplit(':').next().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("http://127.0.0.1:{port}/ping"))
        .call()
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pem = std::fs::read_to_string(dir.join("var/lib/ros/cluster/ca.pem")).unwrap();
    let der = ros::cluster::tls::pem_der(&pem).unwrap();
    (p, ros::cluster::tls::sha256_hex(&der))
}

fn admin_post(url: &str, path: &str) -> Value {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{PW}"));
    let body = ureq::post(&format!("{url}{path}"))
        .set("Authorization", &format!("Basic {auth}"))
        .set("Content-Type", "application/json")
        .send_string("{}")
        .unwrap()
        .into_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

fn admin_get(url: &str, path: &str) -> Value {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{PW}"));
    let body = ureq::get(&format!("{url}{path}"))
        .set("Authorization", &format!("Basic {auth}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// A socket where a docker would be, closing every connection: the
/// agents start, and every docker call fails at once.
fn no_docker(dir: &Path) -> String {
    let path = dir.join("docker.sock");
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
    format!("unix://{}", path.display())
}

/// An agent of registration URL `url`, its state under `dir`.
fn agent(dir: &Path, url: &str, hostname: &str) -> (Proc, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let log = dir.join("agent.log");
    let sock = no_docker(dir);
    let p = Proc(
        ros()
            .args([
                "--root",
                dir.to_str().unwrap(),
                "cluster",
                "agent",
                "--url",
                url,
            ])
            .args(["--hostname", hostname, "--interval", "0.3"])
            .args(["--dns-listen", "off", "--metadata-listen", "off"])
            .args(["--docker-socket", &sock])
            .env("RUST_LOG", "ros=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    (p, log)
}

fn wait_log(log: &Path, what: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(what) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {what:?} in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn registered(url: &str, hostname: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = admin_get(url, &format!("/v1/projects/1a5/hosts?hostname={hostname}"));
        if v["data"].as_array().is_some_and(|d| !d.is_empty()) {
            return;
        }
        assert!(Instant::now() < deadline, "{hostname} did not register");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A non-loopback IPv4 address of this machine, if it has one.
fn outside_ip() -> Option<String> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
        .find(|ip| !ip.is_loopback())
        .map(|ip| ip.to_string())
}

#[test]
fn agents_pin_the_cluster_ca_and_refuse_a_man_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The real server listens on every address (no TLS flag: HTTPS by
    // default); the man in the middle has his own CA and token.
    let [pa, pb] = free_ports();
    let (_real, pin) = server(&d.join("real"), &format!("0.0.0.0:{pa}"), "join-secret-1");
    let (_mitm, mitm_pin) = server(&d.join("mitm"), &format!("127.0.0.1:{pb}"), "other-token");
    assert_ne!(pin, mitm_pin);
    let plain = format!("http://127.0.0.1:{pa}");
    let (real, mitm) = (
        format!("https://127.0.0.1:{pa}"),
        format!("https://127.0.0.1:{pb}"),
    );

    // Plain HTTP from another machine is refused before any credential is
    // read, with what to do; this machine may use it.
    match outside_ip() {
        Some(ip) => {
            let e = ureq::get(&format!("http://{ip}:{pa}/v1"))
                .call()
                .unwrap_err();
            let ureq::Error::Status(400, r) = e else {
                panic!("plain HTTP from {ip}: {e}")
            };
            let text = r.into_string().unwrap();
            assert!(
                text.contains(&format!("use https://{ip}:{pa}/"))
                    && text.contains("--insecure-http"),
                "{text}"
            );
        }
        None => eprintln!("!!! no non-loopback address here: plain-HTTP refusal not checked"),
    }
    assert_eq!(
        ureq::get(&format!("{plain}/ping")).call().unwrap().status(),
        200
    );

    // The CLI over HTTPS: the right pin works, another is refused.
    let cli = |pin: &str| {
        ros()
            .args(["cluster", "projects", "--url", &real, "--ca-pin", pin])
            .env("ROS_ACCESS_KEY", "admin")
            .env("ROS_SECRET_KEY", PW)
            .output()
            .unwrap()
    };
    let ok = cli(&pin);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("Default"));
    let bad = cli(&mitm_pin);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("pinned cluster CA"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // A token from the API carries the pin.
    let tok = admin_post(&plain, "/v1/projects/1a5/registrationtokens");
    let token = tok["token"].as_str().unwrap().to_string();
    assert_eq!(ros::cluster::agent::token_pin(&token), Some(pin.as_str()));

    // Pinned agent sent to the man in the middle: refused, saying why.
    let (_a1, log1) = agent(
        &d.join("a1"),
        &format!("{mitm}/v1/scripts/{token}"),
        "pinned-mitm",
    );
    let text = wait_log(&log1, "pinned cluster CA", 30);
    assert!(
        text.contains(&pin) && text.contains(&mitm_pin),
        "the refusal names the expected and the presented CA:\n{text}"
    );
    // Pinned agent at the real server: joins over HTTPS.
    let (_a2, _) = agent(
        &d.join("a2"),
        &format!("{real}/v1/scripts/{token}"),
        "pinned-real",
    );
    registered(&plain, "pinned-real", 30);

    // The pre-shared token without a pin: the real server proves it knows
    // the token; the man in the middle cannot.
    let (_a3, log3) = agent(
        &d.join("a3"),
        &format!("{mitm}/v1/scripts/join-secret-1"),
        "shared-mitm",
    );
    let text = wait_log(&log3, "cannot prove that it knows the join token", 30);
    assert!(text.contains(&mitm_pin), "{text}");
    let (_a4, log4) = agent(
        &d.join("a4"),
        &format!("{real}/v1/scripts/join-secret-1"),
        "shared-real",
    );
    registered(&plain, "shared-real", 30);
    let text = wait_log(&log4, "pinned its CA", 5);
    assert!(text.contains(&pin), "{text}");
    let hosts = admin_get(&plain, "/v1/projects/1a5/hosts");
    let names: Vec<&str> = hosts["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["hostname"].as_str())
        .collect();
    assert!(
        !names.contains(&"pinned-mitm") && !names.contains(&"shared-mitm"),
        "{names:?}"
    );

    // The Add Host line (over HTTPS): it fetches the script only from a
    // server with the pinned CA.
    let https_tok = {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{PW}"));
        let tls = ros::cluster::tls::pinned_client(&pin).unwrap();
        let body = ureq::AgentBuilder::new()
            .tls_config(tls)
            .build()
            .post(&format!("{real}/v1/projects/1a5/registrationtokens"))
            .set("Authorization", &format!("Basic {auth}"))
            .set("Content-Type", "application/json")
            .send_string("{}")
            .unwrap()
            .into_string()
            .unwrap();
        serde_json::from_str::<Value>(&body).unwrap()
    };
    let command = https_tok["command"].as_str().unwrap().to_string();
    let (fetch, _) = command.split_once(" | sudo sh").unwrap();
    let run = |line: &str| {
        Command::new("sh")
            .args(["-c", &format!("{line} | head -c 9")])
            .output()
            .unwrap()
    };
    let good = run(fetch);
    assert_eq!(
        String::from_utf8_lossy(&good.stdout),
        "#!/bin/sh",
        "{command}\n{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let evil = run(&fetch.replace(&format!("127.0.0.1:{pa}"), &format!("127.0.0.1:{pb}")));
    assert!(evil.stdout.is_empty(), "{:?}", evil);
    assert!(
        String::from_utf8_lossy(&evil.stderr).contains("does not serve the cluster CA"),
        "{}",
        String::from_utf8_lossy(&evil.stderr)
    );
}
