//! A cluster that exists: a connection to each of its hosts' engines, and what runs
//! there, asked once per command ([`Model`]) and shared by every view: `status`,
//! `doctor`, and later the REST API's and the dashboard's. What exists is always asked
//! of the engines, through the labels every container carries: there is no state file.
//!
//! The report types every view renders are in [`report`]; the parts of a cluster fill
//! in their own share of them.

pub mod report;

use futures_util::future::join_all;
use miette::Diagnostic;

use crate::engine::docker::DockerEngine;
use crate::engine::{ContainerInfo, Engine, EngineError, EngineInfo};
use crate::plan::{LABEL_USER, Role};
use crate::slurm::{Job, Node, Slurm};

/// A cluster by name, with a connection to each of its hosts' engines (controller's
/// first).
pub struct Cluster {
    pub name: String,
    pub hosts: Vec<ClusterHost>,
}

/// One of a cluster's hosts, and its engine if it answered.
pub struct ClusterHost {
    pub name: String,
    /// The engine's address; `None` for the local engine.
    pub url: Option<String>,
    pub engine: Result<DockerEngine, EngineError>,
}

impl Cluster {
    /// Every container of the cluster on every host that answered, or an error saying
    /// the cluster does not exist.
    pub async fn containers(&self) -> miette::Result<Vec<ContainerInfo>> {
        let mut all = Vec::new();
        for (host, engine) in self.reachable() {
            all.extend(
                engine.list_containers(&self.name).await?.into_iter().map(|c| ContainerInfo { host, ..c }),
            );
        }
        if all.is_empty() {
            return Err(ClusterError::Missing(self.name.clone()).into());
        }
        Ok(all)
    }

    /// The hosts whose engines answered, with their index in [`Cluster::hosts`].
    pub fn reachable(&self) -> impl Iterator<Item = (usize, &DockerEngine)> {
        self.hosts.iter().enumerate().filter_map(|(i, h)| h.engine.as_ref().ok().map(|e| (i, e)))
    }

    /// The hosts whose engines did not answer, each with the reason.
    pub fn unreachable(&self) -> impl Iterator<Item = (&ClusterHost, &EngineError)> {
        self.hosts.iter().filter_map(|h| h.engine.as_ref().err().map(|e| (h, e)))
    }

    /// The engine a container lives on (containers are only listed from hosts that
    /// answered).
    pub fn engine(&self, container: &ContainerInfo) -> &DockerEngine {
        self.hosts[container.host].engine.as_ref().expect("containers come from hosts that answered")
    }

    /// The controller's engine, or why its host did not answer (a cluster with a backup
    /// controller on another host is looked at without it).
    pub fn control(&self) -> Result<&DockerEngine, &EngineError> {
        self.hosts[0].engine.as_ref()
    }

    /// What runs now, asked of every engine and of the controller at once.
    pub async fn model(&self) -> miette::Result<Model> {
        let containers = self.containers().await?;
        let infos = join_all(self.hosts.iter().map(|h| async {
            match &h.engine {
                Ok(engine) => engine.info().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }));
        let slurm = async {
            // The first controller that runs answers for the cluster (Slurm's own
            // commands fail over to a backup by themselves).
            let Some(c) = containers.iter().find(|c| c.is(Role::Controller) && c.running()) else {
                return Err("the controller is not running".to_string());
            };
            let slurm = Slurm::new(self.engine(c), &c.name);
            let (nodes, jobs) = futures_util::join!(slurm.nodes(), slurm.jobs());
            Ok(SlurmView { nodes: nodes.map_err(|e| e.to_string())?, jobs: jobs.map_err(|e| e.to_string())? })
        };
        let (infos, slurm) = futures_util::join!(infos, slurm);
        Ok(Model { containers, infos, slurm })
    }
}

/// What a cluster is right now, as its engines and its controller say; what could not
/// be asked is kept with the reason.
pub struct Model {
    /// Every container of the cluster on the hosts that answered.
    pub containers: Vec<ContainerInfo>,
    /// Per host (in [`Cluster::hosts`]' order): what its engine offers, or why it was
    /// not asked.
    pub infos: Vec<Result<EngineInfo, String>>,
    /// The controller's view of nodes and jobs, or why it could not be asked.
    pub slurm: Result<SlurmView, String>,
}

/// What the controller knows.
pub struct SlurmView {
    pub nodes: Vec<Node>,
    pub jobs: Vec<Job>,
}

impl Model {
    /// The containers that play `role`, in the engines' order.
    pub fn of_role(&self, role: Role) -> impl Iterator<Item = &ContainerInfo> {
        self.containers.iter().filter(move |c| c.is(role))
    }

    /// The running controllers, the primary first.
    pub fn controllers(&self) -> Vec<&ContainerInfo> {
        self.of_role(Role::Controller).filter(|c| c.running()).collect()
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

/// The running container of `node` ("login", "controller", "node1", ...).
pub fn running_node<'a>(
    cluster: &str,
    containers: &'a [ContainerInfo],
    node: &str,
) -> Result<&'a ContainerInfo, ClusterError> {
    let found = containers.iter().find(|c| c.node() == Some(node));
    let Some(found) = found else {
        let known =
            containers.iter().filter_map(|c| c.node().map(String::from)).collect::<Vec<_>>().join(", ");
        return Err(ClusterError::NoNode { cluster: cluster.into(), node: node.into(), known });
    };
    if !found.running() {
        return Err(ClusterError::NotRunning {
            cluster: cluster.into(),
            node: node.into(),
            state: found.state.clone(),
        });
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
