//! Service discovery on the real 3-host rig (server + 3 agents in network
//! namespaces with their own dockerd): every agent serves DNS and metadata
//! on 169.254.169.250 (a dummy link it adds over netlink), and service
//! containers are told to use it.
//!
//! What needs only this branch: the service containers' `Dns`/`DnsSearch`
//! in `docker inspect`, DNS reached from inside a container (the metadata
//! name), and metadata reached from inside a container (`self/host`).
//! What needs the overlay's addresses (`primaryIpAddress` on container
//! rows): `web` resolving to the three web containers' addresses,
//! `wget http://web/`, the client's link alias and `self/container`. Those
//! checks run when the rows carry addresses and say so loudly when not.

mod harness;

use std::collections::BTreeSet;

use harness::*;
use serde_json::Value;

const DC: &str = r#"version: '2'
services:
  web:
    image: ros-test/busybox:latest
    command: [/bin/busybox, sh, -c, "hostname > /index.html; exec httpd -f -p 80 -h /"]
    labels:
      io.rancher.scheduler.affinity:container_label_ne: io.rancher.stack_service.name=app/web
  client:
    image: ros-test/busybox:latest
    command: [sleep, "3600"]
    links:
      - web:www
"#;

const RC: &str = r#"version: '2'
services:
  web:
    scale: 3
  client:
    scale: 1
    metadata:
      answer: 42
"#;

fn containers(url: &str, prefix: &str) -> Vec<Value> {
    get(&format!("{url}/v1/projects/1a5/containers?limit=1000"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["name"].as_str().unwrap_or("").starts_with(prefix)
                && c["state"] == "running"
                && c["desiredState"] != "removed"
        })
        .cloned()
        .collect()
}

fn host_of<'a>(c: &'a Cluster, ct: &Value) -> (usize, &'a Host) {
    let i = (0..3)
        .find(|i| host_by_name(&c.url, &format!("node{}", i + 1)).unwrap()["id"] == ct["hostId"])
        .unwrap();
    (i, &c.hosts[i])
}

/// `wget` inside the container (busybox's `-q` exits non-zero here even
/// on success, so the progress goes to /dev/null instead).
fn fetch(h: &Host, ct: &Value, url: &str) -> Result<String, String> {
    exec(h, ct, &["sh", "-c", &format!("wget -O- {url} 2>/dev/null")])
}

fn exec(h: &Host, ct: &Value, cmd: &[&str]) -> Result<String, String> {
    let id = ct["externalId"].as_str().unwrap();
    h.docker(&[&["exec", id][..], cmd].concat())
}

#[test]
fn containers_resolve_services_and_read_metadata() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "cluster_dns needs root (network namespaces and dockerd); CI runs as root"
    );
    let mut c = setup();
    let url = c.url.clone();
    join_agents(&mut c);
    let dir = c.dir.path().join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), DC).unwrap();
    std::fs::write(dir.join("rancher-compose.yml"), RC).unwrap();
    let out = ros_compose(
        &c,
        &dir,
        &[
            "-p",
            "app",
            "-f",
            "docker-compose.yml",
            "-f",
            "rancher-compose.yml",
            "up",
            "-d",
        ],
    );
    assert!(out.status.success());
    let web = wait_for("3 web running", 120, || {
        let w = containers(&url, "app-web-");
        (w.len() == 3).then_some(w)
    });
    let client = wait_for("client running", 60, || {
        containers(&url, "app-client-").pop()
    });
    let (ci, ch) = host_of(&c, &client);

    // What docker was told (Rancher's tests assert this on inspect).
    let id = client["externalId"].as_str().unwrap();
    let dns = ch
        .docker(&[
            "inspect",
            "-f",
            "{{json .HostConfig.Dns}} {{json .HostConfig.DnsSearch}}",
            id,
        ])
        .unwrap();
    assert_eq!(
        dns.trim(),
        r#"["169.254.169.250"] ["app.rancher.internal","client.app.rancher.internal","rancher.internal"]"#
    );

    // DNS from inside the container, through its resolv.conf.
    // On the managed network (a docker network of its own) docker puts its
    // embedded resolver in resolv.conf, which forwards to HostConfig.Dns
    // (asserted above) from the container's own address.
    let conf = exec(ch, &client, &["cat", "/etc/resolv.conf"]).unwrap();
    assert!(
        conf.contains("nameserver 169.254.169.250") || conf.contains("nameserver 127.0.0.11"),
        "{conf}"
    );
    // DNS from inside the container (over its default route to the host).
    let want = "Name:\trancher-metadata.rancher.internal\nAddress: 169.254.169.250";
    let mut last = String::new();
    wait_for("DNS answers inside the container", 30, || {
        let q = "nslookup rancher-metadata.rancher.internal 169.254.169.250 2>&1; true";
        last = exec(ch, &client, &["sh", "-c", q]).unwrap_or_else(|e| e);
        eprintln!("{last}");
        last.contains(want).then_some(())
    });
    // Metadata from inside the container.
    let agent_ip = fetch(
        ch,
        &client,
        "http://169.254.169.250/latest/self/host/agent_ip",
    )
    .unwrap();
    assert_eq!(agent_ip, c.hosts[ci].ip, "self/host of node{}", ci + 1);
    let nope = fetch(ch, &client, "http://169.254.169.250/latest/nope");
    assert!(nope.is_err(), "unknown path is 404: {nope:?}");

    // Names of services answer the overlay's addresses.
    let addrs: BTreeSet<String> = web
        .iter()
        .filter_map(|w| w["primaryIpAddress"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        addrs.len(),
        3,
        "every web container has its own managed-network address: {web:?}"
    );
    for name in ["web", "web.app", "web.app.rancher.internal", "www"] {
        // busybox nslookup also tries the search domains (NXDOMAIN
        // there makes its status non-zero): read the answers it printed.
        let q = format!("nslookup {name} 169.254.169.250; true");
        let out = exec(ch, &client, &["sh", "-c", &q]).unwrap();
        let got: BTreeSet<String> = out
            .lines()
            .skip_while(|l| !l.starts_with("Name:"))
            .filter_map(|l| l.strip_prefix("Address:"))
            .map(|a| {
                a.trim()
                    .trim_start_matches("1 ")
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(got, addrs, "{name}: {out}");
    }
    let mut served = BTreeSet::new();
    for _ in 0..30 {
        served.insert(fetch(ch, &client, "http://web/").unwrap());
    }
    assert_eq!(
        served.len(),
        3,
        "all three web containers answer: {served:?}"
    );
    let me = fetch(
        ch,
        &client,
        "http://rancher-metadata/latest/self/container/primary_ip",
    )
    .unwrap();
    assert_eq!(Some(me.trim()), client["primaryIpAddress"].as_str());
    let answer = fetch(
        ch,
        &client,
        "http://rancher-metadata/latest/self/service/metadata/answer",
    )
    .unwrap();
    assert_eq!(answer.trim(), "42");

    // A container created directly (no service) on another host than the
    // client's: an address of the environment's subnet, its name resolves
    // from the client, it answers over the overlay, and it resolves and
    // reads metadata itself like a service container.
    let other = (0..3).find(|i| *i != ci).unwrap();
    let other_id = host_by_name(&url, &format!("node{}", other + 1)).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let solo = post(
        &format!("{url}/v1/projects/1a5/containers"),
        serde_json::json!({
            "name": "solo",
            "imageUuid": format!("docker:{IMAGE}"),
            "requestedHostId": other_id,
            "command": ["/bin/busybox", "sh", "-c", "hostname > /index.html; exec httpd -f -p 80 -h /"],
        }),
    );
    let solo_ip = solo["primaryIpAddress"]
        .as_str()
        .unwrap_or_else(|| panic!("a standalone container gets an address: {solo}"))
        .to_string();
    assert!(solo_ip.starts_with("10.42."), "{solo}");
    assert!(
        !addrs.contains(&solo_ip) && client["primaryIpAddress"] != solo_ip.as_str(),
        "{solo_ip} is already a service container's"
    );
    let solo = wait_for("standalone container running", 60, || {
        containers(&url, "solo").pop()
    });
    let oh = &c.hosts[other];
    let solo_host = exec(oh, &solo, &["/bin/busybox", "hostname"]).unwrap();
    let dns = oh
        .docker(&[
            "inspect",
            "-f",
            "{{json .HostConfig.Dns}} {{json .HostConfig.DnsSearch}}",
            solo["externalId"].as_str().unwrap(),
        ])
        .unwrap();
    assert_eq!(dns.trim(), r#"["169.254.169.250"] ["rancher.internal"]"#);
    for name in ["solo", "solo.rancher.internal"] {
        wait_for(&format!("{name} resolves from the client"), 30, || {
            let q = format!("nslookup {name} 169.254.169.250; true");
            let out = exec(ch, &client, &["sh", "-c", &q]).unwrap();
            out.lines()
                .skip_while(|l| !l.starts_with("Name:"))
                .any(|l| l.contains(&solo_ip))
                .then_some(())
        });
    }
    let body = wait_for("standalone container answers by name", 30, || {
        fetch(ch, &client, "http://solo/").ok()
    });
    assert_eq!(body.trim(), solo_host.trim());
    // From inside it: service names and its own metadata.
    let q = "nslookup web.app 169.254.169.250; true";
    let out = exec(oh, &solo, &["sh", "-c", q]).unwrap();
    for a in &addrs {
        assert!(out.contains(a.as_str()), "web.app from solo: {out}");
    }
    let me = fetch(
        oh,
        &solo,
        "http://169.254.169.250/latest/self/container/primary_ip",
    )
    .unwrap();
    assert_eq!(me.trim(), solo_ip);
}
