//! The cluster server's HTTP API: Rancher-style resources under `/v1` (and
//! `/v2-beta` as an alias) and the agent endpoints. HTTP only: routes,
//! decoding, rendering, error mapping and auth scope; the rules live in
//! the controllers ([`crate::cluster::server`]) and the plans
//! ([`crate::cluster::plan`]).
//!
//! Request flow: [`handlers::dispatch`] parses the path into a
//! [`handlers::Route`], resolves the caller ([`access`]), decodes the body
//! against the schema ([`schema::decode`]), and calls one handler; every
//! failure is an [`ApiError`] rendered as Rancher's error JSON.

use std::sync::Arc;

use axum::routing::any;
use axum::Router;

pub use crate::cluster::server::{App, Principal, ServerConfig};

pub mod access;
mod agent_api;
pub mod audit;
pub mod certificates;
mod create;
pub mod ctx;
pub mod error;
pub mod exec;
pub mod handlers;
pub mod lb;
pub mod lb_stats;
pub mod privilege;
pub mod query;
pub mod relay;
pub mod render;
pub mod schema;
pub mod services;
pub mod subscribe;
#[cfg(test)]
mod tests;

pub use error::ApiError;

/// The router: `/v1/…` and `/v2-beta/…` to the dispatcher, `/ping`.
pub fn router(app: Arc<App>) -> Router {
    let open = app.config.open_api;
    let r = Router::new()
        .route("/ping", any(|| async { "pong" }))
        .route("/", axum::routing::get(crate::cluster::ui::index))
        .route("/ui/{name}", axum::routing::get(crate::cluster::ui::asset))
        .route("/v1/projects/{id}/subscribe", any(subscribe::subscribe))
        .route(
            "/v2-beta/projects/{id}/subscribe",
            any(subscribe::subscribe),
        )
        .route("/v1/exec/", axum::routing::get(exec::browser))
        .route("/v1/exec", axum::routing::get(exec::browser))
        .route("/v1/agent/exec/{token}", axum::routing::get(exec::agent))
        .route("/v1", any(handlers::dispatch))
        .route("/v1/", any(handlers::dispatch))
        .route("/v1/{*rest}", any(handlers::dispatch))
        .route("/v2-beta", any(handlers::dispatch))
        .route("/v2-beta/", any(handlers::dispatch))
        .route("/v2-beta/{*rest}", any(handlers::dispatch))
        .fallback(|| async { ApiError::not_found() })
        .with_state(app);
    if open {
        // Every response of an open server says so.
        r.layer(axum::middleware::map_response(
            |mut resp: axum::response::Response| async move {
                resp.headers_mut().insert(
                    INSECURE_HEADER,
                    axum::http::HeaderValue::from_static("open-api"),
                );
                resp
            },
        ))
    } else {
        r
    }
}

/// The header every response of an `--insecure-open-api` server carries.
pub const INSECURE_HEADER: &str = "X-Ros-Insecure";

/// Serve the API on `listener` (HTTPS, and plain HTTP as its policy
/// allows); the monitor and the reconcile driver run with
/// [`crate::cluster::server::serve_listener`].
pub async fn serve_on(
    app: Arc<App>,
    listener: crate::cluster::tls::listener::Listener,
) -> std::io::Result<()> {
    let svc =
        router(app).into_make_service_with_connect_info::<crate::cluster::tls::listener::Peer>();
    axum::serve(listener, svc).await
}

/// True when the request came over TLS (links then say `https://`).
pub(crate) fn is_https(ext: &axum::http::Extensions) -> bool {
    ext.get::<axum::extract::ConnectInfo<crate::cluster::tls::listener::Peer>>()
        .is_some_and(|c| c.0.tls)
}

/// The client's address.
pub(crate) fn peer_ip(ext: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| {
            ext.get::<axum::extract::ConnectInfo<crate::cluster::tls::listener::Peer>>()
                .map(|c| c.0.addr.ip())
        })
}
