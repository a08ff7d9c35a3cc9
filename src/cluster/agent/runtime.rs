//! The container-runtime seam of the converge loop: the few docker
//! operations [`super::converge`] carries a [`super::decide::Step`] out
//! with, as a trait, with the real implementation over bollard beside it.
//!
//! Unit tests drive `converge` with the recording fake in `fake.rs`; the
//! cluster integration tests (`tests/cluster_*.rs`) run the same code
//! against real dockerds through [`DockerRuntime`]. Logs, stats, events and
//! health probes read bollard directly: they report, they do not decide.

use std::collections::HashMap;
use std::future::Future;

use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, StopContainerOptions,
};
use bollard::Docker;

use super::decide::Actual;
use super::docker::{self, DockerError};
use crate::cluster::plan::compose::LB_IMAGE;
use crate::cluster::protocol::DesiredInstance;

/// The docker operations converging needs.
pub(crate) trait Runtime: Clone + Send + Sync + 'static {
    /// Managed containers of `host` by instance id.
    fn managed(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<HashMap<String, Actual>, DockerError>> + Send;
    /// Create the container of `d` (not started); its docker id.
    fn create(
        &self,
        d: &DesiredInstance,
    ) -> impl Future<Output = Result<String, DockerError>> + Send;
    /// Start a created or stopped container.
    fn start(&self, id: &str) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Restart a running container.
    fn restart(&self, id: &str) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Stop a container (SIGKILL after 5 s).
    fn stop(&self, id: &str) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Remove a container, forcibly.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Pull `image` from its registry; docker's message on failure.
    fn pull(&self, image: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// The real runtime: the user docker, through bollard.
/// Load the images only a cluster member may run (the load balancer's,
/// shipped in the node image) into the user engine, when the first
/// container needing one is created on this host: a node that never runs
/// a load balancer never unpacks its 17 MB (on a live node, into RAM).
/// True when loaded.
async fn load_cluster_images() -> bool {
    tokio::task::spawn_blocking(|| {
        let paths = crate::paths::Paths::default();
        let dir = paths.cluster_images_dir();
        if !dir.is_dir() {
            return false;
        }
        match crate::cli::sysinit::preload_into_user_engine(&paths, &[dir]) {
            Ok(0) => true,
            Ok(failed) => {
                tracing::warn!(failed, "cluster images: some archives did not load");
                false
            }
            Err(e) => {
                tracing::warn!("cluster images: {e:#}");
                false
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[derive(Clone, Debug)]
pub(crate) struct DockerRuntime {
    docker: Docker,
    /// This host's underlay address (the managed network's MTU follows
    /// its interface).
    local_ip: Option<std::net::Ipv4Addr>,
}

impl DockerRuntime {
    /// Converge through `docker`.
    pub(crate) fn new(docker: Docker, local_ip: Option<std::net::Ipv4Addr>) -> DockerRuntime {
        DockerRuntime { docker, local_ip }
    }
}

impl Runtime for DockerRuntime {
    async fn managed(&self, host: &str) -> Result<HashMap<String, Actual>, DockerError> {
        docker::managed(&self.docker, host).await
    }

    async fn create(&self, d: &DesiredInstance) -> Result<String, DockerError> {
        if let Some(net) = d
            .network
            .as_ref()
            .filter(|_| d.primary_ip_address.is_some())
        {
            // The overlay feature makes it too; the first container may
            // come before it has.
            super::overlay::ensure_network(&self.docker, net, self.local_ip)
                .await
                .map_err(DockerError::Other)?;
        }
        let opts = CreateContainerOptions {
            name: Some(d.docker_name.clone()),
            ..Default::default()
        };
        let body = docker::create_body(d);
        match self
            .docker
            .create_container(Some(opts.clone()), body.clone())
            .await
        {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) if d.image == LB_IMAGE && load_cluster_images().await => {
                Ok(self.docker.create_container(Some(opts), body).await?.id)
            }
            r => Ok(r?.id),
        }
    }

    async fn start(&self, id: &str) -> Result<(), DockerError> {
        Ok(self.docker.start_container(id, None).await?)
    }

    async fn restart(&self, id: &str) -> Result<(), DockerError> {
        Ok(self.docker.restart_container(id, None).await?)
    }

    async fn stop(&self, id: &str) -> Result<(), DockerError> {
        let opts = StopContainerOptions {
            t: Some(5),
            ..Default::default()
        };
        Ok(self.docker.stop_container(id, Some(opts)).await?)
    }

    async fn remove(&self, id: &str) -> Result<(), DockerError> {
        let opts = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        Ok(self.docker.remove_container(id, Some(opts)).await?)
    }

    async fn pull(&self, image: &str) -> Result<(), String> {
        docker::pull(&self.docker, image).await
    }
}
