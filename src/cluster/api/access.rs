//! Who is calling: access control state (`localauthconfigs`) and the
//! resolution of HTTP Basic credentials to a [`Principal`].
//!
//! Secure by default: the server creates the admin account at first start
//! ([`ensure_admin`]), and every request needs the admin's user/password
//! (or a login JWT) or a project API key; agents always need their own
//! agent key, which reaches only the agent endpoints. Only
//! `--insecure-open-api` ([`crate::cluster::server::ServerConfig::open_api`])
//! runs open as Rancher did — every request acts as admin until local auth
//! is enabled.
//!
//! Failed logins are slowed per client address ([`Throttle`]); every
//! failure answers the same 401, whether or not the user name exists.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

impl LocalAuth {
    /// The stored config, if one was ever set.
    pub fn from_store(store: &dyn crate::cluster::store::Store) -> Option<LocalAuth> {
        store
            .setting(LOCAL_AUTH_KEY)
            .ok()
            .flatten()
            .and_then(|s| serde_json::from_str(&s).ok())
    }
}

/// The local auth config, if one was ever set.
pub fn local_auth(app: &App) -> Result<Option<LocalAuth>, ApiError> {
    Ok(app
        .store
        .setting(LOCAL_AUTH_KEY)?
        .and_then(|s| serde_json::from_str(&s).ok()))
}

/// The admin's user name at first start.
pub const ADMIN_USER: &str = "admin";

/// Create the admin account unless local auth was ever configured: its
/// password is `given` (hashed here; the plain value is not kept) or a
/// random one, returned so the caller shows it once. `None` when an admin
/// already existed or the given password was used.
pub fn ensure_admin(
    store: &dyn crate::cluster::store::Store,
    given: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if store.setting(LOCAL_AUTH_KEY)?.is_some() {
        return Ok(None);
    }
    let (password, generated) = match given.filter(|p| !p.is_empty()) {
        Some(p) => (p.to_string(), false),
        None => (auth::random_token(24), true),
    };
    let c = LocalAuth {
        enabled: true,
        username: ADMIN_USER.to_string(),
        password_hash: auth::hash(&password)
            .map_err(|_| ApiError::new(503, "HashFailed", "cannot hash password"))?,
    };
    let s = serde_json::to_string(&c)
        .map_err(|_| ApiError::new(503, "HashFailed", "cannot encode the admin account"))?;
    store.set_setting(LOCAL_AUTH_KEY, &s)?;
    Ok(generated.then_some(password))
}

/// Failed logins per client address: after [`Throttle::FREE`] failures
/// within [`Throttle::WINDOW`], the address must wait before its next
/// credential is checked — twice as long after each further failure (up
/// to [`Throttle::MAX_DELAY`]); attempts inside the wait are answered 429
/// with `Retry-After` and never checked, so parallel guesses gain nothing
/// and guessing a password from one address costs minutes per hundred
/// tries. The UI shows the wait.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Throttle {
    /// Failures allowed before slowing down.
    pub const FREE: u32 = 5;
    /// Failures older than this are forgotten.
    pub const WINDOW: Duration = Duration::from_secs(300);
    /// Longest delay.
    pub const MAX_DELAY: Duration = Duration::from_secs(10);

    /// How long `ip` must still wait before a credential of its is
    /// checked (zero: go ahead).
    pub fn delay(&self, ip: Option<IpAddr>) -> Duration {
        let Some(ip) = ip else {
            return Duration::ZERO;
        };
        let Ok(f) = self.failures.lock() else {
            return Duration::ZERO;
        };
        match f.get(&ip) {
            Some((n, at)) if *n >= Self::FREE && at.elapsed() < Self::WINDOW => {
                let steps = (n - Self::FREE).min(16);
                (Duration::from_millis(250) * 2u32.pow(steps))
                    .min(Self::MAX_DELAY)
                    .saturating_sub(at.elapsed())
            }
            _ => Duration::ZERO,
        }
    }

    /// The 429 for an address that must wait `d`.
    fn refuse(d: Duration) -> ApiError {
        ApiError::too_many_logins(d.as_millis().div_ceil(1000).max(1) as u64)
    }

    /// Forget every failure (tests that fail on purpose from one address).
    pub fn clear(&self) {
        if let Ok(mut f) = self.failures.lock() {
            f.clear();
        }
    }

    /// Count a failed login from `ip`.
    pub fn failed(&self, ip: Option<IpAddr>) {
        let (Some(ip), Ok(mut f)) = (ip, self.failures.lock()) else {
            return;
        };
        if f.len() > 10_000 {
            f.retain(|_, (_, at)| at.elapsed() < Self::WINDOW);
        }
        let e = f.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= Self::WINDOW {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = Instant::now();
    }
}

/// True when `header` is a Basic credential already verified (no argon2
/// needed, so no delay either).
fn is_cached(app: &App, header: &str, agent: bool) -> bool {
    auth::parse_basic(header).is_some_and(|(user, secret)| {
        let ck = if agent {
            format!("agent:{user}")
        } else {
            format!("user:{user}")
        };
        cached(app, &ck, &secret).is_some()
    })
}

/// [`resolve`] with the brute-force brake: a client address with recent
/// failures waits out its delay before an unverified credential is checked
/// (API clients get a slow answer rather than a 429 they may not retry),
/// and a refused credential counts as a failure.
pub async fn resolve_from(
    app: &App,
    header: Option<&str>,
    agent: bool,
    ip: Option<IpAddr>,
) -> Result<Principal, ApiError> {
    if let Some(h) = header {
        let d = app.throttle.delay(ip);
        if !d.is_zero() && !is_cached(app, h, agent) {
            tokio::time::sleep(d).await;
        }
    }
    let r = resolve(app, header, agent);
    if header.is_some() && matches!(&r, Err(e) if e.status == 401) {
        app.throttle.failed(ip);
    }
    r
}

/// [`login`] with the brute-force brake.
pub async fn login_from(
    app: &App,
    body: &[u8],
    ip: Option<IpAddr>,
) -> Result<serde_json::Value, ApiError> {
    let d = app.throttle.delay(ip);
    if !d.is_zero() {
        return Err(Throttle::refuse(d));
    }
    let r = login(app, body);
    if matches!(&r, Err(e) if e.status == 401) {
        app.throttle.failed(ip);
    }
    r
}

fn cached(app: &App, key: &str, secret: &str) -> Option<Principal> {
    let c = app.creds.lock().ok()?;
    let now = crate::cluster::model::now_ms();
    c.get(key)
        .filter(|(s, _, exp)| auth::same_secret(s, secret) && *exp > now)
        .map(|(_, p, _)| *p)
}

fn remember(app: &App, key: String, secret: String, p: Principal, expires: i64) {
    if let Ok(mut c) = app.creds.lock() {
        if c.len() > 10_000 {
            c.clear();
        }
        c.insert(key, (secret, p, expires));
    }
}

/// `(project, host, expiry ms)` of the active, unexpired key `user` whose
/// secret is `secret`.
fn find_key(
    app: &App,
    kind: Kind,
    user: &str,
    secret: &str,
) -> Result<Option<(u64, u64, i64)>, ApiError> {
    for k in app.store.list(kind, Scope::All)? {
        if k.state == "active" && k.str("publicValue") == Some(user) {
            let expires = k
                .data
                .get("expiresAt")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(i64::MAX);
            let ok = expires > crate::cluster::model::now_ms()
                && k.str("_secretHash")
                    .is_some_and(|h| auth::verify(secret, h));
            return Ok(ok.then_some((k.project, k.host, expires)));
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
    // The hash is checked whatever the user name, so a wrong name and a
    // wrong password take as long and answer the same.
    let pass_ok = auth::verify(pass, &cfg.password_hash);
    if user != cfg.username || !pass_ok {
        return Err(ApiError::unauthorized());
    }
    let exp = crate::cluster::model::now_ms() + JWT_TTL_MS;
    let jwt = sign_jwt(&jwt_key(app)?, user, exp / 1000);
    Ok(
        serde_json::json!({"type": "token", "jwt": jwt, "user": user,
        "userIdentity": {"login": user, "externalIdType": "rancher_id"}}),
    )
}

/// A login JWT (HS256) for `user` expiring at `exp` (seconds).
pub fn sign_jwt(key: &ring::hmac::Key, user: &str, exp: i64) -> String {
    let head = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64url(
        serde_json::json!({"sub": user, "exp": exp})
            .to_string()
            .as_bytes(),
    );
    let signing = format!("{head}.{claims}");
    let sig = ring::hmac::sign(key, signing.as_bytes());
    format!("{signing}.{}", b64url(sig.as_ref()))
}

/// True when `jwt` is signed with `key` and unexpired at `now_ms`.
/// Anything else — wrong shape, bad base64, a signature over other bytes,
/// claims that are not JSON, no or a past `exp` — is false.
pub fn jwt_valid(key: &ring::hmac::Key, jwt: &str, now_ms: i64) -> bool {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = jwt.split('.');
    let (Some(head), Some(claims), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(sig) = b64.decode(sig) else {
        return false;
    };
    let signing = &jwt[..head.len() + 1 + claims.len()];
    if ring::hmac::verify(key, signing.as_bytes(), &sig).is_err() {
        return false;
    }
    let claims = b64
        .decode(claims)
        .ok()
        .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok());
    let exp = claims.as_ref().and_then(|c| c["exp"].as_i64()).unwrap_or(0);
    exp.saturating_mul(1000) > now_ms
}

fn verify_jwt(app: &App, jwt: &str) -> Result<bool, ApiError> {
    Ok(jwt_valid(
        &jwt_key(app)?,
        jwt,
        crate::cluster::model::now_ms(),
    ))
}

/// Fuzz entry (`fuzz/fuzz_targets/credentials.rs`, and a property test):
/// every credential parser over arbitrary bytes — no panic, and no JWT
/// accepted unless it is the one really signed.
pub fn fuzz_credentials(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let _ = auth::parse_basic(&s);
    let _ = crate::cluster::agent::token_pin(&s);
    let _ = crate::cluster::agent::parse_registration_url(&s);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"fuzz-key");
    let good = sign_jwt(&key, "admin", 4_000_000_000);
    let jwt = s.strip_prefix("Bearer ").unwrap_or(&s);
    assert!(
        !jwt_valid(&key, jwt, 0) || jwt == good,
        "a JWT that was never signed was accepted: {jwt:?}"
    );
    assert!(
        !jwt_valid(&key, jwt, i64::MAX),
        "an expired JWT was accepted"
    );
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
        let (project, host, expires) =
            find_key(app, Kind::AgentKey, &user, &secret)?.ok_or_else(ApiError::unauthorized)?;
        let p = Principal::Agent { host, project };
        remember(app, ck, secret, p, expires);
        return Ok(p);
    }
    let Some(cfg) = local_auth(app)?.filter(|c| c.enabled) else {
        // No admin yet: open only when the server was told so.
        return if app.config.open_api {
            Ok(Principal::Admin)
        } else {
            Err(ApiError::unauthorized())
        };
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
    let (p, expires) = if user == cfg.username {
        if !auth::verify(&secret, &cfg.password_hash) {
            return Err(ApiError::unauthorized());
        }
        (Principal::Admin, i64::MAX)
    } else {
        let (project, _, expires) =
            find_key(app, Kind::ApiKey, &user, &secret)?.ok_or_else(ApiError::unauthorized)?;
        (Principal::Project(project), expires)
    };
    remember(app, ck, secret, p, expires);
    Ok(p)
}
