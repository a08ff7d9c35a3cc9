//! Stored rows ⇄ typed values: a service row keeps its parsed
//! [`ServiceSpec`] in the hidden `_spec` field (`_prevSpec` during an
//! upgrade) and shows it as a Rancher `launchConfig`; the reconciler, the
//! API and the CLI all read and write them through here.

use serde_json::{json, Value};

use crate::cluster::model::Resource;
use crate::cluster::plan::compose::{self, LaunchConfig, ServiceSpec};

/// The Rancher-style `launchConfig` shown for a spec.
pub fn launch_config_json(lc: &LaunchConfig) -> Value {
    let mut v = serde_json::to_value(lc).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("imageUuid".into(), json!(format!("docker:{}", lc.image)));
        // Rancher's spelling: ["8080:80/tcp", "80/tcp"].
        let text = |ps: &[compose::fields::PortSpec]| {
            json!(ps.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        o.insert("ports".into(), text(&lc.ports));
        o.insert("expose".into(), text(&lc.expose));
        // Rancher's spelling: ["/src:/dst:ro", "/data", "name:/path"].
        let vols: Vec<String> = lc.data_volumes.iter().map(ToString::to_string).collect();
        o.insert("dataVolumes".into(), json!(vols));
        if let Some(hc) = &lc.health_check {
            o.insert("healthCheck".into(), health_check_json(hc));
        }
    }
    v
}

/// A health check as Rancher's `instanceHealthCheck`: `strategy` a string,
/// the quorum in `recreateOnQuorumStrategyConfig`, `requestLine` null for
/// a TCP check.
pub fn health_check_json(hc: &compose::HealthCheck) -> Value {
    let mut v = serde_json::to_value(hc).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        let (name, quorum) = match hc.strategy {
            compose::HealthStrategy::Recreate => ("recreate", None),
            compose::HealthStrategy::None => ("none", None),
            compose::HealthStrategy::RecreateOnQuorum { quorum } => {
                ("recreateOnQuorum", Some(json!({ "quorum": quorum })))
            }
        };
        o.insert("strategy".into(), json!(name));
        o.insert(
            "recreateOnQuorumStrategyConfig".into(),
            quorum.unwrap_or(Value::Null),
        );
    }
    v
}

/// A health check given in Rancher's API shape (or as this server stores
/// it): `strategy` absent → `recreate`; `"recreateOnQuorum"` takes its
/// quorum from `recreateOnQuorumStrategyConfig` (default 1); an empty
/// `requestLine` is a TCP check; unset timings take Rancher's defaults.
pub fn health_check_from(v: &Value) -> Result<compose::HealthCheck, String> {
    let o = v
        .as_object()
        .ok_or_else(|| "healthCheck must be an object".to_string())?;
    let port = match o.get("port") {
        None | Some(Value::Null) => return Err("healthCheck.port is required".into()),
        Some(p) => p
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("healthCheck.port must be 1..65535, not {p}"))?,
    };
    let mut hc = compose::HealthCheck::new(port);
    let num = |k: &str| -> Result<Option<u64>, String> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("healthCheck.{k} must be a whole number, not {x}")),
        }
    };
    let small = |k: &str, n: u64| {
        u32::try_from(n).map_err(|_| format!("healthCheck.{k} is too large: {n}"))
    };
    if let Some(n) = num("interval")? {
        hc.interval = n;
    }
    if let Some(n) = num("responseTimeout")? {
        hc.response_timeout = n;
    }
    if let Some(n) = num("healthyThreshold")? {
        hc.healthy_threshold = small("healthyThreshold", n)?;
    }
    if let Some(n) = num("unhealthyThreshold")? {
        hc.unhealthy_threshold = small("unhealthyThreshold", n)?;
    }
    hc.initializing_timeout = num("initializingTimeout")?;
    hc.reinitializing_timeout = num("reinitializingTimeout")?;
    hc.request_line = match o.get("requestLine") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(x) => return Err(format!("healthCheck.requestLine must be a string, not {x}")),
    };
    let quorum = || -> Result<compose::HealthStrategy, String> {
        let q = o
            .get("recreateOnQuorumStrategyConfig")
            .and_then(|c| c.get("quorum"))
            .filter(|q| !q.is_null());
        let quorum = match q {
            None => 1,
            Some(q) => q
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    format!("healthCheck.recreateOnQuorumStrategyConfig.quorum must be a whole number, not {q}")
                })?,
        };
        Ok(compose::HealthStrategy::RecreateOnQuorum { quorum })
    };
    hc.strategy = match o.get("strategy") {
        None | Some(Value::Null) => compose::HealthStrategy::Recreate,
        Some(Value::String(s)) => match s.as_str() {
            "recreate" => compose::HealthStrategy::Recreate,
            "none" => compose::HealthStrategy::None,
            "recreateOnQuorum" => quorum()?,
            other => {
                return Err(format!(
                    "healthCheck.strategy must be none, recreate or recreateOnQuorum, not {other:?}"
                ))
            }
        },
        // The form this server stored before (`{"recreateOnQuorum": {"quorum": 1}}`).
        Some(x) => {
            serde_json::from_value(x.clone()).map_err(|e| format!("healthCheck.strategy: {e}"))?
        }
    };
    Ok(hc)
}

/// The spec stored in a service row.
pub fn spec_of(r: &Resource, field: &str) -> Option<ServiceSpec> {
    <ServiceSpec as serde::Deserialize>::deserialize(r.data.get(field)?).ok()
}

/// Scale written through `PUT /services/:id`: keep the spec in step.
pub fn sync_scale(r: &mut Resource) {
    let scale = r.data.get("scale").and_then(Value::as_u64);
    if let (Some(n), Some(mut spec)) = (scale, spec_of(r, "_spec")) {
        spec.scale = u32::try_from(n).unwrap_or(spec.scale);
        if let Ok(v) = serde_json::to_value(&spec) {
            r.set("_spec", v);
        }
    }
}

/// A service's `linkedServices` as the row shows them (its links, then
/// its external links).
pub fn links_json(spec: &ServiceSpec) -> Value {
    let links: Vec<Value> = spec
        .links
        .iter()
        .chain(spec.external_links.iter())
        .map(|l| json!({"stack": l.stack, "service": l.service, "alias": l.alias}))
        .collect();
    json!(links)
}
