//! rancher-compose keys onto a service: scale, health check, upgrade
//! strategy, metadata, load balancer, with their range and combination rules.

use std::collections::{BTreeMap, BTreeSet};

use super::{k, texts, At};
use crate::cluster::plan::compose::model::*;
use crate::cluster::plan::compose::names::ErrorCode;
use crate::cluster::plan::compose::raw::{self, RancherService};
use crate::config::problem::PathSeg;

pub(super) fn apply_rancher<S>(
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
    spec.launch_config.drain_timeout_ms = r.drain_timeout_ms;
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
        if protocol == "udp" {
            at.report(
                &rel("protocol"),
                ErrorCode::InvalidOption,
                "protocol udp: HAProxy cannot balance UDP (use http, tcp, https, tls or sni)"
                    .into(),
            );
        } else if !matches!(protocol.as_str(), "http" | "tcp" | "https" | "tls" | "sni") {
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
        if let Some(j) = source.and_then(|sp| {
            rules_out
                .iter()
                .position(|o: &PortRule| o.source_port == sp && o.protocol != protocol)
        }) {
            at.report(
                &rel("protocol"),
                ErrorCode::InvalidOption,
                format!(
                    "port_rules[{j}] ({}) and port_rules[{i}] ({protocol}) both listen on \
                     source_port {}: one port takes one protocol",
                    rules_out[j].protocol,
                    source.unwrap_or_default()
                ),
            );
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
