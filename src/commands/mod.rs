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

    /// The cluster a command acts on and a connection to the engine it lives on.
    pub async fn cluster(&self, args: &ClusterName) -> miette::Result<(String, DockerEngine)> {
        if args.file.is_some() {
            let spec = up::load_spec(args)?;
            let engine = self.engine(spec.engine()).await?;
            return Ok((spec.name, engine));
        }
        Ok((cluster_name(args), self.engine(None).await?))
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

/// The cluster's containers, or an error saying it does not exist.
pub async fn cluster_containers(engine: &impl Engine, cluster: &str) -> miette::Result<Vec<ContainerInfo>> {
    let found = engine.list_containers(cluster).await?;
    if found.is_empty() {
        return Err(ClusterError::Missing(cluster.to_string()).into());
    }
    Ok(found)
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
