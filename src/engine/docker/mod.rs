//! [`Engine`] over the Docker API (bollard).
//!
//! This file connects (locally, `tcp://`, or `ssh://` through one [`SshTunnel`]) and
//! implements [`Engine`] by handing each call to the file of its concern:
//! [`container`] (the create body built from a plan, and a container's life),
//! [`exec`] (commands, probes, logs), [`images`] and [`networks`] (with volumes).
//! Every request body is one of bollard's typed ones.

mod container;
mod exec;
mod images;
mod networks;

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::models::DeviceRequest;
use bytes::Bytes;
use futures_util::Stream;

use super::ssh::{SshTarget, SshTunnel};
use super::{ContainerInfo, Engine, EngineError, EngineInfo, ExecOutput, ExecSpec, FileUpload, Result};
use crate::plan::{ContainerPlan, GpuRequest, LABEL_CLUSTER, NetworkPlan, VolumePlan};

/// Longest a single engine request may take (an image transfer, a long `exec`).
const REQUEST_TIMEOUT_S: u64 = 1800;

pub struct DockerEngine {
    docker: Docker,
    /// The one ssh connection every request to an `ssh://` engine goes through; ssh
    /// stops when the last clone of the engine's client is gone.
    _tunnel: Option<std::sync::Arc<SshTunnel>>,
}

fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> EngineError {
    let action = action.into();
    move |source| EngineError::Api { action, source }
}

fn is_status(e: &bollard::errors::Error, code: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

fn hash_map(labels: &BTreeMap<String, String>) -> HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// bollard's form of a [`GpuRequest`].
fn device_request(r: &GpuRequest) -> DeviceRequest {
    DeviceRequest {
        driver: Some(r.driver.clone()),
        count: r.all.then_some(-1),
        device_ids: (!r.device_ids.is_empty()).then(|| r.device_ids.clone()),
        capabilities: (!r.capabilities.is_empty()).then(|| vec![r.capabilities.clone()]),
        options: None,
    }
}

impl DockerEngine {
    /// Connects to the engine at `url` (`ssh://user@host` through the user's own ssh
    /// setup, one ssh connection for every request: see [`super::ssh`];
    /// `tcp://host:port`, `unix:///path`), or, without one, the way the docker CLI does
    /// (a `tcp://` or `unix://` DOCKER_HOST, else the local socket; an `ssh://` one is
    /// passed as `url`, by the settings read at start). Agrees on an
    /// API version both sides speak.
    pub async fn connect(url: Option<&str>) -> Result<DockerEngine> {
        let unreachable = |e: String| {
            EngineError::Unreachable(match url {
                Some(url) => format!("{url}: {e}"),
                None => e,
            })
        };
        let tunnel = match url.and_then(SshTarget::parse) {
            Some(target) => Some(std::sync::Arc::new(SshTunnel::open(&target).await.map_err(unreachable)?)),
            None if url.is_some_and(|u| u.starts_with("ssh://")) => {
                return Err(unreachable("not an ssh://user@host[:port] address".into()));
            }
            None => None,
        };
        let docker = match (&tunnel, url) {
            (Some(tunnel), _) => {
                let socket = tunnel.socket().to_str().expect("the tunnel's socket path is UTF-8");
                Docker::connect_with_unix(socket, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
            }
            (None, Some(url)) => Docker::connect_with_host(url),
            (None, None) => Docker::connect_with_defaults(),
        }
        .map_err(|e| unreachable(e.to_string()))?
        // Image transfers and `verify`'s MPI job take longer than bollard's default.
        .with_timeout(std::time::Duration::from_secs(REQUEST_TIMEOUT_S));
        let docker = match docker.negotiate_version().await {
            Ok(docker) => docker,
            // ssh logged in but the host refused the forward: no engine socket there
            // (rootless Docker listens elsewhere), or forwarding is turned off.
            Err(e) => {
                let refusal = match &tunnel {
                    Some(tunnel) => tunnel.forward_refusal().await,
                    None => None,
                };
                return Err(unreachable(match refusal {
                    Some(line) => format!(
                        "the host refused a connection to its engine's socket ({line}); for rootless Docker \
                         give its socket: ssh://user@host/run/user/UID/docker.sock"
                    ),
                    None => e.to_string(),
                }));
            }
        };
        Ok(DockerEngine { docker, _tunnel: tunnel })
    }
}

impl Engine for DockerEngine {
    async fn info(&self) -> Result<EngineInfo> {
        let info = self.docker.info().await.map_err(|e| EngineError::Unreachable(e.to_string()))?;
        Ok(EngineInfo {
            version: info.server_version.unwrap_or_default(),
            cpus: info.ncpu.unwrap_or(1).max(1) as u32,
            memory_mib: (info.mem_total.unwrap_or(0).max(0) as u64) / (1024 * 1024),
            arch: info.architecture.unwrap_or_default(),
            cgroup_version: info.cgroup_version.map(|v| v.to_string()).unwrap_or_default(),
            cgroup_driver: info.cgroup_driver.map(|d| d.to_string()).unwrap_or_default(),
            security_options: info.security_options.unwrap_or_default(),
            runtimes: {
                let mut names: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
                names.sort();
                names
            },
            cdi_devices: info
                .discovered_devices
                .unwrap_or_default()
                .into_iter()
                .filter(|d| d.source.as_deref() == Some("cdi"))
                .filter_map(|d| d.id)
                .collect(),
        })
    }

    async fn image_exists(&self, image: &str) -> Result<bool> {
        images::exists(&self.docker, image).await
    }

    async fn import_image(
        &self,
        changes: &[String],
        platform: &str,
        tar: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> Result<String> {
        images::import(&self.docker, changes, platform, tar).await
    }

    async fn pull_image(&self, image: &str) -> Result<()> {
        images::pull(&self.docker, image).await
    }

    async fn push_image(&self, image: &str) -> Result<()> {
        images::push(&self.docker, image).await
    }

    async fn build_image(
        &self,
        dockerfile: &str,
        tag: &str,
        line: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<()> {
        images::build(&self.docker, dockerfile, tag, line).await
    }

    async fn tag_image(&self, id: &str, image: &str) -> Result<()> {
        images::tag(&self.docker, id, image).await
    }

    async fn send_image(&self, image: &str, to: &Self) -> Result<()> {
        images::send(&self.docker, image, &to.docker).await
    }

    async fn remove_image(&self, id: &str) -> Result<()> {
        images::remove(&self.docker, id).await
    }

    async fn ensure_network(&self, net: &NetworkPlan) -> Result<()> {
        networks::ensure_network(&self.docker, net).await
    }

    async fn ensure_volume(&self, vol: &VolumePlan) -> Result<()> {
        networks::ensure_volume(&self.docker, vol).await
    }

    async fn list_containers(&self, cluster: &str) -> Result<Vec<ContainerInfo>> {
        container::list_labelled(&self.docker, LABEL_CLUSTER, cluster).await
    }

    async fn list_labelled(&self, label: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        container::list_labelled(&self.docker, label, value).await
    }

    async fn create_container(&self, c: &ContainerPlan) -> Result<()> {
        container::create(&self.docker, c).await
    }

    async fn upload(&self, container: &str, files: &[FileUpload]) -> Result<()> {
        container::upload(&self.docker, container, files).await
    }

    async fn start_container(&self, name: &str) -> Result<()> {
        container::start(&self.docker, name).await
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        container::remove(&self.docker, name).await
    }

    async fn run_probe(
        &self,
        name: &str,
        image: &str,
        cmd: &[String],
        gpus: &GpuRequest,
    ) -> Result<ExecOutput> {
        exec::probe(&self.docker, name, image, cmd, gpus).await
    }

    async fn exec(&self, container: &str, spec: &ExecSpec) -> Result<ExecOutput> {
        exec::captured(&self.docker, container, spec).await
    }

    async fn exec_attached(&self, container: &str, spec: &ExecSpec, tty: bool) -> Result<i64> {
        exec::attached(&self.docker, container, spec, tty).await
    }

    async fn logs(&self, container: &str, tail: &str) -> Result<String> {
        exec::logs(&self.docker, container, tail).await
    }

    async fn remove_network(&self, cluster: &str) -> Result<Vec<String>> {
        networks::remove_networks(&self.docker, cluster).await
    }

    async fn remove_volumes(&self, cluster: &str) -> Result<Vec<String>> {
        networks::remove_volumes(&self.docker, cluster).await
    }
}
