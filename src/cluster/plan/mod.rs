//! The orchestrator's pure parts: functions from data to data, no I/O.
//!
//! - [`lifecycle`] — service, stack and container states and actions.
//!
//! The server adapts its stored model to the small input types defined here
//! (`HostView`, `InstanceView` …) and acts on the plans they return.

pub mod lifecycle;
