//! The embedded orchestrator, in the style of Rancher 1.x "Cattle".
//!
//! ```text
//!  ros cluster server ── api (axum, /v1 + /v2-beta) ── store (SQLite)
//!        ▲  registration, sync long-poll (protocol)
//!        │  (agent-initiated HTTP: works behind NAT)
//!  ros cluster agent ── docker (bollard, the user engine)
//!  ros cluster hosts|tokens|keys|projects ── client
//! ```
//!
//! - [`model`]: kinds, ids, resources, state machines (pure).
//! - [`store`]: the store trait and its SQLite implementation.
//! - [`server`]: shared server state, the write path and its wake-ups,
//!   the heartbeat monitor, the reconcile driver.
//! - [`api`]: the HTTP API: routes, decoding, rendering, auth scope.
//! - [`protocol`]: agent ⇄ server messages and the transport choice.
//! - [`agent`]: registration, identity, the converge loop on docker.
//! - [`client`]: a blocking HTTP client for the CLI and the agent.
//! - [`tls`]: the cluster CA, the server certificate, CA pinning.
//! - [`plan`]: pure planning — compose parsing, scheduler, lifecycles,
//!   scale, health and upgrade steps (no I/O).

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
