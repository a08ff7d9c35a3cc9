//! The embedded orchestrator, in the style of Rancher 1.x "Cattle".
//!
//! ```text
//!  HTTP ─▶ api (decode, auth scope, render) ─▶ server (App::commit: rows
//!          + wake-ups; action cascades)       ─▶ store (SQLite)
//!  server::driver: snapshot ─▶ plan::reconcile(snapshot, now) ─▶ changes
//!                  (scale, kinds, upgrades, health ─▶ placement via the
//!                   scheduler index) ─▶ one commit ─▶ wake those hosts
//!  ros cluster agent: sync long-poll ─▶ decide(desired, actual) ─▶ runtime
//!                     (bollard on the user docker) + host features
//!  ros cluster hosts|tokens|keys|projects ── client
//! ```
//!
//! - [`model`]: kinds, ids, resources, state machines (pure).
//! - [`store`]: the store trait and its SQLite implementation.
//! - [`plan`]: pure planning — compose parsing, the reconciler and its
//!   service kinds, scheduler, lifecycles, scale, health and upgrade steps
//!   (no I/O, no clock).
//! - [`server`]: shared server state, the write path and its per-host
//!   wake-ups, the heartbeat monitor, the reconcile driver.
//! - [`api`]: the HTTP API: routes, decoding, rendering, auth scope.
//! - [`protocol`]: agent ⇄ server messages and the transport choice.
//! - [`agent`]: registration, identity, the pure converge decision, the
//!   engine seam, host features.
//! - [`client`]: a blocking HTTP client for the CLI and the agent.
//! - [`tls`]: the cluster CA, the server certificate, CA pinning.

pub mod agent;
pub mod api;
pub mod auth;
pub mod client;
pub mod model;
pub mod plan;
pub mod protocol;
pub mod server;
pub mod store;
pub mod tls;
pub mod ui;
