//! `ros compose`: rancher-compose's commands against the cluster server —
//! `up` (create, activate, upgrade, confirm, roll back), `create`,
//! `upgrade A B` (to-service), `scale`, `ps`, `start`, `stop`, `restart`
//! (rolling), `rm`, `logs [-f]`, `pull` and `lb-stats` (relayed to the
//! hosts' agents by the server). Progress lines look like
//! `[1/3] [web]: Started`; failures exit non-zero with the server's reason.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::cluster::Conn;

#[path = "compose_lb.rs"]
mod lb_stats;
use crate::cluster::api::services::launch_config_json;
use crate::cluster::client::Client;
use crate::cluster::plan::compose::{self, Source};

/// `ros compose` options.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Stack name (default: the current directory's name).
    #[arg(short = 'p', long = "project-name")]
    stack: Option<String>,
    /// Compose files: docker-compose first, then rancher-compose.
    #[arg(short = 'f', long = "file")]
    files: Vec<String>,
    /// rancher-compose file.
    #[arg(short = 'r', long = "rancher-file")]
    rancher_file: Option<String>,
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: ComposeCmd,
}

/// `ros compose` subcommands.
#[derive(Debug, Subcommand)]
pub enum ComposeCmd {
    /// Create and start the stack; upgrade, confirm or roll back services.
    Up {
        /// Do not wait in the foreground for logs.
        #[arg(short = 'd')]
        detach: bool,
        /// Upgrade services whose launch config changed.
        #[arg(short = 'u', long, visible_alias = "recreate")]
        upgrade: bool,
        /// Upgrade every named service even if unchanged.
        #[arg(long, visible_alias = "force-recreate")]
        force_upgrade: bool,
        /// Finish an upgrade (remove the old containers).
        #[arg(short = 'c', long)]
        confirm_upgrade: bool,
        /// Roll back an upgrade.
        #[arg(short = 'r', long)]
        rollback: bool,
        /// Containers replaced at once (rancher-compose's default: 2).
        #[arg(long, default_value_t = 2)]
        batch_size: u32,
        /// Milliseconds between batches (rancher-compose's default: 1000).
        #[arg(long, default_value_t = 1000)]
        interval: u64,
        /// Pull the images on every active host first (fails when any pull fails).
        #[arg(short = 'p', long)]
        pull: bool,
        /// Only these services.
        services: Vec<String>,
    },
    /// Set scales: `web=3 db=1`.
    Scale {
        /// `SERVICE=N` pairs.
        pairs: Vec<String>,
    },
    /// List the stack's containers.
    Ps,
    /// Activate services.
    Start {
        /// Detached (rancher-compose's default; accepted for its habit).
        #[arg(short = 'd')]
        detach: bool,
        /// Only these services.
        services: Vec<String>,
    },
    /// Deactivate services.
    #[command(visible_alias = "down")]
    Stop {
        /// Only these services.
        services: Vec<String>,
    },
    /// Restart services, a batch of containers at a time.
    Restart {
        /// Containers restarted at once.
        #[arg(long, default_value_t = 1)]
        batch_size: u32,
        /// Milliseconds between batches.
        #[arg(long, default_value_t = 0)]
        interval: u64,
        /// Only these services.
        services: Vec<String>,
    },
    /// Create services without starting them.
    Create {
        /// Only these services.
        services: Vec<String>,
    },
    /// Move the scale of service A to service B batch by batch (B is
    /// created from the compose file if missing).
    Upgrade {
        /// The service to upgrade from.
        from: String,
        /// The service to upgrade to.
        to: String,
        /// B's final scale (default: A's scale).
        #[arg(long)]
        scale: Option<u32>,
        /// Milliseconds between batches.
        #[arg(long, default_value_t = 2000)]
        interval: u64,
        /// Containers moved at once.
        #[arg(long, default_value_t = 2)]
        batch_size: u32,
        /// Services linking to A link to B afterwards.
        #[arg(long)]
        update_links: bool,
        /// Wait until the upgrade is complete.
        #[arg(short = 'w', long)]
        wait: bool,
        /// Remove A afterwards (implies --wait).
        #[arg(short = 'c', long)]
        cleanup: bool,
        /// Pull B's image on every active host first (fails when any
        /// pull fails).
        #[arg(long)]
        pull: bool,
    },
    /// Show the output of the stack's containers (`name | line`).
    Logs {
        /// Keep following new output.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines of each container.
        #[arg(long, short = 'n', alias = "tail")]
        lines: Option<u64>,
        /// Only these services.
        services: Vec<String>,
    },
    /// A load balancer's HAProxy stats, live from each of its containers:
    /// frontends, backends and servers with status and sessions.
    LbStats {
        /// The load balancer service.
        service: String,
    },
    /// Pull the stack's images on every active host.
    Pull {
        /// Only these services.
        services: Vec<String>,
    },
    /// Remove the stack.
    Rm {
        /// Do not ask.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

struct Ctx {
    client: Client,
    project: String,
    stack: String,
}

impl Ctx {
    fn path(&self, rest: &str) -> String {
        format!("/v1/projects/{}/{rest}", self.project)
    }
    fn stack(&self) -> Result<Option<Value>> {
        let v = self
            .client
            .get(&self.path(&format!("stacks?name={}", self.stack)))?;
        Ok(v["data"]
            .as_array()
            .and_then(|d| d.iter().find(|s| s["state"] != "removed").cloned()))
    }
    fn services(&self, stack_id: &str) -> Result<Vec<Value>> {
        let v = self
            .client
            .get(&self.path(&format!("services?stackId={stack_id}&limit=1000")))?;
        Ok(v["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s["state"] != "removed")
            .collect())
    }
    fn action(&self, svc: &Value, action: &str, body: Value) -> Result<Value> {
        let id = svc["id"].as_str().unwrap_or_default();
        Ok(self
            .client
            .post(&self.path(&format!("services/{id}?action={action}")), &body)?)
    }
    /// The stack, or an error naming it.
    fn need_stack(&self) -> Result<Value> {
        self.stack()?
            .with_context(|| format!("no stack {} (run `ros compose up` first)", self.stack))
    }
    /// The stack, created empty when missing.
    fn ensure_stack(&self) -> Result<Value> {
        match self.stack()? {
            Some(s) => Ok(s),
            None => Ok(self
                .client
                .post(&self.path("stacks"), &json!({ "name": self.stack }))?),
        }
    }
    /// Create a service of `stack_id` from its compose spec.
    fn create_service(
        &self,
        stack_id: &str,
        s: &compose::ServiceSpec,
        scale: u32,
        start: bool,
    ) -> Result<Value> {
        Ok(self.client.post(
            &self.path("services"),
            &json!({"name": s.name, "stackId": stack_id, "scale": scale,
                    "startOnCreate": start, "retainIp": s.retain_ip,
                    "launchConfig": launch_config_json(&s.launch_config)}),
        )?)
    }
    fn get_service(&self, svc: &Value) -> Result<Value> {
        let id = svc["id"].as_str().unwrap_or_default();
        Ok(self.client.get(&self.path(&format!("services/{id}")))?)
    }
    /// Wait until the service reaches one of `states`; an `error`
    /// transitioning message fails at once.
    fn wait(&self, svc: &Value, states: &[&str]) -> Result<Value> {
        let id = svc["id"].as_str().unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let s = self.client.get(&self.path(&format!("services/{id}")))?;
            let state = s["state"].as_str().unwrap_or_default();
            if states.contains(&state) {
                return Ok(s);
            }
            if s["transitioning"] == "error" {
                bail!(
                    "[{}]: {}",
                    s["name"].as_str().unwrap_or_default(),
                    s["transitioningMessage"].as_str().unwrap_or("error")
                );
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {id} to be {}", states.join("/"));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// A compose file as read: `text` with `$VAR`/`${VAR}`/`${VAR:-default}`
/// substituted from the environment and `$$` turned into `$` (as
/// docker-compose and rancher-compose do), for parsing here; `raw` and the
/// values of the variables it names (`vars`), for the server, which
/// substitutes the same way from the stack's `environment` — so a literal
/// `$$` reaches a container's shell as one `$` whichever way a stack is
/// created (CLI, UI, API). Unset variables become "" with a warning.
struct Read {
    text: String,
    raw: String,
    vars: serde_json::Map<String, Value>,
}

/// `None` when the file does not exist.
fn read(path: &str) -> Result<Option<Read>> {
    let raw = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {path}")),
    };
    let vars = std::cell::RefCell::new(serde_json::Map::new());
    let done = compose::interpolate::interpolate(&raw, |k| {
        let v = std::env::var(k).ok();
        if let Some(v) = &v {
            vars.borrow_mut()
                .insert(k.to_string(), Value::from(v.as_str()));
        }
        v
    })
    .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    for v in &done.unset {
        eprintln!("WARNING: {path}: the {v} variable is not set; substituting a blank string");
    }
    Ok(Some(Read {
        text: done.text,
        raw,
        vars: vars.into_inner(),
    }))
}

fn pick<'a>(all: &'a [Value], only: &[String]) -> Vec<&'a Value> {
    all.iter()
        .filter(|s| only.is_empty() || only.iter().any(|n| s["name"] == n.as_str()))
        .collect()
}

/// Pull the images of the chosen services on every active host, printing
/// `[host] image: OK` or the error; false when any pull failed.
fn pull_images(cx: &Ctx, spec: &compose::StackSpec, only: &[String]) -> Result<bool> {
    let images: BTreeSet<String> = spec
        .services
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
        .map(|s| s.launch_config.image.clone())
        .filter(|i| !i.is_empty())
        .collect();
    for n in only {
        if spec.service(n).is_none() {
            bail!("no service {n} in the compose file");
        }
    }
    if images.is_empty() {
        println!("no images to pull");
        return Ok(true);
    }
    let hosts: Vec<Value> = cx.client.get(&cx.path("hosts?limit=1000"))?["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|h| h["state"] == "active" && h["agentState"] == "active")
        .collect();
    if hosts.is_empty() {
        bail!("no active hosts to pull on");
    }
    let client = cx.client.clone().with_timeout(Duration::from_secs(660));
    let body = json!({ "images": images });
    let answers: Vec<Result<Value, String>> = std::thread::scope(|sc| {
        let jobs: Vec<_> = hosts
            .iter()
            .map(|h| {
                let path = cx.path(&format!(
                    "hosts/{}/pull",
                    h["id"].as_str().unwrap_or_default()
                ));
                let (client, body) = (&client, &body);
                sc.spawn(move || client.post(&path, body).map_err(|e| e.to_string()))
            })
            .collect();
        jobs.into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| Err("pull thread failed".into()))
            })
            .collect()
    });
    let mut all_ok = true;
    for (h, a) in hosts.iter().zip(answers) {
        let name = h["hostname"]
            .as_str()
            .or(h["name"].as_str())
            .unwrap_or_default();
        match a {
            Ok(v) => {
                for r in v["results"].as_array().into_iter().flatten() {
                    let image = r["image"].as_str().unwrap_or_default();
                    if r["ok"] == true {
                        println!("[{name}] {image}: OK");
                    } else {
                        all_ok = false;
                        println!(
                            "[{name}] {image}: ERROR {}",
                            r["message"].as_str().unwrap_or("failed")
                        );
                    }
                }
            }
            Err(e) => {
                all_ok = false;
                println!("[{name}]: ERROR {e}");
            }
        }
    }
    Ok(all_ok)
}

/// The stack's containers (of the chosen services) that still exist.
fn stack_containers(cx: &Ctx, only: &[String]) -> Result<Vec<Value>> {
    let st = cx
        .stack()?
        .with_context(|| format!("no stack {}", cx.stack))?;
    let sid = st["id"].as_str().unwrap_or_default();
    let have = cx.services(sid)?;
    for n in only {
        if !have.iter().any(|s| s["name"] == n.as_str()) {
            bail!("no service {n} in stack {}", cx.stack);
        }
    }
    let ids: Vec<&str> = pick(&have, only)
        .into_iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    let v = cx
        .client
        .get(&cx.path(&format!("containers?stackId={sid}&limit=1000")))?;
    Ok(v["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            !matches!(c["state"].as_str(), Some("removed" | "requested"))
                && c["desiredState"] != "removed"
                && c["externalId"].is_string()
                && ids.iter().any(|i| c["serviceId"] == *i)
        })
        .collect())
}

/// `ros compose logs [-f] [--lines N] [SERVICE…]`.
fn logs(cx: &Ctx, follow: bool, lines: Option<u64>, only: &[String]) -> Result<i32> {
    let mut since: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut first = true;
    loop {
        let cs = stack_containers(cx, only)?;
        let width = cs
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default().len())
            .max()
            .unwrap_or(0);
        let mut out: Vec<(u64, String, String)> = Vec::new();
        for c in &cs {
            let id = c["id"].as_str().unwrap_or_default();
            let name = c["name"].as_str().unwrap_or_default();
            let q = match (since.get(id), lines) {
                (Some(n), _) => format!("since={n}"),
                (None, Some(n)) => format!("tail={n}"),
                (None, None) => "tail=all".to_string(),
            };
            let v = match cx
                .client
                .get(&cx.path(&format!("containers/{id}/logs?{q}")))
            {
                Ok(v) => v,
                Err(e) if follow && !first => {
                    eprintln!("{name}: {e}");
                    continue;
                }
                Err(e) => bail!("logs of {name}: {e}"),
            };
            if v["truncated"] == true && first {
                eprintln!("{name}: older lines left out (use --lines)");
            }
            for l in v["lines"].as_array().into_iter().flatten() {
                let t = l["timeNanos"].as_u64().unwrap_or(0);
                let e = since.entry(id.to_string()).or_insert(0);
                *e = (*e).max(t);
                out.push((
                    t,
                    format!("{name:<width$}"),
                    l["text"].as_str().unwrap_or_default().to_string(),
                ));
            }
            since.entry(id.to_string()).or_insert(0);
        }
        out.sort_by_key(|(t, _, _)| *t);
        {
            use std::io::Write;
            let mut so = std::io::stdout().lock();
            for (_, n, t) in &out {
                writeln!(so, "{n} | {t}")?;
            }
            so.flush()?;
        }
        if !follow {
            return Ok(0);
        }
        first = false;
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Run a `ros compose` command; the exit code.
pub fn run(args: ComposeArgs) -> Result<i32> {
    let stack = match args.stack.clone() {
        Some(s) => s,
        None => std::env::current_dir()?
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_else(|| "default".into()),
    };
    let cx = Ctx {
        client: args.conn.client()?,
        project: args.conn.project().to_string(),
        stack,
    };
    let dc_path = args
        .files
        .first()
        .cloned()
        .unwrap_or_else(|| "docker-compose.yml".into());
    let rc_path = args
        .rancher_file
        .clone()
        .or_else(|| args.files.get(1).cloned())
        .unwrap_or_else(|| "rancher-compose.yml".into());
    let parse = || -> Result<(compose::StackSpec, Read, Option<Read>)> {
        let dc = read(&dc_path)?.with_context(|| format!("{dc_path} not found"))?;
        let rc = read(&rc_path)?;
        let spec = compose::parse_stack(
            &cx.stack,
            Source {
                name: &dc_path,
                bytes: dc.text.as_bytes(),
            },
            rc.as_ref().map(|t| Source {
                name: &rc_path,
                bytes: t.text.as_bytes(),
            }),
        )?;
        Ok((spec, dc, rc))
    };
    match &args.cmd {
        ComposeCmd::Logs {
            follow,
            lines,
            services,
        } => logs(&cx, *follow, *lines, services),
        ComposeCmd::LbStats { service } => lb_stats::print(&cx, service),
        ComposeCmd::Pull { services } => {
            let (spec, _, _) = parse()?;
            Ok(if pull_images(&cx, &spec, services)? {
                0
            } else {
                1
            })
        }
        ComposeCmd::Up {
            upgrade,
            force_upgrade,
            confirm_upgrade,
            rollback,
            batch_size,
            interval,
            services,
            pull,
            ..
        } => {
            let (upgrade, force_upgrade, confirm_upgrade, rollback) =
                (*upgrade, *force_upgrade, *confirm_upgrade, *rollback);
            let (spec, dc, rc) = parse()?;
            if *pull && !pull_images(&cx, &spec, services)? {
                bail!("pulling images failed (see above); nothing was created");
            }
            let st = match cx.stack()? {
                Some(s) => s,
                None => cx.client.post(
                    &cx.path("stacks"),
                    &{
                        // The server substitutes variables itself, from
                        // `environment`: send the files as written.
                        let mut env = dc.vars.clone();
                        env.extend(rc.iter().flat_map(|r| r.vars.clone()));
                        json!({"name": cx.stack, "dockerCompose": dc.raw,
                               "rancherCompose": rc.as_ref().map(|r| r.raw.as_str()).unwrap_or_default(),
                               "environment": env})
                    },
                )?,
            };
            let sid = st["id"].as_str().unwrap_or_default().to_string();
            let mut have = cx.services(&sid)?;
            for s in &spec.services {
                if !have.iter().any(|h| h["name"] == s.name.as_str()) {
                    let v = cx.client.post(
                        &cx.path("services"),
                        &json!({"name": s.name, "stackId": sid, "scale": s.scale,
                                "launchConfig": launch_config_json(&s.launch_config)}),
                    )?;
                    have.push(v);
                }
            }
            let chosen = pick(&have, services);
            let n = chosen.len();
            // Activate every plain start at once: a service may wait for
            // another's containers (volumes_from, network_mode service:).
            let plain = !(rollback || confirm_upgrade || force_upgrade || upgrade);
            let mut activated = BTreeSet::new();
            for svc in chosen.iter().filter(|s| plain && s["state"] == "inactive") {
                cx.action(svc, "activate", json!({}))?;
                activated.insert(svc["id"].as_str().unwrap_or_default().to_string());
            }
            for (i, svc) in chosen.into_iter().enumerate() {
                let name = svc["name"].as_str().unwrap_or_default();
                let tag = format!("[{}/{n}] [{name}]", i + 1);
                let state = svc["state"].as_str().unwrap_or_default();
                let want = spec.service(name);
                if rollback {
                    cx.action(svc, "rollback", json!({}))?;
                    cx.wait(svc, &["active"])?;
                    println!("{tag}: Rolled back");
                    continue;
                }
                if confirm_upgrade && state == "upgraded" {
                    cx.action(svc, "finishupgrade", json!({}))?;
                    cx.wait(svc, &["active"])?;
                    println!("{tag}: Upgrade finished");
                    continue;
                }
                let changed = want.is_some_and(|w| {
                    // The server's `version` is its own; the file has none.
                    let mut have = svc["launchConfig"].clone();
                    if let Some(o) = have.as_object_mut() {
                        o.remove("version");
                    }
                    launch_config_json(&w.launch_config) != have
                });
                if let (true, Some(w)) = (force_upgrade || (upgrade && changed), want) {
                    let strategy = json!({"inServiceStrategy": {
                        "launchConfig": launch_config_json(&w.launch_config),
                        "batchSize": batch_size,
                        "intervalMillis": interval,
                        "startFirst": w.upgrade_strategy.start_first}});
                    println!("{tag}: Upgrading");
                    cx.action(svc, "upgrade", strategy)?;
                    cx.wait(svc, &["upgraded"])?;
                    if confirm_upgrade {
                        cx.action(svc, "finishupgrade", json!({}))?;
                        cx.wait(svc, &["active"])?;
                    }
                    println!("{tag}: Upgraded");
                    continue;
                }
                if state == "inactive"
                    && !activated.contains(svc["id"].as_str().unwrap_or_default())
                {
                    cx.action(svc, "activate", json!({}))?;
                }
                if !matches!(state, "upgraded" | "canceled-upgrade") {
                    cx.wait(svc, &["active"])?;
                }
                println!("{tag}: Started");
            }
            Ok(0)
        }
        ComposeCmd::Scale { pairs } => {
            let st = cx
                .stack()?
                .with_context(|| format!("no stack {}", cx.stack))?;
            let have = cx.services(st["id"].as_str().unwrap_or_default())?;
            for p in pairs {
                let (name, n) = p
                    .split_once('=')
                    .with_context(|| format!("{p}: expected SERVICE=N"))?;
                let n: u32 = n.parse().with_context(|| format!("{p}: bad number"))?;
                let svc = have
                    .iter()
                    .find(|s| s["name"] == name)
                    .with_context(|| format!("no service {name} in {}", cx.stack))?;
                let id = svc["id"].as_str().unwrap_or_default();
                cx.client.call::<Value>(
                    "PUT",
                    &cx.path(&format!("services/{id}")),
                    Some(&json!({ "scale": n })),
                )?;
                if svc["state"] == "active" {
                    // Let the reconciler see the new scale, then wait.
                    std::thread::sleep(Duration::from_millis(200));
                    cx.wait(svc, &["active"])?;
                }
                println!("[{name}]: Scaled to {n}");
            }
            Ok(0)
        }
        ComposeCmd::Ps => {
            let st = cx
                .stack()?
                .with_context(|| format!("no stack {}", cx.stack))?;
            let sid = st["id"].as_str().unwrap_or_default();
            let v = cx
                .client
                .get(&cx.path(&format!("containers?stackId={sid}&limit=1000")))?;
            println!(
                "{:<32} {:<10} {:<8} {:<15} {:<40} PORTS",
                "NAME", "STATE", "HOST", "IP", "IMAGE"
            );
            for c in v["data"].as_array().into_iter().flatten() {
                if c["state"] == "removed" {
                    continue;
                }
                // Public endpoints (a load balancer's listeners among them).
                let ports: Vec<String> = c["publicEndpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        format!(
                            "{}:{}/{}",
                            e["ipAddress"].as_str().unwrap_or("?"),
                            e["port"],
                            e["protocol"].as_str().unwrap_or("tcp")
                        )
                    })
                    .collect();
                println!(
                    "{:<32} {:<10} {:<8} {:<15} {:<40} {}",
                    c["name"].as_str().unwrap_or_default(),
                    c["state"].as_str().unwrap_or_default(),
                    c["hostId"].as_str().unwrap_or_default(),
                    c["primaryIpAddress"].as_str().unwrap_or("-"),
                    c["imageUuid"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_start_matches("docker:"),
                    if ports.is_empty() {
                        "-".to_string()
                    } else {
                        ports.join(",")
                    }
                );
            }
            Ok(0)
        }
        ComposeCmd::Restart {
            services,
            batch_size,
            interval,
        } => {
            let st = cx.need_stack()?;
            let have = cx.services(st["id"].as_str().unwrap_or_default())?;
            let chosen = pick(&have, services);
            check_names(&have, services, &cx.stack)?;
            let n = chosen.len();
            for (i, svc) in chosen.into_iter().enumerate() {
                let tag = format!(
                    "[{}/{n}] [{}]",
                    i + 1,
                    svc["name"].as_str().unwrap_or_default()
                );
                if svc["state"] != "active" {
                    println!(
                        "{tag}: not active ({}), skipped",
                        svc["state"].as_str().unwrap_or("?")
                    );
                    continue;
                }
                cx.action(
                    svc,
                    "restart",
                    json!({"rollingRestartStrategy": {"batchSize": batch_size, "intervalMillis": interval}}),
                )?;
                println!("{tag}: Restarting");
                cx.wait(svc, &["active"])?;
                println!("{tag}: Restarted");
            }
            Ok(0)
        }
        ComposeCmd::Create { services } => {
            let spec = load(&cx.stack, &dc_path, &rc_path)?;
            for n in services {
                if spec.service(n).is_none() {
                    bail!("no service {n} in {dc_path}");
                }
            }
            let st = cx.ensure_stack()?;
            let sid = st["id"].as_str().unwrap_or_default().to_string();
            let have = cx.services(&sid)?;
            let chosen: Vec<&compose::ServiceSpec> = spec
                .services
                .iter()
                .filter(|s| services.is_empty() || services.contains(&s.name))
                .collect();
            let n = chosen.len();
            for (i, s) in chosen.into_iter().enumerate() {
                let tag = format!("[{}/{n}] [{}]", i + 1, s.name);
                if have.iter().any(|h| h["name"] == s.name.as_str()) {
                    println!("{tag}: Exists");
                    continue;
                }
                cx.create_service(&sid, s, s.scale, false)?;
                println!("{tag}: Created");
            }
            Ok(0)
        }
        ComposeCmd::Upgrade {
            from,
            to,
            scale,
            interval,
            batch_size,
            update_links,
            wait,
            cleanup,
            pull,
        } => {
            if *pull {
                let (spec, _, _) = parse()?;
                if !pull_images(&cx, &spec, std::slice::from_ref(to))? {
                    bail!("pulling images failed (see above); nothing was upgraded");
                }
            }
            upgrade_to_service(
                &cx,
                &dc_path,
                &rc_path,
                ToServiceArgs {
                    from,
                    to,
                    scale: *scale,
                    interval: *interval,
                    batch_size: *batch_size,
                    update_links: *update_links,
                    wait: *wait || *cleanup,
                    cleanup: *cleanup,
                },
            )
        }
        ComposeCmd::Start { services, .. } | ComposeCmd::Stop { services } => {
            let (action, from, want, word) = match args.cmd {
                ComposeCmd::Start { .. } => ("activate", "inactive", "active", "Started"),
                _ => ("deactivate", "active", "inactive", "Stopped"),
            };
            let st = cx
                .stack()?
                .with_context(|| format!("no stack {}", cx.stack))?;
            let have = cx.services(st["id"].as_str().unwrap_or_default())?;
            for svc in pick(&have, services) {
                if svc["state"] == from {
                    cx.action(svc, action, json!({}))?;
                }
                cx.wait(svc, &[want])?;
                println!("[{}]: {word}", svc["name"].as_str().unwrap_or_default());
            }
            Ok(0)
        }
        ComposeCmd::Rm { .. } => {
            let Some(st) = cx.stack()? else {
                return Ok(0);
            };
            let id = st["id"].as_str().unwrap_or_default();
            cx.client
                .post(&cx.path(&format!("stacks/{id}?action=remove")), &json!({}))?;
            let deadline = Instant::now() + Duration::from_secs(120);
            while cx.stack()?.is_some() {
                if Instant::now() > deadline {
                    bail!("timed out removing stack {}", cx.stack);
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            println!("[{}]: Removed", cx.stack);
            Ok(0)
        }
    }
}

/// The compose files of the stack, parsed.
fn load(stack: &str, dc_path: &str, rc_path: &str) -> Result<compose::StackSpec> {
    let dc = read(dc_path)?.with_context(|| format!("{dc_path} not found"))?;
    let rc = read(rc_path)?;
    let spec = compose::parse_stack(
        stack,
        Source {
            name: dc_path,
            bytes: dc.text.as_bytes(),
        },
        rc.as_ref().map(|t| Source {
            name: rc_path,
            bytes: t.text.as_bytes(),
        }),
    )?;
    Ok(spec)
}

/// Every name given must be a service of the stack.
fn check_names(have: &[Value], names: &[String], stack: &str) -> Result<()> {
    for n in names {
        if !have.iter().any(|h| h["name"] == n.as_str()) {
            bail!("no service {n} in stack {stack}");
        }
    }
    Ok(())
}

struct ToServiceArgs<'a> {
    from: &'a str,
    to: &'a str,
    scale: Option<u32>,
    interval: u64,
    batch_size: u32,
    update_links: bool,
    wait: bool,
    cleanup: bool,
}

/// `ros compose upgrade A B`: rancher-compose's to-service upgrade.
fn upgrade_to_service(cx: &Ctx, dc_path: &str, rc_path: &str, a: ToServiceArgs<'_>) -> Result<i32> {
    let st = cx.need_stack()?;
    let sid = st["id"].as_str().unwrap_or_default().to_string();
    let have = cx.services(&sid)?;
    let from = have
        .iter()
        .find(|s| s["name"] == a.from)
        .with_context(|| format!("no service {} in stack {}", a.from, cx.stack))?
        .clone();
    if from["state"] != "active" {
        bail!(
            "[{}]: cannot upgrade while {} (it must be active)",
            a.from,
            from["state"].as_str().unwrap_or("?")
        );
    }
    let to = match have.iter().find(|s| s["name"] == a.to) {
        Some(t) => t.clone(),
        None => {
            let spec = load(&cx.stack, dc_path, rc_path)?;
            let s = spec.service(a.to).with_context(|| {
                format!("no service {} in stack {} or in {dc_path}", a.to, cx.stack)
            })?;
            let v = cx.create_service(&sid, s, 0, false)?;
            println!("[{}]: Created", a.to);
            v
        }
    };
    let final_scale = a
        .scale
        .map_or_else(|| from["scale"].as_u64().unwrap_or(1), u64::from);
    cx.action(
        &from,
        "upgrade",
        json!({"toServiceStrategy": {
            "toServiceId": to["id"], "finalScale": final_scale,
            "batchSize": a.batch_size.max(1), "intervalMillis": a.interval,
            "updateLinks": a.update_links}}),
    )?;
    println!("[{}]: Upgrading to {} (scale {final_scale})", a.from, a.to);
    if !a.wait {
        return Ok(0);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last = (u64::MAX, u64::MAX);
    loop {
        let f = cx.get_service(&from)?;
        let t = cx.get_service(&to)?;
        let scales = (
            f["scale"].as_u64().unwrap_or(0),
            t["scale"].as_u64().unwrap_or(0),
        );
        if scales != last {
            println!(
                "[{}/{}] [{}]: scale {} [{}]: scale {}",
                scales.1, final_scale, a.from, scales.0, a.to, scales.1
            );
            last = scales;
        }
        if f["transitioning"] == "error" {
            bail!(
                "[{}]: {}",
                a.from,
                f["transitioningMessage"].as_str().unwrap_or("error")
            );
        }
        match f["state"].as_str().unwrap_or_default() {
            "upgraded" => break,
            "upgrading" => {}
            other => bail!("[{}]: upgrade stopped: service is {other}", a.from),
        }
        if Instant::now() > deadline {
            bail!(
                "[{}]: timed out waiting for the upgrade to {}",
                a.from,
                a.to
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    cx.wait(&to, &["active"])?;
    println!("[{}]: Upgraded to {}", a.from, a.to);
    if a.cleanup {
        let f = cx.get_service(&from)?;
        if f["scale"].as_u64() == Some(0) {
            cx.action(&f, "remove", json!({}))?;
            cx.wait(&f, &["removed"])?;
            println!("[{}]: Removed", a.from);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ComposeArgs,
    }

    fn parse(words: &[&str]) -> ComposeCmd {
        let mut all = vec!["ros-compose"];
        all.extend_from_slice(words);
        Cli::try_parse_from(all)
            .unwrap_or_else(|e| panic!("{words:?}: {e}"))
            .args
            .cmd
    }

    #[test]
    fn rancher_compose_habits_parse() {
        // `start -d` (rancher-compose's default) is accepted.
        assert!(matches!(
            parse(&["start", "-d", "web"]),
            ComposeCmd::Start { detach: true, ref services } if services == &["web"]
        ));
        // `up --upgrade` defaults as rancher-compose: batch 2, interval 1000.
        match parse(&["up", "-d", "--upgrade"]) {
            ComposeCmd::Up {
                batch_size,
                interval,
                upgrade,
                ..
            } => assert_eq!((batch_size, interval, upgrade), (2, 1000, true)),
            other => panic!("{other:?}"),
        }
        match parse(&["up", "--upgrade", "--batch-size", "3", "--interval", "500"]) {
            ComposeCmd::Up {
                batch_size,
                interval,
                ..
            } => assert_eq!((batch_size, interval), (3, 500)),
            other => panic!("{other:?}"),
        }
        // rancher-compose's spellings of the same flags.
        match parse(&["up", "--recreate", "-r", "-p"]) {
            ComposeCmd::Up {
                upgrade,
                rollback,
                pull,
                ..
            } => assert!(upgrade && rollback && pull),
            other => panic!("{other:?}"),
        }
        match parse(&["up", "--force-recreate"]) {
            ComposeCmd::Up { force_upgrade, .. } => assert!(force_upgrade),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(&["down", "web"]), ComposeCmd::Stop { .. }));
        // `restart` keeps 1 / 0, `upgrade A B` 2 / 2000.
        match parse(&["restart"]) {
            ComposeCmd::Restart {
                batch_size,
                interval,
                ..
            } => assert_eq!((batch_size, interval), (1, 0)),
            other => panic!("{other:?}"),
        }
        match parse(&["upgrade", "a", "b"]) {
            ComposeCmd::Upgrade {
                batch_size,
                interval,
                ..
            } => assert_eq!((batch_size, interval), (2, 2000)),
            other => panic!("{other:?}"),
        }
    }
}
