//! The container-engine seam: the few operations the service manager needs,
//! as a trait, with the real implementation over bollard.
//!
//! Policy code (`manager`, `preload`) is generic over [`Engine`], so unit
//! tests drive it with the recording fake in `fake.rs` while the integration
//! tests run the same code against a real dockerd through [`DockerEngine`].

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, ImportImageOptions, KillContainerOptions, ListContainersOptions,
    RemoveContainerOptions, RenameContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use bollard::{ClientVersion, Docker};
use futures_util::StreamExt;

/// Label every managed container carries: the service's name.
pub const LABEL_SERVICE: &str = "ros.service";
/// Label: hash of the definition the container was created from.
pub const LABEL_HASH: &str = "ros.service.hash";

/// Errors from the container engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The socket could not be opened.
    #[error("cannot connect to {socket}")]
    Connect {
        /// The socket path.
        socket: String,
        /// Why.
        #[source]
        source: bollard::errors::Error,
    },
    /// An API call failed.
    #[error("{op} {target} failed")]
    Api {
        /// The operation (`create`, `start` …).
        op: &'static str,
        /// Container, image or archive name.
        target: String,
        /// Why.
        #[source]
        source: bollard::errors::Error,
    },
    /// The engine reported an error in a streamed response.
    #[error("{op} {target}: {message}")]
    Reported {
        /// The operation.
        op: &'static str,
        /// Container, image or archive name.
        target: String,
        /// The engine's message.
        message: String,
    },
}

/// What the manager needs to know about one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Container id.
    pub id: String,
    /// Container name (without the leading `/`).
    pub name: String,
    /// Is it running (or restarting)?
    pub running: bool,
    /// Last exit code.
    pub exit_code: i64,
    /// Main process id on the host (0 when not running).
    pub pid: i64,
    /// Status word (`running`, `exited`, `created` …).
    pub status: String,
    /// The definition hash label, if any.
    pub hash: Option<String>,
    /// The service label, if any.
    pub service: Option<String>,
}

/// A container to create: its name and the engine's create body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerSpec {
    /// Container name.
    pub name: String,
    /// Definition hash (also set as the [`LABEL_HASH`] label).
    pub hash: String,
    /// The create request.
    pub body: ContainerCreateBody,
}

/// The operations of a container engine the service manager uses.
pub trait Engine: Sync {
    /// Succeeds when the engine answers.
    fn ping(&self) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// The container called `name`, if it exists.
    fn inspect(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ContainerInfo>, EngineError>> + Send;
    /// Every container carrying the [`LABEL_SERVICE`] label.
    fn list_managed(&self) -> impl Future<Output = Result<Vec<ContainerInfo>, EngineError>> + Send;
    /// Create a container (not started).
    fn create(&self, spec: &ContainerSpec) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Start a created or stopped container.
    fn start(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Wait for a container to stop; returns its exit code.
    fn wait(&self, name: &str) -> impl Future<Output = Result<i64, EngineError>> + Send;
    /// Stop a container: SIGTERM, then SIGKILL after `timeout`.
    fn stop(
        &self,
        name: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Send SIGKILL.
    fn kill(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Send `signal` (`TERM`, …) to the container's main process and return
    /// at once (the engine counts it as stopped by hand: no restart).
    fn signal(
        &self,
        name: &str,
        signal: &str,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Remove a container (forcibly, with its anonymous volumes).
    fn remove(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Rename a container (metadata only: cheap where a removal is not).
    fn rename(&self, name: &str, to: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// `docker load` an image archive (`docker save` format, maybe
    /// gzipped), streamed from the file so a large archive never sits in
    /// memory whole.
    fn load(&self, archive: &Path) -> impl Future<Output = Result<(), EngineError>> + Send;
}

/// The real engine: a dockerd reached over its unix socket.
#[derive(Clone, Debug)]
pub struct DockerEngine {
    docker: Docker,
}

/// API version every Debian 12 dockerd (20.10, API 1.41) speaks; newer
/// engines accept it too, so no negotiation round-trip is needed.
const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

impl DockerEngine {
    /// A client for the engine at `socket` (no request is made yet).
    pub fn connect(socket: &Path) -> Result<DockerEngine, EngineError> {
        let s = socket.display().to_string();
        Docker::connect_with_unix(&s, 300, &API_VERSION)
            .map(|docker| DockerEngine { docker })
            .map_err(|source| EngineError::Connect { socket: s, source })
    }

    /// The underlying bollard client (for logs and events).
    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

fn api(op: &'static str, target: &str) -> impl FnOnce(bollard::errors::Error) -> EngineError {
    let target = target.to_string();
    move |source| EngineError::Api { op, target, source }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl Engine for DockerEngine {
    async fn ping(&self) -> Result<(), EngineError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(api("ping", "engine"))
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, EngineError> {
        let r = match self.docker.inspect_container(name, None).await {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(api("inspect", name)(e)),
        };
        let state = r.state.unwrap_or_default();
        let labels = r.config.and_then(|c| c.labels).unwrap_or_default();
        Ok(Some(ContainerInfo {
            id: r.id.unwrap_or_default(),
            name: r
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            running: state.running.unwrap_or(false) || state.restarting.unwrap_or(false),
            exit_code: state.exit_code.unwrap_or(0),
            pid: state.pid.unwrap_or(0),
            status: state.status.map(|s| s.to_string()).unwrap_or_default(),
            hash: labels.get(LABEL_HASH).cloned(),
            service: labels.get(LABEL_SERVICE).cloned(),
        }))
    }

    async fn list_managed(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        let filters = HashMap::from([("label".to_string(), vec![LABEL_SERVICE.to_string()])]);
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(api("list", "containers"))?;
        Ok(list
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                let status = c.state.map(|s| s.to_string()).unwrap_or_default();
                ContainerInfo {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    running: status == "running" || status == "restarting",
                    exit_code: 0,
                    pid: 0,
                    status,
                    hash: labels.get(LABEL_HASH).cloned(),
                    service: labels.get(LABEL_SERVICE).cloned(),
                }
            })
            .collect())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        let opts = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        self.docker
            .create_container(Some(opts), spec.body.clone())
            .await
            .map(|_| ())
            .map_err(api("create", &spec.name))
    }

    async fn start(&self, name: &str) -> Result<(), EngineError> {
        self.docker
            .start_container(name, None)
            .await
            .map_err(api("start", name))
    }

    async fn wait(&self, name: &str) -> Result<i64, EngineError> {
        let opts = WaitContainerOptions {
            condition: "not-running".to_string(),
        };
        let mut stream = self.docker.wait_container(name, Some(opts));
        match stream.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(api("wait", name)(e)),
            None => Err(EngineError::Reported {
                op: "wait",
                target: name.to_string(),
                message: "the engine closed the wait without a status".to_string(),
            }),
        }
    }

    async fn stop(&self, name: &str, timeout: Duration) -> Result<(), EngineError> {
        let opts = StopContainerOptions {
            t: Some(i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX)),
            ..Default::default()
        };
        match self.docker.stop_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(api("stop", name)(e)),
        }
    }

    async fn signal(&self, name: &str, signal: &str) -> Result<(), EngineError> {
        self.docker
            .kill_container(
                name,
                Some(KillContainerOptions {
                    signal: signal.to_string(),
                }),
            )
            .await
            .map_err(api("kill", name))
    }

    async fn kill(&self, name: &str) -> Result<(), EngineError> {
        self.docker
            .kill_container(name, Some(KillContainerOptions::default()))
            .await
            .map_err(api("kill", name))
    }

    async fn remove(&self, name: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api("remove", name)(e)),
        }
    }

    async fn rename(&self, name: &str, to: &str) -> Result<(), EngineError> {
        let opts = RenameContainerOptions {
            name: to.to_string(),
        };
        self.docker
            .rename_container(name, opts)
            .await
            .map_err(api("rename", name))
    }

    async fn load(&self, archive: &Path) -> Result<(), EngineError> {
        let source = archive.display().to_string();
        let source = source.as_str();
        let opts = ImportImageOptions {
            quiet: true,
            ..Default::default()
        };
        let file = tokio::fs::File::open(archive)
            .await
            .map_err(|e| EngineError::Reported {
                op: "load",
                target: source.to_string(),
                message: e.to_string(),
            })?;
        let chunks = futures_util::stream::unfold(file, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        let mut stream = self.docker.import_image_stream(opts, chunks, None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(api("load", source))?;
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(EngineError::Reported {
                    op: "load",
                    target: source.to_string(),
                    message: detail,
                });
            }
        }
        Ok(())
    }
}
