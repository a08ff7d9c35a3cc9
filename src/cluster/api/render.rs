//! Rendering stored resources as API objects: `id`, `type`, `links`,
//! `actions` (only those valid in the current state), the common Cattle
//! fields, and the resource's own fields (private `_…` fields never leave).

use serde_json::{json, Map, Value};

use crate::cluster::model::{self, format_id, Kind, Resource};

pub use crate::cluster::model::rfc3339;

/// The URL of a resource: project-scoped ones below their project.
pub fn self_url(base: &str, r: &Resource) -> String {
    if r.kind.project_scoped() {
        format!(
            "{base}/projects/{}/{}/{}",
            format_id(Kind::Project, r.project),
            r.kind.collection(),
            r.api_id()
        )
    } else {
        format!("{base}/{}/{}", r.kind.collection(), r.api_id())
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
    if r.kind == Kind::Project {
        for k in [
            Kind::Host,
            Kind::Container,
            Kind::RegistrationToken,
            Kind::ApiKey,
        ] {
            links.insert(
                k.collection(),
                json!(format!("{base}/projects/{}/{}", r.api_id(), k.collection())),
            );
        }
    }
    if r.kind == Kind::Host {
        links.insert(
            "instances".into(),
            json!(format!(
                "{}/containers?hostId={}",
                project_url(base, r.project),
                r.api_id()
            )),
        );
    }
    let mut actions = Map::new();
    for a in model::actions_in(r.kind, &r.state) {
        if r.kind == Kind::Project && r.id == model::DEFAULT_PROJECT && a == "remove" {
            continue;
        }
        actions.insert(a.into(), json!(format!("{me}?action={a}")));
    }
    let mut out = Map::new();
    out.insert("id".into(), json!(r.api_id()));
    out.insert("type".into(), json!(r.kind.type_name()));
    out.insert("baseType".into(), json!(r.kind.type_name()));
    out.insert("links".into(), Value::Object(links));
    out.insert("actions".into(), Value::Object(actions));
    out.insert("kind".into(), json!(r.kind.type_name()));
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
