//! One file per command. Each takes its parsed arguments and a [`Context`] and returns
//! the process exit code; errors go back to `main`, which prints them once.

pub mod config;
pub mod down;
pub mod exec;
pub mod image;
pub mod logs;
pub mod status;
pub mod up;
pub mod verify;

use miette::Diagnostic;

use crate::cli::ClusterName;
use crate::engine::docker::DockerEngine;
use crate::engine::{ContainerInfo, Engine};
use crate::plan::{LABEL_NODE, LABEL_USER};
use crate::progress::Progress;
use crate::spec::DEFAULT_NAME;

/// Settings resolved once from flags and environment.
pub struct Context {
    pub progress: Progress,
}

impl Context {
    /// Connects to the engine at `url` (ssh://, tcp://, unix://), or the local one.
    pub async fn engine(&self, url: Option<&str>) -> Result<DockerEngine, crate::engine::EngineError> {
        DockerEngine::connect(url).await
    }

    /// The cluster a command acts on, connected to the engines of all its hosts.
    pub async fn cluster(&self, args: &ClusterName) -> miette::Result<Cluster> {
        let (name, hosts) = match &args.file {
            Some(_) => {
                let spec = up::load_spec(args)?;
                (spec.name, spec.hosts)
            }
            None => (cluster_name(args), Vec::new()),
        };
        if hosts.is_empty() {
            let engines = vec![self.engine(None).await?];
            return Ok(Cluster { name, hosts: vec!["local".into()], engines });
        }
        let engines =
            futures_util::future::try_join_all(hosts.iter().map(|h| self.engine(Some(&h.engine)))).await?;
        Ok(Cluster { name, hosts: hosts.into_iter().map(|h| h.name).collect(), engines })
    }
}

/// A cluster by name, with a connection to each of its hosts' engines (controller's
/// first).
pub struct Cluster {
    pub name: String,
    pub hosts: Vec<String>,
    pub engines: Vec<DockerEngine>,
}

impl Cluster {
    /// Every container of the cluster on every host, or an error saying it does not
    /// exist.
    pub async fn containers(&self) -> miette::Result<Vec<ContainerInfo>> {
        let mut all = Vec::new();
        for (host, engine) in self.engines.iter().enumerate() {
            all.extend(
                engine.list_containers(&self.name).await?.into_iter().map(|c| ContainerInfo { host, ..c }),
            );
        }
        if all.is_empty() {
            return Err(ClusterError::Missing(self.name.clone()).into());
        }
        Ok(all)
    }

    /// The engine a container lives on.
    pub fn engine(&self, container: &ContainerInfo) -> &DockerEngine {
        &self.engines[container.host]
    }
}

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ClusterError {
    #[error("cluster {0:?} does not exist on this Docker engine")]
    #[diagnostic(help("create it with `slurmbox up --name {0}`, or pick another with --name"))]
    Missing(String),
    #[error("cluster {cluster:?} has no node {node:?} (it has: {known})")]
    #[diagnostic(help("use one of the listed node names"))]
    NoNode { cluster: String, node: String, known: String },
    #[error("node {node:?} of cluster {cluster:?} is not running (container state: {state})")]
    #[diagnostic(help(
        "`slurmbox up --name {cluster}` starts it again; `slurmbox logs --name {cluster} {node}` shows why it stopped"
    ))]
    NotRunning { cluster: String, node: String, state: String },
}

pub fn cluster_name(arg: &ClusterName) -> String {
    arg.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_string())
}

/// The running container of `node` ("login", "controller", "node1", ...).
pub fn running_node<'a>(
    cluster: &str,
    containers: &'a [ContainerInfo],
    node: &str,
) -> miette::Result<&'a ContainerInfo> {
    let found = containers.iter().find(|c| c.labels.get(LABEL_NODE).map(String::as_str) == Some(node));
    let Some(found) = found else {
        let known = containers
            .iter()
            .filter_map(|c| c.labels.get(LABEL_NODE).cloned())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ClusterError::NoNode { cluster: cluster.into(), node: node.into(), known }.into());
    };
    if !found.running() {
        return Err(ClusterError::NotRunning {
            cluster: cluster.into(),
            node: node.into(),
            state: found.state.clone(),
        }
        .into());
    }
    Ok(found)
}

/// The cluster's default user, as recorded on its containers.
pub fn default_user(containers: &[ContainerInfo]) -> String {
    containers
        .iter()
        .find_map(|c| c.labels.get(LABEL_USER).cloned())
        .unwrap_or_else(|| crate::spec::DEFAULT_USER.to_string())
}

pub fn exit_code(code: i64) -> std::process::ExitCode {
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
