//! DNS alias services (`rancher/dns-service`): no containers; their members
//! are their links, which the row shows as `linkedServices` for the DNS
//! of the managed network to answer.

use serde_json::{json, Value};

use crate::cluster::model::Resource;
use crate::cluster::plan::compose::ServiceSpec;

/// Keep the row's members as the spec's links say.
pub(super) fn pass(s: &mut Resource, spec: &ServiceSpec) {
    let links: Vec<Value> = spec
        .links
        .iter()
        .chain(spec.external_links.iter())
        .map(|l| json!({"stack": l.stack, "service": l.service, "alias": l.alias}))
        .collect();
    let links = json!(links);
    if s.data.get("linkedServices") != Some(&links) {
        s.set("linkedServices", links);
    }
}
