//! Host features: what runs on every host beside the sync loop, reading
//! the instances this host was last told to run and reporting on them.
//! [`super::run`] starts each entry of [`features`] once; a new feature
//! (overlay network, DNS, load balancer, metadata) is one more entry here,
//! not another task wired into `run`.
//!
//! Each feature gets a [`FeatureContext`]: the user docker, a watch of
//! [`Assigned`] (published after every converge pass, so it carries the
//! states just reported) and a channel whose reports go out with the next
//! sync.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::envview::View;
use super::names::Index;
use super::{dns, docker, health, metadata};
use crate::cluster::protocol::{DesiredInstance, OverlayView, Report};

/// What this host was told to run, as last converged.
#[derive(Clone, Debug, Default)]
pub(crate) struct Assigned {
    /// This host's id (empty until registered).
    pub host_id: String,
    /// Its instances, with the states last reported.
    pub instances: Vec<DesiredInstance>,
    /// The managed network of its environment, as the server last said.
    pub overlay: Option<OverlayView>,
}

/// What a feature is given when it starts.
pub(crate) struct FeatureContext {
    /// The user docker.
    pub docker: bollard::Docker,
    /// The latest [`Assigned`].
    pub assigned: watch::Receiver<Assigned>,
    /// Reports for the server, sent with the next sync.
    pub reports: mpsc::UnboundedSender<Vec<Report>>,
    /// The environment view (DNS, metadata).
    pub view: watch::Receiver<Arc<View>>,
}

/// Something every host runs beside the sync loop.
pub(crate) trait HostFeature: Send {
    /// Its name, for logs.
    fn name(&self) -> &'static str;
    /// Start it in the background, for the life of the agent.
    fn start(self: Box<Self>, ctx: FeatureContext);
}

/// The features every agent runs, in start order.
pub(crate) fn features(
    usage_interval: Duration,
    vxlan_port: u16,
    discovery: Discovery,
) -> Vec<Box<dyn HostFeature>> {
    vec![
        Box::new(HealthChecks),
        Box::new(UsageSampling {
            every: usage_interval,
        }),
        Box::new(discovery),
        Box::new(super::overlay::Overlay { vxlan_port }),
        Box::new(super::lb::LoadBalancers),
    ]
}

/// Where the metadata service listens on the discovery address; its port
/// 80 is DNAT-ed here.
pub const METADATA_PORT: u16 = 9250;

/// The well-known address of DNS and metadata (Rancher's).
pub(crate) const DISCOVERY_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 250);

/// Service discovery: the DNS server ([`dns`]) and the metadata service
/// ([`metadata`]), both answering from the environment view. When one
/// listens on [`DISCOVERY_IP`], the agent first puts that address on a
/// dummy link of its own ([`super::linkaddr`]).
#[derive(Clone, Debug)]
pub(crate) struct Discovery {
    /// DNS listen address and upstreams (`None` = off).
    pub dns: Option<dns::DnsConfig>,
    /// Metadata listen address (`None` = off).
    pub metadata: Option<SocketAddr>,
}

impl HostFeature for Discovery {
    fn name(&self) -> &'static str {
        "service discovery (dns, metadata)"
    }

    fn start(self: Box<Self>, ctx: FeatureContext) {
        tokio::spawn(run_discovery(*self, ctx));
    }
}

async fn run_discovery(d: Discovery, ctx: FeatureContext) {
    let wanted = |a: Option<SocketAddr>| a.is_some_and(|a| a.ip() == IpAddr::V4(DISCOVERY_IP));
    if wanted(d.dns.as_ref().map(|c| c.listen)) || wanted(d.metadata) {
        match super::linkaddr::ensure(DISCOVERY_IP).await {
            Ok(link) => tracing::info!(%link, address = %DISCOVERY_IP, "discovery address"),
            Err(e) => tracing::warn!(error = %e, "cannot add the discovery address"),
        }
    }
    let meta_ip = match d.metadata.map(|a| a.ip()) {
        Some(IpAddr::V4(ip)) if !ip.is_unspecified() => ip,
        _ => DISCOVERY_IP,
    };
    let resolver = dns::Resolver::new(
        Index::default(),
        d.dns
            .as_ref()
            .map(|c| c.upstreams.clone())
            .unwrap_or_default(),
        d.dns.as_ref().map_or(Duration::from_secs(2), |c| c.timeout),
    );
    if let Some(cfg) = &d.dns {
        match dns::start(cfg, resolver.clone()).await {
            Ok(listen) => tracing::info!(%listen, upstreams = ?cfg.upstreams, "dns serving"),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    if let Some(listen) = d.metadata {
        let m = metadata::Meta {
            view: ctx.view.clone(),
            assigned: ctx.assigned.clone(),
        };
        // Port 80 of the discovery address is answered through a DNAT to
        // METADATA_PORT, not by listening on it: a socket on
        // 169.254.169.250:80 would make every published `80:80` of this
        // host fail (docker binds 0.0.0.0:80).
        let (bind, redirect) = match listen {
            SocketAddr::V4(a) if a.port() == 80 && !a.ip().is_unspecified() => {
                (SocketAddr::from((*a.ip(), METADATA_PORT)), Some(*a.ip()))
            }
            other => (other, None),
        };
        match metadata::start(bind, m.clone()).await {
            Ok(bound) => {
                let mut direct = false;
                if let Some(ip) = redirect {
                    let to = format!("{ip}:{METADATA_PORT}");
                    let dst = format!("{ip}/32");
                    let rule = [
                        "-d",
                        &dst,
                        "-p",
                        "tcp",
                        "--dport",
                        "80",
                        "-j",
                        "DNAT",
                        "--to-destination",
                        &to,
                    ];
                    // Containers (PREROUTING) and the host itself (OUTPUT).
                    let pre = super::overlay::ensure_rule("nat", "PREROUTING", &rule);
                    let out = super::overlay::ensure_rule("nat", "OUTPUT", &rule);
                    // Without the DNAT (no iptables here) port 80 is
                    // answered by a socket of its own: metadata keeps
                    // working; a published `80:80` on this host cannot.
                    direct = !(pre && out);
                }
                if direct {
                    match metadata::start(listen, m).await {
                        Ok(l) => tracing::warn!(
                            %l,
                            "metadata: no DNAT here, listening on port 80 itself \
                             (docker cannot publish port 80 on this host)"
                        ),
                        Err(e) => tracing::warn!("{e}"),
                    }
                }
                tracing::info!(%bound, %listen, "metadata serving");
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
    let mut view = ctx.view;
    loop {
        let v = view.borrow_and_update().clone();
        let prev = resolver.index();
        resolver.set_index(Index::build(&v, Some(&prev), meta_ip));
        if view.changed().await.is_err() {
            return;
        }
    }
}

/// How often health checks are looked at (each runs at its own
/// `interval`: see [`health::Checker`]).
const HEALTH_TICK: Duration = Duration::from_millis(250);

/// Health checks of the running instances that have one
/// ([`health`]): changed health states are reported.
pub(crate) struct HealthChecks;

impl HostFeature for HealthChecks {
    fn name(&self) -> &'static str {
        "health checks"
    }

    fn start(self: Box<Self>, ctx: FeatureContext) {
        tokio::spawn(check_health(ctx));
    }
}

/// Look at the checks every tick, and at once after a converge pass (a
/// container just started or restarted begins its (re)initializing time).
async fn check_health(mut ctx: FeatureContext) {
    let mut checker = health::Checker::default();
    loop {
        tokio::select! {
            changed = ctx.assigned.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(HEALTH_TICK) => {}
        }
        let list = ctx.assigned.borrow_and_update().instances.clone();
        let r = checker.run(&ctx.docker, &list).await;
        if !r.is_empty() && ctx.reports.send(r).is_err() {
            return;
        }
    }
}

/// Per-container CPU and memory, sampled every `every`.
///
/// Beside the sync loop, not in it: dockerd answers a one-shot stats
/// request at its collector's next 1 s tick, so sampling N containers one
/// after another took ~N seconds — in the loop, that stalled heartbeats
/// until the server saw a live host as `reconnecting` or even
/// `disconnected` (and moved its health-checked containers away).
pub(crate) struct UsageSampling {
    /// Sampling interval.
    pub every: Duration,
}

impl HostFeature for UsageSampling {
    fn name(&self) -> &'static str {
        "usage sampling"
    }

    fn start(self: Box<Self>, ctx: FeatureContext) {
        tokio::spawn(sample_usage(ctx, self.every));
    }
}

async fn sample_usage(ctx: FeatureContext, every: Duration) {
    let mut cpu = docker::CpuSamples::new();
    loop {
        tokio::time::sleep(every).await;
        let Assigned {
            host_id, instances, ..
        } = ctx.assigned.borrow().clone();
        if host_id.is_empty() || instances.is_empty() {
            continue;
        }
        match docker::usage(&ctx.docker, &host_id, &instances, &mut cpu).await {
            Ok(r) if r.is_empty() => {}
            Ok(r) => {
                if ctx.reports.send(r).is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "container usage"),
        }
    }
}
