//! The one interface slurmbox uses to act on a container engine.
//!
//! Commands never talk to Docker directly: they call [`Engine`], whose real
//! implementation is [`docker::DockerEngine`] (bollard over the engine's API, with the
//! API version negotiated so old engines such as Debian's 20.10 work). Every `ensure_*`
//! call is idempotent, and every object is found through its labels. Engines on other
//! machines are reached over one ssh connection per host ([`ssh`]). Unit tests pass
//! a [`recording::RecordingEngine`] instead, which keeps everything in memory.
//! A command that must succeed goes through [`checked`].

mod checked;
pub mod docker;
pub mod recording;
pub mod ssh;

pub use checked::{CheckedError, ExecFailed, checked, decode_base64};

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::Stream;
use miette::Diagnostic;

use crate::plan::{ContainerPlan, GpuRequest, LABEL_NODE, LABEL_ROLE, NetworkPlan, Role, VolumePlan};

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum EngineError {
    #[error("cannot reach the Docker engine: {0}")]
    #[diagnostic(help(
        "is the Docker engine running, and may this user use it? (`docker info` should work; \
         set DOCKER_HOST for a remote engine)"
    ))]
    Unreachable(String),
    #[error("host {host:?} cannot be reached at {engine}: {reason}")]
    #[diagnostic(help(
        "slurmbox reaches each engine the way you would: check that `docker -H {engine} info` works from \
         here. Meanwhile `slurmbox up --skip-unreachable` brings up the other hosts"
    ))]
    HostUnreachable { host: String, engine: String, reason: String },
    #[error("{what} {name:?} already exists but was not made by slurmbox for this cluster")]
    #[diagnostic(help("remove or rename it, or give the cluster another name with --name"))]
    Foreign { what: &'static str, name: String },
    #[error("the Docker engine refused to {action}: {source}")]
    Api {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{path} does not exist on the host of {container}")]
    #[diagnostic(help(
        "create it there first (for a shared /home: mount the shared filesystem at that path on every host)"
    ))]
    MissingPath { path: String, container: String },
    #[error("the host of {container} does not share mounts under {path} with its containers")]
    #[diagnostic(help(
        "the GlusterFS /home reaches the nodes through mount propagation: run `mount --make-rshared /` on that \
         host as root (systemd hosts do this at boot; others need it after each boot), then `slurmbox up` again"
    ))]
    NotShared { path: String, container: String },
    #[error("port {port} of the host of {container} is in use by another program")]
    #[diagnostic(help(
        "set its port in the spec to a free one ([login] ssh_port, [rest] port), or stop what holds {port}, then \
         `slurmbox up` again"
    ))]
    PortTaken { port: u16, container: String },
    #[error("container {0:?} does not exist")]
    #[diagnostic(help("is the cluster up? `slurmbox status` lists its nodes"))]
    NoContainer(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What the engine says about its host.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub version: String,
    pub cpus: u32,
    pub memory_mib: u64,
    pub arch: String,
    /// "1", "2", or "" where the engine does not say (before API 1.40).
    pub cgroup_version: String,
    /// "cgroupfs", "systemd", "none".
    pub cgroup_driver: String,
    /// As Docker lists them: "name=seccomp,profile=default", "name=rootless", ...
    pub security_options: Vec<String>,
    /// Container runtimes registered with the engine ("runc", "nvidia", ...).
    pub runtimes: Vec<String>,
    /// Devices the engine's CDI driver found ("nvidia.com/gpu=0"; Docker 28.2 and later).
    pub cdi_devices: Vec<String>,
}

/// One of a cluster's containers as the engine reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerInfo {
    /// Which of the cluster's hosts it is on (index into its engines); 0 as listed by
    /// a single engine.
    pub host: usize,
    pub name: String,
    pub id: String,
    /// The image it was created from (`slurmbox/node:24.11-…`).
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// created, running, restarting, exited, ...
    pub state: String,
    /// Docker's human summary, e.g. "Up 3 minutes".
    pub status: String,
}

impl ContainerInfo {
    pub fn running(&self) -> bool {
        self.state == "running"
    }

    /// Its part of the cluster, from its [`LABEL_ROLE`] label.
    pub fn role(&self) -> Option<Role> {
        self.labels.get(LABEL_ROLE).and_then(|r| Role::parse(r))
    }

    /// Whether it plays `role`.
    pub fn is(&self, role: Role) -> bool {
        self.role() == Some(role)
    }

    /// Its node name (the [`LABEL_NODE`] label): "controller", "node1", "pi2", ...
    pub fn node(&self) -> Option<&str> {
        self.labels.get(LABEL_NODE).map(String::as_str)
    }
}

/// A command to run in a container.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub env: Vec<String>,
}

impl ExecSpec {
    pub fn new<S: Into<String>>(cmd: impl IntoIterator<Item = S>) -> ExecSpec {
        ExecSpec { cmd: cmd.into_iter().map(Into::into).collect(), ..Default::default() }
    }

    pub fn shell(script: &str) -> ExecSpec {
        ExecSpec::new(["bash", "-c", script])
    }

    /// Runs the command as `user`, in their home under /home.
    pub fn as_user(self, user: &str) -> ExecSpec {
        self.run_as(user, Some(format!("{}/{user}", crate::contract::HOME)))
    }

    /// Runs the command as `user` (any account but root) in `workdir`. The engine looks
    /// accounts up in the image's /etc/passwd only, and the cluster's users are in its
    /// accounts volume or a directory: `runuser`, started as root, finds them the way
    /// every other program does (NSS) and sets the user's groups, HOME and SHELL.
    pub fn run_as(mut self, user: &str, workdir: Option<String>) -> ExecSpec {
        self.workdir = workdir;
        if user != "root" {
            let mut cmd = vec!["runuser".to_string(), "-u".into(), user.to_string(), "--".into()];
            cmd.append(&mut self.cmd);
            self.cmd = cmd;
        }
        self.user = None;
        self
    }
}

/// A finished command's output.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// Exit 0 with `stdout` and nothing on stderr.
    pub fn success(stdout: &str) -> ExecOutput {
        ExecOutput { code: 0, stdout: stdout.into(), stderr: String::new() }
    }

    /// Exit `code` with `stderr` and nothing on stdout.
    pub fn failure(code: i64, stderr: &str) -> ExecOutput {
        ExecOutput { code, stdout: String::new(), stderr: stderr.into() }
    }
}

/// A file to place in a container.
#[derive(Debug, Clone)]
pub struct FileUpload {
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

#[allow(async_fn_in_trait)]
pub trait Engine {
    async fn info(&self) -> Result<EngineInfo>;
    async fn image_exists(&self, image: &str) -> Result<bool>;
    /// Imports a root filesystem tarball (`docker import`), applying Dockerfile-style
    /// `changes` such as `ENV` and `ENTRYPOINT`. The image is left untagged; the
    /// returned id is tagged once the caller knows the tarball was complete.
    /// `platform` (`linux/arm64`) records the architecture the files are for.
    async fn import_image(
        &self,
        changes: &[String],
        platform: &str,
        tar: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> Result<String>;
    async fn tag_image(&self, id: &str, image: &str) -> Result<()>;
    /// Streams an image from this engine into another (`docker save | docker load`,
    /// over the engines' APIs): how images reach hosts that have no registry.
    async fn send_image(&self, image: &str, to: &Self) -> Result<()>;
    async fn remove_image(&self, id: &str) -> Result<()>;
    /// Pulls `image` (`registry/repository:tag`) from its registry.
    async fn pull_image(&self, image: &str) -> Result<()>;
    /// Pushes `image` to the registry its name starts with.
    async fn push_image(&self, image: &str) -> Result<()>;
    /// Builds `tag` from a Dockerfile alone (no other files in the context); each line
    /// the build prints goes to `line`.
    async fn build_image(
        &self,
        dockerfile: &str,
        tag: &str,
        line: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<()>;
    async fn ensure_network(&self, net: &NetworkPlan) -> Result<()>;
    async fn ensure_volume(&self, vol: &VolumePlan) -> Result<()>;
    async fn list_containers(&self, cluster: &str) -> Result<Vec<ContainerInfo>>;
    /// Every container (of any cluster) carrying `label` = `value`.
    async fn list_labelled(&self, label: &str, value: &str) -> Result<Vec<ContainerInfo>>;
    async fn create_container(&self, c: &ContainerPlan) -> Result<()>;
    /// Writes files into a container (created or running), owned by root.
    async fn upload(&self, container: &str, files: &[FileUpload]) -> Result<()>;
    async fn start_container(&self, name: &str) -> Result<()>;
    /// Stops a container cleanly (SIGTERM, then SIGKILL after a grace period) and removes it.
    async fn remove_container(&self, name: &str) -> Result<()>;
    /// Runs `cmd` (its first word the program) in a short-lived container `name` of
    /// `image`, with no network and no capabilities, given `gpus` by the engine's
    /// device driver: created, run to its end, its output read, removed. How `up`
    /// learns what a host's GPUs look like inside a container.
    async fn run_probe(
        &self,
        name: &str,
        image: &str,
        cmd: &[String],
        gpus: &GpuRequest,
    ) -> Result<ExecOutput>;
    /// Runs a command to completion and captures its output.
    async fn exec(&self, container: &str, spec: &ExecSpec) -> Result<ExecOutput>;
    /// Runs a command wired to this process's stdin/stdout/stderr (or a TTY) and
    /// returns its exit code.
    async fn exec_attached(&self, container: &str, spec: &ExecSpec, tty: bool) -> Result<i64>;
    /// The last `tail` lines of a container's output ("all" for everything).
    async fn logs(&self, container: &str, tail: &str) -> Result<String>;
    async fn remove_network(&self, cluster: &str) -> Result<Vec<String>>;
    async fn remove_volumes(&self, cluster: &str) -> Result<Vec<String>>;
}
