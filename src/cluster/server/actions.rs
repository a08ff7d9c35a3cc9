//! What an accepted action does beyond its own row: the rows it changes
//! with it. The HTTP side checks the action against the state table,
//! decodes its body and calls here; the rules of the cascade live here.

use crate::cluster::model::{Kind, Resource};
use crate::cluster::store::{Scope, Store, StoreError};

/// The desired state a container action asks for.
pub fn container_desired(action: &str) -> Option<&'static str> {
    match action {
        "stop" => Some("stopped"),
        "start" | "restart" => Some("running"),
        "remove" => Some("removed"),
        _ => None,
    }
}

/// Rows that change with action `action` on `r` (already in its new state):
/// a stack's services activate/deactivate with it; a removed host takes its
/// agent keys and containers with it.
pub fn cascade(store: &dyn Store, r: &Resource, action: &str) -> Result<Vec<Resource>, StoreError> {
    let mut rows = Vec::new();
    match (r.kind, action) {
        (Kind::Stack, "activateservices" | "deactivateservices") => {
            let (from, to) = if action == "activateservices" {
                ("inactive", "activating")
            } else {
                ("active", "deactivating")
            };
            for mut s in store.list(Kind::Service, Scope::Project(r.project))? {
                if s.str("stackId") == Some(&r.api_id()) && s.state == from {
                    s.state = to.into();
                    rows.push(s);
                }
            }
        }
        (Kind::Host, "remove") => {
            for mut k in store.list(Kind::AgentKey, Scope::Host(r.id))? {
                k.state = "removed".into();
                rows.push(k);
            }
            for mut c in store.list(Kind::Container, Scope::Host(r.id))? {
                if !c.is_removed() {
                    c.state = "removed".into();
                    c.set("desiredState", "removed");
                    rows.push(c);
                }
            }
        }
        _ => {}
    }
    Ok(rows)
}
