//! A recording fake of [`Runtime`] for unit tests of converging. It never
//! replaces the real-dockerd cluster tests (`tests/cluster_*.rs`), which
//! run the same converge code through [`super::runtime::DockerRuntime`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::decide::Actual;
use super::docker::DockerError;
use super::runtime::Runtime;
use crate::cluster::protocol::DesiredInstance;

/// One fake container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FakeContainer {
    /// The instance it belongs to.
    pub instance: String,
    /// Its name.
    pub name: String,
    /// Running or not.
    pub running: bool,
}

#[derive(Default)]
struct State {
    /// Containers by docker id.
    containers: BTreeMap<String, FakeContainer>,
    calls: Vec<String>,
    /// Operations (`create`, `start`, … `pull`) that fail, with docker's
    /// message.
    failing: BTreeMap<&'static str, String>,
    next_id: u32,
}

/// The fake runtime: containers in a map, every call recorded. Clones
/// share their state, as clones of a docker client share the engine.
#[derive(Clone, Default)]
pub(crate) struct FakeRuntime {
    state: Arc<Mutex<State>>,
}

impl FakeRuntime {
    /// A container `id` of `instance`, named after it.
    pub(crate) fn add(&self, id: &str, instance: &str, running: bool) {
        self.state.lock().unwrap().containers.insert(
            id.to_string(),
            FakeContainer {
                instance: instance.to_string(),
                name: format!("r-{instance}"),
                running,
            },
        );
    }

    /// Make every `op` call fail with `message`.
    pub(crate) fn fail(&self, op: &'static str, message: &str) {
        self.state
            .lock()
            .unwrap()
            .failing
            .insert(op, message.to_string());
    }

    /// The calls made so far, as `op target`.
    pub(crate) fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The containers by docker id.
    pub(crate) fn containers(&self) -> BTreeMap<String, FakeContainer> {
        self.state.lock().unwrap().containers.clone()
    }

    /// Record `op target`; docker's error when `op` is set to fail.
    fn call(&self, op: &'static str, target: &str) -> Result<(), String> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(format!("{op} {target}"));
        match s.failing.get(op) {
            Some(m) => Err(m.clone()),
            None => Ok(()),
        }
    }

    /// `call`, failing as dockerd would.
    fn engine(&self, op: &'static str, target: &str) -> Result<(), DockerError> {
        self.call(op, target).map_err(|message| {
            DockerError::Engine(bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message,
            })
        })
    }

    fn set_running(&self, id: &str, running: bool) -> Result<(), DockerError> {
        match self.state.lock().unwrap().containers.get_mut(id) {
            Some(c) => {
                c.running = running;
                Ok(())
            }
            None => Err(DockerError::Engine(
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    message: format!("No such container: {id}"),
                },
            )),
        }
    }
}

impl Runtime for FakeRuntime {
    async fn managed(&self, host: &str) -> Result<HashMap<String, Actual>, DockerError> {
        self.engine("list", host)?;
        Ok(self
            .state
            .lock()
            .unwrap()
            .containers
            .iter()
            .map(|(id, c)| {
                (
                    c.instance.clone(),
                    Actual {
                        id: id.clone(),
                        running: c.running,
                    },
                )
            })
            .collect())
    }

    async fn create(&self, d: &DesiredInstance) -> Result<String, DockerError> {
        self.engine("create", &d.docker_name)?;
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = format!("new{}", s.next_id);
        s.containers.insert(
            id.clone(),
            FakeContainer {
                instance: d.id.clone(),
                name: d.docker_name.clone(),
                running: false,
            },
        );
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), DockerError> {
        self.engine("start", id)?;
        self.set_running(id, true)
    }

    async fn restart(&self, id: &str) -> Result<(), DockerError> {
        self.engine("restart", id)?;
        self.set_running(id, true)
    }

    async fn stop(&self, id: &str) -> Result<(), DockerError> {
        self.engine("stop", id)?;
        self.set_running(id, false)
    }

    async fn remove(&self, id: &str) -> Result<(), DockerError> {
        self.engine("remove", id)?;
        self.state.lock().unwrap().containers.remove(id);
        Ok(())
    }

    async fn pull(&self, image: &str) -> Result<(), String> {
        self.call("pull", image)
            .map_err(|m| format!("pull {image}: {m}"))
    }
}
