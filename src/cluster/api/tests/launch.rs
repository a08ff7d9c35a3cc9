//! Every launch-config field end to end, through the code the product runs:
//! compose text → `POST /stacks` (compose parse, service rows) → the
//! reconciler (container rows, `plan::launch::apply`) → `POST
//! /v1/agent/sync` (the agent's desired instances, decoded as the agent
//! decodes them) → the agent's docker create body. One service per row,
//! setting one field; every JSON key of [`LaunchConfig`] must have a row
//! (or a reason it never reaches the agent), so a field added to the model
//! but not carried fails here.

use std::collections::BTreeSet;

use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicyNameEnum};
use serde_json::json;

use super::*;
use crate::cluster::agent::docker::create_body;
use crate::cluster::plan::compose::LaunchConfig;
use crate::cluster::protocol::{DesiredInstance, SyncResponse};

type Check = fn(&DesiredInstance, &ContainerCreateBody) -> bool;

/// `launchConfig` keys that never reach the agent, and why.
const NOT_SENT: &[(&str, &str)] = &[
    (
        "milliCpuReservation",
        "a scheduler reservation on the host, nothing docker enforces",
    ),
    (
        "volumeDriver",
        "read by plan::upgrade (which named volumes are host-local); not sent to docker",
    ),
];

fn host(b: &ContainerCreateBody) -> &HostConfig {
    b.host_config.as_ref().expect("host config")
}

fn strs(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| s.to_string()).collect())
}

/// (service, the `launchConfig` key it sets, docker-compose lines,
/// rancher-compose lines, what the agent must get).
fn rows() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Check,
)> {
    vec![
        ("image", "image", "image: busybox:1.36", "", |_, b| {
            b.image.as_deref() == Some("busybox:1.36")
        }),
        ("command", "command", "command: [sleep, '60']", "", |_, b| {
            b.cmd == strs(&["sleep", "60"])
        }),
        ("environment", "environment", "environment: {MODE: prod}", "", |_, b| {
            b.env == strs(&["MODE=prod"])
        }),
        ("labels", "labels", "labels: {tier: web}", "", |_, b| {
            b.labels.as_ref().and_then(|l| l.get("tier")).map(String::as_str) == Some("web")
        }),
        ("ports", "ports", "ports: ['8080:80', '127.0.0.1::53/udp']", "", |_, b| {
            let pb = host(b).port_bindings.clone().unwrap_or_default();
            let one = |k: &str| pb.get(k).cloned().flatten().unwrap_or_default();
            let (tcp, udp) = (one("80/tcp"), one("53/udp"));
            tcp.len() == 1
                && tcp[0].host_port.as_deref() == Some("8080")
                && udp.len() == 1
                && udp[0].host_ip.as_deref() == Some("127.0.0.1")
                && udp[0].host_port.as_deref().and_then(|p| p.parse::<u16>().ok()) >= Some(49153)
        }),
        ("expose", "expose", "expose: ['9000']", "", |_, b| {
            b.exposed_ports == strs(&["9000/tcp"])
        }),
        ("volumes", "dataVolumes", "volumes: [/data, '/tmp:/srv:ro']", "", |_, b| {
            let binds = host(b).binds.clone().unwrap_or_default();
            binds.len() == 2
                && binds.iter().any(|v| v.ends_with(":/data"))
                && binds.contains(&"/tmp:/srv:ro".to_string())
        }),
        ("volumes-from", "dataVolumesFrom", "volumes_from: [data]", "", |_, b| {
            host(b).volumes_from == strs(&["r-rt-data-1"])
        }),
        ("network-host", "networkMode", "network_mode: host", "", |_, b| {
            host(b).network_mode.as_deref() == Some("host")
        }),
        ("network-service", "networkMode", "network_mode: 'service:data'", "", |_, b| {
            host(b).network_mode.as_deref() == Some("container:r-rt-data-1")
        }),
        ("entrypoint", "entryPoint", "entrypoint: [/bin/sh, -c]", "", |_, b| {
            b.entrypoint == strs(&["/bin/sh", "-c"])
        }),
        ("restart", "restartPolicy", "restart: 'on-failure:3'", "", |_, b| {
            host(b).restart_policy.as_ref().is_some_and(|r| {
                r.name == Some(RestartPolicyNameEnum::ON_FAILURE) && r.maximum_retry_count == Some(3)
            })
        }),
        ("memory", "memory", "mem_limit: 64m", "", |_, b| {
            host(b).memory == Some(64 << 20)
        }),
        ("memory-swap", "memorySwap", "memswap_limit: 128m", "", |_, b| {
            host(b).memory_swap == Some(128 << 20)
        }),
        ("memory-reservation", "memoryReservation", "mem_reservation: 32m", "", |_, b| {
            host(b).memory_reservation == Some(32 << 20)
        }),
        ("cpu-shares", "cpuShares", "cpu_shares: 512", "", |_, b| {
            host(b).cpu_shares == Some(512)
        }),
        ("cpuset", "cpuSet", "cpuset: '0'", "", |_, b| {
            host(b).cpuset_cpus.as_deref() == Some("0")
        }),
        ("privileged", "privileged", "privileged: true", "", |_, b| {
            host(b).privileged == Some(true)
        }),
        ("cap-add", "capAdd", "cap_add: [NET_ADMIN]", "", |_, b| {
            host(b).cap_add == strs(&["NET_ADMIN"])
        }),
        ("cap-drop", "capDrop", "cap_drop: [MKNOD]", "", |_, b| {
            host(b).cap_drop == strs(&["MKNOD"])
        }),
        ("devices", "devices", "devices: ['/dev/fuse']", "", |_, b| {
            host(b).devices.as_ref().is_some_and(|d| {
                d.len() == 1 && d[0].path_on_host.as_deref() == Some("/dev/fuse")
            })
        }),
        // The user's first, then the discovery DNS (Rancher's order).
        ("dns", "dns", "dns: [10.0.0.53]", "", |_, b| {
            host(b).dns == strs(&["10.0.0.53", "169.254.169.250"])
        }),
        ("dns-search", "dnsSearch", "dns_search: [example.org]", "", |_, b| {
            host(b).dns_search
                == strs(&[
                    "example.org",
                    "rt.rancher.internal",
                    "dns-search.rt.rancher.internal",
                    "rancher.internal",
                ])
        }),
        ("hostname", "hostname", "hostname: box", "", |_, b| {
            b.hostname.as_deref() == Some("box")
        }),
        ("domainname", "domainName", "domainname: example.org", "", |_, b| {
            b.domainname.as_deref() == Some("example.org")
        }),
        ("user", "user", "user: nobody", "", |_, b| b.user.as_deref() == Some("nobody")),
        ("working-dir", "workingDir", "working_dir: /srv", "", |_, b| {
            b.working_dir.as_deref() == Some("/srv")
        }),
        (
            "logging",
            "logConfig",
            "logging: {driver: json-file, options: {max-size: 1m}}",
            "",
            |_, b| {
                host(b).log_config.as_ref().is_some_and(|l| {
                    l.typ.as_deref() == Some("json-file")
                        && l.config.as_ref().and_then(|c| c.get("max-size")).map(String::as_str)
                            == Some("1m")
                })
            },
        ),
        ("tty", "tty", "tty: true", "", |_, b| b.tty == Some(true)),
        ("stdin-open", "stdinOpen", "stdin_open: true", "", |_, b| {
            b.open_stdin == Some(true)
        }),
        ("read-only", "readOnly", "read_only: true", "", |_, b| {
            host(b).readonly_rootfs == Some(true)
        }),
        ("extra-hosts", "extraHosts", "extra_hosts: ['db:10.0.0.9']", "", |_, b| {
            host(b).extra_hosts == strs(&["db:10.0.0.9"])
        }),
        ("security-opt", "securityOpt", "security_opt: [no-new-privileges]", "", |_, b| {
            host(b).security_opt == strs(&["no-new-privileges"])
        }),
        ("pid", "pidMode", "pid: host", "", |_, b| {
            host(b).pid_mode.as_deref() == Some("host")
        }),
        ("ipc", "ipcMode", "ipc: host", "", |_, b| {
            host(b).ipc_mode.as_deref() == Some("host")
        }),
        ("ulimits", "ulimits", "ulimits: {nofile: {soft: 10, hard: 20}}", "", |_, b| {
            host(b).ulimits.as_ref().is_some_and(|u| {
                u.len() == 1
                    && u[0].name.as_deref() == Some("nofile")
                    && (u[0].soft, u[0].hard) == (Some(10), Some(20))
            })
        }),
        ("tmpfs", "tmpfs", "tmpfs: ['/run:size=1m']", "", |_, b| {
            host(b).tmpfs.as_ref().and_then(|t| t.get("/run")).map(String::as_str)
                == Some("size=1m")
        }),
        ("stop-signal", "stopSignal", "stop_signal: SIGINT", "", |_, b| {
            b.stop_signal.as_deref() == Some("SIGINT")
        }),
        ("shm-size", "shmSize", "shm_size: 1m", "", |_, b| {
            host(b).shm_size == Some(1 << 20)
        }),
        // Read by the agent itself, not docker: checked on the instance.
        (
            "health-check",
            "healthCheck",
            "",
            "health_check: {port: 80, interval: 2000, response_timeout: 2000, healthy_threshold: 2, unhealthy_threshold: 3}",
            |d, _| d.health_check.as_ref().is_some_and(|h| h.port == 80),
        ),
        ("drain", "drainTimeoutMs", "", "drain_timeout_ms: 1500", |d, _| {
            d.drain_timeout_ms == 1500
        }),
    ]
}

/// The compose pair of one stack holding a `data` service and one service
/// per row.
fn compose_texts() -> (String, String) {
    let mut dc = String::from("version: '2'\nservices:\n  data:\n    image: busybox\n");
    let mut rc = String::from("version: '2'\nservices:\n");
    for (name, _, d, r, _) in rows() {
        dc.push_str(&format!("  {name}:\n"));
        if !d.starts_with("image:") {
            dc.push_str("    image: busybox\n");
        }
        if !d.is_empty() {
            dc.push_str(&format!("    {d}\n"));
        }
        if !r.is_empty() {
            rc.push_str(&format!("  {name}:\n    {r}\n"));
        }
    }
    (dc, rc)
}

/// Every key of a launch config's JSON (the API's and the stored one's).
fn launch_keys() -> BTreeSet<String> {
    let all = LaunchConfig {
        drain_timeout_ms: Some(0),
        ..LaunchConfig::default()
    };
    serde_json::to_value(all)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn every_launch_config_key_has_a_row() {
    let mut covered: BTreeSet<String> = rows().iter().map(|r| r.1.to_string()).collect();
    covered.extend(NOT_SENT.iter().map(|(k, _)| k.to_string()));
    assert_eq!(
        covered,
        launch_keys(),
        "a launchConfig field without a round-trip row (or a NOT_SENT reason)"
    );
}

#[test]
fn every_field_from_compose_to_the_docker_create_body() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("db"), fast());
    let base = format!("{}/v1/projects/1a5", s.url);
    let (_, ak, sk) = register(&s.url, "1a5", "launchroundtripkey01", "node1");
    let (dc, rc) = compose_texts();
    let st = post(
        &format!("{base}/stacks"),
        json!({"name": "rt", "dockerCompose": dc, "rancherCompose": rc}),
    );
    assert_eq!(st.status, 201, "{:?}", st.body);
    let sid = st.body["id"].as_str().unwrap().to_string();

    // Each row's lines really set its field in the service's launchConfig.
    let plain = crate::cluster::plan::rows::launch_config_json(&LaunchConfig::default());
    let svcs = get(&format!("{base}/services?stackId={sid}&limit=100")).body;
    let svcs = svcs["data"].as_array().unwrap();
    for (name, key, ..) in rows() {
        let svc = svcs.iter().find(|v| v["name"] == name).unwrap();
        let got = &svc["launchConfig"][key];
        assert!(
            !got.is_null() && *got != plain[key],
            "{name}: the compose lines leave {key} unset: {got}"
        );
    }

    let act = post(
        &format!("{base}/stacks/{sid}?action=activateservices"),
        json!({}),
    );
    assert_eq!(act.status, 200, "{:?}", act.body);
    let want = rows().len() + 1;
    let sync = || -> SyncResponse {
        let r = call(
            "POST",
            &format!("{}/v1/agent/sync", s.url),
            Some((&ak, &sk)),
            Some(br#"{"waitMs": 0}"#),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
        serde_json::from_value(r.body).unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let instances = loop {
        let got = sync().instances;
        if got.len() == want {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {want} containers placed",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let mut failed = Vec::new();
    for (name, key, _, _, ok) in rows() {
        let docker_name = format!("r-rt-{name}-1");
        let d = instances
            .iter()
            .find(|d| d.docker_name == docker_name)
            .unwrap_or_else(|| panic!("no instance {docker_name}"));
        let b = create_body(d);
        if !ok(d, &b) {
            failed.push(format!("{name} ({key}): {d:#?}\n{b:#?}"));
        }
    }
    assert!(failed.is_empty(), "not carried:\n{}", failed.join("\n"));
}
