//! Stacks and services in the API: creating a stack from docker-compose +
//! rancher-compose text (or empty), creating a service from a Rancher
//! `launchConfig`, and the service actions that carry a body (`upgrade`).
//!
//! A service row keeps its parsed [`ServiceSpec`] in the hidden `_spec`
//! field (and `_prevSpec` during an upgrade); the reconciler
//! ([`crate::cluster::plan::reconcile`]) works only from those and the
//! container rows.

use serde_json::{json, Map, Value};

use super::ctx::{name_taken, Ctx};
use super::{render, ApiError};
use crate::cluster::model::{parse_id, Kind, Resource};
use crate::cluster::plan::compose::{self, LaunchConfig, ServiceSpec, Source};
pub use crate::cluster::plan::rows::{launch_config_json, spec_of, sync_scale};

fn str_field<'a>(f: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    f.get(k).and_then(Value::as_str)
}

/// `ports`/`expose` given as Rancher strings (`"8080:80/tcp"`, ranges
/// allowed) turned into the structured form; structured entries pass.
fn port_strings(v: &mut Value) -> Result<(), ApiError> {
    for (key, expose) in [("ports", false), ("expose", true)] {
        let Some(list) = v.get_mut(key).and_then(Value::as_array_mut) else {
            continue;
        };
        let mut out = Vec::new();
        for item in list.iter() {
            let Some(text) = item.as_str() else {
                out.push(item.clone());
                continue;
            };
            let parsed = if expose {
                compose::fields::parse_expose(text)
            } else {
                compose::fields::parse_port(text)
            };
            let specs = parsed.map_err(|(code, msg)| {
                ApiError::field(
                    code.as_str(),
                    "launchConfig",
                    format!("launchConfig.{key}: {msg}"),
                )
            })?;
            out.extend(specs.iter().map(|p| json!(p)));
        }
        *list = out;
    }
    Ok(())
}

/// `dataVolumes` given as Rancher strings (`"/src:/dst:ro"`, `"/data"`,
/// `"name:/path"`) turned into the structured form; structured entries pass.
fn volume_strings(v: &mut Value) -> Result<(), ApiError> {
    let Some(list) = v.get_mut("dataVolumes").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for item in list.iter_mut() {
        if let Some(text) = item.as_str() {
            let spec = compose::fields::parse_volume(text).map_err(|(code, msg)| {
                ApiError::field(
                    code.as_str(),
                    "launchConfig",
                    format!("launchConfig.dataVolumes: {msg}"),
                )
            })?;
            *item = json!(spec);
        }
    }
    Ok(())
}

/// A launch config from its API form (`imageUuid` or `image`, the other
/// fields as [`LaunchConfig`] names them; `ports`, `expose`, `dataVolumes`
/// as Rancher's strings; `healthCheck` as Rancher's `instanceHealthCheck`).
pub fn launch_config_from(v: &Value) -> Result<LaunchConfig, ApiError> {
    let mut v = v.clone();
    port_strings(&mut v)?;
    volume_strings(&mut v)?;
    let hc = match v.as_object_mut().and_then(|o| o.remove("healthCheck")) {
        None | Some(Value::Null) => None,
        Some(h) => Some(
            crate::cluster::plan::rows::health_check_from(&h).map_err(|m| {
                ApiError::field("InvalidFormat", "launchConfig", format!("launchConfig.{m}"))
            })?,
        ),
    };
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
    lc.health_check = hc;
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
    let state = crate::cluster::plan::lifecycle::on_create(spec.start_on_create)
        .transitioning
        .as_str();
    let mut r = Resource::new(Kind::Service, id, project, state);
    let mut spec = spec.clone();
    if spec.launch_config.version.is_none() {
        // Rancher's first launch config version.
        spec.launch_config.version = Some("0".into());
    }
    let spec = &spec;
    r.set("name", spec.name.clone());
    r.set("kind", json!(spec.kind));
    r.set("stackId", stack.api_id());
    r.set("environmentId", stack.api_id());
    r.set("launchConfig", launch_config_json(&spec.launch_config));
    r.set("scale", spec.scale);
    r.set("startOnCreate", spec.start_on_create);
    r.set("retainIp", spec.retain_ip);
    r.set("healthState", "healthy");
    r.set("upgrade", Value::Null);
    r.set("previousLaunchConfig", Value::Null);
    r.set(
        "metadata",
        if spec.metadata.is_empty() {
            Value::Null
        } else {
            json!(spec.metadata)
        },
    );
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

/// A stack's compose text with `$VAR`, `${VAR}`, `${VAR:-default}`
/// substituted from the stack's `environment` map (Rancher's answers;
/// `ros compose` sends the values of the variables its files name) and `$$`
/// turned into `$`, as the CLI does before it parses. Unset variables
/// become "". The text is stored as written.
pub(super) fn substitute(env: &Value, file: &str, text: &str) -> Result<String, ApiError> {
    if !env.is_null() && !env.is_object() {
        return Err(ApiError::field(
            "InvalidType",
            "environment",
            "environment must be a map of variable names to strings",
        ));
    }
    let done = compose::interpolate::interpolate(text, |k| {
        env.get(k).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    })
    .map_err(|e| ApiError::new(422, "InvalidFormat", format!("{file}: {e}")))?;
    Ok(done.text)
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
            let env = f.get("environment").cloned().unwrap_or(Value::Null);
            let d = substitute(&env, "docker-compose.yml", d)?;
            let r = rancher
                .as_ref()
                .and_then(Value::as_str)
                .map(|t| substitute(&env, "rancher-compose.yml", t))
                .transpose()?;
            let r = r.as_ref().map(|t| Source {
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
    set_lb_configs(cx, project, &mut rows)?;
    cx.app.commit(&rows)?;
    Ok(render::resource(cx.base, &stack))
}

/// Write `lbConfig` (with the targets' ids) on the load balancer rows
/// among `rows`, seen with the project's other services and stacks.
fn set_lb_configs(cx: &Ctx<'_>, project: u64, rows: &mut [Resource]) -> Result<(), ApiError> {
    use crate::cluster::store::Scope;
    if !rows
        .iter()
        .any(|r| spec_of(r, "_spec").is_some_and(|s| s.lb_config.is_some()))
    {
        return Ok(());
    }
    let mut services = cx.app.store.list(Kind::Service, Scope::Project(project))?;
    let mut stacks = cx.app.store.list(Kind::Stack, Scope::Project(project))?;
    let certs = super::certificates::list(cx, project)?;
    for r in rows.iter() {
        match r.kind {
            Kind::Service => services.push(r.clone()),
            Kind::Stack => stacks.push(r.clone()),
            _ => {}
        }
    }
    for r in rows.iter_mut() {
        if let Some(lb) = spec_of(r, "_spec").and_then(|s| s.lb_config) {
            super::lb::check_certificates(&lb, &certs, &super::lb::COMPOSE).map_err(|mut e| {
                // Which service of the compose files.
                e.message = format!("{}: {}", r.str("name").unwrap_or_default(), e.message);
                e
            })?;
            let sid = r.str("stackId").unwrap_or_default().to_string();
            r.set(
                "lbConfig",
                super::lb::lb_config_json(&lb, &services, &stacks, &certs, &sid),
            );
        }
    }
    Ok(())
}

/// `PUT` of a service's `lbConfig` (a rule change): checked like a create,
/// kept in the spec the agents' load balancers read.
pub fn update_lb_config(cx: &Ctx<'_>, r: &mut Resource, v: &Value) -> Result<(), ApiError> {
    use crate::cluster::store::Scope;
    let Some(mut spec) = spec_of(r, "_spec") else {
        return Err(ApiError::field(
            "InvalidOption",
            "lbConfig",
            "not a load balancer service",
        ));
    };
    if spec.kind != compose::ServiceKind::LoadBalancerService {
        return Err(ApiError::field(
            "InvalidOption",
            "lbConfig",
            "lbConfig is only for a loadBalancerService",
        ));
    }
    let services = cx
        .app
        .store
        .list(Kind::Service, Scope::Project(r.project))?;
    let stacks = cx.app.store.list(Kind::Stack, Scope::Project(r.project))?;
    let sid = r.str("stackId").unwrap_or_default().to_string();
    let certs = super::certificates::list(cx, r.project)?;
    let lb = super::lb::lb_config_from(v, &services, &stacks, &certs, &sid)?;
    r.set(
        "lbConfig",
        super::lb::lb_config_json(&lb, &services, &stacks, &certs, &sid),
    );
    spec.lb_config = Some(lb);
    r.set(
        "_spec",
        serde_json::to_value(&spec).map_err(|_| ApiError::new(422, "InvalidFormat", "bad spec"))?,
    );
    Ok(())
}

/// `POST /services`: a service in an existing stack from a `launchConfig`.
pub fn create_service(
    cx: &Ctx<'_>,
    project: u64,
    f: Map<String, Value>,
) -> Result<Value, ApiError> {
    let name = str_field(&f, "name").unwrap_or_default().to_string();
    // `/v1` clients name the stack `environmentId`.
    let stack_id = str_field(&f, "stackId")
        .or_else(|| str_field(&f, "environmentId"))
        .ok_or_else(|| ApiError::field("MissingRequired", "stackId", "stackId is required"))?;
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
    let global = crate::cluster::plan::scheduler::is_global(&lc.labels);
    // `POST /loadbalancerservices` (the collection's kind rides in the query).
    let is_lb = cx
        .query
        .iter()
        .any(|(k, v)| k == "kind" && v == "loadBalancerService");
    let lb_config = match (is_lb, f.get("lbConfig")) {
        (true, v) => {
            let stacks = cx
                .app
                .store
                .list(Kind::Stack, crate::cluster::store::Scope::Project(project))?;
            Some(super::lb::lb_config_from(
                v.unwrap_or(&json!({})),
                &live,
                &stacks,
                &super::certificates::list(cx, project)?,
                stack_id,
            )?)
        }
        (false, Some(v)) if !v.is_null() => {
            return Err(ApiError::field(
                "InvalidOption",
                "lbConfig",
                "lbConfig is for a loadBalancerService (POST /loadbalancerservices)",
            ))
        }
        (false, _) => None,
    };
    let spec = ServiceSpec {
        name,
        kind: if is_lb {
            compose::ServiceKind::LoadBalancerService
        } else {
            compose::ServiceKind::Service
        },
        lb_config,
        global,
        launch_config: lc,
        scale: u32::try_from(scale).unwrap_or(1),
        start_on_create: f
            .get("startOnCreate")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        retain_ip: f.get("retainIp").and_then(Value::as_bool).unwrap_or(false),
        metadata: f
            .get("metadata")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        ..ServiceSpec::default()
    };
    let mut rows = vec![service_row(cx, project, &stack, &spec)?];
    set_lb_configs(cx, project, &mut rows)?;
    let r = rows.remove(0);
    cx.app.commit(std::slice::from_ref(&r))?;
    Ok(render::resource(cx.base, &r))
}

fn body_json(cx: &Ctx<'_>) -> Result<Value, ApiError> {
    if cx.body.iter().all(u8::is_ascii_whitespace) {
        Ok(json!({}))
    } else {
        serde_json::from_slice(&cx.body)
            .map_err(|e| ApiError::new(400, "InvalidBodyContent", e.to_string()))
    }
}

/// A non-negative integer field of a strategy: absent → `default`;
/// anything else than a number in range is refused by name.
fn strategy_int(
    st: &Map<String, Value>,
    strategy: &str,
    key: &str,
    default: u64,
    max: u64,
) -> Result<u64, ApiError> {
    match st.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().filter(|n| *n <= max).ok_or_else(|| {
            ApiError::field(
                "InvalidOption",
                key,
                format!("{strategy}.{key} must be a whole number 0..{max}, not {v}"),
            )
        }),
    }
}

/// `?action=restart` with `{rollingRestartStrategy: {batchSize,
/// intervalMillis}}` (both optional: 1 and 0).
pub fn start_restart(cx: &Ctx<'_>, r: &mut Resource) -> Result<(), ApiError> {
    let body = body_json(cx)?;
    let empty = Map::new();
    let st = match body.get("rollingRestartStrategy") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(ApiError::field(
                "InvalidFormat",
                "rollingRestartStrategy",
                "rollingRestartStrategy must be an object",
            ))
        }
    };
    let batch = strategy_int(st, "rollingRestartStrategy", "batchSize", 1, 10_000)?.max(1);
    let interval = strategy_int(
        st,
        "rollingRestartStrategy",
        "intervalMillis",
        0,
        86_400_000,
    )?;
    let id = r
        .data
        .get("_restart")
        .and_then(|v| v.get("id"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
        + 1;
    r.set(
        "_restart",
        json!({"id": id, "batchSize": batch, "intervalMillis": interval}),
    );
    r.data.remove("_lastBatch");
    Ok(())
}

/// `?action=upgrade` with `{toServiceStrategy: {toServiceId, finalScale,
/// batchSize, intervalMillis, updateLinks}}`: move the scale from this
/// service to the target batch by batch (reconciler, `to_service_pass`).
fn start_to_service(
    cx: &Ctx<'_>,
    r: &mut Resource,
    st: &Map<String, Value>,
) -> Result<(), ApiError> {
    let spec = spec_of(r, "_spec")
        .ok_or_else(|| ApiError::new(422, "InvalidState", "service has no launch config"))?;
    if spec.global {
        return Err(ApiError::field(
            "InvalidOption",
            "toServiceStrategy",
            "a global service cannot be upgraded to another service",
        ));
    }
    let to = st
        .get("toServiceId")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::field(
                "MissingRequired",
                "toServiceId",
                "toServiceStrategy needs toServiceId",
            )
        })?;
    let target = parse_id(Kind::Service, to)
        .map(|n| cx.app.store.get(Kind::Service, n))
        .transpose()?
        .flatten()
        .filter(|t| t.project == r.project && !t.is_removed() && t.state != "removing")
        .ok_or_else(|| {
            ApiError::field(
                "InvalidReference",
                "toServiceId",
                format!("toServiceId {to}: no such service"),
            )
        })?;
    if target.id == r.id {
        return Err(ApiError::field(
            "InvalidReference",
            "toServiceId",
            "a service cannot be upgraded to itself",
        ));
    }
    if spec_of(&target, "_spec").is_some_and(|t| t.global) {
        return Err(ApiError::field(
            "InvalidOption",
            "toServiceId",
            format!("{to} is a global service"),
        ));
    }
    let scale_of = |x: &Resource| x.data.get("scale").and_then(Value::as_u64).unwrap_or(0);
    let final_scale = strategy_int(st, "toServiceStrategy", "finalScale", scale_of(r), 10_000)?;
    let batch = strategy_int(st, "toServiceStrategy", "batchSize", 1, 10_000)?.max(1);
    let interval = strategy_int(st, "toServiceStrategy", "intervalMillis", 2000, 86_400_000)?;
    let update_links = st
        .get("updateLinks")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let strategy = json!({
        "toServiceId": to, "finalScale": final_scale, "batchSize": batch,
        "intervalMillis": interval, "updateLinks": update_links,
    });
    r.set("upgrade", json!({ "toServiceStrategy": strategy }));
    let mut stored = strategy;
    stored["fromScale"] = json!(scale_of(r));
    stored["targetFromScale"] = json!(scale_of(&target));
    r.set("_toService", stored);
    r.set("_lastBatch", 0);
    Ok(())
}

/// `?action=upgrade` with `{inServiceStrategy: {launchConfig, batchSize,
/// intervalMillis, startFirst}}`: keep the old spec, store the new one.
/// With `toServiceStrategy` instead: a to-service upgrade.
pub fn start_upgrade(cx: &Ctx<'_>, r: &mut Resource) -> Result<(), ApiError> {
    let body = body_json(cx)?;
    let has = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
    if has("toServiceStrategy") && has("inServiceStrategy") {
        return Err(ApiError::field(
            "InvalidOption",
            "toServiceStrategy",
            "upgrade takes inServiceStrategy or toServiceStrategy, not both",
        ));
    }
    if let Some(ts) = body.get("toServiceStrategy").filter(|v| !v.is_null()) {
        let ts = ts.as_object().ok_or_else(|| {
            ApiError::field(
                "InvalidFormat",
                "toServiceStrategy",
                "toServiceStrategy must be an object",
            )
        })?;
        return start_to_service(cx, r, ts);
    }
    r.data.remove("_toService");
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
    // Rancher (`ServiceUpgradeValidationFilter`): an in-service upgrade
    // names what it upgrades to, and a retained IP cannot be held by the
    // old and the new container at once.
    let given = |k: &str| st.get(k).is_some_and(|v| !v.is_null());
    if !given("launchConfig") && !given("secondaryLaunchConfigs") {
        return Err(ApiError::field(
            "InvalidOption",
            "launchConfig",
            "inServiceStrategy needs a launchConfig (or secondaryLaunchConfigs)",
        ));
    }
    if old.retain_ip && st.get("startFirst").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::field(
            "InvalidOption",
            "startFirst",
            "startFirst cannot be used with retainIp (the old and the new container would share the IP)",
        ));
    }
    let mut new = old.clone();
    if let Some(lc) = st.get("launchConfig").filter(|v| !v.is_null()) {
        new.launch_config = launch_config_from(lc)?;
    }
    // Each upgrade is a new launch config version (Rancher: a UUID).
    new.launch_config.version = Some(new_version());
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
    let mut shown = st.clone();
    shown.insert(
        "launchConfig".into(),
        launch_config_json(&new.launch_config),
    );
    shown.insert(
        "previousLaunchConfig".into(),
        launch_config_json(&old.launch_config),
    );
    shown.insert("batchSize".into(), json!(new.upgrade_strategy.batch_size));
    shown.insert(
        "intervalMillis".into(),
        json!(new.upgrade_strategy.interval_millis),
    );
    shown.insert("startFirst".into(), json!(new.upgrade_strategy.start_first));
    r.set(
        "upgrade",
        json!({ "inServiceStrategy": Value::Object(shown) }),
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

/// A fresh launch config version: a random UUID (v4 layout).
fn new_version() -> String {
    let hex: String = crate::cluster::auth::random_token(64)
        .bytes()
        .map(|b| char::from(b"0123456789abcdef"[usize::from(b % 16)]))
        .take(32)
        .collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// Check a project body's managed-network `subnet` against the others:
/// it must parse, must not overlap another live environment's subnet nor
/// contain a host's agent address (the underlay), and cannot change while
/// containers of the environment hold addresses. `id` is the project being
/// updated (0 when creating). Every refusal is a 422 naming `subnet`.
pub fn check_project_subnet(
    store: &dyn crate::cluster::store::Store,
    id: u64,
    f: &Map<String, Value>,
) -> Result<(), ApiError> {
    use crate::cluster::plan::allocate::Subnet;
    use crate::cluster::plan::reconcile::{project_subnet, PRIMARY_IP};
    use crate::cluster::store::Scope;
    let Some(v) = f.get("subnet") else {
        return Ok(());
    };
    let bad = |m: String| ApiError::field("InvalidOption", "subnet", m);
    let text = v.as_str().ok_or_else(|| {
        bad(format!(
            "subnet must be a string like \"10.42.0.0/16\", got {v}"
        ))
    })?;
    let net = Subnet::parse(text).map_err(bad)?;
    for p in store.list(Kind::Project, Scope::All)? {
        if p.id == id || p.is_removed() {
            continue;
        }
        if let Ok(other) = project_subnet(Some(&p)) {
            if other.overlaps(&net) {
                return Err(bad(format!(
                    "subnet {net} overlaps environment {} ({})'s subnet {other}",
                    p.api_id(),
                    p.str("name").unwrap_or_default()
                )));
            }
        }
    }
    for h in store.list(Kind::Host, Scope::All)? {
        let ip = h
            .str("agentIpAddress")
            .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok());
        if let (false, Some(ip)) = (h.is_removed(), ip) {
            if net.contains(u32::from(ip)) {
                return Err(bad(format!(
                    "subnet {net} overlaps the hosts' network: host {} has address {ip}",
                    h.api_id()
                )));
            }
        }
    }
    if id != 0 {
        let cur = store.get(Kind::Project, id)?;
        if project_subnet(cur.as_ref()).ok() != Some(net) {
            let holding = store
                .list(Kind::Container, Scope::Project(id))?
                .iter()
                .filter(|c| !c.is_removed() && c.str(PRIMARY_IP).is_some())
                .count();
            if holding > 0 {
                return Err(bad(format!(
                    "subnet cannot change to {net} while {holding} containers of the environment hold addresses"
                )));
            }
        }
    }
    Ok(())
}

/// The subnet a new environment gets when its body names none: the first
/// 10.N.0.0/16 from 10.42 on that overlaps no other environment and holds
/// no host address.
pub fn free_subnet(store: &dyn crate::cluster::store::Store) -> Result<String, ApiError> {
    for n in 42..=254u32 {
        let text = format!("10.{n}.0.0/16");
        let mut f = Map::new();
        f.insert("subnet".into(), Value::String(text.clone()));
        if check_project_subnet(store, 0, &f).is_ok() {
            return Ok(text);
        }
    }
    Err(ApiError::field(
        "InvalidOption",
        "subnet",
        "no free 10.N.0.0/16 subnet left: set one",
    ))
}

/// Check the launch-related fields of a project body (`servicesPortRange`).
pub fn check_project_fields(f: &Map<String, Value>) -> Result<(), ApiError> {
    match f.get("servicesPortRange") {
        Some(v) => crate::cluster::plan::launch::check_port_range(v)
            .map_err(|m| ApiError::field("InvalidOption", "servicesPortRange", m)),
        None => Ok(()),
    }
}
