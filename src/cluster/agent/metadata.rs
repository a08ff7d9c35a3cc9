//! The per-host metadata service (Rancher's `http://169.254.169.250/`),
//! answered from the agent's [`View`]: `/<version>/<path>` with versions
//! `latest`, `2015-12-19` and `2016-07-29`; `self/…` is the caller's own
//! container (found by its source address), service, stack and host.
//! Plain text by default — a map lists its keys one per line (`key/` for
//! a map or list), a list its entries as `index=name` (or `index=value`),
//! a value itself — JSON with `Accept: application/json`.
//!
//! A caller that is no container of the environment (a host-network
//! container, the host itself) gets this host as `self/host` and a 404
//! saying why for `self/container`, `self/service` and `self/stack`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use super::envview::View;
use super::features::Assigned;
use crate::cluster::protocol::{EnvContainer, EnvHost, EnvService, EnvStack};

/// The metadata versions answered.
pub(crate) const VERSIONS: &[&str] = &["2015-12-19", "2016-07-29", "latest"];

/// What a request reads.
#[derive(Clone)]
pub(crate) struct Meta {
    /// The environment.
    pub view: watch::Receiver<Arc<View>>,
    /// This host (its id).
    pub assigned: watch::Receiver<Assigned>,
}

/// The metadata router (serve with `into_make_service_with_connect_info`).
pub(crate) fn router(m: Meta) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(m)
}

async fn handle(
    State(m): State<Meta>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let view = m.view.borrow().clone();
    let host_id = m.assigned.borrow().host_id.clone();
    let ip = match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match answer(&view, &host_id, ip, uri.path()) {
        Ok(v) => render(&v, json),
        Err(msg) => {
            let body = if json {
                json!({"code": 404, "message": msg}).to_string()
            } else {
                format!("Not found: {msg}\n")
            };
            let ct = if json {
                "application/json"
            } else {
                "text/plain"
            };
            (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, ct)], body).into_response()
        }
    }
}

fn render(v: &Value, json: bool) -> Response {
    if json {
        return ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain")], text(v)).into_response()
}

/// Rancher's plain-text form of a value.
pub(crate) fn text(v: &Value) -> String {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                if v.is_object() || v.is_array() {
                    format!("{k}/\n")
                } else {
                    format!("{k}\n")
                }
            })
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(o) => match o.get("name") {
                    Some(n) => format!("{i}={}\n", scalar(n)),
                    None => format!("{i}\n"),
                },
                Value::Array(_) => format!("{i}\n"),
                other => format!("{i}={}\n", scalar(other)),
            })
            .collect(),
        other => scalar(other),
    }
}

/// The value at `path` (`/<version>/…`) for a caller at `ip`; else why not.
pub(crate) fn answer(view: &View, host_id: &str, ip: IpAddr, path: &str) -> Result<Value, String> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some((version, rest)) = segs.split_first() else {
        return Ok(json!(VERSIONS));
    };
    if !VERSIONS.contains(version) {
        return Err(format!(
            "unknown version {version:?} (one of {})",
            VERSIONS.join(", ")
        ));
    }
    let d = Doc { view };
    let top = match rest.first() {
        None => {
            let mut m = Map::new();
            for k in [
                "containers",
                "hosts",
                "self",
                "services",
                "stacks",
                "version",
            ] {
                m.insert(k.into(), Value::Null);
            }
            // The listing only: each key is fetched on its own.
            return Ok(Value::Object(m));
        }
        Some(&"containers") => Value::Array(d.containers(|_| true)),
        Some(&"services") => Value::Array(d.services(|_| true)),
        Some(&"stacks") => Value::Array(d.stacks()),
        Some(&"hosts") => Value::Array(view.hosts.values().map(|h| d.host(h)).collect()),
        Some(&"version") => json!(view.revision.to_string()),
        Some(&"name") => json!(view.environment.name),
        Some(&"environment_uuid") => json!(view.environment.id),
        Some(&"self") => d.me(host_id, ip, rest.get(1).copied())?,
        Some(other) => return Err(format!("no such key {other:?}")),
    };
    let start = if rest.first() == Some(&"self") { 2 } else { 1 };
    let mut cur = &top;
    for (i, seg) in rest.iter().enumerate().skip(start) {
        let next = match cur {
            Value::Object(m) => m.get(*seg),
            Value::Array(a) => seg
                .parse::<usize>()
                .ok()
                .and_then(|n| a.get(n))
                .or_else(|| {
                    a.iter()
                        .find(|e| e.get("name").and_then(Value::as_str) == Some(seg))
                }),
            _ => None,
        };
        cur = next.ok_or_else(|| format!("no such key {:?}", rest[..=i].join("/")))?;
    }
    Ok(cur.clone())
}

struct Doc<'a> {
    view: &'a View,
}

fn sorted<'a, T>(it: impl Iterator<Item = &'a T>, key: impl Fn(&T) -> String) -> Vec<&'a T>
where
    T: 'a,
{
    let mut v: Vec<&T> = it.collect();
    v.sort_by_key(|x| key(x));
    v
}

impl Doc<'_> {
    fn stack_of(&self, id: Option<&str>) -> Option<&EnvStack> {
        self.view.stacks.get(id?)
    }

    fn container(&self, c: &EnvContainer) -> Value {
        let service = c
            .service_id
            .as_deref()
            .and_then(|s| self.view.services.get(s));
        let stack = self.stack_of(c.stack_id.as_deref());
        let stack_name = stack.map(|s| s.name.as_str()).unwrap_or_default();
        let service_name = service.map(|s| s.name.as_str()).unwrap_or_default();
        let search: Vec<String> = if service.is_some() {
            vec![
                format!("{stack_name}.rancher.internal"),
                format!("{service_name}.{stack_name}.rancher.internal"),
                "rancher.internal".into(),
            ]
        } else {
            Vec::new()
        };
        json!({
            "name": c.name,
            "uuid": c.id,
            "primary_ip": c.primary_ip.clone().unwrap_or_default(),
            "ips": c.primary_ip.iter().collect::<Vec<_>>(),
            "service_name": service_name,
            "service_index": c.service_index.to_string(),
            "stack_name": stack_name,
            "stack_uuid": stack.map(|s| s.id.as_str()).unwrap_or_default(),
            "labels": c.labels,
            "create_index": c.created_ms,
            "host_uuid": c.host_id,
            "state": c.state,
            "health_state": c.health_state.clone().unwrap_or_else(|| "healthy".into()),
            "external_id": c.external_id.clone().unwrap_or_default(),
            "start_count": c.start_count,
            "memory_reservation": 0,
            "milli_cpu_reservation": 0,
            "dns": if service.is_some() { vec!["169.254.169.250"] } else { Vec::new() },
            "dns_search": search,
            "network_from_container_uuid": "",
            "network_uuid": "",
            "links": {},
            "ports": [],
            "system": false,
            "environment_uuid": self.view.environment.id,
        })
    }

    fn containers(&self, keep: impl Fn(&EnvContainer) -> bool) -> Vec<Value> {
        sorted(self.view.containers.values(), |c| c.name.clone())
            .into_iter()
            .filter(|c| keep(c) && c.state != "removed")
            .map(|c| self.container(c))
            .collect()
    }

    fn service(&self, s: &EnvService) -> Value {
        let stack = self.view.stacks.get(&s.stack_id);
        let stack_name = stack.map(|s| s.name.as_str()).unwrap_or_default();
        let links: Map<String, Value> = s
            .links
            .iter()
            .map(|l| {
                let st = l.stack.as_deref().unwrap_or(stack_name);
                (format!("{st}/{}", l.service), json!(l.alias))
            })
            .collect();
        let sidekicks: Vec<&str> = self
            .view
            .services
            .values()
            .filter(|x| x.stack_id == s.stack_id && x.primary_service.as_deref() == Some(&s.name))
            .map(|x| x.name.as_str())
            .collect();
        json!({
            "name": s.name,
            "uuid": s.id,
            "stack_name": stack_name,
            "stack_uuid": s.stack_id,
            "kind": s.kind,
            "hostname": s.hostname.clone().unwrap_or_default(),
            "vip": "",
            "scale": s.scale,
            "external_ips": s.external_ips,
            "sidekicks": sidekicks,
            "containers": self.containers(|c| c.service_id.as_deref() == Some(&s.id)),
            "ports": s.ports,
            "labels": s.labels,
            "links": links,
            "metadata": s.metadata,
            "fqdn": format!("{}.{stack_name}.rancher.internal", s.name),
            "primary_service_name": s.primary_service.clone().unwrap_or_else(|| s.name.clone()),
            "state": s.state,
            "health_state": s.health_state,
            "system": false,
            "environment_uuid": self.view.environment.id,
        })
    }

    fn services(&self, keep: impl Fn(&EnvService) -> bool) -> Vec<Value> {
        sorted(self.view.services.values(), |s| s.name.clone())
            .into_iter()
            .filter(|s| keep(s))
            .map(|s| self.service(s))
            .collect()
    }

    fn stack(&self, s: &EnvStack) -> Value {
        json!({
            "name": s.name,
            "uuid": s.id,
            "environment_name": self.view.environment.name,
            "environment_uuid": self.view.environment.id,
            "services": self.services(|x| x.stack_id == s.id),
            "system": false,
        })
    }

    fn stacks(&self) -> Vec<Value> {
        sorted(self.view.stacks.values(), |s| s.name.clone())
            .into_iter()
            .map(|s| self.stack(s))
            .collect()
    }

    fn host(&self, h: &EnvHost) -> Value {
        json!({
            "name": h.name,
            "uuid": h.id,
            "host_id": h.id,
            "hostname": h.hostname,
            "agent_ip": h.agent_ip,
            "agent_state": h.agent_state,
            "state": h.state,
            "labels": h.labels,
            "memory": h.memory,
            "milli_cpu": h.milli_cpu,
            "local_storage_mb": h.local_storage_mb,
            "environment_uuid": self.view.environment.id,
        })
    }

    /// `self/<what>` for a caller at `ip`.
    fn me(&self, host_id: &str, ip: IpAddr, what: Option<&str>) -> Result<Value, String> {
        let ip_s = ip.to_string();
        let mine = self
            .view
            .containers
            .values()
            .filter(|c| c.state != "removed" && c.primary_ip.as_deref() == Some(ip_s.as_str()))
            .min_by_key(|c| (c.host_id != host_id, c.id.clone()));
        let none = || {
            format!(
                "no container of this environment has address {ip} \
                 (a host-network container has no self/container; self/host is its host)"
            )
        };
        let host = |id: &str| {
            self.view
                .hosts
                .get(id)
                .map(|h| self.host(h))
                .ok_or_else(|| format!("host {id} is not in the environment view yet"))
        };
        match what {
            None => {
                let mut m = Map::new();
                m.insert("host".into(), json!({}));
                if mine.is_some() {
                    for k in ["container", "service", "stack"] {
                        m.insert(k.into(), json!({}));
                    }
                }
                Ok(Value::Object(m))
            }
            Some("host") => host(mine.map_or(host_id, |c| c.host_id.as_str())),
            Some("container") => mine.map(|c| self.container(c)).ok_or_else(none),
            Some("service") => {
                let c = mine.ok_or_else(none)?;
                c.service_id
                    .as_deref()
                    .and_then(|s| self.view.services.get(s))
                    .map(|s| self.service(s))
                    .ok_or_else(|| format!("container {} is in no service", c.name))
            }
            Some("stack") => {
                let c = mine.ok_or_else(none)?;
                self.stack_of(c.stack_id.as_deref())
                    .map(|s| self.stack(s))
                    .ok_or_else(|| format!("container {} is in no stack", c.name))
            }
            Some(other) => Err(format!("no such key \"self/{other}\"")),
        }
    }
}

/// Serve the metadata on `listen` until the process ends; the address
/// bound.
pub(crate) async fn start(listen: SocketAddr, m: Meta) -> Result<SocketAddr, String> {
    let l = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("metadata: cannot listen on {listen}: {e}"))?;
    let bound = l
        .local_addr()
        .map_err(|e| format!("metadata: {listen}: {e}"))?;
    let app = router(m).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(l, app).await {
            tracing::warn!(error = %e, "metadata service stopped");
        }
    });
    Ok(bound)
}
