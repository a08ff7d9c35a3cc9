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

const JWT_KEY: &str = "localauth.jwt.key";
/// Lifetime of a login token.
const JWT_TTL_MS: i64 = 16 * 3600 * 1000;

fn b64url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn jwt_key(app: &App) -> Result<ring::hmac::Key, ApiError> {
    let secret = match app.store.setting(JWT_KEY)? {
        Some(k) => k,
        None => {
            let k = auth::random_token(48);
            app.store.set_setting(JWT_KEY, &k)?;
            k
        }
    };
    Ok(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        secret.as_bytes(),
    ))
}

/// `POST /v1/token {code: "user:password"}`: a login JWT for the admin (the
/// Rancher UI's login), sent back as `Authorization: Bearer …`.
pub fn login(app: &App, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Login {
        code: String,
    }
    let l: Login = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(422, "InvalidBodyContent", format!("invalid body: {e}")))?;
    let cfg = local_auth(app)?
        .filter(|c| c.enabled)
        .ok_or_else(|| ApiError::new(422, "InvalidState", "access control is not enabled"))?;
    let (user, pass) = l.code.split_once(':').unwrap_or((&l.code, ""));
    if user != cfg.username || !auth::verify(pass, &cfg.password_hash) {
        return Err(ApiError::unauthorized());
    }
    let exp = crate::cluster::model::now_ms() + JWT_TTL_MS;
    let head = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64url(
        serde_json::json!({"sub": user, "exp": exp / 1000})
            .to_string()
            .as_bytes(),
    );
    let signing = format!("{head}.{claims}");
    let sig = ring::hmac::sign(&jwt_key(app)?, signing.as_bytes());
    let jwt = format!("{signing}.{}", b64url(sig.as_ref()));
    Ok(
        serde_json::json!({"type": "token", "jwt": jwt, "user": user,
        "userIdentity": {"login": user, "externalIdType": "rancher_id"}}),
    )
}

fn verify_jwt(app: &App, jwt: &str) -> Result<bool, ApiError> {
    use base64::Engine;
    let Some((signing, sig)) = jwt.rsplit_once('.') else {
        return Ok(false);
    };
    let Ok(sig) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) else {
        return Ok(false);
    };
    if ring::hmac::verify(&jwt_key(app)?, signing.as_bytes(), &sig).is_err() {
        return Ok(false);
    }
    let claims = signing
        .split_once('.')
        .and_then(|(_, c)| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
        })
        .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok());
    let exp = claims.as_ref().and_then(|c| c["exp"].as_i64()).unwrap_or(0);
    Ok(exp * 1000 > crate::cluster::model::now_ms())
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
    if let Some(jwt) = header.and_then(|h| h.strip_prefix("Bearer ")) {
        return if verify_jwt(app, jwt.trim())? {
            Ok(Principal::Admin)
        } else {
            Err(ApiError::unauthorized())
        };
    }
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
