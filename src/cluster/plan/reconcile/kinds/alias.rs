//! DNS alias services (`rancher/dns-service`): no containers; their members
//! are their links, which the row shows as `linkedServices` for the DNS
//! of the managed network to answer.

use crate::cluster::model::Resource;
use crate::cluster::plan::compose::ServiceSpec;
use crate::cluster::plan::rows::links_json;

/// Keep the row's members as the spec's links say.
pub(super) fn pass(s: &mut Resource, spec: &ServiceSpec) {
    let links = links_json(spec);
    if s.data.get("linkedServices") != Some(&links) {
        s.set("linkedServices", links);
    }
}
