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
    /// `/v1/projects/<id>/schemas[/name]`: collection links in the project.
    ProjectSchemas(u64, Option<String>),
    /// `/v1/localauthconfigs`.
    LocalAuth,
    /// `/v1/scripts/<token>`.
    Script(String),
    /// `/v1/scripts/<token>/ros`: this server's own `ros` binary, for the
    /// registration script.
    ScriptBinary(String),
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
    /// `/v1/auditlogs`: who changed what (admin only).
    AuditLogs,
    /// `/v1/projects/<id>/events` (or every project's, admin only): the
    /// recorded state changes, newest first.
    Events(Option<u64>),
    /// A collection, optionally below a project.
    Collection(Option<u64>, Kind),
    /// One resource, optionally below a project.
    Item(Option<u64>, Kind, u64),
    /// A sub-resource of one resource (`containers/1i3/logs`, `hosts/1h2/pull`,
    /// `loadbalancerservices/1s4/stats`).
    Sub(Option<u64>, Kind, u64, String),
}

fn item(project: Option<u64>, kind: Kind, id: &str) -> Result<Route, ApiError> {
    parse_id(kind, id)
        .or_else(|| {
            // A v1 environment id (`1e3`) names the same stack.
            (kind == Kind::Stack)
                .then(|| id.strip_prefix("1e"))
                .flatten()
                .filter(|n| !n.is_empty() && n.len() <= 18 && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0)
        })
        .map(|n| Route::Item(project, kind, n))
        .ok_or_else(ApiError::not_found)
}

/// Parse the segments after `/v1`.
pub fn route(segs: &[&str]) -> Result<Route, ApiError> {
    let coll = |s: &str| {
        Kind::from_collection(s)
            .or_else(|| service_kind(s).map(|_| Kind::Service))
            .ok_or_else(ApiError::not_found)
    };
    match segs {
        [] => Ok(Route::Root),
        ["schemas"] => Ok(Route::Schemas(None)),
        ["schemas", name] => Ok(Route::Schemas(Some((*name).to_string()))),
        ["localauthconfigs"] | ["localauthconfig"] => Ok(Route::LocalAuth),
        ["scripts", t] | ["projects", _, "scripts", t] => Ok(Route::Script((*t).to_string())),
        ["scripts", t, "ros"] | ["projects", _, "scripts", t, "ros"] => {
            Ok(Route::ScriptBinary((*t).to_string()))
        }
        ["projects", p, "schemas", rest @ ..] if rest.len() <= 1 => {
            let pid = parse_id(Kind::Project, p).ok_or_else(ApiError::not_found)?;
            Ok(Route::ProjectSchemas(
                pid,
                rest.first().map(|n| (*n).to_string()),
            ))
        }
        ["agent", "register"] => Ok(Route::AgentRegister),
        ["cacert"] => Ok(Route::CaCert),
        ["token"] => Ok(Route::Login),
        ["auditlogs"] => Ok(Route::AuditLogs),
        ["agent", "sync"] => Ok(Route::AgentSync),
        ["agent", "reply"] => Ok(Route::AgentReply),
        ["events"] => Ok(Route::Events(None)),
        ["projects", p, "events"] => Ok(Route::Events(Some(
            parse_id(Kind::Project, p).ok_or_else(ApiError::not_found)?,
        ))),
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

/// The service kind a collection segment names (`loadbalancerservices`).
fn service_kind(seg: &str) -> Option<&'static str> {
    schema::SERVICE_KINDS
        .iter()
        .find(|(_, c)| c.eq_ignore_ascii_case(seg))
        .map(|(k, _)| *k)
}

fn sub_route(project: Option<u64>, kind: Kind, id: &str, sub: &str) -> Result<Route, ApiError> {
    match (kind, sub) {
        (Kind::Container, "logs" | "exec")
        | (Kind::Host, "pull" | "instances")
        | (Kind::Stack, "services")
        | (Kind::Service, "instances" | "stats") => match item(project, kind, id)? {
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
    let scheme = if super::is_https(req.extensions()) {
        "https"
    } else {
        "http"
    };
    let base = format!("{scheme}://{host}{prefix}");
    let no_challenge = req
        .headers()
        .get("X-API-No-Challenge")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    let ip = super::peer_ip(req.extensions());
    let method = req.method().clone();
    let audited = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
        && !path.contains("/agent/");
    let who = audited.then(|| {
        super::audit::who(
            req.headers()
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok()),
        )
    });
    let mut resp = match handle(&app, &base, prefix, req, ip).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Some(who) = who {
        app.audit
            .record(who, method.as_str(), &path, resp.status().as_u16(), ip);
    }
    if no_challenge {
        // Rancher's UI asks for no Basic challenge (no browser popup).
        resp.headers_mut().remove(header::WWW_AUTHENTICATE);
    }
    // Inside a project (`/v2-beta/projects/1a5/…`), Rancher points clients
    // at the project's schemas, whose collection links stay in the project.
    let in_project = path
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix("/projects/"))
        .and_then(|r| r.split_once('/'))
        .filter(|(p, rest)| !rest.is_empty() && parse_id(Kind::Project, p).is_some())
        .map(|(p, _)| p)
        .map(|p| format!("{base}/projects/{p}/schemas"));
    let schemas_url = in_project.unwrap_or_else(|| format!("{base}/schemas"));
    if let Ok(v) = HeaderValue::from_str(&schemas_url) {
        resp.headers_mut().insert("X-API-Schemas", v);
    }
    resp
}

async fn handle(
    app: &App,
    base: &str,
    prefix: &str,
    req: Request,
    ip: Option<std::net::IpAddr>,
) -> Result<Response, ApiError> {
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
    let mut query = query;
    if let (Route::Collection(..), Some(k)) = (&route, segs.last().and_then(|s| service_kind(s))) {
        // `loadBalancerServices` & co are the services of that kind.
        if method != Method::GET && !(method == Method::POST && k == "loadBalancerService") {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{k}s are created from a stack's compose files (POST /stacks)"),
            ));
        }
        query.push(("kind".into(), k.into()));
    }
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
        (Route::ScriptBinary(token), Method::GET) => agent_api::binary(&cx, &token).await,
        (Route::AgentRegister, Method::POST) => agent_api::register(&cx).await,
        (Route::AgentSync, Method::POST) => {
            let p = access::resolve_from(app, auth, true, ip).await?;
            agent_api::sync(&cx, p).await
        }
        (Route::AgentReply, Method::POST) => {
            let p = access::resolve_from(app, auth, true, ip).await?;
            super::relay::reply(&cx, p)
        }
        (Route::Login, Method::POST) => ok(
            StatusCode::CREATED,
            access::login_from(app, &cx.body, ip).await?,
        ),
        (Route::CaCert, Method::GET) => match &app.config.tls_ca {
            Some((pem, _)) => {
                let mut r = (
                    [(header::CONTENT_TYPE, "application/x-pem-file")],
                    pem.clone(),
                )
                    .into_response();
                if let Some(v) = app
                    .config
                    .ca_proof
                    .as_deref()
                    .and_then(|p| axum::http::HeaderValue::from_str(p).ok())
                {
                    r.headers_mut().insert(crate::cluster::tls::PROOF_HEADER, v);
                }
                Ok(r)
            }
            None => Err(ApiError::not_found()),
        },
        (
            Route::Script(_)
            | Route::ScriptBinary(_)
            | Route::AgentRegister
            | Route::AgentSync
            | Route::AgentReply
            | Route::CaCert
            | Route::Login,
            _,
        ) => Err(ApiError::method()),
        (Route::AuditLogs, Method::GET) => {
            let p = access::resolve_from(app, auth, false, ip).await?;
            if p != Principal::Admin {
                return Err(ApiError::forbidden());
            }
            ok(StatusCode::OK, app.audit.collection(base))
        }
        (Route::AuditLogs, _) => Err(ApiError::method()),
        (Route::LocalAuth, m) => {
            let p = access::resolve_from(app, auth, false, ip).await?;
            local_auth(&cx, p, m).await
        }
        (route, m) => {
            let p = access::resolve_from(app, auth, false, ip).await?;
            if matches!(p, Principal::Agent { .. }) {
                return Err(ApiError::forbidden());
            }
            if let Some(field) = super::privilege::needed(&route, &m, &cx.query, &cx.body) {
                if !super::privilege::may_escalate(app, p, auth)? {
                    return Err(super::privilege::refused(field));
                }
            }
            resource_route(&cx, p, route, m).await
        }
    }
}

fn ok(status: StatusCode, v: Value) -> Result<Response, ApiError> {
    Ok((status, axum::Json(v)).into_response())
}

async fn local_auth(cx: &Ctx<'_>, p: Principal, m: Method) -> Result<Response, ApiError> {
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
            let enabled = f.get("enabled").and_then(Value::as_bool).unwrap_or(true);
            if !enabled && !cx.app.config.open_api {
                return Err(ApiError::field(
                    "InvalidOption",
                    "enabled",
                    "access control cannot be turned off on this server \
                     (only a server started with --insecure-open-api runs open)",
                ));
            }
            let c = access::LocalAuth {
                enabled,
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
        Route::Schemas(None) => ok(StatusCode::OK, schema::schemas(cx.base, cx.base)),
        Route::Schemas(Some(n)) => ok(
            StatusCode::OK,
            schema::schema(cx.base, cx.base, &n).ok_or_else(ApiError::not_found)?,
        ),
        Route::ProjectSchemas(pid, n) => {
            scope(p, Some(pid))?;
            live_project(cx, pid)?;
            let within = format!("{}/projects/{}", cx.base, format_id(Kind::Project, pid));
            match n {
                None => ok(StatusCode::OK, schema::schemas(cx.base, &within)),
                Some(n) => ok(
                    StatusCode::OK,
                    schema::schema(cx.base, &within, &n).ok_or_else(ApiError::not_found)?,
                ),
            }
        }
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
        Route::Events(pp) => {
            if m != Method::GET {
                return Err(ApiError::method());
            }
            let sc = scope(p, pp)?;
            if let Some(pid) = pp {
                live_project(cx, pid)?;
            }
            ok(StatusCode::OK, events(cx, sc)?)
        }
        Route::Sub(pp, kind, id, sub) => {
            let sc = scope(p, pp)?;
            if let Some(pid) = pp {
                live_project(cx, pid)?;
            }
            let r = visible(cx, kind, id, sc)?;
            let me = render::self_url(cx.base, &r);
            let sub_list = |child: Kind, field: &'static str| {
                let url = format!("{me}/{sub}");
                list_in(cx, child, sc, Some((field, r.api_id())), Some(url))
            };
            match (kind, sub.as_str(), m) {
                (Kind::Stack, "services", Method::GET) => sub_list(Kind::Service, "stackId"),
                (Kind::Service, "instances", Method::GET) => sub_list(Kind::Container, "serviceId"),
                (Kind::Host, "instances", Method::GET) => sub_list(Kind::Container, "hostId"),
                (Kind::Container, "logs", Method::GET) => super::relay::logs(cx, &r).await,
                (Kind::Container, "exec", Method::POST) => super::exec::create(cx, &r),
                (Kind::Host, "pull", Method::POST) => super::relay::pull(cx, &r).await,
                (Kind::Service, "stats", Method::GET) => super::lb_stats::stats(cx, &r).await,
                _ => Err(ApiError::method()),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

/// `GET …/events?since=REV&limit=N` (default and most 1000).
fn events(cx: &Ctx<'_>, project: Option<u64>) -> Result<Value, ApiError> {
    let num = |name: &str, default: u64| -> Result<u64, ApiError> {
        match cx.query.iter().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) => v.parse().map_err(|_| {
                ApiError::field(
                    "InvalidFormat",
                    name,
                    format!("{name} must be a number, got {v:?}"),
                )
            }),
        }
    };
    let since = num("since", 0)?;
    let limit = num("limit", 1000)?.clamp(1, 1000);
    let list = cx
        .app
        .store
        .events(project, since, usize::try_from(limit).unwrap_or(1000))?;
    let data: Vec<Value> = list
        .iter()
        .map(|e| {
            let mut o = e.data.clone();
            o.insert("id".into(), json!(format!("1ev{}", e.seq)));
            o.insert("type".into(), json!("resourceEvent"));
            o.insert("revision".into(), json!(e.rev));
            o.insert("created".into(), json!(render::rfc3339(e.at_ms)));
            o.insert("createdTS".into(), json!(e.at_ms));
            o.insert("resourceType".into(), json!(e.kind.type_name()));
            o.insert("resourceId".into(), json!(format_id(e.kind, e.id)));
            o.insert(
                "accountId".into(),
                json!(format_id(Kind::Project, e.project)),
            );
            Value::Object(o)
        })
        .collect();
    let revision = cx.app.store.revision()?;
    Ok(
        json!({"type": "collection", "resourceType": "resourceEvent",
              "links": {"self": format!("{}/events", cx.base)},
              "revision": revision, "data": data}),
    )
}

fn root(base: &str) -> Value {
    let mut links = Map::new();
    links.insert("self".into(), json!(base));
    links.insert("schemas".into(), json!(format!("{base}/schemas")));
    for k in Kind::ALL.into_iter().filter(|k| *k != Kind::AgentKey) {
        let c = render::collection(base, k);
        links.insert(c.clone(), json!(format!("{base}/{c}")));
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
    list_in(cx, kind, sc, None, None)
}

/// A collection, optionally only the rows whose `field` is `value` (a
/// sub-collection such as `stacks/1st3/services`, served at `url`).
fn list_in(
    cx: &Ctx<'_>,
    kind: Kind,
    sc: Option<u64>,
    only: Option<(&str, String)>,
    url: Option<String>,
) -> Result<Response, ApiError> {
    let q = query::parse(&cx.query)?;
    // Read before the rows: a client that subscribes with `since=` this
    // revision misses nothing committed after the listing.
    let revision = cx.app.store.revision()?;
    let rows = match (kind, sc) {
        (Kind::Project, Some(p)) => cx.app.store.get(Kind::Project, p)?.into_iter().collect(),
        (Kind::Project | Kind::Account, None) | (Kind::Account, Some(_)) => {
            cx.app.store.list(kind, Scope::All)?
        }
        (_, Some(p)) => cx.app.store.list(kind, Scope::Project(p))?,
        (_, None) => cx.app.store.list(kind, Scope::All)?,
    };
    let rows = match &only {
        Some((f, v)) => rows
            .into_iter()
            .filter(|r| render::field(r, f).as_ref().and_then(Value::as_str) == Some(v.as_str()))
            .collect(),
        None => rows,
    };
    let (page, total) = query::apply(&q, rows, render::field);
    let page_rows = page.clone();
    let include: Vec<&str> = cx
        .query
        .iter()
        .filter(|(k, _)| k == "include")
        .flat_map(|(_, v)| v.split(','))
        .collect();
    let mut page: Vec<Value> = page.iter().map(|r| render::resource(cx.base, r)).collect();
    if !include.is_empty() {
        for (r, out) in page_rows.iter().zip(page.iter_mut()) {
            for name in &include {
                if let Some(v) = included(cx, r, name)? {
                    out[*name] = v;
                }
            }
        }
    }
    let coll_url = match (url, sc) {
        (Some(u), _) => u,
        (None, Some(p)) if kind.project_scoped() => {
            format!(
                "{}/projects/{}/{}",
                cx.base,
                format_id(Kind::Project, p),
                render::collection(cx.base, kind)
            )
        }
        (None, _) => format!("{}/{}", cx.base, render::collection(cx.base, kind)),
    };
    let self_url = if cx.query.is_empty() {
        coll_url.clone()
    } else {
        let qs: Vec<String> = cx
            .query
            .iter()
            .filter(|(k, _)| k != "marker")
            .map(|(k, v)| format!("{}={}", query::encode(k), query::encode(v)))
            .collect();
        format!("{coll_url}?{}", qs.join("&"))
    };
    let (pagination, sort, filters) = query::envelope(&q, total, &self_url);
    // Rancher's `sortLinks`: the collection sorted by each common field.
    let plain: Vec<String> = cx
        .query
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "marker" | "sort" | "order"))
        .map(|(k, v)| format!("{}={}", query::encode(k), query::encode(v)))
        .collect();
    let mut sort_links = Map::new();
    for f in ["id", "name", "state", "created", "description", "kind"] {
        let mut qs = plain.clone();
        qs.push(format!("sort={f}"));
        sort_links.insert(f.into(), json!(format!("{coll_url}?{}", qs.join("&"))));
    }
    let create = matches!(
        kind,
        Kind::Project
            | Kind::Account
            | Kind::RegistrationToken
            | Kind::ApiKey
            | Kind::Container
            | Kind::Stack
            | Kind::Service
            | Kind::Certificate
    );
    Ok((
        StatusCode::OK,
        [(REVISION_HEADER, revision.to_string())],
        axum::Json(json!({
            "type": "collection", "resourceType": render::type_name(cx.base, kind),
            "links": {"self": self_url},
            "createTypes": if create { json!({render::type_name(cx.base, kind): coll_url}) } else { json!({}) },
            "actions": {}, "pagination": pagination, "sort": sort, "filters": filters,
            "sortLinks": sort_links,
            "data": page,
        })),
    )
        .into_response())
}

/// The header of a collection naming the store revision it was read at.
pub const REVISION_HEADER: &str = "X-Ros-Revision";

/// `include=<link>`: the linked resources of `r` embedded under the
/// link's name (`services?include=instances`), for the sub-collection
/// links; `None` for names that are not such a link of `r`.
fn included(cx: &Ctx<'_>, r: &Resource, name: &str) -> Result<Option<Value>, ApiError> {
    let (child, field) = match (r.kind, name) {
        (Kind::Service, "instances") => (Kind::Container, "serviceId"),
        (Kind::Host, "instances") => (Kind::Container, "hostId"),
        (Kind::Stack, "services") => (Kind::Service, "stackId"),
        (Kind::Container, "hosts") => {
            let host = cx.app.store.get(Kind::Host, r.host)?;
            return Ok(Some(Value::Array(
                host.iter().map(|h| render::resource(cx.base, h)).collect(),
            )));
        }
        _ => return Ok(None),
    };
    let id = r.api_id();
    let rows = cx.app.store.list(child, Scope::Project(r.project))?;
    Ok(Some(Value::Array(
        rows.iter()
            .filter(|c| render::field(c, field).as_ref().and_then(Value::as_str) == Some(&id))
            .map(|c| render::resource(cx.base, c))
            .collect(),
    )))
}

fn update(cx: &Ctx<'_>, mut r: Resource) -> Result<Value, ApiError> {
    if r.is_removed() {
        return Err(ApiError::new(
            422,
            "InvalidState",
            "a removed resource cannot be updated",
        ));
    }
    let mut f = schema::decode(schema::fields(r.kind), Op::Update, &cx.body)?;
    if r.kind == Kind::Certificate {
        super::certificates::update(cx, &mut r, f)?;
        cx.app.commit(std::slice::from_ref(&r))?;
        return Ok(render::resource(cx.base, &r));
    }
    if let Some(lb) = f.remove("lbConfig") {
        super::services::update_lb_config(cx, &mut r, &lb)?;
    }
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
    if r.kind == Kind::Certificate && action == "remove" {
        super::certificates::check_unused(cx, &r)?;
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
        assert_eq!(
            route(&["scripts", "abc", "ros"]),
            Ok(Route::ScriptBinary("abc".into()))
        );
        assert!(route(&["projects", "1h5", "hosts"]).is_err());
        assert!(route(&["hosts", "1a1"]).is_err());
        assert!(route(&["nope"]).is_err());
    }
}
