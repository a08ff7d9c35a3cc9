//! Rendering stored resources as API objects: `id`, `type`, `links`,
//! `actions` (only those valid in the current state), the common Cattle
//! fields, and the resource's own fields (private `_…` fields never leave).

use serde_json::{json, Map, Value};

use crate::cluster::model::{self, format_id, Kind, Resource};

pub use crate::cluster::model::rfc3339;

/// True when `base` is the `/v1` API (Rancher 1.0/1.1 names: a stack is
/// an `environment`).
pub fn is_v1(base: &str) -> bool {
    base.ends_with("/v1")
}

/// The type name of `kind` in the API version of `base`.
pub fn type_name(base: &str, kind: Kind) -> &'static str {
    if kind == Kind::Stack && is_v1(base) {
        "environment"
    } else {
        kind.type_name()
    }
}

/// The collection segment of `kind` in the API version of `base`.
pub fn collection(base: &str, kind: Kind) -> String {
    if kind == Kind::Stack && is_v1(base) {
        "environments".into()
    } else {
        kind.collection()
    }
}

/// The URL of a resource: project-scoped ones below their project.
pub fn self_url(base: &str, r: &Resource) -> String {
    if r.kind.project_scoped() {
        format!(
            "{base}/projects/{}/{}/{}",
            format_id(Kind::Project, r.project),
            collection(base, r.kind),
            r.api_id()
        )
    } else {
        format!("{base}/{}/{}", r.kind.collection(), r.api_id())
    }
}

/// The `links` of a resource besides `self`: every one is served (a test
/// walks them all).
fn relation_links(base: &str, r: &Resource, me: &str, links: &mut Map<String, Value>) {
    let project = project_url(base, r.project);
    match r.kind {
        Kind::Project => {
            for k in [
                Kind::Host,
                Kind::Container,
                Kind::RegistrationToken,
                Kind::ApiKey,
                Kind::Stack,
                Kind::Service,
                Kind::Certificate,
            ] {
                let c = collection(base, k);
                links.insert(
                    c.clone(),
                    json!(format!("{base}/projects/{}/{c}", r.api_id())),
                );
            }
            links.insert(
                "instances".into(),
                json!(format!("{base}/projects/{}/instances", r.api_id())),
            );
            links.insert(
                "schemas".into(),
                json!(format!("{base}/projects/{}/schemas", r.api_id())),
            );
        }
        Kind::Host => {
            links.insert("instances".into(), json!(format!("{me}/instances")));
            links.insert("account".into(), json!(project));
        }
        Kind::Stack => {
            links.insert("services".into(), json!(format!("{me}/services")));
            links.insert("account".into(), json!(project));
        }
        Kind::Service => {
            links.insert("instances".into(), json!(format!("{me}/instances")));
            if let Some(sid) = r.str("stackId") {
                let c = collection(base, Kind::Stack);
                let key = if is_v1(base) { "environment" } else { "stack" };
                links.insert(key.into(), json!(format!("{project}/{c}/{sid}")));
            }
            links.insert("account".into(), json!(project));
        }
        Kind::Container => {
            if r.host != 0 {
                links.insert(
                    "hosts".into(),
                    json!(format!("{project}/hosts/{}", format_id(Kind::Host, r.host))),
                );
            }
            if let Some(sid) = r.str("serviceId") {
                links.insert(
                    "services".into(),
                    json!(format!("{project}/services/{sid}")),
                );
            }
            links.insert("account".into(), json!(project));
        }
        Kind::RegistrationToken | Kind::ApiKey | Kind::Certificate => {
            links.insert("account".into(), json!(project));
        }
        Kind::Account | Kind::AgentKey => {}
    }
}

/// True while a state is a transition in progress (services and stacks:
/// as their state machine in `plan::lifecycle` says).
fn transitioning(kind: Kind, state: &str) -> bool {
    if matches!(kind, Kind::Service | Kind::Stack) {
        return state
            .parse::<crate::cluster::plan::lifecycle::State>()
            .is_ok_and(|s| s.is_transitioning());
    }
    if kind == Kind::Container {
        // `restarting` is the restart action's own transitional state.
        return state == "restarting"
            || state
                .parse::<crate::cluster::plan::lifecycle::ContainerState>()
                .is_ok_and(|s| s.is_transitioning());
    }
    matches!(
        state,
        "requested"
            | "creating"
            | "starting"
            | "stopping"
            | "restarting"
            | "removing"
            | "registering"
            | "activating"
            | "deactivating"
            | "upgrading"
            | "finishing-upgrade"
            | "canceling-upgrade"
            | "rolling-back"
    )
}

/// The API object of a resource.
pub fn resource(base: &str, r: &Resource) -> Value {
    let me = self_url(base, r);
    let mut links = Map::new();
    links.insert("self".into(), json!(me));
    relation_links(base, r, &me, &mut links);
    let mut actions = Map::new();
    for a in model::actions_in(r.kind, &r.state) {
        if r.kind == Kind::Project && r.id == model::DEFAULT_PROJECT && a == "remove" {
            continue;
        }
        actions.insert(a.into(), json!(format!("{me}?action={a}")));
    }
    let mut out = Map::new();
    out.insert("id".into(), json!(r.api_id()));
    out.insert("type".into(), json!(type_name(base, r.kind)));
    out.insert("baseType".into(), json!(type_name(base, r.kind)));
    out.insert("links".into(), Value::Object(links));
    out.insert("actions".into(), Value::Object(actions));
    out.insert("kind".into(), json!(type_name(base, r.kind)));
    out.insert("name".into(), Value::Null);
    out.insert("description".into(), Value::Null);
    out.insert("state".into(), json!(r.state));
    out.insert("created".into(), json!(rfc3339(r.created_ms)));
    out.insert("createdTS".into(), json!(r.created_ms));
    out.insert(
        "transitioning".into(),
        json!(if r.state == "error" {
            "error"
        } else if transitioning(r.kind, &r.state) {
            "yes"
        } else {
            "no"
        }),
    );
    out.insert("transitioningMessage".into(), Value::Null);
    out.insert("removed".into(), Value::Null);
    if r.kind.project_scoped() {
        out.insert(
            "accountId".into(),
            json!(format_id(Kind::Project, r.project)),
        );
    }
    for (k, v) in &r.data {
        if !k.starts_with('_') {
            out.insert(k.clone(), v.clone());
        }
    }
    if r.kind == Kind::Service {
        // A load balancer, DNS or external service shows its own type.
        if let Some(k) = r.str("kind") {
            out.insert("type".into(), json!(k));
            out.insert("baseType".into(), json!("service"));
        }
    }
    if r.kind == Kind::Container {
        // The container row keeps the check as the agent reads it; shown
        // in Rancher's `instanceHealthCheck` shape.
        if let Some(hc) = r
            .data
            .get("healthCheck")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
        {
            out.insert(
                "healthCheck".into(),
                crate::cluster::plan::rows::health_check_json(&hc),
            );
        }
    }
    Value::Object(out)
}

/// One field of a resource as [`resource`] renders it, without rendering
/// the whole object (collection filters and sorting).
pub fn field(r: &Resource, name: &str) -> Option<Value> {
    match name {
        "id" => Some(json!(r.api_id())),
        "type" | "baseType" => Some(json!(r.kind.type_name())),
        "state" => Some(json!(r.state)),
        "created" => Some(json!(rfc3339(r.created_ms))),
        "createdTS" => Some(json!(r.created_ms)),
        "accountId" if r.kind.project_scoped() => Some(json!(format_id(Kind::Project, r.project))),
        "kind" => Some(
            r.data
                .get("kind")
                .cloned()
                .unwrap_or_else(|| json!(r.kind.type_name())),
        ),
        n if n.starts_with('_') => None,
        n => r.data.get(n).cloned(),
    }
}

fn project_url(base: &str, project: u64) -> String {
    format!("{base}/projects/{}", format_id(Kind::Project, project))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_links() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
        let mut h = Resource::new(Kind::Host, 3, 5, "active");
        h.set("_key", "secret");
        let v = resource("/v1", &h);
        assert_eq!(v["id"], "1h3");
        assert_eq!(v["links"]["self"], "/v1/projects/1a5/hosts/1h3");
        assert_eq!(
            v["actions"]["deactivate"],
            "/v1/projects/1a5/hosts/1h3?action=deactivate"
        );
        assert!(v.get("_key").is_none());
        assert!(v["actions"].get("remove").is_none());
        for f in [
            "id",
            "state",
            "created",
            "accountId",
            "kind",
            "type",
            "_key",
            "nope",
        ] {
            let rendered = v.get(f).cloned().filter(|x| !x.is_null());
            assert_eq!(field(&h, f), rendered, "{f}");
        }
    }
}
