//! The request dispatcher and the resource handlers: path → [`Route`],
//! caller → scope, body → decoded fields, then create/read/update/actions.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::ctx::{name_taken, Ctx};
use super::schema::{self, Op, MAX_BODY};
use super::{access, agent_api, query, render, ApiError, App, Principal};
use crate::cluster::auth;
use crate::cluster::model::{self, format_id, now_ms, parse_id, Kind, Resource, DEFAULT_PROJECT};
use crate::cluster::store::Scope;

/// A parsed API path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/v1`.
    Root,
    /// `/v1/schemas[/name]`.
    Schemas(Option<String>),
    /// `/v1/localauthconfigs`.
    LocalAuth,
    /// `/v1/scripts/<token>`.
    Script(String),
    /// `/v1/agent/register`.
    AgentRegister,
    /// `/v1/agent/sync`.
    AgentSync,
    /// `/v1/agent/reply`: an agent answers a relayed request.
    AgentReply,
    /// `/v1/cacert`: the cluster CA (PEM), when TLS is on.
    CaCert,
    /// `/v1/token`: local-auth login.
    Login,
    /// A collection, optionally below a project.
    Collection(Option<u64>, Kind),
    /// One resource, optionally below a project.
    Item(Option<u64>, Kind, u64),
    /// A sub-resource of one resource (`containers/1i3/logs`, `hosts/1h2/pull`).
    Sub(Option<u64>, Kind, u64, String),
}

fn item(project: Option<u64>, kind: Kind, id: &str) -> Result<Route, ApiError> {
    parse_id(kind, id)
        .map(|n| Route::Item(project, kind, n))
        .ok_or_else(ApiError::not_found)
}

/// Parse the segments after `/v1`.
pub fn route(segs: &[&str]) -> Result<Route, ApiError> {
    let coll = |s: &str| Kind::from_collection(s).ok_or_else(ApiError::not_found);
    match segs {
        [] => Ok(Route::Root),
        ["schemas"] => Ok(Route::Schemas(None)),
        ["schemas", name] => Ok(Route::Schemas(Some((*name).to_string()))),
        ["localauthconfigs"] | ["localauthconfig"] => Ok(Route::LocalAuth),
        ["scripts", t] | ["projects", _, "scripts", t] => Ok(Route::Script((*t).to_string())),
        ["agent", "register"] => Ok(Route::AgentRegister),
        ["cacert"] => Ok(Route::CaCert),
        ["token"] => Ok(Route::Login),
        ["agent", "sync"] => Ok(Route::AgentSync),
        ["agent", "reply"] => Ok(Route::AgentReply),
        ["projects", p, rest @ ..] if !rest.is_empty() => {
            let pid = parse_id(Kind::Project, p).ok_or_else(ApiError::not_found)?;
            match rest {
                [c] => Ok(Route::Collection(Some(pid), coll(c)?)),
                [c, id] => item(Some(pid), coll(c)?, id),
                [c, id, sub] => sub_route(Some(pid), coll(c)?, id, sub),
                _ => Err(ApiError::not_found()),
            }
        }
        [c] => Ok(Route::Collection(None, coll(c)?)),
        [c, id] => item(None, coll(c)?, id),
        [c, id, sub] => sub_route(None, coll(c)?, id, sub),
        _ => Err(ApiError::not_found()),
    }
}

fn sub_route(project: Option<u64>, kind: Kind, id: &str, sub: &str) -> Result<Route, ApiError> {
    match (kind, sub) {
        (Kind::Container, "logs") | (Kind::Host, "pull") => match item(project, kind, id)? {
            Route::Item(p, k, n) => Ok(Route::Sub(p, k, n, sub.to_string())),
            _ => Err(ApiError::not_found()),
        },
        _ => Err(ApiError::not_found()),
    }
}

/// The entry point of every `/v1` and `/v2-beta` request.
pub async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost")
        .to_string();
    let path = req.uri().path().to_string();
    let prefix = if path.starts_with("/v2-beta") {
        "/v2-beta"
    } else {
        "/v1"
    };
    let scheme = if req.extensions().get::<super::Https>().is_some() {
        "https"
    } else {
        "http"
    };
    let base = format!("{scheme}://{host}{prefix}");
    let no_challenge = req
        .headers()
        .get("X-API-No-Challenge")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    let mut resp = match handle(&app, &base, prefix, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if no_challenge {
        // Rancher's UI asks for no Basic challenge (no browser popup).
        resp.headers_mut().remove(header::WWW_AUTHENTICATE);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/schemas")) {
        resp.headers_mut().insert("X-API-Schemas", v);
    }
    resp
}

async fn handle(app: &App, base: &str, prefix: &str, req: Request) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let query = Query::<Vec<(String, String)>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .map_err(|_| ApiError::new(400, "InvalidFormat", "query string is not valid"))?;
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix(prefix).unwrap_or("");
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let route = route(&segs)?;
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                413,
                "MaxLimitExceeded",
                format!("request body larger than {MAX_BODY} bytes"),
            )
        })?;
    let cx = Ctx {
        app,
        base,
        query,
        body,
    };
    let auth = auth.as_deref();
    match (route, method) {
        (Route::Script(token), Method::GET) => agent_api::script(&cx, &token),
        (Route::AgentRegister, Method::POST) => agent_api::register(&cx).await,
        (Route::AgentSync, Method::POST) => {
            let p = access::resolve(app, auth, true)?;
            agent_api::sync(&cx, p).await
        }
        (Route::AgentReply, Method::POST) => {
            let p = access::resolve(app, auth, true)?;
            super::relay::reply(&cx, p)
        }
        (Route::Login, Method::POST) => ok(StatusCode::CREATED, access::login(app, &cx.body)?),
        (Route::CaCert, Method::GET) => match &app.config.tls_ca {
            Some((pem, _)) => Ok((
                [(header::CONTENT_TYPE, "application/x-pem-file")],
                pem.clone(),
            )
                .into_response()),
            None => Err(ApiError::not_found()),
        },
        (
            Route::Script(_)
            | Route::AgentRegister
            | Route::AgentSync
            | Route::AgentReply
            | Route::CaCert
            | Route::Login,
            _,
        ) => Err(ApiError::method()),
        (Route::LocalAuth, m) => local_auth(&cx, auth, m).await,
        (route, m) => {
            let p = access::resolve(app, auth, false)?;
            if matches!(p, Principal::Agent { .. }) {
                return Err(ApiError::forbidden());
            }
            resource_route(&cx, p, route, m).await
        }
    }
}

fn ok(status: StatusCode, v: Value) -> Result<Response, ApiError> {
    Ok((status, axum::Json(v)).into_response())
}

async fn local_auth(cx: &Ctx<'_>, auth: Option<&str>, m: Method) -> Result<Response, ApiError> {
    let p = access::resolve(cx.app, auth, false)?;
    if p != Principal::Admin {
        return Err(ApiError::forbidden());
    }
    let show = |c: &access::LocalAuth| {
        json!({"id": "localauthconfig", "type": "localAuthConfig", "links": {}, "actions": {},
               "enabled": c.enabled, "username": c.username, "password": null,
               "accessMode": "unrestricted"})
    };
    match m {
        Method::GET => {
            let c = access::local_auth(cx.app)?.unwrap_or_default();
            ok(
                StatusCode::OK,
                json!({"type": "collection", "resourceType": "localAuthConfig",
                                      "data": [show(&c)]}),
            )
        }
        Method::POST | Method::PUT => {
            let f = schema::decode(schema::LOCAL_AUTH, Op::Create, &cx.body)?;
            let password = f
                .get("password")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if password.len() < 4 {
                return Err(ApiError::field(
                    "MinLengthExceeded",
                    "password",
                    "password is too short",
                ));
            }
            let c = access::LocalAuth {
                enabled: f.get("enabled").and_then(Value::as_bool).unwrap_or(true),
                username: f
                    .get("username")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                password_hash: auth::hash(password)
                    .map_err(|_| ApiError::new(503, "HashFailed", "cannot hash password"))?,
            };
            let _g = cx.app.write.lock().await;
            let s = serde_json::to_string(&c).unwrap_or_default();
            cx.app.store.set_setting(access::LOCAL_AUTH_KEY, &s)?;
            cx.app.forget_creds();
            ok(StatusCode::CREATED, show(&c))
        }
        _ => Err(ApiError::method()),
    }
}

/// The project a caller works in: `None` means every project (admin, no
/// project in the path).
fn scope(p: Principal, path_project: Option<u64>) -> Result<Option<u64>, ApiError> {
    match (p, path_project) {
        (Principal::Admin, pp) => Ok(pp),
        (Principal::Project(mine), Some(pp)) if pp != mine => Err(ApiError::not_found()),
        (Principal::Project(mine), _) => Ok(Some(mine)),
        (Principal::Agent { .. }, _) => Err(ApiError::forbidden()),
    }
}

fn live_project(cx: &Ctx<'_>, id: u64) -> Result<Resource, ApiError> {
    cx.app
        .store
        .get(Kind::Project, id)?
        .filter(|r| !r.is_removed())
        .ok_or_else(ApiError::not_found)
}

async fn resource_route(
    cx: &Ctx<'_>,
    p: Principal,
    route: Route,
    m: Method,
) -> Result<Response, ApiError> {
    match route {
        Route::Root => ok(StatusCode::OK, root(cx.base)),
        Route::Schemas(None) => ok(StatusCode::OK, schema::schemas(cx.base)),
        Route::Schemas(Some(n)) => ok(
            StatusCode::OK,
            schema::schema(cx.base, &n).ok_or_else(ApiError::not_found)?,
        ),
        Route::Collection(pp, kind) => {
            let sc = scope(p, pp)?;
            if let Some(pid) = pp {
                live_project(cx, pid)?;
            }
            if kind == Kind::Account && p != Principal::Admin {
                return Err(ApiError::forbidden());
            }
            match m {
                Method::GET => list(cx, kind, sc),
                Method::POST => {
                    let _g = cx.app.write.lock().await;
                    let r = super::create::create(cx, p, kind, sc)?;
                    ok(StatusCode::CREATED, r)
                }
                _ => Err(ApiError::method()),
            }
        }
        Route::Item(pp, kind, id) => {
            let sc = scope(p, pp)?;
            if let Some(pid) = pp {
                live_project(cx, pid)?;
            }
            if kind == Kind::Account && p != Principal::Admin {
                return Err(ApiError::forbidden());
            }
            let _g = match m {
                Method::GET => None,
                _ => Some(cx.app.write.lock().await),
            };
            let r = visible(cx, kind, id, sc)?;
            let action = cx
                .query
                .iter()
                .find(|(k, _)| k == "action")
                .map(|(_, v)| v.clone());
            match (m, action) {
                (Method::GET, _) => ok(StatusCode::OK, render::resource(cx.base, &r)),
                (Method::PUT, _) => ok(StatusCode::OK, update(cx, r)?),
                (Method::DELETE, _) => match model::transition(kind, &r.state, "remove") {
                    Ok(_) => ok(StatusCode::OK, act(cx, r, "remove")?),
                    Err(_) => Err(ApiError::new(
                        422,
                        "InvalidState",
                        format!(
                            "{} {} cannot be removed while {}",
                            kind.type_name(),
                            r.api_id(),
                            r.state
                        ),
                    )),
                },
                (Method::POST, Some(a)) => match model::transition(kind, &r.state, &a) {
                    Ok(_) => ok(StatusCode::OK, act(cx, r, &a)?),
                    Err(model::Refused::NotNow) => Err(ApiError::new(
                        405,
                        "ActionNotAvailable",
                        format!("action {a} is not available while {}", r.state),
                    )),
                    Err(model::Refused::Unknown) => Err(ApiError::new(
                        422,
                        "InvalidAction",
                        format!("no action {a:?}"),
                    )),
                },
                _ => Err(ApiError::method()),
            }
        }
        Route::Sub(pp, kind, id, sub) => {
            let sc = scope(p, pp)?;
            if let Some(pid) = pp {
                live_project(cx, pid)?;
            }
            let r = visible(cx, kind, id, sc)?;
            match (kind, sub.as_str(), m) {
                (Kind::Container, "logs", Method::GET) => super::relay::logs(cx, &r).await,
                (Kind::Host, "pull", Method::POST) => super::relay::pull(cx, &r).await,
                _ => Err(ApiError::method()),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

fn root(base: &str) -> Value {
    let mut links = Map::new();
    links.insert("self".into(), json!(base));
    links.insert("schemas".into(), json!(format!("{base}/schemas")));
    for k in Kind::ALL.into_iter().filter(|k| *k != Kind::AgentKey) {
        links.insert(k.collection(), json!(format!("{base}/{}", k.collection())));
    }
    json!({"id": "v1", "type": "apiVersion", "links": links, "actions": {}})
}

/// A resource the caller may see, or 404.
fn visible(cx: &Ctx<'_>, kind: Kind, id: u64, sc: Option<u64>) -> Result<Resource, ApiError> {
    let r = cx
        .app
        .store
        .get(kind, id)?
        .ok_or_else(ApiError::not_found)?;
    let mine = match (kind, sc) {
        (_, None) => true,
        (Kind::Project, Some(p)) => r.id == p,
        (_, Some(p)) => r.project == p,
    };
    if mine {
        Ok(r)
    } else {
        Err(ApiError::not_found())
    }
}

fn list(cx: &Ctx<'_>, kind: Kind, sc: Option<u64>) -> Result<Response, ApiError> {
    let q = query::parse(&cx.query)?;
    let rows = match (kind, sc) {
        (Kind::Project, Some(p)) => cx.app.store.get(Kind::Project, p)?.into_iter().collect(),
        (Kind::Project | Kind::Account, None) | (Kind::Account, Some(_)) => {
            cx.app.store.list(kind, Scope::All)?
        }
        (_, Some(p)) => cx.app.store.list(kind, Scope::Project(p))?,
        (_, None) => cx.app.store.list(kind, Scope::All)?,
    };
    let (page, total) = query::apply(&q, rows, render::field);
    let page: Vec<Value> = page.iter().map(|r| render::resource(cx.base, r)).collect();
    let coll_url = match sc {
        Some(p) if kind.project_scoped() => {
            format!(
                "{}/projects/{}/{}",
                cx.base,
                format_id(Kind::Project, p),
                kind.collection()
            )
        }
        _ => format!("{}/{}", cx.base, kind.collection()),
    };
    let self_url = if cx.query.is_empty() {
        coll_url.clone()
    } else {
        let qs: Vec<String> = cx
            .query
            .iter()
            .filter(|(k, _)| k != "marker")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{coll_url}?{}", qs.join("&"))
    };
    let (pagination, sort, filters) = query::envelope(&q, total, &self_url);
    let create = matches!(
        kind,
        Kind::Project
            | Kind::Account
            | Kind::RegistrationToken
            | Kind::ApiKey
            | Kind::Container
            | Kind::Stack
            | Kind::Service
    );
    ok(
        StatusCode::OK,
        json!({
            "type": "collection", "resourceType": kind.type_name(),
            "links": {"self": self_url},
            "createTypes": if create { json!({kind.type_name(): coll_url}) } else { json!({}) },
            "actions": {}, "pagination": pagination, "sort": sort, "filters": filters,
            "data": page,
        }),
    )
}

fn update(cx: &Ctx<'_>, mut r: Resource) -> Result<Value, ApiError> {
    if r.is_removed() {
        return Err(ApiError::new(
            422,
            "InvalidState",
            "a removed resource cannot be updated",
        ));
    }
    let f = schema::decode(schema::fields(r.kind), Op::Update, &cx.body)?;
    if r.kind == Kind::Project {
        super::services::check_project_fields(&f)?;
        super::services::check_project_subnet(cx.app.store.as_ref(), r.id, &f)?;
    }
    if let Some(name) = f.get("name").and_then(Value::as_str) {
        let project = r.kind.project_scoped().then_some(r.project);
        if matches!(r.kind, Kind::Project | Kind::Container)
            && name_taken(cx, r.kind, project, name, r.id)?
        {
            return Err(ApiError::field(
                "NotUnique",
                "name",
                format!("name {name:?} is taken"),
            ));
        }
    }
    for (k, v) in f {
        r.data.insert(k, v);
    }
    if r.kind == Kind::Service {
        super::services::sync_scale(&mut r);
    }
    cx.app.commit(std::slice::from_ref(&r))?;
    Ok(render::resource(cx.base, &r))
}

/// Apply an action already checked against the state table.
fn act(cx: &Ctx<'_>, mut r: Resource, action: &str) -> Result<Value, ApiError> {
    let to = model::transition(r.kind, &r.state, action)
        .map_err(|_| ApiError::new(405, "ActionNotAvailable", "action not available"))?;
    if r.kind == Kind::Project && r.id == DEFAULT_PROJECT && action == "remove" {
        return Err(ApiError::new(
            422,
            "InvalidState",
            "the Default project cannot be removed",
        ));
    }
    let mut rows = Vec::new();
    r.state = to.to_string();
    if r.state == "removed" {
        r.set("removed", render::rfc3339(now_ms()));
    }
    match (r.kind, action) {
        (Kind::Container, _) => {
            if let Some(d) = crate::cluster::server::actions::container_desired(action) {
                r.set("desiredState", d);
            }
        }
        (Kind::Service, "upgrade") => super::services::start_upgrade(cx, &mut r)?,
        (Kind::Service, "restart") => super::services::start_restart(cx, &mut r)?,
        _ => rows = crate::cluster::server::actions::cascade(cx.app.store.as_ref(), &r, action)?,
    }
    rows.push(r.clone());
    cx.app.commit(&rows)?;
    if matches!(r.kind, Kind::ApiKey | Kind::Host | Kind::RegistrationToken) {
        cx.app.forget_creds();
    }
    Ok(render::resource(cx.base, &r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        assert_eq!(route(&[]), Ok(Route::Root));
        assert_eq!(
            route(&["projects"]),
            Ok(Route::Collection(None, Kind::Project))
        );
        assert_eq!(
            route(&["projects", "1a5"]),
            Ok(Route::Item(None, Kind::Project, 5))
        );
        assert_eq!(
            route(&["projects", "1a5", "hosts", "1h2"]),
            Ok(Route::Item(Some(5), Kind::Host, 2))
        );
        assert_eq!(route(&["scripts", "abc"]), Ok(Route::Script("abc".into())));
        assert!(route(&["projects", "1h5", "hosts"]).is_err());
        assert!(route(&["hosts", "1a1"]).is_err());
        assert!(route(&["nope"]).is_err());
    }
}
