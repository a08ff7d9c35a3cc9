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
    }
    v
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
