//! The pure parts of the docker side: launch config → create body (a
//! table, one row per field), timestamps, image references.

use std::collections::BTreeMap;

use super::*;
use crate::cluster::plan::compose::fields::RestartPolicy as Restart;
use crate::cluster::plan::compose::{LogConfig, RunOptions};
use crate::cluster::protocol::{LaunchFields, PublishedPort};

/// Launch fields with only `r` set.
fn run(r: RunOptions) -> LaunchFields {
    LaunchFields {
        run: r,
        ..LaunchFields::default()
    }
}

fn inst(f: LaunchFields) -> DesiredInstance {
    DesiredInstance {
        id: "1i1".into(),
        docker_name: "r-a-web-1".into(),
        image: "busybox".into(),
        config: f,
        ..DesiredInstance::default()
    }
}

type Check = fn(&ContainerCreateBody) -> bool;

#[test]
fn create_body_carries_every_field() {
    let rows: Vec<(&str, LaunchFields, Check)> = vec![
        (
            "entrypoint",
            run(RunOptions {
                entry_point: vec!["/bin/sh".into(), "-c".into()],
                ..Default::default()
            }),
            |b| b.entrypoint == Some(vec!["/bin/sh".into(), "-c".into()]),
        ),
        (
            "published port with bind IP and protocol",
            LaunchFields {
                published: vec![
                    PublishedPort {
                        bind_ip: Some("10.0.0.2".into()),
                        public: 8080,
                        private: 80,
                        protocol: "tcp".into(),
                    },
                    PublishedPort {
                        bind_ip: None,
                        public: 49153,
                        private: 53,
                        protocol: "udp".into(),
                    },
                ],
                expose: vec!["9000/tcp".into()],
                ..Default::default()
            },
            |b| {
                let pb = b
                    .host_config
                    .as_ref()
                    .and_then(|h| h.port_bindings.clone())
                    .unwrap_or_default();
                let one = |k: &str| pb.get(k).cloned().flatten().unwrap_or_default();
                b.exposed_ports == Some(vec!["53/udp".into(), "80/tcp".into(), "9000/tcp".into()])
                    && one("80/tcp")
                        == vec![PortBinding {
                            host_ip: Some("10.0.0.2".into()),
                            host_port: Some("8080".into()),
                        }]
                    && one("53/udp")
                        == vec![PortBinding {
                            host_ip: None,
                            host_port: Some("49153".into()),
                        }]
            },
        ),
        (
            "volumes_from",
            LaunchFields {
                data_volumes_from: vec!["r-a-data-1".into()],
                ..Default::default()
            },
            |b| b.host_config.as_ref().unwrap().volumes_from == Some(vec!["r-a-data-1".into()]),
        ),
        (
            "restart on-failure:3",
            run(RunOptions {
                restart_policy: Some(Restart {
                    name: "on-failure".into(),
                    maximum_retry_count: Some(3),
                }),
                ..Default::default()
            }),
            |b| {
                let r = b
                    .host_config
                    .as_ref()
                    .unwrap()
                    .restart_policy
                    .clone()
                    .unwrap();
                r.name == Some(RestartPolicyNameEnum::ON_FAILURE)
                    && r.maximum_retry_count == Some(3)
            },
        ),
        (
            "memory, reservation, swap, cpu shares, cpuset, shm",
            run(RunOptions {
                memory: Some(64 << 20),
                memory_reservation: Some(32 << 20),
                memory_swap: Some(128 << 20),
                cpu_shares: Some(512),
                cpu_set: Some("0".into()),
                shm_size: Some(1 << 20),
                ..Default::default()
            }),
            |b| {
                let h = b.host_config.as_ref().unwrap();
                h.memory == Some(64 << 20)
                    && h.memory_reservation == Some(32 << 20)
                    && h.memory_swap == Some(128 << 20)
                    && h.cpu_shares == Some(512)
                    && h.cpuset_cpus.as_deref() == Some("0")
                    && h.shm_size == Some(1 << 20)
            },
        ),
        (
            "privileged, caps, security opts, read-only",
            run(RunOptions {
                privileged: true,
                cap_add: vec!["NET_ADMIN".into()],
                cap_drop: vec!["MKNOD".into()],
                security_opt: vec!["no-new-privileges".into()],
                read_only: true,
                ..Default::default()
            }),
            |b| {
                let h = b.host_config.as_ref().unwrap();
                h.privileged == Some(true)
                    && h.cap_add == Some(vec!["NET_ADMIN".into()])
                    && h.cap_drop == Some(vec!["MKNOD".into()])
                    && h.security_opt == Some(vec!["no-new-privileges".into()])
                    && h.readonly_rootfs == Some(true)
            },
        ),
        (
            "devices",
            run(RunOptions {
                devices: vec!["/dev/null:/dev/nothing:r".into(), "/dev/zero".into()],
                ..Default::default()
            }),
            |b| {
                let d = b.host_config.as_ref().unwrap().devices.clone().unwrap();
                d[0].path_on_host.as_deref() == Some("/dev/null")
                    && d[0].path_in_container.as_deref() == Some("/dev/nothing")
                    && d[0].cgroup_permissions.as_deref() == Some("r")
                    && d[1].path_in_container.as_deref() == Some("/dev/zero")
                    && d[1].cgroup_permissions.as_deref() == Some("rwm")
            },
        ),
        (
            "dns, search, extra hosts",
            run(RunOptions {
                dns: vec!["10.0.0.53".into()],
                dns_search: vec!["example.org".into()],
                extra_hosts: vec!["db:10.0.0.9".into()],
                ..Default::default()
            }),
            |b| {
                let h = b.host_config.as_ref().unwrap();
                h.dns == Some(vec!["10.0.0.53".into()])
                    && h.dns_search == Some(vec!["example.org".into()])
                    && h.extra_hosts == Some(vec!["db:10.0.0.9".into()])
            },
        ),
        (
            "hostname, domain, user, workdir, tty, stdin, stop signal",
            run(RunOptions {
                hostname: Some("web".into()),
                domain_name: Some("example.org".into()),
                user: Some("nobody".into()),
                working_dir: Some("/tmp".into()),
                tty: true,
                stdin_open: true,
                stop_signal: Some("SIGINT".into()),
                ..Default::default()
            }),
            |b| {
                b.hostname.as_deref() == Some("web")
                    && b.domainname.as_deref() == Some("example.org")
                    && b.user.as_deref() == Some("nobody")
                    && b.working_dir.as_deref() == Some("/tmp")
                    && b.tty == Some(true)
                    && b.open_stdin == Some(true)
                    && b.stop_signal.as_deref() == Some("SIGINT")
            },
        ),
        (
            "log driver and options",
            run(RunOptions {
                log_config: Some(LogConfig {
                    driver: Some("json-file".into()),
                    config: BTreeMap::from([("max-size".into(), "1m".into())]),
                }),
                ..Default::default()
            }),
            |b| {
                let l = b.host_config.as_ref().unwrap().log_config.clone().unwrap();
                l.typ.as_deref() == Some("json-file")
                    && l.config.unwrap().get("max-size").map(String::as_str) == Some("1m")
            },
        ),
        (
            "ulimits, tmpfs, pid, ipc",
            run(RunOptions {
                ulimits: BTreeMap::from([("nofile".into(), (1024, 2048))]),
                tmpfs: vec!["/run:size=1m".into(), "/scratch".into()],
                pid_mode: Some("host".into()),
                ipc_mode: Some("private".into()),
                ..Default::default()
            }),
            |b| {
                let h = b.host_config.as_ref().unwrap();
                let u = &h.ulimits.as_ref().unwrap()[0];
                let t = h.tmpfs.clone().unwrap();
                u.name.as_deref() == Some("nofile")
                    && u.soft == Some(1024)
                    && u.hard == Some(2048)
                    && t.get("/run").map(String::as_str) == Some("size=1m")
                    && t.get("/scratch").map(String::as_str) == Some("")
                    && h.pid_mode.as_deref() == Some("host")
                    && h.ipc_mode.as_deref() == Some("private")
            },
        ),
        ("nothing set: nothing sent", LaunchFields::default(), |b| {
            let h = b.host_config.as_ref().unwrap();
            b.entrypoint.is_none()
                && b.exposed_ports.is_none()
                && h.port_bindings.is_none()
                && h.privileged.is_none()
                && h.restart_policy.is_none()
                && h.memory.is_none()
                && b.tty.is_none()
        }),
    ];
    for (what, f, ok) in rows {
        let b = create_body(&inst(f));
        assert!(ok(&b), "{what}: {b:#?}");
        assert_eq!(b.image.as_deref(), Some("busybox"), "{what}");
    }
}

/// Every field of [`RunOptions`] set, none to its default. A struct
/// literal without `..`: a field added to `RunOptions` does not compile
/// here until it has a value, and then must change the create body.
fn every_run_option() -> RunOptions {
    RunOptions {
        entry_point: vec!["/bin/sh".into()],
        restart_policy: Some(Restart {
            name: "always".into(),
            maximum_retry_count: None,
        }),
        memory: Some(64 << 20),
        memory_swap: Some(128 << 20),
        memory_reservation: Some(32 << 20),
        cpu_shares: Some(512),
        cpu_set: Some("0".into()),
        privileged: true,
        cap_add: vec!["NET_ADMIN".into()],
        cap_drop: vec!["MKNOD".into()],
        devices: vec!["/dev/fuse".into()],
        dns: vec!["10.0.0.53".into()],
        dns_search: vec!["example.org".into()],
        hostname: Some("web".into()),
        domain_name: Some("example.org".into()),
        user: Some("nobody".into()),
        working_dir: Some("/srv".into()),
        log_config: Some(LogConfig {
            driver: Some("json-file".into()),
            config: BTreeMap::new(),
        }),
        tty: true,
        stdin_open: true,
        read_only: true,
        extra_hosts: vec!["db:10.0.0.9".into()],
        security_opt: vec!["no-new-privileges".into()],
        pid_mode: Some("host".into()),
        ipc_mode: Some("host".into()),
        ulimits: BTreeMap::from([("nofile".into(), (10, 20))]),
        tmpfs: vec!["/run".into()],
        stop_signal: Some("SIGINT".into()),
        shm_size: Some(1 << 20),
    }
}

/// Each [`RunOptions`] field alone (found through its JSON key, so none
/// is skipped) changes what docker is asked for: a field that
/// `create_body` forgets fails here.
#[test]
fn create_body_reads_every_run_option() {
    let full = serde_json::to_value(every_run_option()).unwrap();
    let keys = full.as_object().unwrap();
    let plain = create_body(&inst(LaunchFields::default()));
    for (key, value) in keys {
        let only: RunOptions = serde_json::from_value(serde_json::json!({ key: value })).unwrap();
        assert_ne!(only, RunOptions::default(), "{key} was not read back");
        assert_ne!(
            create_body(&inst(run(only))),
            plain,
            "{key} does not reach the create body"
        );
    }
}

#[test]
fn create_body_network_modes() {
    for (mode, want) in [
        (None, None),
        (Some("managed"), None),
        (Some("host"), Some("host")),
        (Some("container:r-a-web-1"), Some("container:r-a-web-1")),
    ] {
        let mut d = inst(LaunchFields::default());
        d.network_mode = mode.map(str::to_string);
        let b = create_body(&d);
        assert_eq!(
            b.host_config.unwrap().network_mode.as_deref(),
            want,
            "{mode:?}"
        );
    }
}

#[test]
fn timestamps() {
    for (t, want) in [
        ("1970-01-01T00:00:00Z", Some(0)),
        ("1970-01-01T00:00:01.5Z", Some(1_500_000_000)),
        (
            "2026-11-24T03:34:50.123456789Z",
            Some(1_795_491_290_123_456_789),
        ),
        ("2000-02-29T00:00:00Z", Some(951_782_400_000_000_000)),
        ("2026-11-24T03:34:50", None),
        ("yesterday", None),
        ("2026-13-01T00:00:00Z", None),
        ("2026-11-24T03:34:50.1234567891Z", None),
    ] {
        assert_eq!(parse_timestamp(t), want, "{t}");
    }
}

#[test]
fn image_references() {
    for (i, repo, tag) in [
        ("busybox", "busybox", "latest"),
        ("busybox:1.36", "busybox", "1.36"),
        ("ros-test/busybox:latest", "ros-test/busybox", "latest"),
        ("reg:5000/a/b", "reg:5000/a/b", "latest"),
        ("reg:5000/a/b:v2", "reg:5000/a/b", "v2"),
        ("a@sha256:00", "a@sha256:00", ""),
    ] {
        assert_eq!(split_image(i), (repo.to_string(), tag.to_string()), "{i}");
    }
}

#[test]
fn service_containers_ask_the_discovery_dns_after_the_users() {
    let mut d = DesiredInstance {
        config: LaunchFields {
            run: RunOptions {
                dns: vec!["10.0.0.53".into()],
                dns_search: vec!["example.org".into()],
                ..Default::default()
            },
            ..Default::default()
        },
        ..DesiredInstance::default()
    };
    d.labels
        .insert("io.rancher.stack_service.name".into(), "App/Web".into());
    let h = create_body(&d).host_config.unwrap();
    assert_eq!(
        h.dns,
        Some(vec!["10.0.0.53".to_string(), "169.254.169.250".into()])
    );
    assert_eq!(
        h.dns_search,
        Some(vec![
            "example.org".to_string(),
            "app.rancher.internal".into(),
            "web.app.rancher.internal".into(),
            "rancher.internal".into()
        ])
    );
    // A host-network container keeps the host's resolver.
    d.network_mode = Some("host".into());
    let h = create_body(&d).host_config.unwrap();
    assert_eq!(h.dns, Some(vec!["10.0.0.53".to_string()]));
    // A plain container (no service) too.
    d.network_mode = None;
    d.labels.clear();
    let h = create_body(&d).host_config.unwrap();
    assert_eq!(h.dns_search, Some(vec!["example.org".to_string()]));
    // A standalone container on the managed network asks the discovery
    // DNS, in the environment's zone.
    d.primary_ip_address = Some("10.42.0.9".into());
    let h = create_body(&d).host_config.unwrap();
    assert_eq!(
        h.dns,
        Some(vec!["10.0.0.53".to_string(), "169.254.169.250".into()])
    );
    assert_eq!(
        h.dns_search,
        Some(vec!["example.org".to_string(), "rancher.internal".into()])
    );
}
