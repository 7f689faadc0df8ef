//! One file per command. Each takes its parsed arguments and a [`Context`] and returns
//! the process exit code; errors go back to `main`, which prints them once.

pub mod backup;
pub mod config;
pub mod doctor;
pub mod down;
pub mod exec;
pub mod host;
pub mod image;
pub mod list;
pub mod logs;
pub mod restore;
pub mod ssh_config;
pub mod status;
pub mod up;
pub mod user;
pub mod verify;

use futures_util::future::join_all;
use miette::Diagnostic;

use crate::cli::ClusterName;
use crate::engine::docker::DockerEngine;
use crate::engine::{ContainerInfo, Engine, EngineError, EngineInfo};
use crate::plan::{LABEL_NODE, LABEL_USER};
use crate::progress::Progress;
use crate::registry::Registry;
use crate::settings::Settings;
use crate::spec::{ClusterSpec, HostSpec};

/// Settings resolved once from flags and environment.
pub struct Context {
    pub progress: Progress,
    pub settings: Settings,
}

impl Context {
    /// Connects to the engine at `url` (ssh://, tcp://, unix://), or the local one.
    pub async fn engine(&self, url: Option<&str>) -> Result<DockerEngine, EngineError> {
        DockerEngine::connect(url.or(self.settings.local_engine())).await
    }

    /// Connects to a host's engine and asks what it offers; any failure, a slow answer
    /// included, is an error naming the host.
    pub async fn host_engine(&self, host: &HostSpec) -> Result<(DockerEngine, EngineInfo), EngineError> {
        crate::deploy::hosts::connect(host).await
    }

    /// The cluster a command acts on, connected to the engines of all its hosts at once.
    /// The controller's host must answer; other hosts that do not are kept as
    /// unreachable, so commands can still act on the rest and say what they missed.
    pub async fn cluster(&self, args: &ClusterName) -> miette::Result<Cluster> {
        self.connect(args, false).await
    }

    /// Like [`Context::cluster`], connected to the controller's host only (which also
    /// runs the login node): commands there need not wait for a host that is down.
    pub async fn cluster_controller(&self, args: &ClusterName) -> miette::Result<Cluster> {
        self.connect(args, true).await
    }

    async fn connect(&self, args: &ClusterName, controller_only: bool) -> miette::Result<Cluster> {
        let spec = load_spec(self, args)?;
        let (name, mut hosts) = (spec.name, spec.hosts);
        if hosts.is_empty() {
            let engine = Ok(self.engine(None).await?);
            return Ok(Cluster {
                name,
                hosts: vec![ClusterHost { name: "local".into(), url: None, engine }],
            });
        }
        if controller_only {
            hosts.truncate(1);
        }
        let engines = join_all(hosts.iter().map(|h| self.host_engine(h))).await;
        let mut connected = Vec::new();
        for (i, (host, engine)) in hosts.into_iter().zip(engines).enumerate() {
            let engine = match engine {
                Err(e) if i == 0 => return Err(e.into()),
                other => other.map(|(engine, _)| engine),
            };
            connected.push(ClusterHost { name: host.name, url: Some(host.engine), engine });
        }
        Ok(Cluster { name, hosts: connected })
    }
}

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

    /// The controller's engine (its host always answered, or there is no [`Cluster`]).
    pub fn control(&self) -> &DockerEngine {
        self.hosts[0].engine.as_ref().expect("the controller's host answered")
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

/// The text `up` remembers the cluster by (see [`crate::registry`]): its spec file's,
/// else the remembered copy, else just its name.
pub fn spec_text(ctx: &Context, args: &ClusterName, spec: &ClusterSpec) -> String {
    if let Some(text) = args.file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
        return text;
    }
    Registry::new(&ctx.settings)
        .find(&spec.name)
        .map(|e| e.spec)
        .unwrap_or_else(|| format!("name = {}\n", toml_string(&spec.name)))
}

/// Reads the spec named by `-f`; without one, the spec of the cluster `--name` names
/// if this machine brought it up (wherever its hosts are), else the default cluster.
/// `--name` takes precedence over the spec's name.
pub fn load_spec(ctx: &Context, args: &ClusterName) -> miette::Result<ClusterSpec> {
    let remembered = match (&args.file, &args.name) {
        (None, Some(name)) => Registry::new(&ctx.settings).find(name),
        _ => None,
    };
    let mut spec = match (&args.file, remembered) {
        (Some(path), _) => ClusterSpec::load(path)?,
        (None, Some(entry)) => entry.load()?,
        (None, None) => ClusterSpec::default_cluster(),
    };
    if let Some(name) = &args.name {
        spec = ClusterSpec::parse("--name", &format!("name = {}", toml_string(name)))
            .map(|named| ClusterSpec { name: named.name, ..spec })?;
    }
    Ok(spec)
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
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
