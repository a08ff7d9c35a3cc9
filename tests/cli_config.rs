//! `ros config` end to end: the real binary against a temp `--root`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

fn ros(root: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ros"));
    cmd.arg("--root").arg(root).args(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.env_remove("ROS_ROOT");
    let mut child = cmd.spawn().expect("run ros");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn set_get_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    // Defaults come from the compiled-in os-config.yml.
    let o = ros(
        root,
        &["config", "get", "ros.network.dns.nameservers"],
        None,
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "- 8.8.8.8\n- 8.8.4.4\n");

    for (k, v) in [
        ("hostname", "node-7"),
        ("ros.network.dns.nameservers", "[1.1.1.1, 9.9.9.9]"),
        ("rancher.debug", "true"),
        ("ros.sysctl.vm.swappiness", "10"),
        ("ros.cluster.token", "s3cret"),
        ("ros.password", "hunter2"),
    ] {
        let o = ros(root, &["config", "set", k, v], None);
        assert!(o.status.success(), "set {k}: {}", err(&o));
    }
    let file = root.join("var/lib/ros/conf/cloud-config.yml");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let rows = [
        ("hostname", "node-7\n"),
        ("ros.debug", "true\n"),
        ("ros.network.dns.nameservers.1", "9.9.9.9\n"),
        ("ros.sysctl.vm.swappiness", "10\n"),
        ("ros.console", "default\n"),
    ];
    for (k, want) in rows {
        let o = ros(root, &["config", "get", k], None);
        assert!(o.status.success(), "get {k}: {}", err(&o));
        assert_eq!(out(&o), want, "get {k}");
    }
    let o = ros(root, &["config", "get", "ros.nothing.here"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("ros.nothing.here is not set"));

    // export: user layers only, secrets hidden; --private shows the token
    // but never the password; --full includes the defaults.
    let o = ros(root, &["config", "export"], None);
    let text = out(&o);
    assert!(text.contains("hostname: node-7"), "{text}");
    assert!(text.contains("- 9.9.9.9"));
    assert!(
        !text.contains("s3cret") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(
        !text.contains("udev-cold"),
        "defaults leaked without --full"
    );
    let text = out(&ros(root, &["config", "export", "--private"], None));
    assert!(
        text.contains("s3cret") && !text.contains("hunter2"),
        "{text}"
    );
    let text = out(&ros(root, &["config", "export", "--full"], None));
    assert!(text.contains("udev-cold") && text.contains("node-7"));

    // The kernel command line wins over cloud-config.yml.
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(root.join("proc/cmdline"), "quiet ros.debug=false\n").unwrap();
    assert_eq!(
        out(&ros(root, &["config", "get", "ros.debug"], None)),
        "false\n"
    );
}

#[test]
fn set_and_merge_refuse_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let o = ros(root, &["config", "set", "ros.debug", "maybe"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("ros.debug: expected a boolean"),
        "{}",
        err(&o)
    );
    assert!(!root.join("var/lib/ros/conf/cloud-config.yml").exists());

    let o = ros(root, &["config", "merge"], Some("ros:\n  bogus_key: 1\n"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("ros.bogus_key: unknown key"),
        "{}",
        err(&o)
    );

    let o = ros(
        root,
        &["config", "merge"],
        Some("ros:\r\n  debug: true\r\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("CR characters"));

    let o = ros(
        root,
        &["config", "merge"],
        Some("ros:\n  console: alpine\n  network:\n    dns:\n      search: [corp]\n"),
    );
    assert!(o.status.success(), "{}", err(&o));
    let o = ros(
        root,
        &["config", "merge"],
        Some("rancher:\n  debug: true\n"),
    );
    assert!(o.status.success(), "{}", err(&o));
    let text = std::fs::read_to_string(root.join("var/lib/ros/conf/cloud-config.yml")).unwrap();
    assert_eq!(text, "ros:\n  console: alpine\n  network:\n    dns:\n      search:\n        - corp\n  debug: true\n");
}

#[test]
fn validate_prints_positions_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "#cloud-config\nros:\n  debug: maybe\n  netwrk: {}\n").unwrap();
    let o = ros(
        dir.path(),
        &["config", "validate", "-i", bad.to_str().unwrap()],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let b = bad.display();
    assert_eq!(
        out(&o),
        format!("{b}:3:10: ros.debug: expected a boolean (true or false), found a string \"maybe\"\n{b}:4:3: ros.netwrk: unknown key (did you mean network?)\n")
    );
    let good = dir.path().join("good.yml");
    std::fs::write(&good, "#cloud-config\nhostname: a\n").unwrap();
    let o = ros(
        dir.path(),
        &["config", "validate", "-i", good.to_str().unwrap()],
        None,
    );
    assert!(o.status.success());
    assert_eq!(out(&o), "");
    let o = ros(dir.path(), &["config", "validate"], Some("ros: [\n"));
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).starts_with("<stdin>:2:1:"), "{}", out(&o));
}

#[test]
fn argv0_init_runs_pid1_entry() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("init");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ros"), &link).unwrap();
    let o = Command::new(&link).output().unwrap();
    assert!(err(&o).contains("ros init"), "{}", err(&o));
}
