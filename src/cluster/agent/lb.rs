//! The load balancer service on this host (issue 13): each container of a
//! `loadBalancerService` runs HAProxy from `images/haproxy.sh` in
//! master-worker mode; its `/run/lb` is the docker volume `ros-lb-<id>`,
//! where this feature writes `haproxy.cfg` ([`super::lb_config`]) and finds
//! the sockets: the master CLI (`master.sock`, for `reload`) and the
//! worker's runtime API (`admin.sock`).
//!
//! Event-driven: every change of the environment view (a container became
//! healthy, stopped, a rule changed) or of this host's instances is looked
//! at once. Endpoint churn becomes runtime API commands on pre-allocated
//! server slots (`set server … addr/state`, drained for the target's
//! `drain_timeout_ms`) — no reload; a rule change (or a backend out of
//! slots) writes a new config and reloads through the master, the server
//! states saved to the `server-state-file` first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::envview::View;
use super::features::{FeatureContext, HostFeature};
use super::lb_config::{self, Desired, Layout, Slots};
use crate::cluster::plan::compose::{LB_IMAGE, LB_LABEL, LB_RUN_DIR};
use crate::cluster::protocol::{DesiredInstance, LbCertificate};

/// The docker volume of a load balancer container.
pub fn volume_name(instance_id: &str) -> String {
    format!("ros-lb-{instance_id}")
}

/// Turn a load balancer service's container into one that runs our
/// HAProxy image (the compose image only named the kind) with its volume.
pub fn as_load_balancer(d: &mut DesiredInstance) {
    d.image = LB_IMAGE.to_string();
    d.command.clear();
    d.config.run.entry_point.clear();
    d.volumes
        .push(format!("{}:{LB_RUN_DIR}", volume_name(&d.id)));
    d.labels.insert(LB_LABEL.into(), "true".into());
}

/// The feature: load balancers of this host's instances.
pub(crate) struct LoadBalancers;

impl HostFeature for LoadBalancers {
    fn name(&self) -> &'static str {
        "load balancers (haproxy)"
    }

    fn start(self: Box<Self>, ctx: FeatureContext) {
        tokio::spawn(run(ctx));
    }
}

/// One load balancer container, as last applied.
#[derive(Default)]
struct Lb {
    /// The volume's directory on this host.
    dir: Option<PathBuf>,
    /// The layout of the config HAProxy runs (`None` = none written).
    layout: Option<Layout>,
    /// Endpoints in server slots.
    slots: Slots,
    /// A config with a new layout was written but the reload failed:
    /// reload once HAProxy answers.
    reload_pending: bool,
    /// Endpoints changed while HAProxy did not answer (it was starting).
    /// The layout is the same in every file it may have read, so once it
    /// answers, stating every slot through the runtime API is enough; a
    /// reload would start a new worker and zero its counters for nothing.
    resync_pending: bool,
}

/// How soon to look again when HAProxy did not answer yet.
const RETRY: Duration = Duration::from_millis(200);

async fn run(mut ctx: FeatureContext) {
    let mut lbs: HashMap<String, Lb> = HashMap::new();
    let mut wake: Option<Instant> = None;
    loop {
        let sleep = wake.map_or(Duration::from_secs(3600), |t| {
            t.saturating_duration_since(Instant::now())
        });
        tokio::select! {
            r = ctx.view.changed() => if r.is_err() { return },
            r = ctx.assigned.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(sleep) => {}
        }
        let view: Arc<View> = ctx.view.borrow_and_update().clone();
        let mine: Vec<DesiredInstance> = ctx
            .assigned
            .borrow_and_update()
            .instances
            .iter()
            .filter(|d| d.labels.get(LB_LABEL).is_some_and(|v| v == "true"))
            .filter(|d| d.desired_state == "running" && d.external_id.is_some())
            .cloned()
            .collect();
        wake = None;
        for d in &mine {
            let Some(svc) = view
                .containers
                .get(&d.id)
                .and_then(|c| c.service_id.as_ref())
                .and_then(|s| view.services.get(s))
            else {
                continue;
            };
            let want = lb_config::desired(&view, svc, &d.lb_certificates);
            let lb = lbs.entry(d.id.clone()).or_default();
            let next = match step(&ctx.docker, &d.id, lb, &want, &d.lb_certificates).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::debug!(instance = %d.id, error = %e, "load balancer not ready");
                    Some(Instant::now() + RETRY)
                }
            };
            wake = match (wake, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let gone: Vec<String> = lbs
            .keys()
            .filter(|id| !mine.iter().any(|d| &d.id == *id))
            .cloned()
            .collect();
        for id in gone {
            lbs.remove(&id);
            // Best effort: docker keeps the volume until its container is gone.
            let _ = ctx
                .docker
                .remove_volume(
                    &volume_name(&id),
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await;
        }
    }
}

/// Bring one load balancer to `want` (terminating TLS with `certs`);
/// returns when to look again.
async fn step(
    docker: &bollard::Docker,
    id: &str,
    lb: &mut Lb,
    want: &Desired,
    certs: &[LbCertificate],
) -> Result<Option<Instant>, String> {
    let dir = match &lb.dir {
        Some(d) => d.clone(),
        None => {
            let v = docker
                .inspect_volume(&volume_name(id))
                .await
                .map_err(|e| format!("volume: {e}"))?;
            let d = PathBuf::from(v.mountpoint);
            lb.dir = Some(d.clone());
            d
        }
    };
    let now = Instant::now();
    let Some(layout) = lb.layout.clone() else {
        // First config: endpoints written straight into the slots.
        let mut slots = Slots::new();
        let mut layout = want.layout.clone();
        let (_, full) = lb_config::assign(&layout, &mut slots, want, now);
        if full {
            lb_config::grow(&mut layout, &slots);
        }
        write_certs(&dir, &layout, certs).await?;
        write_config(&dir, &lb_config::render(&layout, &slots)).await?;
        // HAProxy may run already (this agent restarted): take the config.
        let running = command(&dir.join("master.sock"), "reload").await.is_ok();
        tracing::info!(instance = %id, reloaded = running, "load balancer configured");
        lb.layout = Some(layout);
        lb.slots = slots;
        lb.reload_pending = false;
        lb.resync_pending = false;
        return Ok(lb_config::next_deadline(&lb.slots));
    };
    let mut slots = lb.slots.clone();
    let mut new_layout = want.layout.clone();
    // Keep grown slot counts across rule changes.
    for b in &mut new_layout.backends {
        if let Some(old) = layout.backends.iter().find(|o| o.name == b.name) {
            b.slots = b.slots.max(old.slots);
        }
    }
    let (cmds, full) = lb_config::assign(&new_layout, &mut slots, want, now);
    if full {
        lb_config::grow(&mut new_layout, &slots);
    }
    if new_layout != layout || lb.reload_pending {
        let text = lb_config::render(&new_layout, &slots);
        // Health and drain states survive the reload.
        if let Ok(states) = command(&dir.join("admin.sock"), "show servers state").await {
            let kept = lb_config::keep_states(&states, &slots);
            let _ = tokio::fs::write(dir.join("state"), kept).await;
        }
        let old_worker = worker_pid(&dir).await;
        write_certs(&dir, &new_layout, certs).await?;
        write_config(&dir, &text).await?;
        lb.layout = Some(new_layout);
        lb.slots = slots;
        match command(&dir.join("master.sock"), "reload").await {
            Ok(_) => {
                lb.reload_pending = false;
                lb.resync_pending = false;
                // Runtime commands must reach the new worker, not the old
                // one that is about to leave with its state.
                wait_new_worker(&dir, old_worker).await;
                // Then say every slot's state once more: a change that
                // reached the old worker during the switch is not lost.
                let layout = lb.layout.clone().unwrap_or_default();
                let all = lb_config::resync(&layout, &lb.slots, false);
                if let Err(e) = command(&dir.join("admin.sock"), &all.join("; ")).await {
                    tracing::debug!(instance = %id, error = %e, "resync after reload");
                }
                tracing::info!(instance = %id, "load balancer reloaded (rules changed)");
            }
            Err(e) => {
                lb.reload_pending = true;
                return Err(format!("reload: {e}"));
            }
        }
    } else if lb.resync_pending {
        let all = lb_config::resync(&layout, &slots, true);
        write_config(&dir, &lb_config::render(&layout, &slots)).await?;
        lb.slots = slots;
        command(&dir.join("admin.sock"), &all.join("; "))
            .await
            .map_err(|e| format!("runtime api: {e}"))?;
        lb.resync_pending = false;
        tracing::debug!(instance = %id, "load balancer endpoints stated once HAProxy answered");
    } else if !cmds.is_empty() {
        match command(&dir.join("admin.sock"), &cmds.join("; ")).await {
            Ok(out) => {
                tracing::debug!(instance = %id, ?cmds, answer = %out.trim(), "load balancer endpoints");
                lb.slots = slots;
            }
            Err(e) => {
                // HAProxy not up yet: it will read the file as it starts;
                // reload once it answers in case it read the older one.
                write_config(&dir, &lb_config::render(&layout, &slots)).await?;
                lb.slots = slots;
                lb.resync_pending = true;
                return Err(format!("runtime api: {e}"));
            }
        }
    }
    Ok(lb_config::next_deadline(&lb.slots))
}

/// The pid of the worker answering the runtime API.
async fn worker_pid(dir: &Path) -> Option<u32> {
    let info = command(&dir.join("admin.sock"), "show info").await.ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid: "))
        .and_then(|p| p.trim().parse().ok())
}

/// Wait (up to 5 s) until a worker other than `old` answers.
async fn wait_new_worker(dir: &Path, old: Option<u32>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if worker_pid(dir).await.is_some_and(|p| Some(p) != old) {
            // The old worker stops accepting once the new one is ready.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!(dir = %dir.display(), "no new haproxy worker after reload (config refused?)");
}

/// The certificates (`certs/<name>.pem`, readable by root only) and the
/// `crt-list` naming them, before a config that uses them; the files of
/// certificates no longer used go (their keys with them).
async fn write_certs(dir: &Path, layout: &Layout, certs: &[LbCertificate]) -> Result<(), String> {
    let cdir = dir.join("certs");
    let keep: Vec<String> = certs
        .iter()
        .map(|c| lb_config::cert_file(&c.name))
        .collect();
    if let Ok(mut rd) = tokio::fs::read_dir(&cdir).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            if !keep
                .iter()
                .any(|k| e.file_name().to_str() == Some(k.as_str()))
            {
                let _ = tokio::fs::remove_file(e.path()).await;
            }
        }
    }
    if certs.is_empty() {
        return Ok(());
    }
    tokio::fs::create_dir_all(&cdir)
        .await
        .map_err(|e| format!("mkdir {}: {e}", cdir.display()))?;
    for c in certs {
        let path = cdir.join(lb_config::cert_file(&c.name));
        let tmp = path.with_extension("new");
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .await
            .map_err(|e| format!("write {}: {e}", tmp.display()))?;
        f.write_all(c.pem.as_bytes())
            .await
            .map_err(|e| format!("write {}: {e}", tmp.display()))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| format!("rename {}: {e}", path.display()))?;
    }
    let list = dir.join("crt-list");
    tokio::fs::write(&list, lb_config::crt_list(layout))
        .await
        .map_err(|e| format!("write {}: {e}", list.display()))
}

async fn write_config(dir: &Path, text: &str) -> Result<(), String> {
    let tmp = dir.join("haproxy.cfg.new");
    tokio::fs::write(&tmp, text)
        .await
        .map_err(|e| format!("write {}: {e}", tmp.display()))?;
    tokio::fs::rename(&tmp, dir.join("haproxy.cfg"))
        .await
        .map_err(|e| format!("rename into {}: {e}", dir.display()))
}

/// HAProxy's `show stat` (CSV) of the load balancer container
/// `instance_id` on this host, read from its runtime API.
pub async fn stats(docker: &bollard::Docker, instance_id: &str) -> Result<String, String> {
    let v = docker
        .inspect_volume(&volume_name(instance_id))
        .await
        .map_err(|e| format!("load balancer {instance_id} has no volume on this host: {e}"))?;
    let sock = Path::new(&v.mountpoint).join("admin.sock");
    command(&sock, "show stat")
        .await
        .map_err(|e| format!("HAProxy of {instance_id} does not answer on its runtime API: {e}"))
}

/// One line to an HAProxy CLI socket; its whole answer.
pub async fn command(sock: &Path, line: &str) -> std::io::Result<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), UnixStream::connect(sock))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    s.write_all(format!("{line}\n").as_bytes()).await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .map_err(|_| std::io::Error::other("answer timed out"))??;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn cert(name: &str, pem: &str, default: bool) -> LbCertificate {
        LbCertificate {
            name: name.into(),
            pem: pem.into(),
            default,
        }
    }

    #[tokio::test]
    async fn certificates_are_written_for_root_only_and_removed_when_unused() {
        let dir = tempfile::tempdir().unwrap();
        let both = [cert("a", "A", false), cert("b", "B", true)];
        let layout = Layout {
            certs: vec![("b".into(), "x".into()), ("a".into(), "y".into())],
            ..Layout::default()
        };
        write_certs(dir.path(), &layout, &both).await.unwrap();
        let a = dir.path().join("certs/a.pem");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "A");
        let mode = std::fs::metadata(&a).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("crt-list")).unwrap(),
            "/run/lb/certs/b.pem\n/run/lb/certs/a.pem\n"
        );
        let layout = Layout {
            certs: vec![("b".into(), "x".into())],
            ..Layout::default()
        };
        write_certs(dir.path(), &layout, &both[1..]).await.unwrap();
        assert!(
            !a.exists(),
            "an unused certificate's key is not left behind"
        );
        write_certs(dir.path(), &Layout::default(), &[])
            .await
            .unwrap();
        assert!(!dir.path().join("certs/b.pem").exists());
    }
}
