//! The Rancher 1.x (v1) way of writing a load balancer, turned into port
//! rules: the service's `ports`/`expose` are its listeners (`/tcp` makes
//! one a TCP listener, `io.rancher.loadbalancer.ssl.ports` makes one
//! https), `links`/`external_links` name the targets, and a label
//! `io.rancher.loadbalancer.target.<target>: "80=8080,api.com:80/v1=8080"`
//! says which listener goes to which target port (entries
//! `[hostname][:source_port][/path][=target_port]`; without a label a
//! target gets every listener on the same port).

use std::collections::BTreeSet;

use super::{k, At};
use crate::cluster::plan::compose::fields;
use crate::cluster::plan::compose::model::*;
use crate::cluster::plan::compose::names::ErrorCode;
use crate::cluster::plan::compose::raw::DockerService;
use crate::config::problem::PathSeg;

/// Prefix of the v1 target labels.
pub(super) const LABEL_TARGET: &str = "io.rancher.loadbalancer.target.";
/// Listeners that terminate TLS (comma-separated source ports).
pub(super) const LABEL_SSL_PORTS: &str = "io.rancher.loadbalancer.ssl.ports";
/// The v1 load balancer's image (it only names the kind).
pub(super) const V1_IMAGE: &str = "rancher/load-balancer-service";

/// True when `spec` is a load balancer written the v1 way.
pub(super) fn is_v1(spec: &ServiceSpec) -> bool {
    spec.launch_config.image.starts_with(V1_IMAGE) || has_target_labels(spec)
}

fn has_target_labels(spec: &ServiceSpec) -> bool {
    spec.launch_config
        .labels
        .keys()
        .any(|l| l.starts_with(LABEL_TARGET))
}

/// One entry of a target label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Entry {
    /// Host header to match.
    pub hostname: Option<String>,
    /// The listener (`None` = every listener).
    pub source: Option<u16>,
    /// Path prefix to match.
    pub path: Option<String>,
    /// Target port (`None` = the listener's port).
    pub target: Option<u16>,
}

fn port(text: &str, what: &str, entry: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!(
            "{entry:?}: {what} {text:?} is not a port number (1-65535); entries are written [hostname][:source_port][/path][=target_port]"
        )),
    }
}

/// Parse one entry `[hostname][:source_port][/path][=target_port]`.
pub(super) fn parse_entry(text: &str) -> Result<Entry, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("an empty entry (two commas, or one at the end)".into());
    }
    let (left, target) = match t.rsplit_once('=') {
        Some((l, r)) => (l.trim(), Some(port(r.trim(), "target port", t)?)),
        None => (t, None),
    };
    let (hp, path) = match left.find('/') {
        Some(i) => (&left[..i], Some(left[i..].to_string())),
        None => (left, None),
    };
    let (hostname, source) = match hp.rsplit_once(':') {
        Some((h, p)) => (h, Some(port(p, "source port", t)?)),
        None if !hp.is_empty() && hp.bytes().all(|b| b.is_ascii_digit()) => {
            ("", Some(port(hp, "source port", t)?))
        }
        None => (hp, None),
    };
    if hostname.contains(char::is_whitespace) || hostname.contains('=') {
        return Err(format!("{t:?}: hostname {hostname:?} is not a host name"));
    }
    let e = Entry {
        hostname: (!hostname.is_empty()).then(|| hostname.to_string()),
        source,
        path,
        target,
    };
    if e == Entry::default() {
        return Err(format!(
            "{t:?} says nothing (write [hostname][:source_port][/path][=target_port])"
        ));
    }
    Ok(e)
}

/// The listeners of a v1 load balancer: (source port, protocol). A port in
/// the ssl label terminates TLS: `https`, or `tls` when written `/tcp`.
fn listeners<S>(
    at: &mut At<'_, '_, S>,
    spec: &ServiceSpec,
    d: &DockerService,
) -> Vec<(u16, String)> {
    let mut ssl = BTreeSet::new();
    if let Some(v) = spec.launch_config.labels.get(LABEL_SSL_PORTS) {
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match port(p, "port", v) {
                Ok(n) => {
                    ssl.insert(n);
                }
                Err(e) => at.report(
                    &[k("labels"), k(LABEL_SSL_PORTS)],
                    ErrorCode::InvalidFormat,
                    format!("{LABEL_SSL_PORTS}: {e}"),
                ),
            }
        }
    }
    let mut out: Vec<(u16, String)> = Vec::new();
    for (key, items) in [("ports", &d.ports), ("expose", &d.expose)] {
        for (i, t) in items.iter().enumerate() {
            // Bad syntax was reported with the launch config.
            let Ok(specs) = fields::parse_port(&t.0) else {
                continue;
            };
            for s in specs {
                let proto = if t.0.ends_with("/udp") {
                    at.report(
                        &[k(key), PathSeg::Index(i)],
                        ErrorCode::InvalidOption,
                        format!("{:?}: a load balancer listener cannot be udp (HAProxy cannot balance UDP)", t.0),
                    );
                    continue;
                } else if ssl.contains(&s.private) && t.0.ends_with("/tcp") {
                    "tls"
                } else if ssl.contains(&s.private) {
                    "https"
                } else if t.0.ends_with("/tcp") {
                    "tcp"
                } else {
                    "http"
                };
                if !out.iter().any(|(p, _)| *p == s.private) {
                    out.push((s.private, proto.to_string()));
                }
            }
        }
    }
    for p in ssl.iter().filter(|p| !out.iter().any(|(o, _)| o == *p)) {
        at.report(
            &[k("labels"), k(LABEL_SSL_PORTS)],
            ErrorCode::InvalidReference,
            format!(
                "{LABEL_SSL_PORTS}: port {p} is not one of the load balancer's ports or expose"
            ),
        );
    }
    out
}

/// The port rules of a v1 load balancer (`None` when `spec` is not one);
/// problems are reported at the label, port or link they come from.
pub(super) fn lb_config<S>(
    at: &mut At<'_, '_, S>,
    spec: &ServiceSpec,
    d: &DockerService,
) -> Option<LbConfig> {
    if !is_v1(spec) {
        return None;
    }
    // rancher-compose's `lb_config` may still bring the certificates,
    // stickiness and custom config; its port rules and the labels clash.
    let base = spec.lb_config.clone().unwrap_or_default();
    if !base.port_rules.is_empty() {
        if has_target_labels(spec) {
            at.report(
                &[k("labels")],
                ErrorCode::InvalidOption,
                format!("{LABEL_TARGET}* labels (the v1 load balancer) and lb_config.port_rules are both set; keep one"),
            );
        }
        return None;
    }
    let listen = listeners(at, spec, d);
    // Targets as the labels name them: (label names, the rule's service).
    let mut targets: Vec<(Vec<String>, String)> = Vec::new();
    for l in &spec.links {
        targets.push((vec![l.service.clone(), l.alias.clone()], l.service.clone()));
    }
    for l in &spec.external_links {
        let full = format!("{}/{}", l.stack.as_deref().unwrap_or_default(), l.service);
        targets.push((vec![full.clone(), l.alias.clone()], full));
    }
    let labels = &spec.launch_config.labels;
    for key in labels.keys().filter(|l| l.starts_with(LABEL_TARGET)) {
        let name = &key[LABEL_TARGET.len()..];
        if !targets
            .iter()
            .any(|(names, _)| names.iter().any(|n| n == name))
        {
            at.report(
                &[k("labels"), k(key)],
                ErrorCode::InvalidReference,
                format!("{key}: {name:?} is not a linked service (add it to links, or to external_links as stack/service)"),
            );
        }
    }
    if listen.is_empty() && !targets.is_empty() {
        at.report(
            &[k("links")],
            ErrorCode::MissingRequired,
            "a v1 load balancer listens on its ports (or expose): add the ports it serves".into(),
        );
    }
    let mut rules = Vec::new();
    for (names, service) in &targets {
        let label = names
            .iter()
            .map(|n| format!("{LABEL_TARGET}{n}"))
            .find(|key| labels.contains_key(key));
        let entries = match &label {
            None => vec![Entry::default()],
            Some(key) => {
                let mut v = Vec::new();
                for item in labels[key].split(',') {
                    match parse_entry(item) {
                        Ok(e) => v.push(e),
                        Err(msg) => at.report(
                            &[k("labels"), k(key)],
                            ErrorCode::InvalidFormat,
                            format!("{key}: {msg}"),
                        ),
                    }
                }
                v
            }
        };
        for e in entries {
            if let Some(sp) = e.source.filter(|sp| !listen.iter().any(|(p, _)| p == sp)) {
                let key = label.clone().unwrap_or_default();
                let known: Vec<String> = listen.iter().map(|(p, _)| p.to_string()).collect();
                at.report(
                    &[k("labels"), k(&key)],
                    ErrorCode::InvalidReference,
                    format!(
                        "{key}: source port {sp} is not one of the load balancer's ports ({})",
                        known.join(", ")
                    ),
                );
                continue;
            }
            for (sp, proto) in listen
                .iter()
                .filter(|(p, _)| e.source.map_or(true, |s| s == *p))
            {
                rules.push(PortRule {
                    source_port: *sp,
                    target_port: Some(e.target.unwrap_or(*sp)),
                    protocol: proto.clone(),
                    hostname: e.hostname.clone(),
                    path: e.path.clone(),
                    service: Some(service.clone()),
                    ..PortRule::default()
                });
            }
        }
    }
    Some(LbConfig {
        port_rules: rules,
        ..base
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_as_rancher_documented_them() {
        let e = |h: Option<&str>, s: Option<u16>, p: Option<&str>, t: Option<u16>| Entry {
            hostname: h.map(str::to_string),
            source: s,
            path: p.map(str::to_string),
            target: t,
        };
        let rows = [
            ("80=8080", e(None, Some(80), None, Some(8080))),
            (
                "hostname.com:80/path=8080",
                e(Some("hostname.com"), Some(80), Some("/path"), Some(8080)),
            ),
            (
                " example.com=81 ",
                e(Some("example.com"), None, None, Some(81)),
            ),
            ("/v1=8080", e(None, None, Some("/v1"), Some(8080))),
            (
                "*.example.org:443",
                e(Some("*.example.org"), Some(443), None, None),
            ),
            ("8080", e(None, Some(8080), None, None)),
        ];
        for (text, want) in rows {
            assert_eq!(parse_entry(text).as_ref(), Ok(&want), "{text}");
        }
        let bad = [
            ("80=http", "target port \"http\" is not a port number"),
            ("a.com:x/p=80", "source port \"x\" is not a port number"),
            ("80=0", "target port \"0\""),
            ("", "an empty entry"),
            ("=", "target port \"\""),
        ];
        for (text, want) in bad {
            let got = parse_entry(text).unwrap_err();
            assert!(got.contains(want), "{text}: {got}");
        }
    }
}
