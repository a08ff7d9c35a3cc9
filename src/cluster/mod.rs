//! The orchestrator (Rancher 1.x "Cattle" style): pure planning in [`plan`].
pub mod plan;
