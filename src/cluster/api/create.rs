//! `POST` to a collection: creating projects, accounts, registration
//! tokens, API keys and container instances (hosts come only from
//! registration).

use serde_json::{json, Value};

use super::ctx::{name_taken, Ctx};
use super::schema::{self, Op};
use super::{render, ApiError, Principal};
use crate::cluster::auth;
use crate::cluster::model::{self, format_id, now_ms, parse_id, Kind, Resource, DEFAULT_PROJECT};
use crate::cluster::store::Scope;

fn str_field<'a>(f: &'a serde_json::Map<String, Value>, k: &str) -> Option<&'a str> {
    f.get(k).and_then(Value::as_str)
}

/// Create a resource of `kind` in the caller's scope; returns it rendered.
pub fn create(cx: &Ctx<'_>, p: Principal, kind: Kind, sc: Option<u64>) -> Result<Value, ApiError> {
    let f = schema::decode(schema::fields(kind), Op::Create, &cx.body)?;
    let store = &cx.app.store;
    let project = sc.unwrap_or(DEFAULT_PROJECT);
    match kind {
        Kind::Project | Kind::Account => {
            if p != Principal::Admin {
                return Err(ApiError::forbidden());
            }
            super::services::check_project_fields(&f)?;
            super::services::check_project_subnet(store.as_ref(), 0, &f)?;
            let name = str_field(&f, "name").unwrap_or_default();
            if name_taken(cx, kind, None, name, 0)? {
                return Err(ApiError::field(
                    "NotUnique",
                    "name",
                    format!("name {name:?} is taken"),
                ));
            }
            let mut r = Resource::new(kind, store.allocate(kind)?, 0, "active");
            r.data = f;
            if kind == Kind::Project && !r.data.contains_key("subnet") {
                r.set("subnet", super::services::free_subnet(store.as_ref())?);
            }
            if kind == Kind::Project && !r.data.contains_key("servicesPortRange") {
                r.set(
                    "servicesPortRange",
                    crate::cluster::plan::launch::default_port_range(),
                );
            }
            r.set("kind", kind.type_name());
            store.commit(std::slice::from_ref(&r))?;
            cx.app.feed.poke();
            Ok(render::resource(cx.base, &r))
        }
        Kind::Host | Kind::AgentKey => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "hosts are added by registering an agent with a registration token",
        )),
        Kind::RegistrationToken => {
            let mut r = Resource::new(kind, store.allocate(kind)?, project, "active");
            let mut token = auth::random_token(40);
            if let Some((_, hash)) = &cx.app.config.tls_ca {
                // The CA pin rides in the token: `<secret>.<ca-sha256>`.
                token = format!("{token}.{hash}");
            }
            let public = cx.app.config.advertise_url.clone().unwrap_or_else(|| {
                cx.base
                    .trim_end_matches("/v1")
                    .trim_end_matches("/v2-beta")
                    .to_string()
            });
            let url = format!("{}/v1/scripts/{token}", public.trim_end_matches('/'));
            if let Some(ttl) = f.get("expiresInSeconds").and_then(Value::as_i64) {
                r.set(
                    "expiresAt",
                    now_ms().saturating_add(ttl.saturating_mul(1000)),
                );
            }
            r.data.extend(f);
            r.set("token", token);
            r.set("registrationUrl", url.clone());
            // Rancher's Add Host line, for any Linux machine with Docker
            // (the script fetches `ros` from this server); a ros node joins
            // with `ros.cluster` in its cloud-config instead.
            let pin = cx.app.config.tls_ca.as_ref().map(|(_, h)| h.as_str());
            r.set("command", super::agent_api::add_host_command(&url, pin));
            r.set("image", format!("ros:{}", crate::paths::VERSION));
            store.commit(std::slice::from_ref(&r))?;
            cx.app.feed.poke();
            Ok(render::resource(cx.base, &r))
        }
        Kind::ApiKey => {
            let project = match str_field(&f, "accountId").and_then(|a| parse_id(Kind::Project, a))
            {
                Some(a) if sc.is_some_and(|s| s != a) => {
                    return Err(ApiError::field(
                        "InvalidReference",
                        "accountId",
                        "not your project",
                    ))
                }
                Some(a) => a,
                None => project,
            };
            if store
                .get(Kind::Project, project)?
                .filter(|r| !r.is_removed())
                .is_none()
            {
                return Err(ApiError::field(
                    "InvalidReference",
                    "accountId",
                    "no such project",
                ));
            }
            let mut r = Resource::new(kind, store.allocate(kind)?, project, "active");
            let secret = auth::random_token(40);
            if let Some(ttl) = f.get("expiresInSeconds").and_then(Value::as_i64) {
                // An expired key is refused like a revoked one.
                r.set(
                    "expiresAt",
                    now_ms().saturating_add(ttl.saturating_mul(1000)),
                );
            }
            r.data.extend(f);
            r.data.remove("accountId");
            r.set("publicValue", auth::access_key());
            r.set("secretValue", Value::Null);
            r.set(
                "_secretHash",
                auth::hash_secret(&secret)
                    .map_err(|_| ApiError::new(503, "HashFailed", "cannot hash secret"))?,
            );
            store.commit(std::slice::from_ref(&r))?;
            cx.app.feed.poke();
            let mut out = render::resource(cx.base, &r);
            // The secret is shown once, in this answer only.
            out["secretValue"] = json!(secret);
            Ok(out)
        }
        Kind::Container => create_container(cx, project, f),
        Kind::Stack => super::services::create_stack(cx, project, f),
        Kind::Service => super::services::create_service(cx, project, f),
        Kind::Certificate => super::certificates::create(cx, project, f),
    }
}

fn create_container(
    cx: &Ctx<'_>,
    project: u64,
    mut f: serde_json::Map<String, Value>,
) -> Result<Value, ApiError> {
    let store = &cx.app.store;
    let hosts = store.list(Kind::Host, Scope::Project(project))?;
    let usable = |h: &&Resource| h.state == "active" && !h.is_removed();
    let host = match str_field(&f, "requestedHostId") {
        Some(id) => {
            let n = parse_id(Kind::Host, id).unwrap_or(0);
            hosts
                .iter()
                .filter(usable)
                .find(|h| h.id == n)
                .ok_or_else(|| {
                    ApiError::field(
                        "InvalidReference",
                        "requestedHostId",
                        format!("no active host {id} in this project"),
                    )
                })?
        }
        None => {
            // Part 1 has no scheduler: the host with the fewest instances.
            let mut best: Option<(usize, &Resource)> = None;
            for h in hosts.iter().filter(usable) {
                if h.str("agentState") != Some("active") {
                    continue;
                }
                let n = store.count_live(Kind::Container, Scope::Host(h.id))?;
                if best.map_or(true, |(m, _)| n < m) {
                    best = Some((n, h));
                }
            }
            best.map(|(_, h)| h)
                .ok_or_else(|| ApiError::new(422, "InvalidState", "no active host to run on"))?
        }
    }
    .clone();
    let id = store.allocate(Kind::Container)?;
    let name = match str_field(&f, "name") {
        Some(n) => n.to_string(),
        None => format!("c{id}"),
    };
    if name_taken(cx, Kind::Container, Some(project), &name, 0)? {
        return Err(ApiError::field(
            "NotUnique",
            "name",
            format!("name {name:?} is taken"),
        ));
    }
    let image = str_field(&f, "imageUuid").unwrap_or_default();
    if image.trim_start_matches("docker:").is_empty() {
        return Err(ApiError::field(
            "InvalidFormat",
            "imageUuid",
            "imageUuid names no image",
        ));
    }
    let start = f
        .remove("startOnCreate")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    // Rancher's default for a container: the managed network, with an
    // address of the environment's subnet (as a service's containers).
    let managed = matches!(str_field(&f, "networkMode"), None | Some("managed"));
    let address = if managed {
        Some(crate::cluster::server::ipam::free_address(
            store.as_ref(),
            project,
            &[],
        )?)
    } else {
        None
    };
    let mut r = Resource::new(Kind::Container, id, project, "requested");
    r.host = host.id;
    r.data.extend(f);
    r.set("name", name.clone());
    r.set("hostId", host.api_id());
    match address {
        Some(Ok(ip)) => {
            r.set("networkMode", "managed");
            r.set(crate::cluster::plan::reconcile::PRIMARY_IP, ip.to_string());
        }
        // A full subnet: an error row saying so, on no host (never a
        // duplicate address, never a container off the network).
        Some(Err(why)) => {
            r.state = "error".into();
            r.host = 0;
            r.set("hostId", Value::Null);
            r.set("networkMode", "managed");
            r.set("transitioning", "error");
            r.set("transitioningMessage", why);
        }
        None => {}
    }
    r.set("desiredState", if start { "running" } else { "stopped" });
    r.set("startOnCreate", start);
    r.set("dockerName", model::docker_name(&name));
    r.set("externalId", Value::Null);
    r.set("accountId", format_id(Kind::Project, project));
    cx.app.commit(std::slice::from_ref(&r))?;
    Ok(render::resource(cx.base, &r))
}
