//! `ros service`: list, enable/disable/delete optional services, and
//! up/stop/restart/rm/ps/logs the system services on system-docker.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bollard::query_parameters::LogsOptions;
use clap::Subcommand;
use futures_util::StreamExt;

use crate::config::node::{parse_document, Node};
use crate::config::problem::PathSeg;
use crate::config::{disk, merge, validate, CloudConfig};
use crate::paths::Paths;
use crate::system::engine::DockerEngine;
use crate::system::manager::{Manager, Outcome};
use crate::system::services::{self, include_path, read_service_file};
use crate::system::spec::Privilege;

/// `ros service` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// One line per service: `enabled  NAME` or `disabled NAME`.
    #[command(visible_alias = "ls")]
    List,
    /// Turn on an optional service (a name in the services directories, or
    /// an absolute path to a service file); fails, changing nothing, when
    /// its definition is invalid.
    Enable {
        /// Name or absolute file path.
        service: String,
    },
    /// Turn off an optional service (it stays in the config as `false`).
    Disable {
        /// Name or file path as enabled.
        service: String,
    },
    /// Forget an optional service and remove its containers.
    Delete {
        /// Name or file path as enabled.
        service: String,
    },
    /// Create (or recreate when changed) and start services; all when none named.
    #[command(visible_alias = "start")]
    Up {
        /// Services.
        services: Vec<String>,
    },
    /// Stop services (not respawned until `up`).
    Stop {
        /// Services.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Stop and start services again.
    Restart {
        /// Services.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Stop and remove the containers of services.
    Rm {
        /// Services.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// The container of every service and its state.
    Ps,
    /// Print a service's logs.
    Logs {
        /// Follow the log.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(short = 'n', long, value_name = "N")]
        lines: Option<u32>,
        /// The service.
        service: String,
    },
}

/// Run one `ros service` subcommand; returns the exit code.
pub fn run(paths: &Paths, cmd: ServiceCmd) -> Result<i32> {
    match cmd {
        ServiceCmd::List => list(paths),
        ServiceCmd::Enable { service } => enable(paths, &service),
        ServiceCmd::Disable { service } => set_include(paths, &service, Some(false)),
        ServiceCmd::Delete { service } => {
            let code = set_include(paths, &service, None)?;
            if let Ok(path) = include_path(paths, &service) {
                if let Ok(defs) = read_service_file(&path) {
                    let names: Vec<String> = defs.keys().cloned().collect();
                    with_defs(paths, defs, |m| async move {
                        for n in &names {
                            m.remove(n)
                                .await
                                .map_err(|e| anyhow!(crate::system::chain(&e)))?;
                        }
                        Ok(0)
                    })?;
                }
            }
            Ok(code)
        }
        ServiceCmd::Up { services } => with_manager(paths, |m| async move {
            let only: Option<BTreeSet<String>> =
                (!services.is_empty()).then(|| services.into_iter().collect());
            let outcomes = m.up(only.as_ref()).await;
            let mut code = 0;
            for (name, o) in outcomes {
                println!("{name}\t{o}");
                if !matches!(o, Outcome::Running | Outcome::Completed | Outcome::Created) {
                    code = 1;
                }
            }
            Ok(code)
        }),
        ServiceCmd::Stop { services } => with_manager(paths, |m| async move {
            for s in &services {
                m.stop(s)
                    .await
                    .map_err(|e| anyhow!(crate::system::chain(&e)))?;
            }
            Ok(0)
        }),
        ServiceCmd::Restart { services } => with_manager(paths, |m| async move {
            for s in &services {
                m.stop(s)
                    .await
                    .map_err(|e| anyhow!(crate::system::chain(&e)))?;
            }
            let only: BTreeSet<String> = services.into_iter().collect();
            let mut code = 0;
            for (name, o) in m.up(Some(&only)).await {
                println!("{name}\t{o}");
                if !matches!(o, Outcome::Running | Outcome::Completed | Outcome::Created) {
                    code = 1;
                }
            }
            Ok(code)
        }),
        ServiceCmd::Rm { services } => with_manager(paths, |m| async move {
            for s in &services {
                m.remove(s)
                    .await
                    .map_err(|e| anyhow!(crate::system::chain(&e)))?;
            }
            Ok(0)
        }),
        ServiceCmd::Ps => with_manager(paths, |m| async move {
            println!("{:<24} {:<24} {:<10} PID", "SERVICE", "CONTAINER", "STATE");
            for (name, info) in m.status().await {
                let cname = m.container(&name).unwrap_or(&name).to_string();
                match info {
                    Some(i) => println!("{name:<24} {cname:<24} {:<10} {}", i.status, i.pid),
                    None => println!("{name:<24} {cname:<24} {:<10} -", "absent"),
                }
            }
            Ok(0)
        }),
        ServiceCmd::Logs {
            follow,
            lines,
            service,
        } => with_manager(paths, |m| async move {
            let cname = m
                .container(&service)
                .map_err(|e| anyhow!(e.to_string()))?
                .to_string();
            let opts = LogsOptions {
                follow,
                stdout: true,
                stderr: true,
                tail: lines.map_or_else(|| "all".to_string(), |n| n.to_string()),
                ..Default::default()
            };
            let mut stream = m.engine().client().logs(&cname, Some(opts));
            let mut out = std::io::stdout();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.with_context(|| format!("logs of service {service}"))?;
                out.write_all(&chunk.into_bytes())?;
                out.flush()?;
            }
            Ok(0)
        }),
    }
}

fn config(paths: &Paths) -> CloudConfig {
    let (_, cfg, problems) = disk::load(paths).resolve();
    for p in problems {
        eprintln!("warning: {p}");
    }
    cfg
}

fn with_defs<F, Fut>(
    paths: &Paths,
    defs: BTreeMap<String, crate::config::service::ServiceConfig>,
    f: F,
) -> Result<i32>
where
    F: FnOnce(Manager<DockerEngine>) -> Fut,
    Fut: std::future::Future<Output = Result<i32>>,
{
    let cfg = config(paths);
    let engine = DockerEngine::connect(&paths.system_docker_sock())?;
    let m = Manager::new(
        engine,
        paths.clone(),
        defs,
        Privilege::detect(),
        cfg.ros.environment.0.clone(),
        Duration::from_secs(10),
    )
    .map_err(|e| anyhow!(e.to_string()))?;
    super::sysinit::runtime()?.block_on(f(m))
}

fn with_manager<F, Fut>(paths: &Paths, f: F) -> Result<i32>
where
    F: FnOnce(Manager<DockerEngine>) -> Fut,
    Fut: std::future::Future<Output = Result<i32>>,
{
    let cfg = config(paths);
    let (defs, problems) = services::enabled(paths, &cfg);
    for p in problems {
        eprintln!("warning: {p} (service left out)");
    }
    with_defs(paths, defs, f)
}

fn list(paths: &Paths) -> Result<i32> {
    let cfg = config(paths);
    let mut rows: BTreeMap<String, bool> =
        cfg.ros.services.keys().map(|k| (k.clone(), true)).collect();
    for (k, on) in &cfg.ros.services_include {
        rows.insert(k.clone(), *on);
    }
    // Optional services that are available but not mentioned yet.
    for dir in [paths.services_dir(), paths.local_services_dir()] {
        if let Ok(d) = std::fs::read_dir(dir) {
            for e in d.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if let Some(name) = n.strip_suffix(".yml") {
                    rows.entry(name.to_string()).or_insert(false);
                }
            }
        }
    }
    for (name, on) in rows {
        println!("{} {name}", if on { "enabled " } else { "disabled" });
    }
    Ok(0)
}

fn enable(paths: &Paths, key: &str) -> Result<i32> {
    let path = include_path(paths, key).map_err(|e| anyhow!(e.to_string()))?;
    if let Err(e) = read_service_file(&path) {
        eprintln!("ros service enable {key}: not enabled: {e}");
        return Ok(1);
    }
    set_include(paths, key, Some(true))
}

/// Set `ros.services_include.KEY` to `value`, or remove it (None).
fn set_include(paths: &Paths, key: &str, value: Option<bool>) -> Result<i32> {
    let file = paths.cloud_config();
    let local = match std::fs::read(&file) {
        Ok(b) => parse_document(&file.display().to_string(), &b)
            .map(merge::normalize)
            .map_err(|p| anyhow!("{p}"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Node::empty_map(crate::config::Span::synthetic("cloud-config.yml"))
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let tree = match value {
        Some(v) => {
            let doc = format!(
                "ros:\n  services_include:\n    {}: {v}\n",
                serde_json::to_string(key)?
            );
            let over = parse_document("ros service", doc.as_bytes()).map_err(|p| anyhow!("{p}"))?;
            merge::merge(local, over)
        }
        None => {
            let mut t = local;
            let path = [
                PathSeg::Key("ros".into()),
                PathSeg::Key("services_include".into()),
                PathSeg::Key(key.into()),
            ];
            if !t.remove_path(&path) {
                bail!("service {key} is not in ros.services_include");
            }
            t
        }
    };
    let (_, problems) = validate(&tree);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("  {}: {}", p.key(), p.message);
        }
        bail!("not saved: the result does not validate");
    }
    disk::save_local(paths, &tree)?;
    Ok(0)
}
