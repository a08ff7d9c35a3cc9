//! Raw compose services → the typed model, with positioned checks of value
//! syntax, references between services and Rancher's combination rules.

use std::collections::{BTreeMap, BTreeSet};

use super::fields::{self, FieldError, Link};
use super::model::*;
use super::names::{validate_name, ErrorCode};
use super::raw::{self, DockerService, RancherService};
use super::{Parsed, Problems};
use crate::cluster::plan::scheduler::{is_global, rules};
use crate::config::problem::PathSeg;
use crate::config::values::Text;

/// Label naming a primary's sidekick services (Rancher deployment units).
const LABEL_SIDEKICKS: &str = "io.rancher.sidekicks";

fn k(s: &str) -> PathSeg {
    PathSeg::Key(s.to_string())
}

/// Reports problems at paths relative to one service of one file.
struct At<'a, 'p, S> {
    file: &'a Parsed<S>,
    service: &'a str,
    problems: &'p mut Problems,
}

impl<S> At<'_, '_, S> {
    fn report(&mut self, rel: &[PathSeg], code: ErrorCode, msg: String) {
        let mut path = vec![k(self.service)];
        path.extend_from_slice(rel);
        let (span, path) = self.file.span(&path);
        self.problems.push(code, span, path, msg);
    }

    fn field<T>(&mut self, rel: &[PathSeg], r: Result<T, FieldError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err((code, msg)) => {
                self.report(rel, code, msg);
                None
            }
        }
    }

    fn memory(&mut self, name: &str, v: &Option<Text>) -> Option<u64> {
        let t = v.as_ref()?;
        self.field(&[k(name)], fields::parse_memory(&t.0))
    }

    fn list<T>(
        &mut self,
        name: &str,
        items: &[Text],
        parse: impl Fn(&str) -> Result<T, FieldError>,
    ) -> Vec<T> {
        items
            .iter()
            .enumerate()
            .filter_map(|(i, t)| self.field(&[k(name), PathSeg::Index(i)], parse(&t.0)))
            .collect()
    }
}

fn texts(v: &[Text]) -> Vec<String> {
    v.iter().map(|t| t.0.clone()).collect()
}

/// Build the stack from the parsed files.
pub(super) fn stack(
    name: &str,
    docker: Parsed<DockerService>,
    rancher: Option<Parsed<RancherService>>,
    problems: &mut Problems,
) -> StackSpec {
    let names: BTreeSet<&str> = docker.services.keys().map(String::as_str).collect();
    if let Some(r) = &rancher {
        for svc in r.services.keys().filter(|s| !names.contains(s.as_str())) {
            let (span, path) = r.span(&[k(svc)]);
            problems.push(
                ErrorCode::InvalidReference,
                span,
                path,
                format!("service {svc} is in the rancher-compose file but not in the docker-compose file"),
            );
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut services = Vec::new();
    for (svc, d) in &docker.services {
        let mut at = At {
            file: &docker,
            service: svc,
            problems: &mut *problems,
        };
        if let Err(e) = validate_name("service", svc) {
            at.report(&[], e.code, e.to_string());
        }
        if seen.iter().any(|s| s.eq_ignore_ascii_case(svc)) {
            at.report(
                &[],
                ErrorCode::NotUnique,
                format!("service name {svc:?} is used twice (names ignore case)"),
            );
        }
        seen.push(svc);
        let empty = DockerService::default();
        let mut spec = launch(&mut at, d.as_ref().unwrap_or(&empty), d.is_none(), &names);
        spec.name = svc.clone();
        spec.placeholder = d.is_none();
        if let Some(r) = &rancher {
            if let Some(rs) = r.services.get(svc) {
                let mut at = At {
                    file: r,
                    service: svc,
                    problems: &mut *problems,
                };
                apply_rancher(
                    &mut at,
                    &mut spec,
                    rs.as_ref().unwrap_or(&RancherService::default()),
                    &names,
                );
            }
        }
        spec.kind = kind(&spec);
        services.push(spec);
    }
    StackSpec {
        name: name.to_string(),
        version: docker.version,
        services,
        volumes: docker
            .volumes
            .iter()
            .map(|(n, v)| (n.clone(), v.as_ref().and_then(|v| v.driver.clone())))
            .collect(),
        networks: docker.networks.clone(),
    }
}

fn kind(spec: &ServiceSpec) -> ServiceKind {
    let image = spec.launch_config.image.as_str();
    if spec
        .lb_config
        .as_ref()
        .is_some_and(|l| !l.port_rules.is_empty())
        || image.starts_with("rancher/lb-service-haproxy")
    {
        ServiceKind::LoadBalancerService
    } else if image.starts_with("rancher/dns-service") {
        ServiceKind::DnsService
    } else if !spec.external_ips.is_empty() || spec.external_hostname.is_some() {
        ServiceKind::ExternalService
    } else {
        ServiceKind::Service
    }
}

fn links<S>(
    at: &mut At<'_, '_, S>,
    name: &str,
    items: &[Text],
    names: &BTreeSet<&str>,
    external: bool,
) -> Vec<Link> {
    let parsed = at.list(name, items, fields::parse_link);
    for (i, l) in parsed.iter().enumerate() {
        let rel = [k(name), PathSeg::Index(i)];
        match (external, &l.stack) {
            (false, None) if !names.contains(l.service.as_str()) => at.report(
                &rel,
                ErrorCode::InvalidReference,
                format!("link to {}: no such service in this stack", l.service),
            ),
            (false, Some(_)) => at.report(
                &rel,
                ErrorCode::InvalidOption,
                "a link to another stack belongs under external_links".into(),
            ),
            (true, None) => at.report(
                &rel,
                ErrorCode::InvalidFormat,
                "external links are written STACK/SERVICE[:ALIAS]".into(),
            ),
            _ => {}
        }
    }
    parsed
}

fn launch<S>(
    at: &mut At<'_, '_, S>,
    d: &DockerService,
    placeholder: bool,
    names: &BTreeSet<&str>,
) -> ServiceSpec {
    let image = d.image.clone().unwrap_or_default();
    if image.trim().is_empty() && !placeholder {
        at.report(&[], ErrorCode::MissingRequired, "image is required".into());
    }
    let network_mode = match (&d.net, &d.network_mode) {
        (Some(_), Some(_)) => {
            at.report(
                &[k("network_mode")],
                ErrorCode::InvalidOption,
                "net and network_mode both set; keep one".into(),
            );
            None
        }
        (Some(m), None) => at.field(&[k("net")], fields::parse_network_mode(m)),
        (None, Some(m)) => at.field(&[k("network_mode")], fields::parse_network_mode(m)),
        (None, None) => None,
    };
    let log_config = match (&d.log_driver, &d.logging) {
        (Some(_), Some(_)) => {
            at.report(
                &[k("logging")],
                ErrorCode::InvalidOption,
                "log_driver and logging both set; keep one".into(),
            );
            None
        }
        (_, Some(l)) => Some(LogConfig {
            driver: l.driver.clone().filter(|s| !s.is_empty()),
            config: l.options.0.clone(),
        }),
        (driver, None) => (driver.as_deref().is_some_and(|s| !s.is_empty())
            || !d.log_opt.0.is_empty())
        .then(|| LogConfig {
            driver: driver.clone().filter(|s| !s.is_empty()),
            config: d.log_opt.0.clone(),
        }),
    };
    let labels = d.labels.0.clone();
    let (_, bad) = rules::parse_rules(&labels, "", "");
    for b in bad {
        at.report(&[k("labels"), k(&b)], ErrorCode::InvalidOption, format!("unknown scheduling label {b} (see io.rancher.scheduler.affinity:host_label, container_label, container with _ne, _soft, _soft_ne)"));
    }
    if labels.contains_key(LABEL_SIDEKICKS) {
        at.report(
            &[k("labels"), k(LABEL_SIDEKICKS)],
            ErrorCode::InvalidOption,
            "sidekicks are not supported yet; run the containers as separate services (container affinity keeps them together)".into(),
        );
    }
    for (i, dep) in d.depends_on.iter().enumerate() {
        if !names.contains(dep.0.as_str()) {
            at.report(
                &[k("depends_on"), PathSeg::Index(i)],
                ErrorCode::InvalidReference,
                format!("depends on {}: no such service in this stack", dep.0),
            );
        }
    }
    let launch_config = LaunchConfig {
        image,
        command: d.command.as_ref().map(|c| c.words()).unwrap_or_default(),
        entry_point: d.entrypoint.as_ref().map(|c| c.words()).unwrap_or_default(),
        environment: d.environment.0.clone(),
        ports: at
            .list("ports", &d.ports, fields::parse_port)
            .into_iter()
            .flatten()
            .collect(),
        expose: at
            .list("expose", &d.expose, fields::parse_expose)
            .into_iter()
            .flatten()
            .collect(),
        data_volumes: at.list("volumes", &d.volumes, fields::parse_volume),
        data_volumes_from: texts(&d.volumes_from),
        volume_driver: d.volume_driver.clone(),
        network_mode: network_mode.unwrap_or_default(),
        restart_policy: d
            .restart
            .as_ref()
            .and_then(|r| at.field(&[k("restart")], fields::parse_restart(&r.0))),
        memory: at.memory("mem_limit", &d.mem_limit),
        memory_swap: at.memory("memswap_limit", &d.memswap_limit),
        memory_reservation: at.memory("mem_reservation", &d.mem_reservation),
        milli_cpu_reservation: d.milli_cpu_reservation,
        cpu_shares: d.cpu_shares,
        cpu_set: d.cpuset.as_ref().map(|t| t.0.clone()),
        privileged: d.privileged,
        cap_add: texts(&d.cap_add),
        cap_drop: texts(&d.cap_drop),
        devices: texts(&d.devices),
        dns: d.dns.0.clone(),
        dns_search: d.dns_search.0.clone(),
        hostname: d.hostname.clone(),
        domain_name: d.domainname.clone(),
        user: d.user.as_ref().map(|t| t.0.clone()),
        working_dir: d.working_dir.clone(),
        log_config,
        tty: d.tty,
        stdin_open: d.stdin_open,
        read_only: d.read_only,
        extra_hosts: texts(&d.extra_hosts),
        security_opt: texts(&d.security_opt),
        pid_mode: d.pid.clone(),
        ipc_mode: d.ipc.clone(),
        ulimits: d
            .ulimits
            .iter()
            .map(|(n, u)| (n.clone(), (u.soft, u.hard)))
            .collect(),
        tmpfs: d.tmpfs.0.clone(),
        stop_signal: d.stop_signal.clone(),
        shm_size: at.memory("shm_size", &d.shm_size),
        health_check: None,
        labels,
    };
    ServiceSpec {
        global: is_global(&launch_config.labels),
        links: links(at, "links", &d.links, names, false),
        external_links: links(at, "external_links", &d.external_links, names, true),
        depends_on: texts(&d.depends_on),
        launch_config,
        scale: 1,
        ..Default::default()
    }
}

fn apply_rancher<S>(
    at: &mut At<'_, '_, S>,
    spec: &mut ServiceSpec,
    r: &RancherService,
    names: &BTreeSet<&str>,
) {
    if let Some(scale) = r.scale {
        if spec.global {
            at.report(
                &[k("scale")],
                ErrorCode::InvalidOption,
                "scale has no effect on a global service (one container per host); remove it"
                    .into(),
            );
        }
        spec.scale = scale;
    }
    if let Some(p) = &r.scale_policy {
        let min = p.min.unwrap_or(1);
        let max = p.max.unwrap_or(min);
        if max < min {
            at.report(
                &[k("scale_policy"), k("max")],
                ErrorCode::MinLimitExceeded,
                format!("max {max} is below min {min}"),
            );
        }
        spec.scale_policy = Some(ScalePolicy {
            min,
            max,
            increment: p.increment.unwrap_or(1).max(1),
        });
    }
    spec.start_on_create = r.start_on_create.unwrap_or(false);
    spec.retain_ip = r.retain_ip.unwrap_or(false);
    if let Some(h) = &r.health_check {
        spec.launch_config.health_check = health_check(at, h);
    }
    if let Some(u) = &r.upgrade_strategy {
        spec.upgrade_strategy = upgrade_strategy(at, u);
        if spec.retain_ip && spec.upgrade_strategy.start_first {
            at.report(&[k("upgrade_strategy"), k("start_first")], ErrorCode::InvalidOption, "start_first cannot be used with retain_ip (the new container needs the old one's IP)".into());
        }
    }
    match &r.metadata {
        None => {}
        Some(serde_json::Value::Object(m)) => spec.metadata = m.clone().into_iter().collect(),
        Some(_) => at.report(
            &[k("metadata")],
            ErrorCode::InvalidFormat,
            "metadata must be a map".into(),
        ),
    }
    if let Some(lb) = &r.lb_config {
        spec.lb_config = Some(lb_config(at, lb, names));
    }
    if r.milli_cpu_reservation.is_some() {
        spec.launch_config.milli_cpu_reservation = r.milli_cpu_reservation;
    }
    spec.drain_timeout_ms = r.drain_timeout_ms;
    spec.external_ips = texts(&r.external_ips);
    spec.external_hostname = r.hostname.clone();
}

fn health_check<S>(at: &mut At<'_, '_, S>, h: &raw::HealthCheckRaw) -> Option<HealthCheck> {
    let at_hc = |f: &str| [k("health_check"), k(f)];
    let port = match h.port {
        None => {
            at.report(
                &[k("health_check")],
                ErrorCode::MissingRequired,
                "health_check needs a port".into(),
            );
            return None;
        }
        Some(p) => match u16::try_from(p) {
            Ok(p) if p > 0 => p,
            _ => {
                at.report(
                    &at_hc("port"),
                    ErrorCode::InvalidOption,
                    format!("port {p} is not 1-65535"),
                );
                return None;
            }
        },
    };
    let quorum = h.quorum.or(h
        .recreate_on_quorum_strategy_config
        .as_ref()
        .and_then(|q| q.quorum));
    let strategy = match (h.strategy.unwrap_or(raw::StrategyName::Recreate), quorum) {
        (raw::StrategyName::RecreateOnQuorum, Some(q)) if q > 0 => {
            HealthStrategy::RecreateOnQuorum { quorum: q }
        }
        (raw::StrategyName::RecreateOnQuorum, _) => {
            at.report(
                &at_hc("strategy"),
                ErrorCode::MissingRequired,
                "recreateOnQuorum needs a quorum of at least 1".into(),
            );
            HealthStrategy::Recreate
        }
        (other, Some(_)) => {
            at.report(
                &at_hc("quorum"),
                ErrorCode::InvalidOption,
                "quorum is only used with strategy recreateOnQuorum".into(),
            );
            strategy_of(other)
        }
        (other, None) => strategy_of(other),
    };
    let mut hc = HealthCheck::new(port);
    hc.request_line = h.request_line.clone().filter(|s| !s.trim().is_empty());
    hc.interval = h.interval.unwrap_or(hc.interval);
    hc.response_timeout = h.response_timeout.unwrap_or(hc.response_timeout);
    hc.healthy_threshold = h.healthy_threshold.unwrap_or(hc.healthy_threshold);
    hc.unhealthy_threshold = h.unhealthy_threshold.unwrap_or(hc.unhealthy_threshold);
    hc.initializing_timeout = h.initializing_timeout;
    hc.reinitializing_timeout = h.reinitializing_timeout;
    hc.strategy = strategy;
    for (f, v) in [
        ("interval", hc.interval),
        ("response_timeout", hc.response_timeout),
        ("healthy_threshold", hc.healthy_threshold.into()),
        ("unhealthy_threshold", hc.unhealthy_threshold.into()),
    ] {
        if v == 0 {
            at.report(
                &at_hc(f),
                ErrorCode::MinLimitExceeded,
                format!("{f} must be at least 1"),
            );
        }
    }
    Some(hc)
}

fn strategy_of(s: raw::StrategyName) -> HealthStrategy {
    match s {
        raw::StrategyName::None => HealthStrategy::None,
        _ => HealthStrategy::Recreate,
    }
}

fn upgrade_strategy<S>(at: &mut At<'_, '_, S>, u: &raw::UpgradeStrategyRaw) -> UpgradeStrategy {
    let mut s = UpgradeStrategy {
        start_first: u.start_first.unwrap_or(false),
        ..Default::default()
    };
    if let Some(b) = u.batch_size {
        match u32::try_from(b) {
            Ok(b) if b >= 1 => s.batch_size = b,
            _ => at.report(
                &[k("upgrade_strategy"), k("batch_size")],
                ErrorCode::MinLimitExceeded,
                format!("batch_size {b} must be at least 1"),
            ),
        }
    }
    if let Some(i) = u.interval_millis {
        match u64::try_from(i) {
            Ok(i) if i >= MIN_INTERVAL_MILLIS => s.interval_millis = i,
            _ => at.report(
                &[k("upgrade_strategy"), k("interval_millis")],
                ErrorCode::MinLimitExceeded,
                format!("interval_millis {i} must be at least {MIN_INTERVAL_MILLIS}"),
            ),
        }
    }
    s
}

fn lb_config<S>(at: &mut At<'_, '_, S>, lb: &raw::LbConfigRaw, names: &BTreeSet<&str>) -> LbConfig {
    let mut rules_out = Vec::new();
    for (i, r) in lb.port_rules.iter().enumerate() {
        let rel = |f: &str| [k("lb_config"), k("port_rules"), PathSeg::Index(i), k(f)];
        let port = |at: &mut At<'_, '_, S>, f: &str, v: Option<i64>| -> Option<u16> {
            let v = v?;
            match u16::try_from(v) {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    at.report(
                        &rel(f),
                        ErrorCode::InvalidOption,
                        format!("{f} {v} is not 1-65535"),
                    );
                    None
                }
            }
        };
        let source = port(at, "source_port", r.source_port);
        if r.source_port.is_none() {
            at.report(
                &[k("lb_config"), k("port_rules"), PathSeg::Index(i)],
                ErrorCode::MissingRequired,
                "a port rule needs source_port".into(),
            );
        }
        if source == Some(LB_RESERVED_PORT) {
            at.report(
                &rel("source_port"),
                ErrorCode::InvalidOption,
                "port 42 is reserved for the load balancer's health check".into(),
            );
        }
        let target = port(at, "target_port", r.target_port);
        let protocol = r.protocol.clone().unwrap_or_else(|| "http".into());
        if !matches!(protocol.as_str(), "http" | "tcp" | "https" | "tls" | "sni") {
            at.report(
                &rel("protocol"),
                ErrorCode::InvalidOption,
                format!("protocol {protocol:?} is not one of http, tcp, https, tls, sni"),
            );
        }
        if let Some(s) = &r.service {
            if !s.contains('/') && !names.contains(s.as_str()) {
                at.report(
                    &rel("service"),
                    ErrorCode::InvalidReference,
                    format!("target {s}: no such service in this stack"),
                );
            }
        }
        rules_out.push(PortRule {
            source_port: source.unwrap_or_default(),
            target_port: target,
            protocol,
            hostname: r.hostname.clone(),
            path: r.path.clone(),
            service: r.service.clone(),
            selector: r.selector.clone(),
            backend_name: r.backend_name.clone(),
            priority: r.priority,
        });
    }
    LbConfig {
        port_rules: rules_out,
        certificates: texts(&lb.certs),
        default_certificate: lb.default_cert.clone(),
        config: lb.config.clone(),
        stickiness_policy: lb.stickiness_policy.as_ref().map(|s| {
            let mut m = BTreeMap::new();
            let mut put = |key: &str, v: Option<String>| {
                if let Some(v) = v {
                    m.insert(key.to_string(), v);
                }
            };
            put("name", s.name.clone());
            put("cookie", s.cookie.clone());
            put("domain", s.domain.clone());
            put("indirect", s.indirect.map(|b| b.to_string()));
            put("nocache", s.nocache.map(|b| b.to_string()));
            put("postonly", s.postonly.map(|b| b.to_string()));
            put("mode", s.mode.clone());
            m
        }),
    }
}
