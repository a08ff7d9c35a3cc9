//! The managed network (overlay) host feature: one flat layer-2 segment per
//! environment across its hosts, over kernel VXLAN programmed through
//! netlink (`rtnetlink`), no `ip` shell-outs.
//!
//! Per host and environment: a docker bridge network `ros-<env>` (bridge
//! `rosbr<vni>`, the environment's subnet, gateway = its first address on
//! every host, MTU = underlay MTU − 50) that containers join with the
//! address the server allocated (`--ip`), and a VXLAN device `rosvx<vni>`
//! (VNI = the environment's id, UDP port `--vxlan-port`, default 4789,
//! local = the agent address, learning off, ARP proxy on) enslaved to it.
//!
//! Design note — what the kernel holds, and why: the network is flat
//! (Docker overlay's model), not a subnet per host (flannel's): an address
//! belongs to the environment, not to a host, so `retainIp` can keep it
//! when a container is replaced on another host. The cost is entries per
//! remote *container* instead of one route per remote host: for each
//! container on another host the VXLAN device holds one FDB entry
//! (its MAC → that host's agent address) and one neighbour entry (its IP →
//! MAC, answered by the device's ARP proxy, so ARP never floods the
//! hosts); per remote host nothing else. At 1,000 containers on 50 hosts
//! that is ~2,000 static entries per host (a few hundred KiB of kernel
//! memory, no per-packet cost: both are hash lookups), and a change is two
//! entries on every host. The MAC is derived from the IP (02:42:a:b:c:d,
//! what docker's bridge driver gives an endpoint with a static IP), so the
//! server only ships addresses.
//!
//! Everything is level-triggered: each pass reads the kernel's entries on
//! the device and adds/replaces/deletes to match what the server said
//! (peers), so an agent restart rebuilds the same state idempotently and a
//! removed host's entries go. Outside the segment: outbound NAT
//! (MASQUERADE for the subnet leaving by another interface) and isolation
//! (nothing enters the bridge from outside but replies and published
//! ports: a host of another environment cannot route into it) as two
//! iptables rules, and the tunnel's UDP port out of conntrack (raw
//! NOTRACK; see `firewall`). A host that cannot create the VXLAN device
//! reports it on the host (`transitioningMessage`) and keeps its local
//! containers.
//!
//! Throughput — why no offload knob is set here: on a 6.x kernel a
//! container's TCP send stays one GSO skb (~57 KB on average, measured on
//! both veths) from its veth through the bridge, the VXLAN device
//! (SKB_GSO_UDP_TUNNEL), the underlay and the peer's decap to the peer
//! container: nothing is segmented or checksummed in software, so no
//! ethtool feature changes it (veth GRO only takes non-TSO or UDP
//! traffic; the VXLAN device caps skbs at 64 KiB, so no BIG TCP; outer
//! `noudpcsum`, veth GRO and GRO on the underlay measured no better). What
//! the overlay costs is per-skb work: on one CPU, 1.8× the CPU per byte of
//! the test rig's veth underlay (iperf3, cubic: 9.5–11 vs 16–19 Gbit/s),
//! spread over VXLAN/UDP encap and decap, two more bridge passes with
//! br_netfilter (a netns-wide sysctl docker relies on, not ours to turn
//! off), one more veth hop and the outer IP route. Single-stream ratios
//! against that rig are 0.55–0.85 depending on CPU sharing and congestion
//! control (`build/bench-overlay-bare.sh`, PIN= and CC= to separate them).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bollard::Docker;
use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, LinkVxlan};

use super::features::{FeatureContext, HostFeature};
use crate::cluster::protocol::{ManagedNetwork, OverlayView, Report};

/// Overhead of VXLAN over IPv4 (outer IP 20 + UDP 8 + VXLAN 8 + inner
/// Ethernet 14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// How often the kernel state is checked even without news.
const TICK: Duration = Duration::from_secs(10);

/// The docker network of an environment.
pub(crate) fn network_name(n: &ManagedNetwork) -> String {
    format!("ros-{}", n.project_id)
}

fn bridge_name(vni: u32) -> String {
    format!("rosbr{vni}")
}

fn vxlan_name(vni: u32) -> String {
    format!("rosvx{vni}")
}

/// The MAC of a container endpoint with address `ip`.
pub fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

fn netlink() -> Result<Handle, String> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("netlink socket: {e}"))?;
    tokio::spawn(conn);
    Ok(handle)
}

async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>, String> {
    match h.link().get().match_name(name).execute().try_next().await {
        Ok(l) => Ok(l),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(format!("netlink: link {name}: {e}")),
    }
}

/// MTU of the interface holding `local` (the underlay), 1500 when unknown.
async fn underlay_mtu(h: &Handle, local: Option<Ipv4Addr>) -> u32 {
    let Some(local) = local else { return 1500 };
    let mut addrs = h.address().get().execute();
    while let Ok(Some(a)) = addrs.try_next().await {
        let has = a.attributes.iter().any(|x| {
            matches!(x, rtnetlink::packet_route::address::AddressAttribute::Address(IpAddr::V4(v)) if *v == local)
        });
        if has {
            let idx = a.header.index;
            if let Ok(Some(l)) = h.link().get().match_index(idx).execute().try_next().await {
                for x in &l.attributes {
                    if let LinkAttribute::Mtu(m) = x {
                        return *m;
                    }
                }
            }
        }
    }
    1500
}

/// The container MTU of `n` on this host.
async fn mtu_of(n: &ManagedNetwork, local: Option<Ipv4Addr>) -> Result<u32, String> {
    if n.mtu > 0 {
        return Ok(n.mtu);
    }
    let h = netlink()?;
    Ok(underlay_mtu(&h, local).await.saturating_sub(VXLAN_OVERHEAD))
}

/// Make the docker network of `n` unless it exists (idempotent; a
/// concurrent create is fine).
pub(crate) async fn ensure_network(
    docker: &Docker,
    n: &ManagedNetwork,
    local: Option<Ipv4Addr>,
) -> Result<(), String> {
    let name = network_name(n);
    if let Ok(found) = docker.inspect_network(&name, None).await {
        let subnets: Vec<String> = found
            .ipam
            .and_then(|i| i.config)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.subnet)
            .collect();
        if subnets.contains(&n.subnet) {
            return Ok(());
        }
        return Err(format!(
            "docker network {name} has subnet {subnets:?}, the environment's is {}",
            n.subnet
        ));
    }
    let subnet = crate::cluster::plan::allocate::Subnet::parse(&n.subnet)?;
    let mtu = mtu_of(n, local).await?;
    let req = bollard::models::NetworkCreateRequest {
        name: name.clone(),
        driver: Some("bridge".into()),
        ipam: Some(bollard::models::Ipam {
            driver: Some("default".into()),
            config: Some(vec![bollard::models::IpamConfig {
                subnet: Some(n.subnet.clone()),
                gateway: Some(Ipv4Addr::from(subnet.gateway()).to_string()),
                ..Default::default()
            }]),
            options: None,
        }),
        options: Some(
            [
                ("com.docker.network.bridge.name", bridge_name(n.vni)),
                ("com.docker.network.driver.mtu", mtu.to_string()),
                ("com.docker.network.bridge.enable_icc", "true".into()),
                (
                    "com.docker.network.bridge.enable_ip_masquerade",
                    "true".into(),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ),
        labels: Some([("io.ros.network".to_string(), n.project_id.clone())].into()),
        ..Default::default()
    };
    match docker.create_network(req).await {
        Ok(_) => Ok(()),
        Err(e) if docker.inspect_network(&name, None).await.is_ok() => {
            tracing::debug!(error = %e, "network made concurrently");
            Ok(())
        }
        Err(e) => Err(format!(
            "docker network {name}: {}",
            super::docker::engine_message(&e)
        )),
    }
}

/// The overlay host feature.
pub(crate) struct Overlay {
    /// UDP port of the tunnels.
    pub vxlan_port: u16,
}

impl HostFeature for Overlay {
    fn name(&self) -> &'static str {
        "overlay network"
    }

    fn start(self: Box<Self>, ctx: FeatureContext) {
        tokio::spawn(run(ctx, self.vxlan_port));
    }
}

async fn run(mut ctx: FeatureContext, port: u16) {
    let mut last_problem: Option<Option<String>> = None;
    let mut applied: Option<(OverlayView, std::time::Instant)> = None;
    let plain_started = watch_plain(ctx.docker.clone());
    let mut walls = FirewallMemo::default();
    loop {
        let a = ctx.assigned.borrow_and_update().clone();
        // The watch fires on every converge pass; the kernel is looked at
        // when the overlay view changed, and every TICK regardless.
        let fresh = applied
            .as_ref()
            .is_some_and(|(v, at)| Some(v) == a.overlay.as_ref() && at.elapsed() < TICK);
        if let (false, false, Some(view)) = (fresh, a.host_id.is_empty(), a.overlay.as_ref()) {
            applied = Some((view.clone(), std::time::Instant::now()));
            let problem = match program(&ctx.docker, view, port, &mut walls).await {
                Ok(()) => {
                    let r = attach_plain(&ctx.docker, view).await;
                    if !r.is_empty() && ctx.reports.send(r).is_err() {
                        return;
                    }
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "overlay network");
                    Some(format!("overlay network: {e}"))
                }
            };
            if last_problem.as_ref() != Some(&problem) {
                // A report on the host itself: its transitioningMessage.
                let r = Report {
                    instance_id: a.host_id.clone(),
                    state: "overlay".into(),
                    message: problem.clone(),
                    ..Report::default()
                };
                if ctx.reports.send(vec![r]).is_err() {
                    return;
                }
                last_problem = Some(problem);
            }
        }
        tokio::select! {
            changed = ctx.assigned.changed() => if changed.is_err() { return },
            _ = plain_started.notified() => applied = None,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// The label that puts a plain `docker run` container on the managed
/// network (Rancher's).
pub const NETWORK_LABEL: &str = "io.rancher.container.network";

/// Fires when a plain container with [`NETWORK_LABEL`] starts or goes.
fn watch_plain(docker: Docker) -> std::sync::Arc<tokio::sync::Notify> {
    use futures_util::StreamExt;
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    let n = notify.clone();
    tokio::spawn(async move {
        loop {
            let opts = bollard::query_parameters::EventsOptions {
                filters: Some(
                    [
                        ("type".to_string(), vec!["container".to_string()]),
                        ("label".to_string(), vec![format!("{NETWORK_LABEL}=true")]),
                    ]
                    .into(),
                ),
                ..Default::default()
            };
            let mut events = docker.events(Some(opts));
            while let Some(Ok(e)) = events.next().await {
                if matches!(e.action.as_deref(), Some("start" | "die" | "destroy")) {
                    n.notify_one();
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    notify
}

/// Plain containers of this host labelled [`NETWORK_LABEL`]`=true`:
/// those without an address ask the server for one (`attach` reports);
/// those with one are connected to the network with it; rows of ones that
/// no longer run are reported removed.
async fn attach_plain(docker: &Docker, view: &OverlayView) -> Vec<Report> {
    let opts = bollard::query_parameters::ListContainersOptions {
        filters: Some([("label".to_string(), vec![format!("{NETWORK_LABEL}=true")])].into()),
        ..Default::default()
    };
    let Ok(list) = docker.list_containers(Some(opts)).await else {
        return Vec::new();
    };
    let net = network_name(&view.network);
    let mut out = Vec::new();
    let mut running = BTreeSet::new();
    for c in list {
        let labels = c.labels.clone().unwrap_or_default();
        let Some(id) = c.id.clone() else { continue };
        if labels.contains_key(crate::cluster::model::LABEL_INSTANCE) {
            continue;
        }
        running.insert(id.clone());
        match view.attached.iter().find(|a| a.docker_id == id) {
            None => out.push(Report {
                state: "attach".into(),
                external_id: Some(id),
                message: c.names.and_then(|n| n.into_iter().next()),
                ..Report::default()
            }),
            Some(a) => {
                let on = c
                    .network_settings
                    .and_then(|n| n.networks)
                    .is_some_and(|n| n.contains_key(&net));
                if !on {
                    let req = bollard::models::NetworkConnectRequest {
                        container: id.clone(),
                        endpoint_config: Some(bollard::models::EndpointSettings {
                            ipam_config: Some(bollard::models::EndpointIpamConfig {
                                ipv4_address: Some(a.address.clone()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    };
                    if let Err(e) = docker.connect_network(&net, req).await {
                        tracing::warn!(error = %e, container = %id, "attach to the managed network");
                    }
                }
            }
        }
    }
    for a in &view.attached {
        if !running.contains(&a.docker_id) {
            out.push(Report {
                instance_id: a.instance_id.clone(),
                state: "removed".into(),
                ..Report::default()
            });
        }
    }
    out
}

/// What the VXLAN device of a network should hold: remote address → the
/// agent address of its host.
pub fn wanted_entries(view: &OverlayView) -> BTreeMap<Ipv4Addr, Ipv4Addr> {
    let mut out = BTreeMap::new();
    for p in &view.peers {
        let Ok(remote) = p.agent_ip.parse::<Ipv4Addr>() else {
            continue;
        };
        if p.agent_ip == view.local_ip {
            continue;
        }
        for a in &p.addresses {
            if let Ok(ip) = a.parse::<Ipv4Addr>() {
                out.insert(ip, remote);
            }
        }
    }
    out
}

/// Bring the kernel to `view`: docker network (bridge), VXLAN device in
/// it, FDB and neighbour entries, NAT and isolation rules.
pub(crate) async fn program(
    docker: &Docker,
    view: &OverlayView,
    port: u16,
    walls: &mut FirewallMemo,
) -> Result<(), String> {
    let local: Option<Ipv4Addr> = view.local_ip.parse().ok();
    let n = &view.network;
    ensure_network(docker, n, local).await?;
    let h = netlink()?;
    forget_other_environments(docker, &h, n).await;
    let br_name = bridge_name(n.vni);
    let br = link_by_name(&h, &br_name).await?.ok_or_else(|| {
        format!(
            "bridge {br_name} of docker network {} is missing",
            network_name(n)
        )
    })?;
    let mtu = match n.mtu {
        0 => underlay_mtu(&h, local).await.saturating_sub(VXLAN_OVERHEAD),
        m => m,
    };
    let vx_name = vxlan_name(n.vni);
    let vx = match link_by_name(&h, &vx_name).await? {
        Some(l) => l,
        None => {
            let mut b = LinkVxlan::new(&vx_name, n.vni)
                .port(port)
                .learning(false)
                .proxy(true)
                .mtu(mtu);
            if let Some(ip) = local {
                b = b.local(ip);
            }
            h.link()
                .add(b.build())
                .execute()
                .await
                .map_err(|e| format!("cannot create VXLAN device {vx_name} (VNI {}, UDP {port}; is the vxlan module loaded?): {e}", n.vni))?;
            link_by_name(&h, &vx_name)
                .await?
                .ok_or_else(|| format!("VXLAN device {vx_name} vanished"))?
        }
    };
    let vx_idx = vx.header.index;
    let enslaved = vx
        .attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::Controller(i) if *i == br.header.index));
    if !enslaved || !vx.header.flags.contains(LinkFlags::Up) {
        h.link()
            .set(
                LinkUnspec::new_with_index(vx_idx)
                    .controller(br.header.index)
                    .mtu(mtu)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| format!("netlink: attach {vx_name} to {br_name}: {e}"))?;
    }
    sync_entries(&h, vx_idx, &wanted_entries(view)).await?;
    walls.ensure(&n.subnet, &br_name, port);
    Ok(())
}

/// When the iptables rules were last checked, and for what: each check
/// runs `iptables` once per rule, so a pass for a peer change (every
/// container coming or going anywhere in the environment) skips it; the
/// rules are checked again when the network changes and on the pass every
/// [`TICK`] (the memo lasts half of it, so that pass always checks).
#[derive(Default)]
pub(crate) struct FirewallMemo {
    last: Option<((String, String, u16), std::time::Instant)>,
}

impl FirewallMemo {
    fn ensure(&mut self, subnet: &str, bridge: &str, port: u16) {
        let key = (subnet.to_string(), bridge.to_string(), port);
        let fresh = self
            .last
            .as_ref()
            .is_some_and(|(k, at)| *k == key && at.elapsed() < TICK / 2);
        if !fresh {
            firewall(subnet, bridge, port);
            self.last = Some((key, std::time::Instant::now()));
        }
    }
}

/// Remove the networks of environments this host no longer belongs to
/// (it was removed and registered again elsewhere): their docker network
/// (once no container uses it) and their VXLAN device, which would still
/// carry traffic of the old environment's VNI.
async fn forget_other_environments(docker: &Docker, h: &Handle, keep: &ManagedNetwork) {
    let opts = bollard::query_parameters::ListNetworksOptions {
        filters: Some([("label".to_string(), vec!["io.ros.network".to_string()])].into()),
    };
    let Ok(nets) = docker.list_networks(Some(opts)).await else {
        return;
    };
    for net in nets {
        let Some(name) = net.name else { continue };
        if name == network_name(keep) {
            continue;
        }
        let vni = net
            .options
            .as_ref()
            .and_then(|o| o.get("com.docker.network.bridge.name"))
            .and_then(|b| b.strip_prefix("rosbr"))
            .and_then(|v| v.parse::<u32>().ok());
        if let Some(vni) = vni {
            if let Ok(Some(l)) = link_by_name(h, &vxlan_name(vni)).await {
                match h.link().del(l.header.index).execute().await {
                    Ok(()) => {
                        tracing::info!(network = %name, "removed VXLAN of a former environment")
                    }
                    Err(e) => tracing::warn!(error = %e, "remove VXLAN of a former environment"),
                }
            }
        }
        if let Err(e) = docker.remove_network(&name).await {
            tracing::debug!(error = %e, network = %name, "former environment network still in use");
        }
    }
}

/// Make the device's FDB (MAC → remote) and neighbour (IP → MAC) entries
/// exactly `want`: add or replace the missing/changed, delete the rest.
async fn sync_entries(
    h: &Handle,
    vx: u32,
    want: &BTreeMap<Ipv4Addr, Ipv4Addr>,
) -> Result<(), String> {
    let nl = |what: &str, e: rtnetlink::Error| format!("netlink: {what}: {e}");
    // Current FDB entries of the device that carry a remote.
    let mut fdb: BTreeMap<[u8; 6], (Ipv4Addr, NeighbourMessage)> = BTreeMap::new();
    let mut s = h
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute();
    while let Some(m) = s.try_next().await.map_err(|e| nl("list fdb", e))? {
        if m.header.ifindex != vx {
            continue;
        }
        let mut mac = None;
        let mut dst = None;
        for a in &m.attributes {
            match a {
                NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                    mac = <[u8; 6]>::try_from(l.as_slice()).ok()
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => dst = Some(*ip),
                // FDB entries come as family AF_BRIDGE: their remote is
                // left undecoded.
                NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
                    dst = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                }
                _ => {}
            }
        }
        if let (Some(mac), Some(dst)) = (mac, dst) {
            fdb.insert(mac, (dst, m));
        }
    }
    // Current neighbour entries of the device.
    let mut neigh: BTreeMap<Ipv4Addr, (Option<[u8; 6]>, NeighbourMessage)> = BTreeMap::new();
    let mut s = h
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Inet)
        .execute();
    while let Some(m) = s.try_next().await.map_err(|e| nl("list neighbours", e))? {
        if m.header.ifindex != vx {
            continue;
        }
        let mut mac = None;
        let mut dst = None;
        for a in &m.attributes {
            match a {
                NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                    mac = <[u8; 6]>::try_from(l.as_slice()).ok()
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => dst = Some(*ip),
                _ => {}
            }
        }
        if let Some(dst) = dst {
            neigh.insert(dst, (mac, m));
        }
    }
    let want_macs: BTreeSet<[u8; 6]> = want.keys().map(|ip| mac_of(*ip)).collect();
    for (ip, remote) in want {
        let mac = mac_of(*ip);
        if fdb.get(&mac).map(|(d, _)| d) != Some(remote) {
            h.neighbours()
                .add_bridge(vx, &mac)
                .flags(NeighbourFlags::Own)
                .state(NeighbourState::Permanent)
                .destination(IpAddr::V4(*remote))
                .replace()
                .execute()
                .await
                .map_err(|e| nl(&format!("fdb {ip} via {remote}"), e))?;
        }
        if neigh.get(ip).map(|(m, _)| *m) != Some(Some(mac)) {
            h.neighbours()
                .add(vx, IpAddr::V4(*ip))
                .link_layer_address(&mac)
                .state(NeighbourState::Permanent)
                .replace()
                .execute()
                .await
                .map_err(|e| nl(&format!("neighbour {ip}"), e))?;
        }
    }
    for (mac, (_, m)) in fdb {
        if !want_macs.contains(&mac) {
            if let Err(e) = h.neighbours().del(m).execute().await {
                tracing::warn!(error = %e, "delete stale fdb entry");
            }
        }
    }
    for (ip, (_, m)) in neigh {
        if !want.contains_key(&ip) {
            if let Err(e) = h.neighbours().del(m).execute().await {
                tracing::warn!(error = %e, "delete stale neighbour");
            }
        }
    }
    Ok(())
}

/// Outbound NAT and isolation for the network's bridge, and the tunnel's
/// UDP packets kept out of conntrack, idempotent (`iptables -C` before
/// `-I`). Best effort: a host without iptables still gets the segment.
///
/// Why NOTRACK on the VXLAN port: the kernel picks each tunnel packet's
/// UDP source port from a hash of the inner flow, so every inner flow
/// between two hosts became its own conntrack entry on both (never
/// replied to: 30 s each), a conntrack lookup per packet and, with enough
/// flows, a full table that drops new connections of every container.
/// Nothing NATs or filters on the tunnel's state.
fn firewall(subnet: &str, bridge: &str, port: u16) {
    let port = port.to_string();
    let rules: [(&str, &str, Vec<&str>); 4] = [
        (
            "raw",
            "PREROUTING",
            vec!["-p", "udp", "--dport", &port, "-j", "NOTRACK"],
        ),
        (
            "raw",
            "OUTPUT",
            vec!["-p", "udp", "--dport", &port, "-j", "NOTRACK"],
        ),
        (
            "nat",
            "POSTROUTING",
            vec!["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"],
        ),
        (
            "filter",
            "FORWARD",
            vec![
                "-o",
                bridge,
                "!",
                "-i",
                bridge,
                "-m",
                "conntrack",
                "!",
                "--ctstate",
                "RELATED,ESTABLISHED,DNAT",
                "-j",
                "DROP",
            ],
        ),
    ];
    for (table, chain, rule) in rules {
        let _ = ensure_rule(table, chain, &rule);
    }
}

/// Insert an iptables rule unless it is there (`-C` before `-I`); best
/// effort, a refusal is logged. True when the rule is in place.
pub(crate) fn ensure_rule(table: &str, chain: &str, rule: &[&str]) -> bool {
    let run = |op: &str| {
        std::process::Command::new("iptables")
            .args(["-w", "-t", table, op, chain])
            .args(rule)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
    };
    match run("-C") {
        Ok(true) => true,
        Ok(false) => {
            let ok = matches!(run("-I"), Ok(true));
            if !ok {
                tracing::warn!(table, chain, ?rule, "iptables rule refused");
            }
            ok
        }
        Err(e) => {
            tracing::warn!(error = %e, "iptables not available");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::protocol::OverlayPeer;

    #[test]
    fn macs_and_entries() {
        assert_eq!(
            mac_of("10.42.1.7".parse().unwrap()),
            [0x02, 0x42, 10, 42, 1, 7]
        );
        let view = OverlayView {
            network: ManagedNetwork::default(),
            local_ip: "192.168.1.1".into(),
            peers: vec![
                OverlayPeer {
                    host_id: "1h2".into(),
                    agent_ip: "192.168.1.2".into(),
                    addresses: vec!["10.42.0.3".into(), "bad".into()],
                },
                OverlayPeer {
                    host_id: "1h3".into(),
                    agent_ip: "192.168.1.3".into(),
                    addresses: vec!["10.42.0.4".into()],
                },
            ],
            attached: Vec::new(),
        };
        let w = wanted_entries(&view);
        assert_eq!(w.len(), 2);
        assert_eq!(
            w[&"10.42.0.4".parse().unwrap()],
            "192.168.1.3".parse::<Ipv4Addr>().unwrap()
        );
    }
}
