//! The orchestrator's pure parts: functions from data to data, no I/O.
//!
//! - [`compose`] — docker-compose (v1/v2) + rancher-compose → a typed stack,
//!   every problem positioned and coded.
//! - [`lifecycle`] — service, stack and container states and actions.
//! - [`scale`] — keep a service at its scale (create, start, remove); global services.
//! - [`health`] — check results → container, service and stack health; recreate decisions.
//! - [`scheduler`] — placement of one container on a host; global services.
//! - [`upgrade`] — in-service upgrade steps, rollback, finish; volumes kept per index.
//!
//! The server adapts its stored model to the small input types defined here
//! (`HostView`, `InstanceView` …) and acts on the plans they return.

pub mod compose;
pub mod health;
pub mod lifecycle;
pub mod scale;
pub mod scheduler;
pub mod upgrade;
