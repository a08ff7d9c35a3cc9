//! The service manager: the OS itself as containers on system-docker.
//!
//! ```text
//!  ros sysinit ─▶ dockerd (connect, or start it under --root)
//!              ─▶ preload  (docker load each archive once per content hash;
//!                           a node's system images come prebuilt: `prebuilt`)
//!              ─▶ services (ros.services + services_include, enabled)
//!              ─▶ order    (labels → checked graph, levels)
//!              ─▶ manager  (start by level, one-shots waited for, respawn,
//!                           reverse-order shutdown) ── spec ──▶ engine
//! ```
//!
//! [`engine::Engine`] is the seam: a small trait, the bollard
//! implementation [`engine::DockerEngine`], and a recording fake for unit
//! tests. Translation ([`spec`]) and ordering ([`order`]) are pure.

pub mod dockerd;
pub mod engine;
#[cfg(test)]
mod fake;
pub mod manager;
pub mod netstore;
pub mod order;
pub mod prebuilt;
pub mod preload;
pub mod services;
pub mod spec;
#[cfg(test)]
mod tests;

/// An error and its sources on one line (`a: b: c`), for logs and status.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}
