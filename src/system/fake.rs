//! A recording fake of [`Engine`] for unit tests of the manager's policy.
//! It never replaces the real-daemon tests in `tests/system_services.rs`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::engine::{ContainerInfo, ContainerSpec, Engine, EngineError};

/// One fake container.
#[derive(Clone, Debug)]
pub struct FakeContainer {
    pub spec: ContainerSpec,
    pub running: bool,
    pub id: u32,
    /// A real process standing for its main process (0: none).
    pub pid: i32,
}

/// The fake engine: containers in a map, every call recorded.
#[derive(Default)]
pub struct FakeEngine {
    pub containers: Mutex<BTreeMap<String, FakeContainer>>,
    pub calls: Mutex<Vec<String>>,
    /// Exit code a one-shot container "returns", by name (default 0).
    pub exit_codes: BTreeMap<String, i64>,
    /// One-shots whose `wait` never returns (an engine slow to see the
    /// exit), by name.
    pub hanging_waits: std::collections::BTreeSet<String>,
    pub next_id: Mutex<u32>,
}

impl FakeEngine {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn set_running(&self, name: &str, running: bool) {
        if let Some(c) = self.containers.lock().unwrap().get_mut(name) {
            c.running = running;
        }
    }

    fn missing(op: &'static str, name: &str) -> EngineError {
        EngineError::Reported {
            op,
            target: name.to_string(),
            message: "no such container".to_string(),
        }
    }
}

impl Engine for FakeEngine {
    async fn ping(&self) -> Result<(), EngineError> {
        Ok(())
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, EngineError> {
        Ok(self
            .containers
            .lock()
            .unwrap()
            .get(name)
            .map(|c| ContainerInfo {
                id: format!("{:064x}", c.id),
                name: name.to_string(),
                running: c.running,
                exit_code: 0,
                pid: i64::from(c.pid),
                status: if c.running { "running" } else { "exited" }.to_string(),
                hash: Some(c.spec.hash.clone()),
                service: None,
            }))
    }

    async fn list_managed(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        let names: Vec<String> = self.containers.lock().unwrap().keys().cloned().collect();
        let mut out = Vec::new();
        for n in names {
            out.extend(self.inspect(&n).await?);
        }
        Ok(out)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        self.record(format!("create {}", spec.name));
        let mut id = self.next_id.lock().unwrap();
        *id += 1;
        self.containers.lock().unwrap().insert(
            spec.name.clone(),
            FakeContainer {
                spec: spec.clone(),
                running: false,
                pid: 0,
                id: *id,
            },
        );
        Ok(())
    }

    async fn start(&self, name: &str) -> Result<(), EngineError> {
        self.record(format!("start {name}"));
        // Yield so that parallel starts interleave as they would for real.
        tokio::task::yield_now().await;
        let mut all = self.containers.lock().unwrap();
        let c = all
            .get_mut(name)
            .ok_or_else(|| Self::missing("start", name))?;
        c.running = true;
        Ok(())
    }

    async fn wait(&self, name: &str) -> Result<i64, EngineError> {
        self.record(format!("wait {name}"));
        if self.hanging_waits.contains(name) {
            return std::future::pending().await;
        }
        self.set_running(name, false);
        Ok(self.exit_codes.get(name).copied().unwrap_or(0))
    }

    async fn stop(&self, name: &str, _timeout: Duration) -> Result<(), EngineError> {
        self.record(format!("stop {name}"));
        self.set_running(name, false);
        Ok(())
    }

    async fn signal(&self, name: &str, signal: &str) -> Result<(), EngineError> {
        self.record(format!("signal {name} {signal}"));
        let pid = self
            .containers
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.pid);
        if pid > 0 {
            crate::sys::process::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        Ok(())
    }

    async fn kill(&self, name: &str) -> Result<(), EngineError> {
        self.record(format!("kill {name}"));
        self.set_running(name, false);
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<(), EngineError> {
        self.record(format!("remove {name}"));
        self.containers.lock().unwrap().remove(name);
        Ok(())
    }

    async fn rename(&self, name: &str, to: &str) -> Result<(), EngineError> {
        self.record(format!("rename {name} {to}"));
        let mut cs = self.containers.lock().unwrap();
        let c = cs
            .remove(name)
            .ok_or_else(|| Self::missing("rename", name))?;
        cs.insert(to.to_string(), c);
        Ok(())
    }

    async fn load(&self, archive: &std::path::Path) -> Result<(), EngineError> {
        let source = archive.display().to_string();
        self.record(format!("load {source}"));
        if std::fs::read(archive)
            .unwrap_or_default()
            .starts_with(b"corrupt")
        {
            return Err(EngineError::Reported {
                op: "load",
                target: source,
                message: "unexpected EOF".to_string(),
            });
        }
        Ok(())
    }
}
