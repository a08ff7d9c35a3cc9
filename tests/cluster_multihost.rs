//! A real multi-host cluster on one machine: the server in the root network
//! namespace, three agents each in its own network namespace with its own
//! dockerd (started with `nsenter --net=…`, `--iptables=false`), joined by
//! a bridge. Needs root and Debian's docker.io + busybox-static (CI runs as
//! root; build/deps.sh installs them). Everything it starts it stops, and it
//! removes its namespaces, links and directories, also when it fails.

mod harness;

use harness::*;
use serde_json::json;

#[test]
fn three_hosts_register_run_and_reconnect() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "cluster_multihost needs root (network namespaces and dockerd); CI runs as root"
    );
    let mut c = setup();
    let url = c.url.clone();
    let token = post(
        &format!("{url}/v1/projects/1a5/registrationtokens"),
        json!({}),
    );
    let reg = token["registrationUrl"].as_str().unwrap().to_string();
    assert!(reg.starts_with("https://"), "{reg}");
    let tok = token["token"].as_str().unwrap();
    assert!(ros::cluster::agent::token_pin(tok).is_some(), "{tok}");
    let command = token["command"].as_str().unwrap().to_string();
    // The Add Host line checks the CA against the pin before it fetches
    // the script with it (no `-k` on the script or the binary).
    let pin = ros::cluster::agent::token_pin(tok).unwrap();
    assert!(
        command.contains(&format!("grep -q ^{pin}"))
            && command.ends_with(&format!("curl -fsSL --cacert $f {reg} | sudo sh")),
        "{command}"
    );
    c.hosts[0].agent = Some(start_agent(&c, 0, &reg));
    // node2 is given two servers (`server_url` may list several): the
    // first does not answer, so it registers and syncs with the second.
    let dead = reg.replacen(&url_host_port(&reg), "127.0.0.1:9", 1);
    c.hosts[1].agent = Some(start_agent(&c, 1, &format!("{dead},{reg}")));
    // node3 joins as any Docker machine would: the token's one line, which
    // fetches `ros` from the server itself and starts the agent.
    join_by_script(&c, 2, &command);
    let fetched = c.hosts[2].root.join("usr/local/bin/ros");
    assert_eq!(
        std::fs::metadata(&fetched).unwrap().len(),
        std::fs::metadata(ros()).unwrap().len(),
        "{} is not the server's binary",
        fetched.display()
    );
    let hosts = wait_for("3 active hosts", 90, || {
        let v = get(&format!("{url}/v1/projects/1a5/hosts?agentState=active"));
        let d = v["data"].as_array()?.clone();
        (d.len() == 3).then_some(d)
    });
    for (i, h) in c.hosts.iter().enumerate() {
        let api_host = host_by_name(&url, &format!("node{}", i + 1)).unwrap();
        assert_eq!(api_host["agentIpAddress"], h.ip.as_str(), "{api_host}");
        assert_eq!(api_host["labels"]["node"], format!("n{}", i + 1));
        assert!(api_host["info"]["osInfo"]["dockerVersion"]
            .as_str()
            .unwrap()
            .starts_with("20."));
        assert!(api_host["milliCpu"].as_u64().unwrap() >= 1000);
    }
    assert_eq!(hosts.len(), 3);

    // Run a container on node2 and see it in node2's dockerd only.
    let node2 = host_by_name(&url, "node2").unwrap();
    let node2_id = node2["id"].as_str().unwrap().to_string();
    let created = post(
        &format!("{url}/v1/projects/1a5/containers"),
        json!({"name": "web", "imageUuid": format!("docker:{IMAGE}"),
               "command": ["sleep", "3600"], "requestedHostId": node2_id,
               "networkMode": "none"}),
    );
    let cid = created["id"].as_str().unwrap().to_string();
    wait_for("container running", 60, || {
        (container_state(&url, &cid) == "running").then_some(())
    });
    let ps = c.hosts[1]
        .docker(&["ps", "--format", "{{.Names}} {{.Labels}}"])
        .unwrap();
    assert!(
        ps.contains("r-web") && ps.contains(&format!("io.ros.instance.id={cid}")),
        "{ps} / {:?}",
        c.hosts[1].docker(&["ps", "-a"])
    );
    for other in [0, 2] {
        assert!(!c.hosts[other]
            .docker(&["ps", "-a"])
            .unwrap()
            .contains("r-web"));
    }

    // Per-container usage arrives on its interval; host usage with every sync.
    wait_for("container usage", 30, || {
        get(&format!("{url}/v1/projects/1a5/containers/{cid}"))["memoryMb"]
            .as_u64()
            .map(|_| ())
    });
    let h2 = get(&format!("{url}/v1/projects/1a5/hosts/{node2_id}"));
    assert!(h2["usage"]["memoryUsedMb"].as_u64().unwrap() > 0, "{h2}");
    // A plain `docker stop` behind the agent's back is noticed and reported.
    c.hosts[1].docker(&["stop", "-t", "1", "r-web"]).unwrap();
    wait_for("stopped reported", 30, || {
        (container_state(&url, &cid) == "stopped").then_some(())
    });
    // The API's start action brings it back.
    post(
        &format!("{url}/v1/projects/1a5/containers/{cid}?action=start"),
        json!({}),
    );
    wait_for("running again", 30, || {
        (container_state(&url, &cid) == "running").then_some(())
    });
    // And a plain `docker rm -f` is reported as removed.
    c.hosts[1].docker(&["rm", "-f", "r-web"]).unwrap();
    wait_for("removed reported", 30, || {
        (container_state(&url, &cid) == "removed").then_some(())
    });

    // Stop node3's agent: reconnecting, then disconnected.
    let node3_id = host_by_name(&url, "node3").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let agent_state = |id: &str| {
        get(&format!("{url}/v1/projects/1a5/hosts/{id}"))["agentState"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // (node3's agent was started by the Add Host script: its pid file.)
    stop_script_agent(&c.hosts[2]);
    wait_for("reconnecting", 30, || {
        (agent_state(&node3_id) == "reconnecting").then_some(())
    });
    wait_for("disconnected", 30, || {
        (agent_state(&node3_id) == "disconnected").then_some(())
    });
    // Restart it (now as a plain `ros cluster agent` on the identity the
    // script's agent left in the host's root): the same host comes back,
    // no duplicate.
    let a = start_agent(&c, 2, &reg);
    c.hosts[2].agent = Some(a);
    wait_for("node3 active again", 60, || {
        (agent_state(&node3_id) == "active").then_some(())
    });
    let ident = c.hosts[2].root.join("var/lib/ros/cluster/agent.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&ident).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "identity holds a secret");
    let all = get(&format!("{url}/v1/projects/1a5/hosts"));
    assert_eq!(
        all["data"].as_array().unwrap().len(),
        3,
        "no duplicate host"
    );

    // A node that lost its state (no state disk: its identity is gone)
    // registers as a new host; the old one stays, disconnected (lost),
    // until the operator removes it.
    let mut a = c.hosts[2].agent.take().unwrap();
    stop(&mut a, std::time::Duration::from_secs(5));
    std::fs::remove_file(&ident).unwrap();
    c.hosts[2].agent = Some(start_agent(&c, 2, &reg));
    let fresh = wait_for("node3 registered as a new host", 60, || {
        get(&format!("{url}/v1/projects/1a5/hosts"))["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["hostname"] == "node3" && h["id"] != node3_id.as_str())
            .and_then(|h| h["id"].as_str().map(str::to_string))
    });
    wait_for("the new node3 active", 60, || {
        (agent_state(&fresh) == "active").then_some(())
    });
    wait_for("the old node3 disconnected", 30, || {
        (agent_state(&node3_id) == "disconnected").then_some(())
    });
    assert_eq!(
        get(&format!("{url}/v1/projects/1a5/hosts"))["data"]
            .as_array()
            .unwrap()
            .len(),
        4,
        "the lost host is kept beside the new one"
    );
}

/// `host:port` of a URL.
fn url_host_port(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_default()
        .to_string()
}
