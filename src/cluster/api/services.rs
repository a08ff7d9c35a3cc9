//! Stacks and services in the API: creating a stack from docker-compose +
//! rancher-compose text (or empty), creating a service from a Rancher
//! `launchConfig`, and the service actions that carry a body (`upgrade`).
//!
//! A service row keeps its parsed [`ServiceSpec`] in the hidden `_spec`
//! field (and `_prevSpec` during an upgrade); the reconciler
//! ([`super::reconcile`]) works only from those and the container rows.

use serde_json::{json, Map, Value};

use super::handlers::{name_taken, Ctx};
use super::{render, ApiError};
use crate::cluster::model::{parse_id, Kind, Resource};
use crate::cluster::plan::compose::{self, LaunchConfig, ServiceSpec, Source};

fn str_field<'a>(f: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    f.get(k).and_then(Value::as_str)
}

/// The Rancher-style `launchConfig` shown for a spec.
pub fn launch_config_json(lc: &LaunchConfig) -> Value {
    let mut v = serde_json::to_value(lc).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("imageUuid".into(), json!(format!("docker:{}", lc.image)));
    }
    v
}

/// A launch config from its API form (`imageUuid` or `image`, the other
/// fields as [`LaunchConfig`] names them).
pub fn launch_config_from(v: &Value) -> Result<LaunchConfig, ApiError> {
    let mut lc: LaunchConfig = serde_json::from_value(v.clone()).map_err(|e| {
        ApiError::field(
            "InvalidFormat",
            "launchConfig",
            format!("launchConfig: {e}"),
        )
    })?;
    if let Some(uuid) = v.get("imageUuid").and_then(Value::as_str) {
        lc.image = uuid.trim_start_matches("docker:").to_string();
    }
    if lc.image.is_empty() {
        return Err(ApiError::field(
            "MissingRequired",
            "launchConfig",
            "launchConfig names no image (imageUuid)",
        ));
    }
    Ok(lc)
}

/// The service row for `spec` in `stack`.
fn service_row(
    cx: &Ctx<'_>,
    project: u64,
    stack: &Resource,
    spec: &ServiceSpec,
) -> Result<Resource, ApiError> {
    let id = cx.app.store.allocate(Kind::Service)?;
    let state = if spec.start_on_create {
        "activating"
    } else {
        "inactive"
    };
    let mut r = Resource::new(Kind::Service, id, project, state);
    r.set("name", spec.name.clone());
    r.set("stackId", stack.api_id());
    r.set("environmentId", stack.api_id());
    r.set("launchConfig", launch_config_json(&spec.launch_config));
    r.set("scale", spec.scale);
    r.set("startOnCreate", spec.start_on_create);
    r.set("retainIp", spec.retain_ip);
    r.set("healthState", "healthy");
    r.set("upgrade", Value::Null);
    r.set("previousLaunchConfig", Value::Null);
    r.set("_stack", stack.str("name").unwrap_or_default());
    r.set(
        "_spec",
        serde_json::to_value(spec).map_err(|_| ApiError::new(422, "InvalidFormat", "bad spec"))?,
    );
    Ok(r)
}

fn compose_error(e: &compose::ComposeError) -> ApiError {
    let code = e
        .problems()
        .first()
        .map(|p| p.code.as_str())
        .unwrap_or("InvalidFormat");
    ApiError::new(422, code, e.to_string())
}

/// `POST /stacks`: an empty stack, or one with the services of its
/// `dockerCompose`/`rancherCompose` text.
pub fn create_stack(
    cx: &Ctx<'_>,
    project: u64,
    mut f: Map<String, Value>,
) -> Result<Value, ApiError> {
    let name = str_field(&f, "name").unwrap_or_default().to_string();
    if name_taken(cx, Kind::Stack, Some(project), &name, 0)? {
        return Err(ApiError::field(
            "NotUnique",
            "name",
            format!("stack name {name:?} is taken"),
        ));
    }
    let docker = f.remove("dockerCompose");
    let rancher = f.remove("rancherCompose");
    let spec = match docker.as_ref().and_then(Value::as_str) {
        Some(d) if !d.trim().is_empty() => {
            let r = rancher.as_ref().and_then(Value::as_str).map(|t| Source {
                name: "rancher-compose.yml",
                bytes: t.as_bytes(),
            });
            let src = Source {
                name: "docker-compose.yml",
                bytes: d.as_bytes(),
            };
            Some(compose::parse_stack(&name, src, r).map_err(|e| compose_error(&e))?)
        }
        _ => None,
    };
    let id = cx.app.store.allocate(Kind::Stack)?;
    let mut stack = Resource::new(Kind::Stack, id, project, "active");
    stack.data.extend(f);
    stack.set("dockerCompose", docker.unwrap_or(Value::Null));
    stack.set("rancherCompose", rancher.unwrap_or(Value::Null));
    stack.set("healthState", "healthy");
    let mut rows = vec![stack.clone()];
    for s in spec.iter().flat_map(|s| s.services.iter()) {
        rows.push(service_row(cx, project, &stack, s)?);
    }
    cx.app.store.commit(&rows)?;
    cx.app.kick.notify_one();
    Ok(render::resource(cx.base, &stack))
}

/// `POST /services`: a service in an existing stack from a `launchConfig`.
pub fn create_service(
    cx: &Ctx<'_>,
    project: u64,
    f: Map<String, Value>,
) -> Result<Value, ApiError> {
    let name = str_field(&f, "name").unwrap_or_default().to_string();
    let stack_id = str_field(&f, "stackId").unwrap_or_default();
    let stack = parse_id(Kind::Stack, stack_id)
        .map(|n| cx.app.store.get(Kind::Stack, n))
        .transpose()?
        .flatten()
        .filter(|s| s.project == project && !s.is_removed() && s.state != "removing")
        .ok_or_else(|| ApiError::field("InvalidReference", "stackId", "no such stack"))?;
    let live = cx.app.store.list(
        Kind::Service,
        crate::cluster::store::Scope::Project(project),
    )?;
    if live.iter().any(|s| {
        !s.is_removed() && s.str("stackId") == Some(stack_id) && s.str("name") == Some(&name)
    }) {
        return Err(ApiError::field(
            "NotUnique",
            "name",
            format!("service name {name:?} is taken in this stack"),
        ));
    }
    let lc = launch_config_from(f.get("launchConfig").unwrap_or(&Value::Null))?;
    let scale = f.get("scale").and_then(Value::as_i64).unwrap_or(1);
    if !(0..=10_000).contains(&scale) {
        return Err(ApiError::field(
            "InvalidOption",
            "scale",
            "scale must be 0..10000",
        ));
    }
    let spec = ServiceSpec {
        name,
        launch_config: lc,
        scale: u32::try_from(scale).unwrap_or(1),
        start_on_create: f
            .get("startOnCreate")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        retain_ip: f.get("retainIp").and_then(Value::as_bool).unwrap_or(false),
        ..ServiceSpec::default()
    };
    let r = service_row(cx, project, &stack, &spec)?;
    cx.app.store.commit(std::slice::from_ref(&r))?;
    cx.app.kick.notify_one();
    Ok(render::resource(cx.base, &r))
}

/// The spec stored in a service row.
pub fn spec_of(r: &Resource, field: &str) -> Option<ServiceSpec> {
    serde_json::from_value(r.data.get(field)?.clone()).ok()
}

/// `?action=upgrade` with `{inServiceStrategy: {launchConfig, batchSize,
/// intervalMillis, startFirst}}`: keep the old spec, store the new one.
pub fn start_upgrade(cx: &Ctx<'_>, r: &mut Resource) -> Result<(), ApiError> {
    let body: Value = if cx.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&cx.body)
            .map_err(|e| ApiError::new(400, "InvalidBodyContent", e.to_string()))?
    };
    let st = body
        .get("inServiceStrategy")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ApiError::field(
                "MissingRequired",
                "inServiceStrategy",
                "upgrade needs inServiceStrategy",
            )
        })?;
    let old = spec_of(r, "_spec")
        .ok_or_else(|| ApiError::new(422, "InvalidState", "service has no launch config"))?;
    let mut new = old.clone();
    if let Some(lc) = st.get("launchConfig") {
        new.launch_config = launch_config_from(lc)?;
    }
    let int = |k: &str| st.get(k).and_then(Value::as_u64);
    new.upgrade_strategy.batch_size = int("batchSize")
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
        .max(1);
    new.upgrade_strategy.interval_millis = int("intervalMillis").unwrap_or(2000);
    new.upgrade_strategy.start_first = st
        .get("startFirst")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let enc = |s: &ServiceSpec| serde_json::to_value(s).unwrap_or(Value::Null);
    r.set(
        "upgrade",
        json!({ "inServiceStrategy": Value::Object(st.clone()) }),
    );
    r.set(
        "previousLaunchConfig",
        launch_config_json(&old.launch_config),
    );
    r.set("launchConfig", launch_config_json(&new.launch_config));
    r.set("_prevSpec", enc(&old));
    r.set("_spec", enc(&new));
    let gen = r
        .data
        .get("_generation")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    r.set("_prevGeneration", gen);
    r.set("_generation", gen + 1);
    r.set("_lastBatch", 0);
    Ok(())
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
