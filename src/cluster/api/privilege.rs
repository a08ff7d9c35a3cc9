//! Privileged launch options: `privileged`, `capAdd`, host `pidMode`/
//! `ipcMode`/`networkMode`, bind mounts of host paths and `devices` reach
//! root on the hosts, so only the admin and API keys created with
//! `privileged: true` (by the admin) may ask for them; a plain environment
//! key gets a 403 naming the field. Checked on every path a launch config
//! enters: containers, services, stacks (compose text) and upgrades.

use serde_json::{Map, Value};

use super::{ApiError, App, Principal};
use crate::cluster::auth;
use crate::cluster::model::Kind;
use crate::cluster::plan::compose::fields::{NetworkMode, VolumeKind};
use crate::cluster::plan::compose::{self, LaunchConfig, Source};
use crate::cluster::store::Scope;

/// The first privileged option `lc` asks for, by its API field name.
pub fn privileged_field(lc: &LaunchConfig) -> Option<&'static str> {
    let host = |m: &Option<String>| m.as_deref() == Some("host");
    if lc.run.privileged {
        Some("privileged")
    } else if !lc.run.cap_add.is_empty() {
        Some("capAdd")
    } else if host(&lc.run.pid_mode) {
        Some("pidMode")
    } else if host(&lc.run.ipc_mode) {
        Some("ipcMode")
    } else if lc.network_mode == NetworkMode::Host {
        Some("networkMode")
    } else if lc.data_volumes.iter().any(|v| v.kind == VolumeKind::Bind) {
        Some("dataVolumes")
    } else if !lc.run.devices.is_empty() {
        Some("devices")
    } else {
        None
    }
}

/// 403 naming `field`.
pub fn refused(field: &str) -> ApiError {
    ApiError {
        status: 403,
        code: "PermissionDenied",
        message: format!(
            "{field} is a privileged launch option: only the admin or an API key created with privileged: true may use it"
        ),
        field: Some(field.to_string()),
        retry_after: None,
    }
}

/// True when the caller may use privileged options: the admin, or an API
/// key marked `privileged` (its secret was verified already).
pub fn may_escalate(app: &App, p: Principal, header: Option<&str>) -> Result<bool, ApiError> {
    match p {
        Principal::Admin => Ok(true),
        Principal::Agent { .. } => Ok(false),
        Principal::Project(_) => {
            let Some((user, _)) = header.and_then(auth::parse_basic) else {
                return Ok(false);
            };
            Ok(app.store.list(Kind::ApiKey, Scope::All)?.iter().any(|k| {
                k.state == "active"
                    && k.str("publicValue") == Some(user.as_str())
                    && k.data.get("privileged").and_then(Value::as_bool) == Some(true)
            }))
        }
    }
}

/// The privileged field a create or upgrade body of `kind` asks for.
/// Bodies that do not parse pass here; the handler reports them.
pub fn requested(kind: Kind, name: &str, f: &Map<String, Value>) -> Option<&'static str> {
    let lc = |v: Option<&Value>| {
        v.filter(|v| !v.is_null())
            .and_then(|v| super::services::launch_config_from(v).ok())
            .and_then(|lc| privileged_field(&lc))
    };
    match kind {
        Kind::Container => {
            (f.get("networkMode").and_then(Value::as_str) == Some("host")).then_some("networkMode")
        }
        Kind::Service => lc(f.get("launchConfig")).or_else(|| {
            f.get("secondaryLaunchConfigs")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find_map(|v| lc(Some(v))))
        }),
        Kind::Stack => {
            // Parsed as create_stack will: variables substituted from the
            // request's `environment` first.
            let env = f.get("environment").cloned().unwrap_or(Value::Null);
            let sub = |file, t| super::services::substitute(&env, file, t).ok();
            let docker = sub("docker-compose.yml", f.get("dockerCompose")?.as_str()?)?;
            let rancher = match f.get("rancherCompose").and_then(Value::as_str) {
                Some(t) => Some(sub("rancher-compose.yml", t)?),
                None => None,
            };
            let rancher = rancher.as_ref().map(|t| Source {
                name: "rancher-compose.yml",
                bytes: t.as_bytes(),
            });
            let src = Source {
                name: "docker-compose.yml",
                bytes: docker.as_bytes(),
            };
            let spec = compose::parse_stack(name, src, rancher).ok()?;
            spec.services
                .iter()
                .find_map(|s| privileged_field(&s.launch_config))
        }
        _ => None,
    }
}

/// The privileged field a request asks for, if any: a create (`POST` to a
/// collection), a service upgrade (`?action=upgrade`), or an API key
/// marked `privileged`.
pub fn needed(
    route: &super::handlers::Route,
    method: &axum::http::Method,
    query: &[(String, String)],
    body: &[u8],
) -> Option<&'static str> {
    use super::handlers::Route;
    if method != axum::http::Method::POST {
        return None;
    }
    let f: Map<String, Value> = serde_json::from_slice(body).ok()?;
    match route {
        Route::Collection(_, Kind::ApiKey) => {
            (f.get("privileged").and_then(Value::as_bool) == Some(true)).then_some("privileged")
        }
        Route::Collection(_, kind) => {
            let name = f.get("name").and_then(Value::as_str).unwrap_or("stack");
            requested(*kind, name, &f)
        }
        Route::Item(_, Kind::Service, _)
            if query.iter().any(|(k, v)| k == "action" && v == "upgrade") =>
        {
            let st = f.get("inServiceStrategy").and_then(Value::as_object)?;
            requested(Kind::Service, "", st)
        }
        _ => None,
    }
}
