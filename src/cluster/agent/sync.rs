//! The sync loop: long-poll the server (see [`crate::cluster::protocol`])
//! with the reports gathered since the last answer, converge to each answer,
//! converge again at once when docker changes a managed container behind
//! ros's back, hand relayed requests to [`super::relay`], and publish what
//! this host runs to the host features.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch, Notify};

use super::converge::{converge, Local};
use super::envview::View;
use super::features::Assigned;
use super::heartbeat::Heartbeat;
use super::identity::{register, Identity, Server};
use super::runtime::DockerRuntime;
use super::{blocking, facts, note_reports, relay, AgentConfig, AgentError};
use crate::cluster::client::Client;
use crate::cluster::protocol::{
    DesiredInstance, HostFacts, RegisterResponse, Report, SyncRequest, SyncResponse,
};

/// Everything the sync loop carries from one round to the next.
pub(crate) struct SyncLoop {
    /// How the agent runs.
    pub cfg: AgentConfig,
    /// The server.
    pub server: Server,
    /// The user docker (for relayed requests).
    pub docker: bollard::Docker,
    /// Facts of this host.
    pub facts: HostFacts,
    /// Who this agent is.
    pub identity: Identity,
    /// Fires on docker events that call for a converge pass.
    pub converge_now: Arc<Notify>,
    /// Where the host features read what this host runs.
    pub assigned: watch::Sender<Assigned>,
    /// Reports from the host features.
    pub feature_reports: mpsc::UnboundedReceiver<Vec<Report>>,
    /// Where DNS and metadata read the environment view.
    pub view: watch::Sender<Arc<View>>,
    /// The heartbeat task.
    pub heartbeat: Heartbeat,
    /// What `ros cluster status` reads.
    pub status: super::status::StatusFile,
}

/// The state of the rounds.
#[derive(Default)]
struct Rounds {
    send_facts: bool,
    generation: u64,
    desired: Vec<DesiredInstance>,
    pending: Vec<Report>,
    local: Local,
    sampler: facts::Sampler,
    /// The environment view's epoch and revision held.
    view: (u64, u64),
    /// When the last converge pass ran.
    last_converge: Option<Instant>,
}

impl SyncLoop {
    /// Sync until the process ends (or registration cannot be saved).
    pub(crate) async fn run(mut self) -> Result<(), AgentError> {
        let runtime = DockerRuntime::new(self.docker.clone(), self.facts.agent_ip.parse().ok());
        let mut rounds = Rounds {
            send_facts: true,
            ..Rounds::default()
        };
        loop {
            let (reg, new) = register(
                &self.cfg,
                &mut self.server,
                &mut self.identity,
                &self.facts,
                &mut self.status,
            )
            .await?;
            if new {
                rounds.send_facts = true;
            }
            let client = self
                .server
                .client(Some((&reg.access_key, &reg.secret_key)))?;
            self.round(&runtime, &reg, &client, &mut rounds).await;
        }
    }

    /// One long-poll and what follows its answer.
    async fn round(
        &mut self,
        runtime: &DockerRuntime,
        reg: &RegisterResponse,
        client: &Client,
        r: &mut Rounds,
    ) {
        let req = SyncRequest {
            facts: r.send_facts.then(|| self.facts.clone()),
            usage: Some(r.sampler.sample(&self.cfg.state_dir)),
            reports: std::mem::take(&mut r.pending),
            generation: r.generation,
            wait_ms: u64::try_from(self.cfg.interval.as_millis()).unwrap_or(2000),
            view_epoch: r.view.0,
            view_revision: r.view.1,
        };
        let sent = req.reports.clone();
        self.assigned.send_if_modified(|a| {
            let changed = a.host_id != reg.host_id;
            if changed {
                a.host_id.clone_from(&reg.host_id);
            }
            changed
        });
        self.heartbeat.synced(client);
        let c = client.clone();
        let mut poll = tokio::spawn(async move {
            blocking(move || c.call::<SyncResponse>("POST", "/v1/agent/sync", Some(&req))).await
        });
        let res = loop {
            tokio::select! {
                res = &mut poll => break res.map_err(|_| AgentError::Task).and_then(|res| res),
                _ = self.converge_now.notified() => {
                    // A managed container changed behind our back: look now.
                    self.converge(runtime, client, &reg.host_id, r).await;
                }
                Some(reports) = self.feature_reports.recv() => {
                    // Health changes go out now, not with the next poll:
                    // every host's DNS follows within one round trip.
                    if let Err(back) = send_now(client, reports).await {
                        r.pending.extend(back);
                    }
                }
            }
        };
        match res {
            Ok(resp) => {
                self.status.record(Ok(&reg.host_id));
                r.send_facts = false;
                // An answer only for the environment view (same
                // generation) needs no converge pass unless one is due.
                let view_only = resp.view.is_some()
                    && resp.generation == r.generation
                    && r.last_converge
                        .is_some_and(|t| t.elapsed() < self.cfg.interval);
                if let Some(d) = resp.view {
                    r.view = (d.epoch, d.revision);
                    self.view.send_modify(|v| Arc::make_mut(v).apply(d));
                }
                r.generation = resp.generation;
                r.desired = resp.instances;
                let overlay = resp.overlay;
                self.assigned.send_if_modified(|a| {
                    let changed = a.overlay != overlay;
                    a.overlay = overlay;
                    changed
                });
                for req in resp.requests {
                    relay::spawn(
                        self.docker.clone(),
                        self.cfg.docker_socket.clone(),
                        client.clone(),
                        reg.host_id.clone(),
                        req,
                    );
                }
                if !view_only {
                    self.converge(runtime, client, &reg.host_id, r).await;
                }
            }
            Err(AgentError::Client(e)) if e.status() == Some(401) => {
                tracing::warn!("server rejected our credentials; registering again");
                self.status
                    .record(Err("the server rejected this host's credentials".into()));
                self.identity.registration = None;
                r.pending.clear();
                self.heartbeat.stop();
            }
            Err(e) => {
                tracing::warn!(error = ?e, "sync failed; retrying");
                self.status
                    .record(Err(format!("sync with {} failed: {e}", self.server.root)));
                self.server.failover();
                let mut back = sent;
                back.append(&mut r.pending);
                r.pending = back;
                tokio::time::sleep(self.cfg.interval).await;
            }
        }
    }

    /// A converge pass: its reports join the pending ones, the local view
    /// of the instances takes their states, and the features see it.
    async fn converge(&self, runtime: &DockerRuntime, client: &Client, host: &str, r: &mut Rounds) {
        r.last_converge = Some(Instant::now());
        let reports = converge_once(runtime, client, host, &r.desired, &mut r.local).await;
        note_reports(&mut r.desired, &reports);
        r.pending.extend(reports);
        self.assigned
            .send_modify(|a| a.instances.clone_from(&r.desired));
    }
}

/// Send `reports` in a short sync (no wait); them back when it failed.
async fn send_now(client: &Client, reports: Vec<Report>) -> Result<(), Vec<Report>> {
    let c = client.clone();
    let req = SyncRequest {
        reports,
        ..SyncRequest::default()
    };
    let back = req.reports.clone();
    match blocking(move || c.call::<SyncResponse>("POST", "/v1/agent/sync", Some(&req))).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::debug!(error = ?e, "feature report failed; kept for the next sync");
            Err(back)
        }
    }
}

async fn converge_once(
    runtime: &DockerRuntime,
    client: &Client,
    host: &str,
    desired: &[DesiredInstance],
    local: &mut Local,
) -> Vec<Report> {
    let c = client.clone();
    let send = move |reports: Vec<Report>| {
        let req = SyncRequest {
            reports,
            ..SyncRequest::default()
        };
        if let Err(e) = c.call::<SyncResponse>("POST", "/v1/agent/sync", Some(&req)) {
            tracing::debug!(error = %e, "transition report failed");
        }
    };
    // Intermediate transition reports are rare and short: sending them
    // inline keeps their order relative to the final report.
    let send_blocking = |r: Vec<Report>| tokio::task::block_in_place(|| send(r));
    match converge(runtime, host, desired, local, &send_blocking).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "converge failed");
            Vec::new()
        }
    }
}
