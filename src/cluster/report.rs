//! What the views of a cluster show, as plain data: [`ClusterStatus`] (`slurmbox status`,
//! also `--json` for scripts) and [`DoctorReport`] (`slurmbox doctor`). The base is
//! filled from the [`super::Model`]; each part of the cluster fills in its own share
//! (the GlusterFS /home its volume's health, the controller an unclean start, the limits
//! what each node enforces).

/// The whole picture, as `slurmbox status --json` prints it.
#[derive(Debug, serde::Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub hosts: Vec<HostStatus>,
    pub nodes: Vec<NodeStatus>,
    /// The GlusterFS /home's volume; null without one or when it cannot be asked.
    pub shared_home: Option<SharedHomeStatus>,
    /// Why the controller could not be asked for the nodes' Slurm states.
    pub slurm_error: Option<String>,
    /// When the running controller started after an unclean stop (a crash or kill),
    /// which may have cost Slurm its last seconds of changes; null after a clean start.
    pub controller_unclean_start: Option<String>,
    /// Every controller, the primary first, and which is in charge (empty when none
    /// could be asked).
    pub controllers: Vec<ControllerStatus>,
    /// Where the REST API answers ("http://HOST:PORT"); null without one.
    pub rest_url: Option<String>,
    /// Where the dashboard answers; null without `[web]`.
    pub web_url: Option<String>,
    /// Every job in the controller's queue, as `squeue` lists them to root (empty when
    /// the controller cannot be asked: see `slurm_error`).
    pub jobs: Vec<JobStatus>,
    /// Prometheus, keeping the cluster's metrics; null without `[metrics]`.
    pub metrics: Option<MetricsStatus>,
}

/// One slurmctld, as `scontrol ping` sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ControllerStatus {
    /// Its node name ("controller", "controller2").
    pub name: String,
    /// "primary", "backup1".
    pub mode: String,
    pub responding: bool,
    /// Whether it is the one that takes requests now.
    pub in_charge: bool,
}

/// Where Prometheus answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MetricsStatus {
    /// Its address where the nodes reach it ("metrics:9090" on the cluster's network).
    pub address: String,
    /// Its URL on the controller's host, where `[metrics] port` publishes it; null
    /// otherwise.
    pub url: Option<String>,
    /// Its container's state ("running", "exited", ...).
    pub state: String,
}

#[derive(Debug, serde::Serialize)]
pub struct HostStatus {
    pub host: String,
    /// The engine's address ("local" for the local engine).
    pub engine: String,
    pub reachable: bool,
    /// Why it could not be reached.
    pub error: Option<String>,
    /// Docker version and CPU architecture, as its engine reports them.
    pub docker_version: Option<String>,
    pub arch: Option<String>,
    /// Why a reachable engine did not say its version and architecture.
    pub info_error: Option<String>,
    /// Images the cluster's containers there run.
    pub images: Vec<String>,
    pub nodes: Vec<String>,
    /// With a GlusterFS /home: whether its storage container has the volume mounted
    /// for the host's nodes (null without one, or when it cannot be asked).
    pub home_mounted: Option<bool>,
    /// Why its storage container could not say.
    pub home_error: Option<String>,
}

/// The GlusterFS /home's volume, as the first host's storage container reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SharedHomeStatus {
    /// "Started", "Stopped", or "none" before the first `up` made it.
    pub volume: String,
    pub bricks: u32,
    /// Bricks whose server runs and answers.
    pub online: u32,
    /// Files a brick still lacks, which self-heal will copy there.
    pub heal_pending: u32,
    /// Files whose copies disagree and which GlusterFS cannot settle by itself.
    pub split_brain: u32,
}

#[derive(Debug, serde::Serialize)]
pub struct NodeStatus {
    /// The spec's name of the host the node runs on ("local" for the local engine).
    pub host: String,
    pub node: String,
    pub role: String,
    /// Null for a node on a host that did not answer.
    pub container: Option<String>,
    pub container_state: String,
    pub container_status: String,
    /// Slurm's state for compute nodes ("idle", "down*", ...), as `sinfo` prints it;
    /// null for the others or when the controller cannot be asked.
    pub slurm_state: Option<String>,
    /// A compute node `up` drained for a change that waits for its jobs: what changes
    /// ("memory 4096 -> 2048 MiB"); null otherwise.
    pub waiting_for_change: Option<String>,
    /// Compute nodes: the cgroup plugin confining their jobs, or "off" (`doctor` says
    /// why); null for the others.
    pub limits: Option<String>,
    /// Compute nodes with GPUs: the GRES they register with ("gpu:2"); null otherwise.
    pub gres: Option<String>,
    /// Compute nodes with GPUs: what they are ("2 × NVIDIA H200 through its engine
    /// (NVIDIA container toolkit)"); null otherwise.
    pub gpus: Option<String>,
    /// The login node: the port its sshd is published on; null for the others.
    pub ssh_port: Option<u16>,
}

/// A job in the queue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobStatus {
    pub id: u64,
    pub name: String,
    pub user: String,
    pub partition: String,
    /// Slurm's base state: "PENDING", "RUNNING", ...
    pub state: String,
    /// Why it waits ("Resources", "Priority", ...); null for a job not held back.
    pub reason: Option<String>,
    /// The nodes it runs on (empty while it waits).
    pub nodes: Vec<String>,
}

/// What `slurmbox doctor` found: per host what it offers, per compute node what it
/// enforces, and what an admin should know.
#[derive(Debug, Default, serde::Serialize)]
pub struct DoctorReport {
    pub cluster: String,
    /// The cluster's decision on limits, as `up` printed it.
    pub limits: String,
    /// Whether limits are off, and a host that could enforce them would change that.
    #[serde(skip)]
    pub limits_off: bool,
    pub hosts: Vec<HostDoctor>,
    pub nodes: Vec<NodeDoctor>,
    /// After an unclean stop of the controller: what may be lost, and what to check.
    pub controller: Option<String>,
    /// With a backup controller: whether the state storage the controllers share is
    /// shared (each sees what another writes) and writable, or what is wrong.
    pub state_storage: Option<Result<String, String>>,
}

#[derive(Debug, serde::Serialize)]
pub struct HostDoctor {
    pub host: String,
    /// "cgroup v1, cgroupfs driver", or why the engine could not be asked.
    pub cgroup: String,
    /// "cgroup/v1" where limits can be enforced, else why not.
    pub can_enforce: Result<String, String>,
    /// Its compute nodes' GPUs (model, or device files), or those its engine offers.
    pub gpus: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct NodeDoctor {
    pub node: String,
    pub host: String,
    /// The node's limits, or why its container could not be asked.
    pub limits: Result<NodeLimits, String>,
}

/// One limit on one node: held or not, and what that means or why not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub enforced: bool,
    pub detail: String,
}

/// A compute node's three limits, as `doctor` prints them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeLimits {
    pub memory: Verdict,
    pub cores: Verdict,
    pub processes: Verdict,
    /// Its GPUs and whether a job is kept to the ones it was given; `None` without GPUs.
    pub gpus: Option<Verdict>,
    /// Cores are enforced and each job's are its own (not shared with other jobs).
    pub exclusive_cores: bool,
}
