//! The load balancer's HAProxy configuration, as pure functions: what a
//! load balancer service wants ([`desired`]: the frontends and backends of
//! its port rules — the [`Layout`], which only a reload changes — and each
//! backend's endpoints), how endpoints sit in a backend's pre-allocated
//! server slots ([`assign`], which yields the runtime API commands of a
//! change), and the `haproxy.cfg` text ([`render`]).
//!
//! Rules follow Rancher's priority order: an explicit `priority` first
//! (lower wins), then hostname+path, hostname, wildcard+path, wildcard,
//! path, and the rule with neither is the frontend's default backend.
//! Endpoints are the target services' containers that run and are healthy
//! (or have no health check), on every host, in service-index order.
//!
//! `https` and `tls` rules terminate TLS on their listener (`bind … ssl
//! crt-list`) with the certificates the server sent for this container
//! (written by `agent::lb` as `certs/<name>.pem`, the default one first in
//! the `crt-list`), then go on as `http` and `tcp` rules.

use std::collections::BTreeMap;
use std::time::Instant;

use super::envview::View;
use crate::cluster::plan::compose::{
    HealthCheck, LbConfig, PortRule, LB_RESERVED_PORT, LB_RUN_DIR,
};
use crate::cluster::protocol::{EnvService, LbCertificate};

/// Fewest server slots of a backend.
pub const MIN_SLOTS: usize = 8;

/// A listener and its routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    /// Source port.
    pub port: u16,
    /// `http`, `tcp`, `sni` (tcp with SNI routing).
    pub mode: String,
    /// Terminates TLS (`https`, `tls` rules).
    pub ssl: bool,
    /// Routed rules in order: (hostname, path, backend).
    pub routes: Vec<(Option<String>, Option<String>, String)>,
    /// The backend of the rule with no hostname nor path.
    pub default_backend: Option<String>,
    /// Rules that cannot be served, as comments.
    pub skipped: Vec<String>,
}

/// A target service's port: one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Backend name.
    pub name: String,
    /// `http` or `tcp`.
    pub mode: String,
    /// Target port.
    pub port: u16,
    /// The target's health check (HAProxy checks the same).
    pub check: Option<HealthCheck>,
    /// Server slots (grows by reload).
    pub slots: usize,
    /// Drain before removal, milliseconds.
    pub drain_ms: u64,
}

/// Everything of the configuration but the endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Layout {
    /// Listeners, by port.
    pub frontends: Vec<Frontend>,
    /// Backends, by name.
    pub backends: Vec<Backend>,
    /// `lbConfig.stickinessPolicy`.
    pub stickiness: Option<BTreeMap<String, String>>,
    /// `lbConfig.config`.
    pub custom: Option<String>,
    /// Certificates by name with a digest of their PEM (a renewed one is
    /// a layout change: a reload), the default one first.
    pub certs: Vec<(String, String)>,
    /// Rules that cannot be served at all, as comments.
    pub notes: Vec<String>,
}

/// The `crt-list` file's path in the container.
pub fn crt_list_path() -> String {
    format!("{LB_RUN_DIR}/crt-list")
}

/// The file name of certificate `name` under `certs/`.
pub fn cert_file(name: &str) -> String {
    format!("{}.pem", sanitize(name))
}

/// Where certificate `name` is in the container (`certs/<name>.pem`).
pub fn cert_path(name: &str) -> String {
    format!("{LB_RUN_DIR}/certs/{}", cert_file(name))
}

/// The `crt-list` text: one certificate a line, the default one first
/// (HAProxy serves the first to clients whose SNI matches none).
pub fn crt_list(layout: &Layout) -> String {
    layout
        .certs
        .iter()
        .map(|(n, _)| format!("{}\n", cert_path(n)))
        .collect()
}

fn digest(pem: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, pem.as_bytes());
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// What a load balancer wants now.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Desired {
    /// The configuration's shape.
    pub layout: Layout,
    /// Backend name → endpoint addresses in rotation order.
    pub endpoints: BTreeMap<String, Vec<String>>,
}

fn class(r: &PortRule) -> u8 {
    let wild = r.hostname.as_deref().is_some_and(|h| h.contains('*'));
    match (r.hostname.is_some(), wild, r.path.is_some()) {
        (true, false, true) => 0,
        (true, false, false) => 1,
        (true, true, true) => 2,
        (true, true, false) => 3,
        (false, _, true) => 4,
        (false, _, false) => 5,
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The service a rule's target names, seen from `lb`'s stack.
fn target<'a>(view: &'a View, lb: &EnvService, t: &str) -> Option<&'a EnvService> {
    let (stack_id, name) = match t.split_once('/') {
        Some((st, n)) => (
            view.stacks
                .values()
                .find(|s| s.name == st)
                .map(|s| s.id.clone())?,
            n,
        ),
        None => (lb.stack_id.clone(), t),
    };
    view.services
        .values()
        .find(|s| s.stack_id == stack_id && s.name == name)
}

/// Addresses of `svc`'s containers in rotation: running, healthy or
/// without a health check, on the managed network.
pub fn endpoints(view: &View, svc: &EnvService) -> Vec<String> {
    let mut cs: Vec<_> = view
        .containers
        .values()
        .filter(|c| c.service_id.as_deref() == Some(svc.id.as_str()))
        .filter(|c| c.state == "running")
        .filter(|c| matches!(c.health_state.as_deref(), None | Some("healthy")))
        .filter_map(|c| {
            c.primary_ip
                .as_ref()
                .map(|ip| (c.service_index, c.name.clone(), ip.clone()))
        })
        .collect();
    cs.sort();
    cs.into_iter().map(|(_, _, ip)| ip).collect()
}

/// What the load balancer service `lb` wants, from the environment view
/// and the certificates its container got.
pub fn desired(view: &View, lb: &EnvService, certs: &[LbCertificate]) -> Desired {
    let empty = LbConfig::default();
    let cfg = lb.lb_config.as_deref().unwrap_or(&empty);
    let mut order: Vec<(usize, &PortRule)> = cfg.port_rules.iter().enumerate().collect();
    order.sort_by_key(|(i, r)| (r.priority.unwrap_or(i64::MAX), class(r), *i));
    let mut d = Desired {
        layout: Layout {
            stickiness: cfg.stickiness_policy.clone(),
            custom: cfg.config.clone(),
            ..Layout::default()
        },
        ..Desired::default()
    };
    let mut sorted: Vec<&LbCertificate> = certs.iter().collect();
    sorted.sort_by_key(|c| !c.default);
    d.layout.certs = sorted
        .iter()
        .map(|c| (c.name.clone(), digest(&c.pem)))
        .collect();
    let mut ports: Vec<u16> = cfg.port_rules.iter().map(|r| r.source_port).collect();
    ports.sort_unstable();
    ports.dedup();
    for port in ports
        .into_iter()
        .filter(|p| *p != 0 && *p != LB_RESERVED_PORT)
    {
        let rules: Vec<_> = order
            .iter()
            .filter(|(_, r)| r.source_port == port)
            .collect();
        let proto = rules.first().map_or("http", |(_, r)| r.protocol.as_str());
        let ssl = matches!(proto, "https" | "tls");
        if ssl && certs.is_empty() {
            for (i, _) in &rules {
                d.layout.notes.push(format!(
                    "port_rules[{i}]: {proto} on port {port} needs a certificate, none was given"
                ));
            }
            continue;
        }
        let mut fe = Frontend {
            port,
            ssl,
            mode: match proto {
                "tcp" | "tls" => "tcp",
                "sni" => "sni",
                _ => "http",
            }
            .into(),
            routes: Vec::new(),
            default_backend: None,
            skipped: Vec::new(),
        };
        for (i, r) in rules {
            let Some(svc) = r.service.as_deref().and_then(|t| target(view, lb, t)) else {
                fe.skipped
                    .push(format!("port_rules[{i}]: target {:?} not found", r.service));
                continue;
            };
            let tport = r.target_port.unwrap_or(port);
            let mode = if fe.mode == "http" { "http" } else { "tcp" };
            let name = r.backend_name.as_deref().map(sanitize).unwrap_or_else(|| {
                let tcp = if mode == "tcp" { "_tcp" } else { "" };
                format!("{}_{}_{tport}{tcp}", sanitize(&svc.name), sanitize(&svc.id))
            });
            if !d.layout.backends.iter().any(|b| b.name == name) {
                let eps = endpoints(view, svc);
                let slots = (eps.len() * 2).next_power_of_two().max(MIN_SLOTS);
                d.layout.backends.push(Backend {
                    name: name.clone(),
                    mode: mode.into(),
                    port: tport,
                    check: svc.health_check.as_deref().cloned(),
                    slots,
                    drain_ms: svc.drain_timeout_ms,
                });
                d.endpoints.insert(name.clone(), eps);
            }
            if r.hostname.is_none() && r.path.is_none() {
                fe.default_backend.get_or_insert(name);
            } else {
                fe.routes.push((r.hostname.clone(), r.path.clone(), name));
            }
        }
        d.layout.frontends.push(fe);
    }
    d
}

/// One server slot of a backend.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Slot {
    /// The endpoint it holds.
    pub addr: Option<String>,
    /// Draining until then (not in rotation for new requests).
    pub draining_until: Option<Instant>,
}

/// The slots of every backend.
pub type Slots = BTreeMap<String, Vec<Slot>>;

/// Put `want`'s endpoints into `slots` (each keeps its slot; new ones take
/// free slots; gone ones drain for the backend's drain time, then free
/// their slot). Returns the runtime API commands that make HAProxy match,
/// and whether some backend ran out of slots (a reload must grow them).
pub fn assign(
    layout: &Layout,
    slots: &mut Slots,
    want: &Desired,
    now: Instant,
) -> (Vec<String>, bool) {
    let mut cmds = Vec::new();
    let mut full = false;
    slots.retain(|b, _| layout.backends.iter().any(|x| &x.name == b));
    for b in &layout.backends {
        let list = slots.entry(b.name.clone()).or_default();
        if list.len() < b.slots {
            list.resize(b.slots, Slot::default());
        }
        let eps = want.endpoints.get(&b.name).cloned().unwrap_or_default();
        let srv = |k: usize| format!("{}/s{}", b.name, k + 1);
        for (k, s) in list.iter_mut().enumerate() {
            let Some(a) = s.addr.clone() else { continue };
            if eps.contains(&a) {
                if s.draining_until.take().is_some() {
                    cmds.push(format!("set server {} state ready", srv(k)));
                }
            } else if b.drain_ms > 0 && s.draining_until.is_none() {
                s.draining_until = Some(now + std::time::Duration::from_millis(b.drain_ms));
                cmds.push(format!("set server {} state drain", srv(k)));
            } else if b.drain_ms == 0 || s.draining_until.is_some_and(|t| t <= now) {
                *s = Slot::default();
                cmds.push(format!("set server {} state maint", srv(k)));
            }
        }
        for a in eps {
            if list.iter().any(|s| s.addr.as_deref() == Some(a.as_str())) {
                continue;
            }
            match list.iter().position(|s| s.addr.is_none()) {
                Some(k) => {
                    list[k].addr = Some(a.clone());
                    cmds.push(format!("set server {} addr {a} port {}", srv(k), b.port));
                    cmds.push(format!("set server {} state ready", srv(k)));
                    if b.check.is_some() {
                        // Our own checks found it healthy already.
                        cmds.push(format!("set server {} health up", srv(k)));
                    }
                }
                None => {
                    full = true;
                    list.push(Slot {
                        addr: Some(a.clone()),
                        draining_until: None,
                    });
                }
            }
        }
    }
    (cmds, full)
}

/// Runtime commands that state every slot as `slots` holds it (after a
/// reload, so a change the old worker took is not lost). With
/// `health_up`, a checked server that is in service is also marked up, as
/// `assign` does for a new endpoint (for a HAProxy that may have started
/// from an older file, where that slot was in maintenance).
pub fn resync(layout: &Layout, slots: &Slots, health_up: bool) -> Vec<String> {
    let mut cmds = Vec::new();
    for b in &layout.backends {
        for (k, s) in slots.get(&b.name).into_iter().flatten().enumerate() {
            let srv = format!("{}/s{}", b.name, k + 1);
            match (&s.addr, s.draining_until) {
                (Some(a), d) => {
                    cmds.push(format!("set server {srv} addr {a} port {}", b.port));
                    let st = if d.is_some() { "drain" } else { "ready" };
                    cmds.push(format!("set server {srv} state {st}"));
                    if health_up && d.is_none() && b.check.is_some() {
                        cmds.push(format!("set server {srv} health up"));
                    }
                }
                (None, _) => cmds.push(format!("set server {srv} state maint")),
            }
        }
    }
    cmds
}

/// The lines of `show servers state` worth keeping across a reload: those
/// of servers whose slot still holds the same address. A slot whose
/// endpoint changed starts from the new config (its saved "stopped" state
/// would otherwise keep a server without checks down for good).
pub fn keep_states(states: &str, slots: &Slots) -> String {
    let mut out = String::new();
    for line in states.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let keep = match f.as_slice() {
            [_version] => true,
            [first, ..] if first.starts_with('#') => true,
            [_, be, _, srv, addr, ..] => srv
                .strip_prefix('s')
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| slots.get(*be)?.get(n.checked_sub(1)?))
                .is_some_and(|s| s.addr.as_deref() == Some(*addr)),
            _ => false,
        };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The earliest drain deadline still ahead.
pub fn next_deadline(slots: &Slots) -> Option<Instant> {
    slots
        .values()
        .flatten()
        .filter_map(|s| s.draining_until)
        .min()
}

fn ms(v: u64) -> String {
    format!("{v}ms")
}

/// Split `lbConfig.config` into its `global`, `defaults` and other
/// sections (Rancher merges the first two into its own).
fn custom_sections(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut g, mut d, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    let mut into = 2;
    for line in text.lines() {
        let t = line.trim();
        let word = t.split_whitespace().next().unwrap_or("");
        if !line.starts_with([' ', '\t']) && !t.is_empty() {
            into = match word {
                "global" => 0,
                "defaults" => 1,
                _ => 2,
            };
            if into < 2 {
                continue;
            }
        }
        match into {
            0 => g.push(format!("    {t}")),
            1 => d.push(format!("    {t}")),
            _ => rest.push(line.to_string()),
        }
    }
    (g, d, rest)
}

/// The `haproxy.cfg` text of `layout` with the endpoints in `slots`.
pub fn render(layout: &Layout, slots: &Slots) -> String {
    let (cg, cd, crest) = layout
        .custom
        .as_deref()
        .map(custom_sections)
        .unwrap_or_default();
    let mut o = String::new();
    let mut line = |s: &str| {
        o.push_str(s);
        o.push('\n');
    };
    line("# written by the ros agent; endpoint changes go through the runtime API");
    for n in &layout.notes {
        line(&format!("# skipped {n}"));
    }
    line("global");
    line("    nbthread 1");
    line(&format!(
        "    stats socket {LB_RUN_DIR}/admin.sock mode 600 level admin expose-fd listeners"
    ));
    line(&format!("    server-state-file {LB_RUN_DIR}/state"));
    line("    hard-stop-after 30s");
    line("    maxconn 4096");
    for l in &cg {
        line(l);
    }
    line("defaults");
    line("    mode http");
    line("    timeout connect 1s");
    line("    timeout client 60s");
    line("    timeout server 60s");
    line("    timeout http-request 10s");
    line("    retries 3");
    line("    option redispatch 1");
    line("    load-server-state-from-file global");
    for l in &cd {
        line(l);
    }
    line("frontend lb_health");
    line(&format!("    bind :{LB_RESERVED_PORT}"));
    line("    mode http");
    line("    http-request return status 200 content-type text/plain string ok");
    for f in &layout.frontends {
        line(&format!("frontend port_{}", f.port));
        if f.ssl {
            line(&format!(
                "    bind :{} ssl crt-list {}",
                f.port,
                crt_list_path()
            ));
        } else {
            line(&format!("    bind :{}", f.port));
        }
        for s in &f.skipped {
            line(&format!("    # skipped {s}"));
        }
        match f.mode.as_str() {
            "http" => {
                line("    mode http");
                line("    option forwardfor");
                if f.ssl {
                    line("    http-request set-header X-Forwarded-Proto https");
                }
                for (i, (host, path, be)) in f.routes.iter().enumerate() {
                    let mut conds = Vec::new();
                    if let Some(h) = host {
                        let (m, v) = if let Some(rest) = h.strip_prefix('*') {
                            ("end", rest.to_string())
                        } else if let Some(rest) = h.strip_suffix('*') {
                            ("beg", rest.to_string())
                        } else {
                            ("str", h.clone())
                        };
                        line(&format!(
                            "    acl r{i}_host hdr(host),field(1,:) -i -m {m} {v}"
                        ));
                        conds.push(format!("r{i}_host"));
                    }
                    if let Some(p) = path {
                        line(&format!("    acl r{i}_path path_beg {p}"));
                        conds.push(format!("r{i}_path"));
                    }
                    line(&format!("    use_backend {be} if {}", conds.join(" ")));
                }
            }
            "sni" => {
                line("    mode tcp");
                line("    tcp-request inspect-delay 5s");
                line("    tcp-request content accept if { req_ssl_hello_type 1 }");
                for (host, _, be) in &f.routes {
                    if let Some(h) = host {
                        line(&format!("    use_backend {be} if {{ req_ssl_sni -i {h} }}"));
                    }
                }
            }
            _ => line("    mode tcp"),
        }
        if let Some(be) = &f.default_backend {
            line(&format!("    default_backend {be}"));
        }
    }
    for b in &layout.backends {
        line(&format!("backend {}", b.name));
        line(&format!("    mode {}", b.mode));
        line("    balance roundrobin");
        if b.mode == "http" {
            line("    retry-on conn-failure empty-response response-timeout");
        }
        let sticky = layout.stickiness.as_ref().filter(|_| b.mode == "http");
        if let Some(s) = sticky {
            let cookie = s.get("cookie").map_or("SRV", String::as_str);
            let mode = s.get("mode").map_or("insert", String::as_str);
            let mut w = format!("    cookie {cookie} {mode}");
            for flag in ["indirect", "nocache", "postonly"] {
                if s.get(flag).is_some_and(|v| v == "true") {
                    w.push(' ');
                    w.push_str(flag);
                }
            }
            if let Some(dom) = s.get("domain") {
                w.push_str(&format!(" domain {dom}"));
            }
            line(&w);
        }
        let mut ds = String::from("    default-server");
        if let Some(c) = &b.check {
            match c.request_line.as_deref().filter(|_| b.mode == "http") {
                Some(rl) => line(&format!("    option httpchk {rl}")),
                None => line("    option tcp-check"),
            }
            ds.push_str(&format!(
                " check port {} inter {} fall {} rise {}",
                c.port,
                ms(c.interval.max(100)),
                c.unhealthy_threshold.max(1),
                c.healthy_threshold.max(1)
            ));
            line(&format!(
                "    timeout check {}",
                ms(c.response_timeout.max(100))
            ));
        }
        line(&ds);
        let list = slots.get(&b.name).cloned().unwrap_or_default();
        let n = list.len().max(b.slots);
        for k in 0..n {
            let s = list.get(k).cloned().unwrap_or_default();
            let cookie = if sticky.is_some() {
                format!(" cookie s{}", k + 1)
            } else {
                String::new()
            };
            match (&s.addr, s.draining_until) {
                (Some(a), None) => line(&format!("    server s{} {a}:{}{cookie}", k + 1, b.port)),
                (Some(a), Some(_)) => line(&format!(
                    "    server s{} {a}:{} disabled{cookie}",
                    k + 1,
                    b.port
                )),
                (None, _) => line(&format!(
                    "    server s{} 127.0.0.1:{} disabled{cookie}",
                    k + 1,
                    b.port
                )),
            }
        }
    }
    for l in &crest {
        line(l);
    }
    o
}

/// Grow every backend whose endpoints overflowed its slots.
pub fn grow(layout: &mut Layout, slots: &Slots) {
    for b in &mut layout.backends {
        let used = slots.get(&b.name).map_or(0, Vec::len);
        if used > b.slots {
            b.slots = (used * 2).next_power_of_two();
        }
    }
}

#[cfg(test)]
#[path = "lb_config_tests.rs"]
mod tests;
