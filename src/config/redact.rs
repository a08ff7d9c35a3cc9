//! Secrets hidden from `ros config export`.
//!
//! The password is never exported. Without `--private`, SSH host keys, TLS
//! keys and certificates, the cluster token, Wi-Fi keys and registry
//! credentials are left out too. Keys are removed rather than masked, so an
//! export can be merged back without writing placeholders over real values.

use super::node::{Node, Value};
use super::path::split_key;

/// Always removed.
const ALWAYS: &[&str] = &["ros.password", "ros.cluster.admin_password"];

/// Removed unless `--private`; `*` matches any one map key.
const PRIVATE: &[&str] = &[
    "ros.ssh.keys",
    "ros.docker.ca_key",
    "ros.docker.ca_cert",
    "ros.docker.server_key",
    "ros.docker.server_cert",
    "ros.system_docker.ca_key",
    "ros.system_docker.ca_cert",
    "ros.system_docker.server_key",
    "ros.system_docker.server_cert",
    "ros.cluster.token",
    "ros.network.wifi_networks.*.psk",
    "ros.network.wifi_networks.*.password",
    "ros.registry_auths.*.password",
    "ros.registry_auths.*.auth",
];

/// Remove secrets from an (already normalized) tree.
pub fn redact(tree: &mut Node, private: bool) {
    let lists: &[&[&str]] = if private {
        &[ALWAYS]
    } else {
        &[ALWAYS, PRIVATE]
    };
    for pattern in lists.iter().flat_map(|l| l.iter()) {
        if let Ok(segs) = split_key(pattern) {
            remove_matching(tree, &segs);
        }
    }
}

fn remove_matching(node: &mut Node, segs: &[String]) {
    let Value::Map(m) = &mut node.value else {
        return;
    };
    match segs {
        [] => {}
        [last] => m.retain(|e| last != "*" && &e.key != last),
        [first, rest @ ..] => {
            for e in m.iter_mut() {
                if first == "*" || &e.key == first {
                    remove_matching(&mut e.value, rest);
                }
            }
        }
    }
}
