//! The user engine as the system service `docker`: `ros user-docker` runs
//! the user dockerd inside a system container (host namespaces, privileged
//! or the fallback set), its socket at `/var/run/docker.sock` below the
//! temp root. A user container runs on it, and removing every user
//! container leaves the system services untouched.

mod common;

use common::{wait_for, Sandbox, IMAGE};

fn out(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn user_engine_runs_inside_system_docker() {
    let mut sb = Sandbox::new("usr", &["rtu", "rtv"]);
    // The test image is busybox only: dockerd and its libraries come from
    // the host through symlinks below the root (bind sources are resolved).
    std::fs::create_dir_all(sb.path("/usr/bin")).unwrap();
    std::os::unix::fs::symlink(common::ros_bin(), sb.path("/usr/bin/ros")).unwrap();
    for (link, target) in [
        ("/host-usr", "/usr"),
        ("/host-lib", "/usr/lib"),
        ("/host-lib64", "/usr/lib64"),
    ] {
        std::os::unix::fs::symlink(target, sb.path(link)).unwrap();
    }
    sb.os_config(&format!(
        r#"  services:
    docker:
      image: {IMAGE}
      command: [/bin/ros, user-docker]
      labels: {{io.rancher.os.scope: system, io.rancher.os.after: sentinel}}
      net: host
      uts: host
      pid: host
      ipc: host
      privileged: true
      restart: always
      volumes:
        - /usr/bin/ros:/bin/ros:ro
        - /host-usr:/usr:ro
        - /host-lib:/lib:ro
        - /host-lib64:/lib64:ro
        - /var/lib/ros:/var/lib/ros
        - /var/lib/docker:/var/lib/docker
        - /var/run:/var/run
        - /var/log:/var/log
        - /sys/fs/cgroup:/sys/fs/cgroup
        - /lib/modules:/lib/modules:ro
        - /dev:/dev
    sentinel:
      image: {IMAGE}
      command: sh -c 'trap "exit 0" TERM; while true; do sleep 1; done'
      restart: always
"#
    ));
    // ros.docker is read by `ros user-docker` inside the container, which
    // sees the node's /var/lib/ros: put it in the user layer. Docker's
    // runc, not the shipped crun: this host's cgroups are hybrid (v1 and
    // v2 controllers), which crun refuses; a node mounts v1 only, and the
    // qemu-tests cases run its workloads under crun.
    sb.write(
        "/var/lib/ros/conf/cloud-config.yml",
        &format!(
            "ros:\n  docker:\n    host: [unix:///var/run/docker.sock]\n    data_root: /var/lib/docker\n    bridge: {}\n    iptables: false\n    ip_masq: false\n    userland_proxy: false\n    storage_driver: overlay2\n    extra_args: []\n",
            sb.bridges[1]
        ),
    );
    sb.sysinit(&[]);
    let status = sb.wait_status();
    assert_eq!(status["docker"], "running", "{status:?}");
    assert_eq!(status["sentinel"], "running", "{status:?}");

    // The user engine answers on /var/run/docker.sock below the root.
    let user = "/var/run/docker.sock";
    wait_for("the user dockerd to answer", 120, || {
        sb.docker(user, &["version"]).status.success().then_some(())
    });
    let archive = sb.path("/usr/share/ros/images/busybox.tar");
    out(&sb.docker(user, &["load", "-i", archive.to_str().unwrap()]));
    let hello = out(&sb.docker(
        user,
        &["run", "--rm", IMAGE, "echo", "hello from the user engine"],
    ));
    assert_eq!(hello, "hello from the user engine");

    // `ros user-docker` started containerd itself, beside dockerd; killed,
    // it is started again and the engine goes on running containers.
    let logs = sb.docker("/var/run/system-docker.sock", &["logs", "docker"]);
    assert!(
        String::from_utf8_lossy(&logs.stderr).contains("beside its containerd")
            || String::from_utf8_lossy(&logs.stdout).contains("beside its containerd"),
        "{logs:?}"
    );
    // The service's process (`ros user-docker`) and its containerd child.
    let parent = sb.inspect("docker", "{{.State.Pid}}");
    let containerd = || {
        std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat.rsplit(')').next()?.split_whitespace().nth(1)?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (ppid == parent && String::from_utf8_lossy(&cmd).contains("containerd")).then_some(pid)
        })
    };
    let first = containerd().expect("the user engine's containerd");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("containerd started again", 30, || {
        containerd().filter(|p| *p != first).map(|_| ())
    });
    wait_for("a container after containerd's restart", 60, || {
        sb.docker(user, &["run", "--rm", IMAGE, "true"])
            .status
            .success()
            .then_some(())
    });
    out(&sb.docker(
        user,
        &["run", "-d", "--name", "workload", IMAGE, "sleep", "1000"],
    ));

    // The system engine does not see user containers, and the other way round.
    let system_names = sb.sdocker(&["ps", "--format", "{{.Names}}"]);
    assert!(!system_names.contains("workload"), "{system_names}");
    let user_names = out(&sb.docker(user, &["ps", "-a", "--format", "{{.Names}}"]));
    assert_eq!(user_names, "workload");

    // `docker rm -f $(docker ps -aq)` on the user engine cannot hurt the OS.
    let before: Vec<String> = ["docker", "sentinel"]
        .iter()
        .map(|n| sb.inspect(n, "{{.Id}} {{.State.StartedAt}} {{.State.Running}}"))
        .collect();
    let ids = out(&sb.docker(user, &["ps", "-aq"]));
    let mut args = vec!["rm", "-f"];
    args.extend(ids.split_whitespace());
    out(&sb.docker(user, &args));
    assert_eq!(out(&sb.docker(user, &["ps", "-aq"])), "");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after: Vec<String> = ["docker", "sentinel"]
        .iter()
        .map(|n| sb.inspect(n, "{{.Id}} {{.State.StartedAt}} {{.State.Running}}"))
        .collect();
    assert_eq!(before, after);
    assert!(after.iter().all(|s| s.ends_with("true")));

    // Shutdown stops the user engine with the services, then system-dockerd.
    let user_pid: i32 = std::fs::read_to_string(sb.path("/var/run/docker.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(sb.stop_sysinit(120), Some(0));
    assert!(
        !std::path::Path::new(&format!("/proc/{user_pid}")).exists(),
        "user dockerd left running"
    );
    assert_eq!(sb.our_processes(), vec![], "processes left behind");
    assert_eq!(sb.our_mounts(), Vec::<String>::new(), "mounts left behind");

    // Boots 2–4 on the same root (a state disk): the network store holds
    // only the predefined networks after boot 1, so it is reset; a
    // user-defined network keeps it, with that network and a container on
    // it restarted; once the network is gone the store is reset again and
    // a `--restart always` container on the default bridge comes back.
    let said = boot(&mut sb, user);
    assert!(
        said.contains("removed") && said.contains("local-kv.db"),
        "{said}"
    );
    out(&sb.docker(user, &["network", "create", "keep"]));
    for (name, net) in [("kept", "keep"), ("web", "bridge")] {
        out(&sb.docker(
            user,
            &[
                "run",
                "-d",
                "--name",
                name,
                "--restart",
                "always",
                "--network",
                net,
                IMAGE,
                "sleep",
                "1000",
            ],
        ));
    }
    assert_eq!(sb.stop_sysinit(120), Some(0));

    let said = boot(&mut sb, user);
    assert!(
        said.contains("kept") && said.contains("network \"keep\""),
        "{said}"
    );
    for name in ["kept", "web"] {
        wait_for(&format!("{name} restarted on boot 3"), 60, || {
            let o = sb.docker(user, &["inspect", "-f", "{{.State.Running}}", name]);
            (String::from_utf8_lossy(&o.stdout).trim() == "true").then_some(())
        });
    }
    out(&sb.docker(user, &["rm", "-f", "kept"]));
    out(&sb.docker(user, &["network", "rm", "keep"]));
    assert_eq!(sb.stop_sysinit(120), Some(0));

    let said = boot(&mut sb, user);
    assert!(said.contains("removed"), "{said}");
    wait_for(
        "web restarted on boot 4, on a new default bridge",
        60,
        || {
            let o = sb.docker(
                user,
                &[
                    "inspect",
                    "-f",
                    "{{.State.Running}} {{.NetworkSettings.Networks.bridge.IPAddress}}",
                    "web",
                ],
            );
            let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
            (s.starts_with("true ") && s.len() > "true ".len()).then_some(())
        },
    );
    let nets = out(&sb.docker(user, &["network", "ls", "--format", "{{.Name}}"]));
    assert_eq!(
        nets.lines().collect::<std::collections::BTreeSet<_>>(),
        ["bridge", "host", "none"].into()
    );
    out(&sb.docker(user, &["rm", "-f", "web"]));
    assert_eq!(sb.stop_sysinit(120), Some(0));
    assert_eq!(sb.our_processes(), vec![], "processes left behind");
    assert_eq!(sb.our_mounts(), Vec::<String>::new(), "mounts left behind");
}

/// Start sysinit again on the same root; wait for the user engine; return
/// the last line `ros user-docker` logged about the network store.
fn boot(sb: &mut Sandbox, user: &str) -> String {
    let _ = std::fs::remove_file(sb.path("/var/run/ros/sysinit.status"));
    sb.sysinit(&[]);
    let status = sb.wait_status();
    assert_eq!(status["docker"], "running", "{status:?}");
    wait_for("the user dockerd to answer", 120, || {
        sb.docker(user, &["version"]).status.success().then_some(())
    });
    let logs = sb.docker("/var/run/system-docker.sock", &["logs", "docker"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    text.lines()
        .rfind(|l| l.contains("user engine network store"))
        .unwrap_or("no network store line")
        .to_string()
}
