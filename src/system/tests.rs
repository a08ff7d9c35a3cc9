//! Unit tests of the service manager's policy against the recording fake,
//! and of compose-field translation. The real-daemon twins live in
//! `tests/system_services.rs` and `tests/user_engine.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bollard::models::RestartPolicyNameEnum;

use std::os::unix::process::ExitStatusExt;

use super::fake::FakeEngine;
use super::manager::{is_retired, remove_retired, retired_name, Manager, Outcome, Respawner};
use super::preload::{content_hash, preload, stamp};
use super::spec::{container_spec, host_path, parse_size, Privilege};
use crate::config::node::parse_document;
use crate::config::service::ServiceConfig;
use crate::config::validate;
use crate::paths::Paths;

fn services(yaml: &str) -> BTreeMap<String, ServiceConfig> {
    let doc = format!("ros:\n  services:\n{}", indent(yaml, 4));
    let (cfg, problems) = validate(&parse_document("t", doc.as_bytes()).unwrap());
    assert!(problems.is_empty(), "{problems:?}");
    cfg.ros.services
}

fn indent(s: &str, n: usize) -> String {
    s.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(n)))
        .collect()
}

fn manager(fake: FakeEngine, yaml: &str, root: &std::path::Path) -> Manager<FakeEngine> {
    Manager::new(
        fake,
        Paths::new(root),
        services(yaml),
        Privilege::Full,
        BTreeMap::new(),
        Duration::from_secs(1),
    )
    .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const SET: &str = r#"
cold: {image: b, labels: {io.rancher.os.detach: "false"}}
udev: {image: b, labels: {io.rancher.os.after: cold}}
vols: {image: b, labels: {io.rancher.os.createonly: "true"}}
net: {image: b, labels: {io.rancher.os.after: udev}, volumes_from: [vols]}
ntp: {image: b, labels: {io.rancher.os.after: net}}
syslog: {image: b, labels: {io.rancher.os.after: net}}
console: {image: b, labels: {io.rancher.os.after: "ntp,syslog"}}
"#;

#[test]
fn up_starts_in_order_and_waits_for_oneshots() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(FakeEngine::default(), SET, dir.path());
    let out = rt().block_on(m.up(None));
    assert_eq!(out["cold"], Outcome::Completed);
    assert_eq!(out["vols"], Outcome::Created);
    assert_eq!(out["console"], Outcome::Running);
    let calls = m.engine().calls();
    let pos = |c: &str| position(&calls, c);
    assert!(pos("wait cold") < pos("create udev"));
    assert!(pos("start udev") < pos("create net"));
    assert!(pos("create vols") < pos("create net"));
    assert!(pos("start ntp") < pos("create console"));
    assert!(pos("start syslog") < pos("create console"));
    assert!(
        !calls.contains(&"start vols".to_string()),
        "create-only started: {calls:?}"
    );
    // ntp and syslog are independent: both are created before either starts.
    assert!(pos("create syslog") < pos("start ntp") || pos("create ntp") < pos("start syslog"));
}

#[test]
fn dependents_wait_for_a_ready_socket() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("run")).unwrap();
    let sock = dir.path().join("run/e.sock");
    // The engine's API comes up 500 ms after its container started.
    let server = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"GET /_ping"));
        c.write_all(b"HTTP/1.0 200 OK\r\n\r\nOK").unwrap();
    });
    let m = manager(
        FakeEngine::default(),
        "eng: {image: b, labels: {io.rancher.os.ready: /run/e.sock}}\ndep: {image: b, labels: {io.rancher.os.after: eng}}",
        dir.path(),
    );
    let t = std::time::Instant::now();
    let out = rt().block_on(m.up(None));
    assert_eq!(out["eng"], Outcome::Running);
    assert_eq!(out["dep"], Outcome::Running);
    // dep was started only after the API answered (not before 500 ms)
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    server.join().unwrap();
    let calls = m.engine().calls();
    let pos = |c: &str| calls.iter().position(|x| x == c).unwrap();
    assert!(pos("start eng") < pos("create dep"), "{calls:?}");
}

/// A failed `runcmd` (cloud-init-execute exits 1) must not keep the
/// console down: it is the way in to mend the node. Its other dependents
/// stay blocked.
#[test]
fn the_console_starts_after_a_failed_dependency() {
    const SHIPPED: &str = r#"
net: {image: b}
cloud-init-execute: {image: b, labels: {io.rancher.os.detach: "false", io.rancher.os.after: net}}
console: {image: b, labels: {io.rancher.os.after: cloud-init-execute, io.rancher.os.console: default}}
docker: {image: b, labels: {io.rancher.os.after: cloud-init-execute}}
"#;
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeEngine {
        exit_codes: BTreeMap::from([("cloud-init-execute".to_string(), 1)]),
        ..Default::default()
    };
    let m = manager(fake, SHIPPED, dir.path());
    let out = rt().block_on(m.up(None));
    assert!(
        matches!(&out["cloud-init-execute"], Outcome::Failed(m) if m.contains("code 1")),
        "{out:?}"
    );
    assert_eq!(out["console"], Outcome::Running);
    assert_eq!(out["docker"], Outcome::Blocked("cloud-init-execute".into()));
    let calls = m.engine().calls();
    let pos = |c: &str| calls.iter().position(|x| x == c).unwrap();
    // still after it: the console starts once the one-shot has ended
    assert!(
        pos("wait cloud-init-execute") < pos("start console"),
        "{calls:?}"
    );
}

#[test]
fn a_oneshot_that_says_its_exit_is_done_before_the_engine_sees_it() {
    const PAIR: &str = r#"
cold: {image: b, labels: {io.rancher.os.detach: "false"}}
next: {image: b, labels: {io.rancher.os.after: cold}}
"#;
    for (said, want) in [
        ("0\n", Outcome::Completed),
        ("3\n", Outcome::Failed(String::new())),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeEngine {
            hanging_waits: ["cold".to_string()].into(),
            ..FakeEngine::default()
        };
        let m = manager(fake, PAIR, dir.path());
        let file = Paths::new(dir.path()).oneshot_exit("cold");
        // a word left from an earlier run does not count
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "0\n").unwrap();
        let out = rt().block_on(async {
            let service = async {
                // the one-shot's process, once started, says its exit
                while !m.engine().calls().iter().any(|c| c == "start cold") {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                assert!(!file.exists(), "the earlier word was not removed");
                std::fs::write(&file, said).unwrap();
            };
            tokio::time::timeout(
                Duration::from_secs(10),
                futures_util::future::join(m.up(None), service),
            )
            .await
            .expect("sysinit waited for the engine")
            .0
        });
        match want {
            Outcome::Completed => {
                assert_eq!(out["cold"], Outcome::Completed);
                assert_eq!(out["next"], Outcome::Running);
            }
            _ => {
                let Outcome::Failed(msg) = &out["cold"] else {
                    panic!("{out:?}")
                };
                assert!(msg.contains("exited with code 3"), "{msg}");
                assert_eq!(out["next"], Outcome::Blocked("cold".into()));
            }
        }
    }
}

#[test]
fn failed_oneshot_blocks_its_dependents_only() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeEngine {
        exit_codes: BTreeMap::from([("cold".to_string(), 3)]),
        ..Default::default()
    };
    let m = manager(fake, SET, dir.path());
    let out = rt().block_on(m.up(None));
    assert!(
        matches!(&out["cold"], Outcome::Failed(msg) if msg.contains("cold") && msg.contains("code 3")),
        "{out:?}"
    );
    assert_eq!(out["udev"], Outcome::Blocked("cold".into()));
    assert_eq!(out["console"], Outcome::Blocked("ntp".into()));
    assert_eq!(out["vols"], Outcome::Created);
    assert!(!m.engine().calls().iter().any(|c| c.ends_with(" udev")));
    // At boot the blocked ones were created ahead: that is undone, and
    // they were never started.
    let fake = FakeEngine {
        exit_codes: BTreeMap::from([("cold".to_string(), 3)]),
        ..Default::default()
    };
    let mut m = manager(fake, SET, dir.path());
    m.set_fresh(true);
    let out = rt().block_on(m.up(None));
    assert_eq!(out["udev"], Outcome::Blocked("cold".into()));
    let calls = m.engine().calls();
    for blocked in ["udev", "net", "ntp", "syslog", "console"] {
        assert!(
            calls.contains(&format!("remove {blocked}"))
                && !calls.contains(&format!("start {blocked}")),
            "{blocked}: {calls:?}"
        );
    }
    let left: Vec<String> = m
        .engine()
        .containers
        .lock()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(left, ["cold", "vols"], "{calls:?}");
}

#[test]
fn changed_definition_is_recreated_unchanged_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let r = rt();
    let m = manager(
        FakeEngine::default(),
        "a: {image: b, command: sleep 1}",
        dir.path(),
    );
    r.block_on(m.up(None));
    let fake = std::mem::take(&mut *m.engine().containers.lock().unwrap());
    // Same definition: nothing created again.
    let same = manager(
        FakeEngine::default(),
        "a: {image: b, command: sleep 1}",
        dir.path(),
    );
    *same.engine().containers.lock().unwrap() = fake.clone();
    r.block_on(same.up(None));
    assert!(!same
        .engine()
        .calls()
        .iter()
        .any(|c| c.starts_with("create")));
    // Changed command: removed and created.
    let changed = manager(
        FakeEngine::default(),
        "a: {image: b, command: sleep 2}",
        dir.path(),
    );
    *changed.engine().containers.lock().unwrap() = fake;
    r.block_on(changed.up(None));
    assert_eq!(changed.engine().calls()[..2], ["remove a", "create a"]);
}

#[test]
fn retired_names_are_recognised_and_nothing_else() {
    let n = retired_name("console", "3e06002064180a90c549");
    assert_eq!(n, "console.retired-3e0600206418");
    assert!(is_retired(&n));
    for other in [
        "console",
        "web-old-3e0600206418",
        "x.retired-",
        ".retired-3e0600206418",
        "a.retired-3e0600206418-x",
        "a.retired-3E0600206418",
        "a.retired-3e060020641",
    ] {
        assert!(!is_retired(other), "{other}");
    }
}

/// Where `call` is in the fake engine's `calls`.
fn position(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .position(|x| x == call)
        .unwrap_or_else(|| panic!("{call} in {calls:?}"))
}

/// Each of `names` had its container created exactly once.
fn created_once(calls: &[String], names: &[&str]) {
    for name in names {
        let n = calls
            .iter()
            .filter(|c| **c == format!("create {name}"))
            .count();
        assert_eq!(n, 1, "{name}: {calls:?}");
    }
}

#[test]
fn at_boot_containers_are_created_ahead_of_their_turn_holders_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = manager(FakeEngine::default(), SET, dir.path());
    m.set_fresh(true);
    let out = rt().block_on(m.up(None));
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::Running | Outcome::Completed | Outcome::Created)),
        "{out:?}"
    );
    let calls = m.engine().calls();
    let pos = |c: &str| position(&calls, c);
    // the console (last in the order) is created before the one-shot at
    // the head of the chain is done, and a volume holder before its user
    assert!(pos("create console") < pos("wait cold"), "{calls:?}");
    assert!(pos("create vols") < pos("create net"), "{calls:?}");
    // but started only in its turn, and every container made once
    assert!(pos("start ntp") < pos("start console"), "{calls:?}");
    assert!(pos("start syslog") < pos("start console"), "{calls:?}");
    created_once(
        &calls,
        &["cold", "udev", "vols", "net", "ntp", "syslog", "console"],
    );
}

#[test]
fn at_boot_a_stopped_container_is_created_afresh_but_a_running_one_and_volume_holders_stay() {
    let dir = tempfile::tempdir().unwrap();
    let r = rt();
    let yaml = "a: {image: b}\nup: {image: b}\nvols: {image: b, labels: {io.rancher.os.createonly: \"true\"}}";
    let m = manager(FakeEngine::default(), yaml, dir.path());
    r.block_on(m.up(None));
    // the next boot: the engine restored the containers, stopped, but
    // for `up`, which it restarted itself
    let left = std::mem::take(&mut *m.engine().containers.lock().unwrap());
    let mut boot = manager(FakeEngine::default(), yaml, dir.path());
    *boot.engine().containers.lock().unwrap() = left;
    boot.engine().set_running("a", false);
    boot.engine().set_running("up", true);
    boot.set_fresh(true);
    let out = r.block_on(boot.up(None));
    assert_eq!(out["a"], Outcome::Running);
    let calls = boot.engine().calls();
    let pos = |c: &str| calls.iter().position(|x| x.starts_with(c));
    // the old one moved aside (not removed on the way), a new one made
    assert!(
        pos("rename a a.retired-").unwrap() < pos("create a").unwrap(),
        "{calls:?}"
    );
    assert!(pos("start a").is_some(), "{calls:?}");
    for kept in [
        "remove",
        "rename up",
        "create up",
        "rename vols",
        "create vols",
    ] {
        assert_eq!(pos(kept), None, "{kept}: {calls:?}");
    }
    // once the boot is done, the old containers go, and only they
    let old: Vec<String> = boot
        .engine()
        .containers
        .lock()
        .unwrap()
        .keys()
        .filter(|n| n.starts_with("a.retired-"))
        .cloned()
        .collect();
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(is_retired(&old[0]));
    assert_eq!(r.block_on(remove_retired(boot.engine())), 1);
    let left: BTreeSet<String> = boot
        .engine()
        .containers
        .lock()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        left,
        ["a", "up", "vols"].map(String::from).into(),
        "{left:?}"
    );
    // after the boot (a reload, `ros service up`): a stopped container is
    // started again, not replaced
    boot.set_fresh(false);
    boot.engine().set_running("a", false);
    let before = boot.engine().calls().len();
    r.block_on(boot.up(None));
    let later = boot.engine().calls()[before..].to_vec();
    assert!(later.contains(&"start a".to_string()), "{later:?}");
    assert!(
        !later
            .iter()
            .any(|c| c.starts_with("remove") || c.starts_with("create")),
        "{later:?}"
    );
}

/// SET plus a user engine and a service after it.
fn set_with_user_engine() -> String {
    format!(
        "{SET}docker: {{image: b, labels: {{io.rancher.os.after: console}}}}\n\
         cluster: {{image: b, labels: {{io.rancher.os.after: docker}}}}\n"
    )
}

/// Bring `yaml` up, shut it down (leaving the foundation or not) and
/// return the engine calls of the shutdown.
fn shutdown_calls(yaml: &str, leave_foundation: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(FakeEngine::default(), yaml, dir.path());
    let r = rt();
    r.block_on(m.up(None));
    m.engine().calls.lock().unwrap().clear();
    r.block_on(m.shutdown_leaving(leave_foundation));
    m.engine().calls()
}

#[test]
fn shutdown_stops_the_user_engine_and_its_dependents_first_then_the_rest() {
    let calls = shutdown_calls(&set_with_user_engine(), false);
    let pos = |c: &str| calls.iter().position(|x| x == c).unwrap();
    // wave 1: the user engine and what is ordered after it
    for first in ["stop docker", "stop cluster"] {
        for later in [
            "stop console",
            "stop ntp",
            "stop net",
            "stop udev",
            "stop syslog",
        ] {
            assert!(pos(first) < pos(later), "{first} before {later}: {calls:?}");
        }
    }
    // wave 2: everything else still running; create-only containers and
    // a one-shot that has ended are not stopped
    assert!(!calls.contains(&"stop cold".to_string()));
    assert!(!calls.contains(&"stop vols".to_string()));
    assert_eq!(calls.iter().filter(|c| c.starts_with("stop ")).count(), 7);
}

#[test]
fn shutdown_leaving_the_foundation_stops_only_the_user_engine_and_its_dependents() {
    let mut stopped = shutdown_calls(&set_with_user_engine(), true);
    stopped.sort();
    assert_eq!(stopped, ["stop cluster", "stop docker"]);
    // with no user engine, nothing is stopped through the engine at all
    assert_eq!(shutdown_calls(SET, true), Vec::<String>::new());
}

#[test]
fn shutdown_without_a_user_engine_stops_everything_in_one_wave() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(FakeEngine::default(), SET, dir.path());
    let r = rt();
    r.block_on(m.up(None));
    m.engine().calls.lock().unwrap().clear();
    r.block_on(m.shutdown());
    let mut stopped: Vec<String> = m.engine().calls();
    stopped.sort();
    assert_eq!(
        stopped,
        [
            "stop console",
            "stop net",
            "stop ntp",
            "stop syslog",
            "stop udev"
        ]
    );
}

#[test]
fn shutdown_signals_the_foundation_and_waits_for_its_processes_not_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("{SET}docker: {{image: b, labels: {{io.rancher.os.after: console}}}}\n");
    let m = manager(FakeEngine::default(), &yaml, dir.path());
    let r = rt();
    r.block_on(m.up(None));
    // real processes stand for two services' main processes
    let mut ntp = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let mut syslog = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    {
        let mut cs = m.engine().containers.lock().unwrap();
        cs.get_mut("ntp").unwrap().pid = ntp.id() as i32;
        cs.get_mut("syslog").unwrap().pid = syslog.id() as i32;
    }
    m.engine().calls.lock().unwrap().clear();
    let t = std::time::Instant::now();
    r.block_on(m.shutdown());
    let calls = m.engine().calls();
    // SIGTERM through the engine, then only their end is waited for
    for n in ["ntp", "syslog"] {
        assert!(calls.contains(&format!("signal {n} TERM")), "{calls:?}");
        assert!(!calls.contains(&format!("stop {n}")), "{calls:?}");
    }
    assert!(ntp.wait().unwrap().signal() == Some(15));
    assert!(syslog.wait().unwrap().signal() == Some(15));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    // the user engine first, stopped the usual way; the others (no known
    // process) too
    let pos = |c: &str| calls.iter().position(|x| x == c).unwrap();
    assert!(pos("stop docker") < pos("signal ntp TERM"), "{calls:?}");
    assert!(calls.contains(&"stop console".to_string()), "{calls:?}");
}

#[test]
fn respawn_restarts_dead_unsupervised_services_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "mine: {image: b}\nengines: {image: b, restart: always}\nshot: {image: b, labels: {io.rancher.os.detach: \"false\"}}";
    let m = manager(FakeEngine::default(), yaml, dir.path());
    let r = rt();
    r.block_on(m.up(None));
    let mut resp = Respawner::default();
    for n in ["mine", "engines"] {
        m.engine().set_running(n, false);
    }
    assert_eq!(r.block_on(m.respawn_pass(&mut resp)), ["mine"]);
    // Dies again at once: the second attempt waits for the backoff.
    m.engine().set_running("mine", false);
    assert!(r.block_on(m.respawn_pass(&mut resp)).is_empty());
    // Stopped by the operator: left alone.
    r.block_on(m.stop("mine")).unwrap();
    assert!(r.block_on(m.respawn_pass(&mut resp)).is_empty());
    assert_eq!(Respawner::delay(0), Duration::from_secs(1));
    assert_eq!(Respawner::delay(3), Duration::from_secs(8));
    assert_eq!(Respawner::delay(30), Duration::from_secs(30));
}

#[test]
fn up_of_named_services_treats_others_as_done() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(FakeEngine::default(), SET, dir.path());
    let only: BTreeSet<String> = ["console".to_string()].into();
    let out = rt().block_on(m.up(Some(&only)));
    assert_eq!(out.len(), 1);
    assert_eq!(m.engine().calls(), ["create console", "start console"]);
}

#[test]
fn preload_loads_once_and_skips_corrupt_archives() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    std::fs::create_dir_all(paths.preload_dir()).unwrap();
    std::fs::write(paths.preload_dir().join("a.tar"), b"good archive").unwrap();
    std::fs::write(paths.preload_dir().join("b.tar"), b"corrupt archive").unwrap();
    std::fs::write(paths.preload_dir().join("notes.txt"), b"not an image").unwrap();
    let fake = FakeEngine::default();
    let r = rt();
    let first = r.block_on(preload(&fake, &paths));
    assert_eq!(first.loaded.len(), 1);
    assert_eq!(first.failed.len(), 1);
    assert!(crate::system::chain(&first.failed[0]).contains("b.tar"));
    assert!(stamp(&paths, &content_hash(b"good archive")).exists());
    let second = r.block_on(preload(&fake, &paths));
    assert_eq!(second.skipped.len(), 1);
    assert_eq!(
        fake.calls().iter().filter(|c| c.ends_with("a.tar")).count(),
        1
    );
}

#[test]
fn privilege_from_bounding_set() {
    assert_eq!(
        Privilege::from_bounding_set(0x1ff_ffff_ffff, 40),
        Privilege::Full
    );
    assert_eq!(
        Privilege::from_bounding_set(0x1ff_feff_ffff, 40),
        Privilege::Fallback {
            missing: vec!["SYS_RESOURCE".into()]
        }
    );
}

#[test]
fn compose_fields_translate() {
    let s = services(
        r#"
svc:
  image: img:1
  command: sh -c 'echo "a b"'
  entrypoint: [/bin/ep]
  environment: [A=1, FROM_ROS]
  labels: {x: y}
  privileged: true
  net: host
  pid: host
  ipc: host
  uts: host
  volumes: [/var/lib/x:/x:ro, /dev:/dev, named:/n, /anon]
  volumes_from: [holder]
  devices: [/dev/fuse, "/dev/a:/dev/b:r"]
  cap_add: [NET_ADMIN]
  cap_drop: [MKNOD]
  restart: on-failure:3
  read_only: true
  tmpfs: [/run:size=1m]
  ulimits: {nofile: {soft: 10, hard: 20}, nproc: 5}
  log_driver: json-file
  log_opt: {max-size: 1m}
  mem_limit: 64m
  cpu_shares: 128
  container_name: svc-c
holder: {image: img:1}
"#,
    );
    let env = BTreeMap::from([("FROM_ROS".to_string(), "v".to_string())]);
    let names = BTreeMap::from([("holder".to_string(), "holder-c".to_string())]);
    let paths = Paths::new("/r");
    let spec = container_spec("svc", &s["svc"], &Privilege::Full, &paths, &env, &names).unwrap();
    assert_eq!(spec.name, "svc-c");
    let b = &spec.body;
    assert_eq!(b.cmd.as_deref().unwrap(), ["sh", "-c", "echo \"a b\""]);
    assert_eq!(b.entrypoint.as_deref().unwrap(), ["/bin/ep"]);
    assert_eq!(b.env.as_deref().unwrap(), ["A=1", "FROM_ROS=v"]);
    let labels = b.labels.as_ref().unwrap();
    assert_eq!(labels["x"], "y");
    assert_eq!(labels["ros.service"], "svc");
    assert_eq!(labels["ros.service.hash"], spec.hash);
    assert_eq!(b.volumes.as_deref().unwrap(), ["/anon"]);
    let h = b.host_config.as_ref().unwrap();
    assert_eq!(h.privileged, Some(true));
    assert_eq!(h.network_mode.as_deref(), Some("host"));
    assert_eq!(h.pid_mode.as_deref(), Some("host"));
    assert_eq!(h.ipc_mode.as_deref(), Some("host"));
    assert_eq!(h.uts_mode.as_deref(), Some("host"));
    assert_eq!(
        h.binds.as_deref().unwrap(),
        ["/r/var/lib/x:/x:ro", "/dev:/dev", "named:/n"]
    );
    assert_eq!(h.volumes_from.as_deref().unwrap(), ["holder-c"]);
    let devs = h.devices.as_ref().unwrap();
    assert_eq!(devs[1].path_in_container.as_deref(), Some("/dev/b"));
    assert_eq!(devs[1].cgroup_permissions.as_deref(), Some("r"));
    assert_eq!(h.cap_add.as_deref().unwrap(), ["NET_ADMIN"]);
    assert_eq!(h.cap_drop.as_deref().unwrap(), ["MKNOD"]);
    let rp = h.restart_policy.as_ref().unwrap();
    assert_eq!(rp.name, Some(RestartPolicyNameEnum::ON_FAILURE));
    assert_eq!(rp.maximum_retry_count, Some(3));
    // `always` reaches the engine as unless-stopped: after a clean
    // shutdown the engine does not start it again on its own
    let a = services("a: {image: b, restart: always}");
    let sa = container_spec("a", &a["a"], &Privilege::Full, &paths, &env, &names).unwrap();
    let ra = sa.body.host_config.unwrap().restart_policy.unwrap();
    assert_eq!(ra.name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
    assert_eq!(h.readonly_rootfs, Some(true));
    assert_eq!(h.tmpfs.as_ref().unwrap()["/run"], "size=1m");
    let ul = h.ulimits.as_ref().unwrap();
    assert_eq!((ul[0].soft, ul[0].hard), (Some(10), Some(20)));
    assert_eq!(
        h.log_config.as_ref().unwrap().typ.as_deref(),
        Some("json-file")
    );
    assert_eq!(h.memory, Some(64 << 20));
    assert_eq!(h.cpu_shares, Some(128));

    // The fallback for a short capability bounding set.
    let fb = Privilege::Fallback {
        missing: vec!["SYS_RESOURCE".into()],
    };
    let spec2 = container_spec("svc", &s["svc"], &fb, &paths, &env, &names).unwrap();
    let h = spec2.body.host_config.as_ref().unwrap();
    assert_eq!(h.privileged, None);
    assert_eq!(h.cap_add.as_deref().unwrap(), ["ALL", "NET_ADMIN"]);
    assert_eq!(h.cap_drop.as_deref().unwrap(), ["MKNOD", "SYS_RESOURCE"]);
    let sec = h.security_opt.as_deref().unwrap();
    assert!(sec.contains(&"seccomp=unconfined".to_string()));
    assert!(sec.contains(&"apparmor=unconfined".to_string()));
    assert_eq!(h.masked_paths, Some(vec![]));
    assert_eq!(h.readonly_paths, Some(vec![]));
    assert_eq!(h.device_cgroup_rules.as_deref().unwrap(), ["a *:* rwm"]);
    assert_ne!(spec.hash, spec2.hash);
}

#[test]
fn field_errors_name_the_service() {
    let s = services(
        "bad: {image: b, restart: sometimes}\nmem: {image: b, mem_limit: lots}\ncpu: {image: b, cpu_shares: 1}",
    );
    for (name, want) in [
        ("bad", "service bad: restart"),
        ("mem", "service mem: mem_limit"),
        ("cpu", "service cpu: cpu_shares"),
    ] {
        let e = container_spec(
            name,
            &s[name],
            &Privilege::Full,
            &Paths::default(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn host_paths_and_sizes() {
    let p = Paths::new("/r");
    assert_eq!(host_path(&p, "/var/log"), "/r/var/log");
    assert_eq!(host_path(&p, "/dev"), "/dev");
    assert_eq!(host_path(&p, "/sys/fs/cgroup"), "/sys/fs/cgroup");
    assert_eq!(host_path(&p, "/device"), "/r/device");
    assert_eq!(host_path(&Paths::default(), "/var/log"), "/var/log");
    assert_eq!(parse_size("512m"), Some(512 << 20));
    assert_eq!(parse_size("1G"), Some(1 << 30));
    assert_eq!(parse_size("100"), Some(100));
    assert_eq!(parse_size("x"), None);
}

#[test]
fn at_boot_the_way_to_the_console_is_created_first_and_the_rest_once_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let set = r#"
net: {image: b}
init: {image: b, labels: {io.rancher.os.detach: "false", io.rancher.os.after: net}}
console: {image: b, labels: {io.rancher.os.after: init, io.rancher.os.console: default}}
late: {image: b, labels: {io.rancher.os.after: console}}
side: {image: b, labels: {io.rancher.os.after: net}}
"#;
    let mut m = manager(FakeEngine::default(), set, dir.path());
    m.set_fresh(true);
    let out = rt().block_on(m.up(None));
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::Running | Outcome::Completed)),
        "{out:?}"
    );
    let calls = m.engine().calls();
    let pos = |c: &str| position(&calls, c);
    // the way in is created ahead (the console before the one-shot ends)
    assert!(pos("create console") < pos("wait init"), "{calls:?}");
    // what is not on it: not ahead of the console's start, at its own
    // turn if that comes first (side, after net), and once
    assert!(pos("start console") < pos("create late"), "{calls:?}");
    assert!(pos("start net") < pos("create side"), "{calls:?}");
    created_once(&calls, &["net", "init", "console", "late", "side"]);
}

/// A console becoming ready with other services starts first, and they
/// once its start is done: on the way to `login:` the user engine's start
/// beside the console's slowed it.
#[test]
fn the_console_starts_alone_and_the_others_ready_with_it_after() {
    let dir = tempfile::tempdir().unwrap();
    let set = r#"
net: {image: b}
init: {image: b, labels: {io.rancher.os.detach: "false", io.rancher.os.after: net}}
console: {image: b, labels: {io.rancher.os.after: init, io.rancher.os.console: default}}
agent: {image: b, labels: {io.rancher.os.after: init}}
zeta: {image: b, labels: {io.rancher.os.after: init}}
"#;
    let mut m = manager(FakeEngine::default(), set, dir.path());
    m.set_fresh(true);
    let out = rt().block_on(m.up(None));
    assert!(
        out.values()
            .all(|o| matches!(o, Outcome::Running | Outcome::Completed)),
        "{out:?}"
    );
    let calls = m.engine().calls();
    let pos = |c: &str| position(&calls, c);
    // "agent" sorts before "console": not started first all the same
    assert!(pos("start console") < pos("start agent"), "{calls:?}");
    assert!(pos("start console") < pos("start zeta"), "{calls:?}");
}
