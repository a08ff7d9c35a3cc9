//! External services: IPs or a hostname outside the cluster, kept on the
//! service row (`externalIpAddresses`, `hostname`) for the DNS of the
//! managed network to answer; no containers.

use serde_json::json;

use crate::cluster::model::Resource;
use crate::cluster::plan::compose::ServiceSpec;

/// Keep the row's addresses as the spec says.
pub(super) fn pass(s: &mut Resource, spec: &ServiceSpec) {
    let ips = json!(spec.external_ips);
    if s.data.get("externalIpAddresses") != Some(&ips) {
        s.set("externalIpAddresses", ips);
    }
    let host = json!(spec.external_hostname);
    if s.data.get("hostname") != Some(&host) {
        s.set("hostname", host);
    }
}
