//! Raw compose services → the typed model, with positioned checks of value
//! syntax, references between services and Rancher's combination rules.

use std::collections::BTreeSet;

use super::fields::{self, FieldError, Link};
use super::model::*;
use super::names::{validate_name, ErrorCode};
use super::raw::{DockerService, RancherService};
use super::{Parsed, Problems};

#[path = "convert_lb_v1.rs"]
mod lb_v1;
#[path = "convert_rancher.rs"]
mod rancher_keys;
use crate::cluster::plan::scheduler::{is_global, rules};
use crate::config::problem::PathSeg;
use crate::config::values::Text;
use rancher_keys::apply_rancher;

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
        let mut at = At {
            file: &docker,
            service: svc,
            problems: &mut *problems,
        };
        if let Some(lb) = lb_v1::lb_config(&mut at, &spec, d.as_ref().unwrap_or(&empty)) {
            spec.lb_config = Some(lb);
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
        || image.starts_with(lb_v1::V1_IMAGE)
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
    let run = RunOptions {
        entry_point: d.entrypoint.as_ref().map(|c| c.words()).unwrap_or_default(),
        restart_policy: d
            .restart
            .as_ref()
            .and_then(|r| at.field(&[k("restart")], fields::parse_restart(&r.0))),
        memory: at.memory("mem_limit", &d.mem_limit),
        memory_swap: at.memory("memswap_limit", &d.memswap_limit),
        memory_reservation: at.memory("mem_reservation", &d.mem_reservation),
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
    };
    let launch_config = LaunchConfig {
        image,
        command: d.command.as_ref().map(|c| c.words()).unwrap_or_default(),
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
        milli_cpu_reservation: d.milli_cpu_reservation,
        run,
        health_check: None,
        drain_timeout_ms: None,
        version: None,
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
