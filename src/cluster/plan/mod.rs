//! The orchestrator's pure parts: functions from data to data, no I/O,
//! no clock, no store. The server adapts its stored model to the small input
//! types defined here and acts on the plans they return.
//!
//! - [`compose`] — docker-compose (v1/v2) + rancher-compose → a typed
//!   [`compose::StackSpec`]; every problem positioned (`file:line:col: key:
//!   message`) and carrying a Rancher API code for 422 answers.
//! - [`lifecycle`] — service, stack and container states and actions with
//!   Rancher's exact names: what the API lists under `actions`, and the
//!   transitional/final state of every accepted action.
//! - [`scheduler`] — placement of one container: resources, host ports,
//!   affinity labels (hard and soft), spreading; the hosts of a global service.
//! - [`scale`] — keep a service at its scale: create (lowest free index),
//!   start, remove (failed, recreated, extras highest index first).
//! - [`health`] — check results → container health; containers → service
//!   and stack health; which unhealthy containers a strategy replaces.
//! - [`upgrade`] — in-service upgrade steps (batch, start-first, interval),
//!   rollback, finish, rolling restart, to-service scale steps; volume names
//!   per service index so data survives upgrades.
//! - [`reconcile`] — one pass: snapshot + now → changes, using all of the
//!   above; a room per service kind.
//! - `allocate` — host ports (and, next, managed-network addresses).
//! - `launch`, `rows` — launch config → container fields; stored rows ⇄
//!   typed values.
//!
//! One reconcile pass for an `active` service, as the server is expected to
//! wire it (level-triggered; every step is recomputed from the store):
//!
//! ```text
//! members (managed containers) ──▶ health::to_recreate(strategy, …) ─▶ Member.recreate
//!                              ──▶ scale::plan(scale, members, start_once)
//!                                    create ─▶ ServiceSpec::schedule_request(stack, n)
//!                                              ─▶ scheduler::place(hosts, instances, req)
//!                                                   Ok  ─▶ instance on host (ports resolved)
//!                                                   Err ─▶ instance `error`, message = reason
//!                                    start / remove ─▶ agent commands
//! upgrading: upgrade::next_step(strategy, old, new, since_last_batch) until Done
//! ```

pub(crate) mod allocate;
pub mod compose;
pub(crate) mod health;
pub(crate) mod launch;
pub(crate) mod lifecycle;
pub mod reconcile;
pub(crate) mod rows;
pub(crate) mod scale;
pub mod scheduler;
pub(crate) mod upgrade;
