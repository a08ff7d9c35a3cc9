//! Who is calling: access control state (`localauthconfigs`) and the
//! resolution of HTTP Basic credentials to a [`Principal`].
//!
//! A fresh install is open, as Rancher was: every request acts as admin.
//! Once local auth is enabled, a request needs the admin user/password or
//! a project API key; agents always need their own agent key.

use serde::{Deserialize, Serialize};

use super::{ApiError, App, Principal};
use crate::cluster::auth;
use crate::cluster::model::Kind;
use crate::cluster::store::Scope;

/// Setting key of the local auth config.
pub const LOCAL_AUTH_KEY: &str = "localauth";

/// The stored local auth config.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalAuth {
    /// Access control on.
    pub enabled: bool,
    /// Admin user name.
    pub username: String,
    /// argon2 PHC hash of the admin password.
    pub password_hash: String,
}

/// The local auth config, if one was ever set.
pub fn local_auth(app: &App) -> Result<Option<LocalAuth>, ApiError> {
    Ok(app
        .store
        .setting(LOCAL_AUTH_KEY)?
        .and_then(|s| serde_json::from_str(&s).ok()))
}

fn cached(app: &App, key: &str, secret: &str) -> Option<Principal> {
    let c = app.creds.lock().ok()?;
    c.get(key).filter(|(s, _)| s == secret).map(|(_, p)| *p)
}

fn remember(app: &App, key: String, secret: String, p: Principal) {
    if let Ok(mut c) = app.creds.lock() {
        if c.len() > 10_000 {
            c.clear();
        }
        c.insert(key, (secret, p));
    }
}

fn find_key(
    app: &App,
    kind: Kind,
    user: &str,
    secret: &str,
) -> Result<Option<(u64, u64)>, ApiError> {
    for k in app.store.list(kind, Scope::All)? {
        if k.state == "active" && k.str("publicValue") == Some(user) {
            let ok = k
                .str("_secretHash")
                .is_some_and(|h| auth::verify(secret, h));
            return Ok(ok.then_some((k.project, k.host)));
        }
    }
    Ok(None)
}

/// Resolve the `Authorization` header. `agent` selects the agent endpoints,
/// which accept only agent keys.
pub fn resolve(app: &App, header: Option<&str>, agent: bool) -> Result<Principal, ApiError> {
    let creds = header.and_then(auth::parse_basic);
    if agent {
        let (user, secret) = creds.ok_or_else(ApiError::unauthorized)?;
        let ck = format!("agent:{user}");
        if let Some(p) = cached(app, &ck, &secret) {
            return Ok(p);
        }
        let (project, host) =
            find_key(app, Kind::AgentKey, &user, &secret)?.ok_or_else(ApiError::unauthorized)?;
        let p = Principal::Agent { host, project };
        remember(app, ck, secret, p);
        return Ok(p);
    }
    let Some(cfg) = local_auth(app)?.filter(|c| c.enabled) else {
        return Ok(Principal::Admin);
    };
    let (user, secret) = creds.ok_or_else(ApiError::unauthorized)?;
    let ck = format!("user:{user}");
    if let Some(p) = cached(app, &ck, &secret) {
        return Ok(p);
    }
    let p = if user == cfg.username && auth::verify(&secret, &cfg.password_hash) {
        Principal::Admin
    } else {
        let (project, _) =
            find_key(app, Kind::ApiKey, &user, &secret)?.ok_or_else(ApiError::unauthorized)?;
        Principal::Project(project)
    };
    remember(app, ck, secret, p);
    Ok(p)
}
