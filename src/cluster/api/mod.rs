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
mod create;
pub mod ctx;
pub mod error;
pub mod handlers;
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
    Router::new()
        .route("/ping", any(|| async { "pong" }))
        .route("/", axum::routing::get(crate::cluster::ui::index))
        .route("/ui/{name}", axum::routing::get(crate::cluster::ui::asset))
        .route("/v1/projects/{id}/subscribe", any(subscribe::subscribe))
        .route(
            "/v2-beta/projects/{id}/subscribe",
            any(subscribe::subscribe),
        )
        .route("/v1", any(handlers::dispatch))
        .route("/v1/", any(handlers::dispatch))
        .route("/v1/{*rest}", any(handlers::dispatch))
        .route("/v2-beta", any(handlers::dispatch))
        .route("/v2-beta/", any(handlers::dispatch))
        .route("/v2-beta/{*rest}", any(handlers::dispatch))
        .fallback(|| async { ApiError::not_found() })
        .with_state(app)
}

/// Marks requests that arrived over TLS (links then say `https://`).
#[derive(Clone, Copy, Debug)]
pub struct Https;

/// Serve HTTPS (the same API) on `listener`; the monitor and the
/// reconcile driver run with [`crate::cluster::server::serve`].
pub async fn serve_tls(
    app: Arc<App>,
    listener: crate::cluster::tls::TlsListener,
) -> std::io::Result<()> {
    axum::serve(listener, router(app).layer(axum::Extension(Https))).await
}
