//! ros — a minimal container operating system.
//!
//! One binary does every job, chosen by `argv[0]` or subcommand:
//!
//! ```text
//!  kernel ─▶ init (PID 1, src/init + src/sys: synchronous, never panics)
//!              │ mounts, modules, cmdline, state disk, hostname, user-data
//!              ├─▶ system-dockerd            (restarted with backoff)
//!              └─▶ ros sysinit (src/system)  service manager on system-docker:
//!                    network (ros netconf) → cloud-init-execute → console,
//!                    docker (user engine; up once it answers) → ntp,
//!                    syslog, cluster server / agent (src/cluster);
//!                    udev-cold once the console runs → udev
//!  operator ─▶ ros config | service | os | compose | cluster … (src/cli)
//! ```
//!
//! Data flows one way: cloud-config bytes are parsed and merged by
//! [`config`] (pure: layers in, typed [`config::CloudConfig`] and positioned
//! problems out); the engines and services act on that typed config. Every
//! path the system touches comes from [`paths`], so `--root DIR` runs any
//! part on a development machine.
//!
//! Parts:
//! - [`paths`] — well-known paths, sockets, labels and defaults.
//! - [`config`] — cloud-config schema, parsing, layering, validation,
//!   datasources.
//! - [`init`] — PID 1: boot stages as data, the reap/restart loop, shutdown.
//! - [`sys`] — PID 1's kernel calls behind a small trait (with a recording
//!   fake for tests).
//! - [`guest`] — jobs inside the system containers: netconf, console-init,
//!   cloud-init-execute, udev-settle.
//! - [`cluster`] — the orchestrator: [`cluster::plan`], its pure parts
//!   (compose, the reconciler `snapshot + now → changes` with a room per
//!   service kind, scheduling, address allocation, state machines,
//!   upgrade/scale/health plans); [`cluster::server`] (state, the write path
//!   and its wake-ups, the reconcile driver over a snapshot kept between
//!   passes, the agents' environment view); [`cluster::api`] (HTTP only);
//!   [`cluster::agent`] (a pure converge decision over an engine seam, host
//!   features: health checks, the overlay network, DNS and metadata).
//! - [`system`] — the service manager: system-dockerd, preload, services.
//! - [`cli`] — the `ros` command line (thin wrappers over the modules above).

pub mod cli;
pub mod cluster;
pub mod config;
pub mod guest;
pub mod init;
pub mod logging;
pub mod paths;
pub mod sys;
pub mod system;
