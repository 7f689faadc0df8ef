//! The plan: everything a cluster consists of, as plain data.
//!
//! The network, volumes, containers and rendered Slurm files a cluster needs. This
//! module is data only: the parts of a cluster build a plan (`components::plan`), the
//! deploy module carries it out. It does no I/O, so a
//! whole plan is snapshot-tested. [`converge`] compares a plan with what the engine
//! reports and lists the changes to make, also without I/O.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::render::{CgroupConf, CgroupPlugin, GresConf, NodeConf, SlurmConf};
use crate::spec::UserSpec;

/// Labels every object slurmbox creates carries; "what exists" is always asked of the
/// engine through them, so there is no state file to lose or corrupt.
pub const LABEL_CLUSTER: &str = "io.slurmbox.cluster";
pub const LABEL_ROLE: &str = "io.slurmbox.role";
pub const LABEL_NODE: &str = "io.slurmbox.node";
pub const LABEL_HASH: &str = "io.slurmbox.spec-hash";
/// On compute nodes: the cgroup plugin that confines their jobs, or "off".
pub const LABEL_LIMITS: &str = "io.slurmbox.limits";
/// On compute nodes with GPUs: the GRES they register with ("gpu:2,shard:8").
pub const LABEL_GRES: &str = "io.slurmbox.gres";
/// On compute nodes with GPUs: what they are ("2 × NVIDIA H200 through its engine
/// (NVIDIA container toolkit)", or the device files the spec gives).
pub const LABEL_GPUS: &str = "io.slurmbox.gpus";
/// The cluster's default user (for `exec`, `shell` and `verify`).
pub const LABEL_USER: &str = "io.slurmbox.user";
/// The port a login node's sshd is published on, so other clusters on the host leave it.
pub const LABEL_SSH_PORT: &str = "io.slurmbox.ssh-port";
/// The port slurmrestd is published on (on its container).
pub const LABEL_REST_PORT: &str = "io.slurmbox.rest-port";
/// Where slurmrestd answers ("http://HOST:PORT"), for `status`.
pub const LABEL_REST_URL: &str = "io.slurmbox.rest-url";

pub use crate::contract::{
    CONTROLLER_HOST, INIT_PATH, INIT_SCRIPT, LOGIN_HOST, STORAGE_PATH, STORAGE_SCRIPT,
};

/// Where a host's storage container mounts the GlusterFS /home (`<cluster>` replaced):
/// a folder of the host, which its node containers see as /home.
pub const SHARED_HOME_DIR: &str = "/var/lib/slurmbox/<cluster>/home";
/// Where the storage container of a controller's host mounts the controllers' state
/// volume (`<cluster>` replaced): a folder of the host, the controllers' StateSaveLocation.
pub const SHARED_STATE_DIR: &str = "/var/lib/slurmbox/<cluster>/ctld";

pub const COMPUTE_PREFIX: &str = "node";
/// The feature compute nodes register with, and the node set partitions draw on.
pub const COMPUTE_FEATURE: &str = "compute";
/// Most compute nodes a cluster can have (spec limit; slurm.conf's MaxNodeCount).
pub const MAX_NODES: u32 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Role {
    Controller,
    Login,
    Compute,
    /// A host's part of the shared /home (GlusterFS).
    Storage,
    /// MariaDB, holding the accounting database.
    Database,
    /// slurmdbd, between slurmctld and the database.
    Dbd,
    /// slurmrestd: Slurm's REST API.
    Rest,
    /// Prometheus, keeping the cluster's metrics.
    Metrics,
    /// nginx, serving the dashboard.
    Web,
}

impl Role {
    /// Whether its container is a Slurm node (controller, login, compute): it has the
    /// cluster's users, its files, its network.
    pub fn is_slurm_node(self) -> bool {
        matches!(self, Role::Controller | Role::Login | Role::Compute)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Login => "login",
            Role::Compute => "compute",
            Role::Storage => "storage",
            Role::Database => "db",
            Role::Dbd => "dbd",
            Role::Rest => "rest",
            Role::Metrics => "metrics",
            Role::Web => "web",
        }
    }

    /// Every role, in the order their containers are listed.
    pub const ALL: [Role; 9] = [
        Role::Controller,
        Role::Login,
        Role::Compute,
        Role::Storage,
        Role::Database,
        Role::Dbd,
        Role::Rest,
        Role::Metrics,
        Role::Web,
    ];

    /// The role a container's [`LABEL_ROLE`] names.
    pub fn parse(label: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == label)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Plan {
    pub cluster: String,
    /// The machines, controller's first; one ("local") when the spec lists none.
    pub hosts: Vec<HostPlan>,
    /// The cluster's networks: a bridge network on a single engine, a macvlan network
    /// on every host in macvlan mode, none when nodes use their host's network.
    pub networks: Vec<NetworkPlan>,
    pub volumes: Vec<VolumePlan>,
    pub containers: Vec<ContainerPlan>,
    pub slurm_conf: SlurmConf,
    pub cgroup_conf: CgroupConf,
    pub gres_conf: GresConf,
    /// What each compute node registers with.
    pub node_conf: NodeConf,
    /// Slurm names of the compute nodes, in order.
    pub compute_nodes: Vec<String>,
    pub default_user: String,
    /// The hosts holding the GlusterFS /home, first host's first; empty otherwise.
    pub storage: Vec<StoragePeer>,
    /// Whether jobs are confined by cgroups, or why not.
    pub limits: Limits,
    /// The users every node knows (written into each host's accounts volume).
    pub accounts: Accounts,
    /// The directory the nodes resolve users from, if any.
    pub ldap: Option<crate::spec::LdapSpec>,
    /// The Slurm accounts and their users, with accounting (empty without).
    pub slurm_accounts: Vec<crate::spec::AccountSpec>,
    /// The dashboard's certificate and key (files read at `up`, never held here).
    pub web_tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// A host's storage container, and the address the other hosts reach it at.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoragePeer {
    /// Index into [`Plan::hosts`].
    pub host: usize,
    pub container: String,
    pub address: String,
    /// The GlusterFS volumes with a brick on this host.
    pub bricks: Vec<String>,
    /// The volumes its storage container mounts for the host's containers.
    pub mounts: Vec<String>,
}

impl StoragePeer {
    /// Whether this host holds a brick of `volume`.
    pub fn has(&self, volume: &str) -> bool {
        self.bricks.iter().any(|b| b == volume)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NetworkPlan {
    /// Index into [`Plan::hosts`].
    pub host: usize,
    pub name: String,
    pub driver: NetworkDriver,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum NetworkDriver {
    /// A private network on one engine; containers find each other by name.
    Bridge,
    /// Containers on the LAN through the host's interface `parent`, each at the fixed
    /// address its [`ContainerPlan::ip`] says (the same subnet on every host).
    Macvlan { parent: String, subnet: String, gateway: Option<String>, ip_range: String },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HostPlan {
    pub name: String,
    /// Engine address; `None` for the local engine.
    pub engine: Option<String>,
}

/// Docker's name for "the host's own network stack".
pub const HOST_NETWORK: &str = "host";

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VolumePlan {
    /// Index into [`Plan::hosts`].
    pub host: usize,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContainerPlan {
    /// Index into [`Plan::hosts`].
    pub host: usize,
    /// Docker container name: `<cluster>-<node>`.
    pub name: String,
    /// Host name inside the container, also its DNS alias on the cluster network.
    /// `network` is [`HOST_NETWORK`] when nodes use their host's network.
    pub hostname: String,
    pub role: Role,
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub mounts: Vec<MountPlan>,
    pub cap_add: Vec<String>,
    pub network: String,
    /// Its fixed address on `network` (macvlan mode); `None`: the engine picks one.
    pub ip: Option<String>,
    /// Files placed in the container before it first starts.
    pub files: Vec<PlannedFile>,
    pub labels: BTreeMap<String, String>,
    /// Host devices it gets: `/dev/fuse` (a storage container), `HOST:NODE` where the
    /// path in the container differs (`/srv/fake/nvidia0:/dev/nvidia0`), or GPUs by
    /// its engine's device request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// Security options (`apparmor=unconfined`: AppArmor's default profile forbids mount).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Its own cgroup namespace (compute nodes that enforce limits).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cgroupns_private: bool,
    /// Memory limit (memory and swap together), MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// The engine's health check: a command that exits 0 while the node's daemon
    /// answers (`docker ps` and `status` show "healthy"/"unhealthy").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Vec<String>>,
    /// Its TCP ports published on its host (the login node's sshd).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortPlan>,
}

/// One of the devices a container gets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Device {
    /// A device file of the host: `PATH`, or `HOST:NODE` where the path in the
    /// container differs. (Written as the bare string, as before GPUs came through
    /// engines, so existing containers' spec hashes stay the same.)
    File(String),
    /// GPUs through the engine's device driver.
    Gpus(GpuRequest),
}

impl From<&str> for Device {
    fn from(file: &str) -> Device {
        Device::File(file.to_string())
    }
}

impl From<String> for Device {
    fn from(file: String) -> Device {
        Device::File(file)
    }
}

impl PartialEq<&str> for Device {
    fn eq(&self, other: &&str) -> bool {
        matches!(self, Device::File(f) if f == other)
    }
}

/// Devices a container asks its engine's device driver for (`docker run --gpus`, or
/// `--device nvidia.com/gpu=0` through CDI): the engine, not slurmbox, finds the device
/// files and the driver's libraries and tools, and puts them in the container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GpuRequest {
    /// "nvidia" (the NVIDIA container toolkit's hook) or "cdi".
    pub driver: String,
    /// Which devices: GPU UUIDs or indices for "nvidia", CDI names for "cdi"; empty
    /// with `all`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    /// Every device the driver has ("nvidia" only: `count: -1`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// What the driver puts in ("gpu", "utility": nvidia-smi, "compute": CUDA);
    /// the CDI driver takes what its spec says and ignores these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// A container's TCP port published on its host's `host_ip:host_port`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PortPlan {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
}

/// A file written into a container at creation (owned by root).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlannedFile {
    pub path: String,
    pub mode: u32,
    /// Serialized as a digest: plans stay readable, and a changed file still changes
    /// the container's spec hash.
    #[serde(serialize_with = "serialize_digest")]
    pub contents: String,
}

fn serialize_digest<S: serde::Serializer>(contents: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("sha256:{}", hex::encode(&Sha256::digest(contents.as_bytes())[..8])))
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MountPlan {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
    /// How mounts made later under a host folder reach the container (the GlusterFS
    /// /home); `None`: Docker's default (rprivate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<Propagation>,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Propagation {
    /// Mounts made inside the container reach the host (and its other containers).
    Shared,
    /// Mounts made on the host reach the container, not the other way.
    Slave,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum MountSource {
    Volume(String),
    HostPath(String),
}

impl Plan {
    /// The Slurm files the controller holds (and serves to the other nodes).
    pub fn slurm_files(&self) -> impl Iterator<Item = &PlannedFile> {
        self.controller().files.iter().filter(|f| f.path.starts_with("/etc/slurm/"))
    }

    /// The plan without the hosts `skipped` (indices into [`Plan::hosts`]), the others
    /// renumbered: what `up --skip-unreachable` acts on. Names and addresses stay as
    /// the whole plan gives them.
    pub fn without_hosts(mut self, skipped: &[usize]) -> Plan {
        let kept = |host: &usize| !skipped.contains(host);
        let renumber = |host: usize| host - skipped.iter().filter(|s| **s < host).count();
        let gone: Vec<String> = self
            .containers
            .iter()
            .filter(|c| !kept(&c.host) && c.role == Role::Compute)
            .map(|c| c.hostname.clone())
            .collect();
        self.compute_nodes.retain(|n| !gone.contains(n));
        self.containers.retain(|c| kept(&c.host));
        self.containers.iter_mut().for_each(|c| c.host = renumber(c.host));
        self.volumes.retain(|v| kept(&v.host));
        self.volumes.iter_mut().for_each(|v| v.host = renumber(v.host));
        self.networks.retain(|n| kept(&n.host));
        self.networks.iter_mut().for_each(|n| n.host = renumber(n.host));
        self.storage.retain(|s| kept(&s.host));
        self.storage.iter_mut().for_each(|s| s.host = renumber(s.host));
        self.hosts = self.hosts.into_iter().enumerate().filter(|(i, _)| kept(i)).map(|(_, h)| h).collect();
        self
    }

    /// The primary controller: the one in charge when all run.
    pub fn controller(&self) -> &ContainerPlan {
        self.controllers().next().expect("plan has a controller")
    }

    /// Every controller, the primary first.
    pub fn controllers(&self) -> impl Iterator<Item = &ContainerPlan> {
        self.containers.iter().filter(|c| c.role == Role::Controller)
    }

    pub fn login(&self) -> &ContainerPlan {
        self.containers.iter().find(|c| c.role == Role::Login).expect("plan has a login node")
    }
}

impl ContainerPlan {
    /// A digest of everything that, when changed, requires recreating the container
    /// (its files included). Stored as a label so a later `up` can tell.
    pub fn spec_hash(&self) -> String {
        hex::encode(&Sha256::digest(serde_json::to_vec(self).expect("plan serializes"))[..8])
    }

    /// The container with its [`spec_hash`](Self::spec_hash) in its labels.
    pub fn sealed(mut self) -> ContainerPlan {
        let hash = self.spec_hash();
        self.labels.insert(LABEL_HASH.to_string(), hash);
        self
    }
}

/// What the engine reports about one of the cluster's containers.
#[derive(Debug, Clone, PartialEq)]
pub struct Existing {
    pub name: String,
    pub running: bool,
    pub spec_hash: Option<String>,
}

/// One change `up` makes to reach the plan.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Change {
    /// Not there yet: create and start it.
    Create(String),
    /// Its definition changed: remove and create it again.
    Recreate(String),
    /// Same definition but stopped: start it.
    Start(String),
    /// No longer in the spec: remove it.
    Remove(String),
}

/// Compares the plan with what exists. Healthy containers whose definition did not
/// change appear nowhere in the result: `up` leaves them alone.
pub fn converge(plan: &Plan, existing: &[Existing]) -> Vec<Change> {
    let mut changes = Vec::new();
    for c in &plan.containers {
        match existing.iter().find(|e| e.name == c.name) {
            None => changes.push(Change::Create(c.name.clone())),
            Some(e) if e.spec_hash.as_deref() != c.labels.get(LABEL_HASH).map(String::as_str) => {
                changes.push(Change::Recreate(c.name.clone()))
            }
            Some(e) if !e.running => changes.push(Change::Start(c.name.clone())),
            Some(_) => {}
        }
    }
    for e in existing {
        if !plan.containers.iter().any(|c| c.name == e.name) {
            changes.push(Change::Remove(e.name.clone()));
        }
    }
    changes
}

/// The cluster's decision, kept in the plan for `up`, `status` and `doctor`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Limits {
    /// Every compute node confines its jobs through this plugin.
    Enforced { plugin: CgroupPlugin },
    /// No node does, and why (the spec turned them off, or a host cannot).
    Off { why: String },
}

impl Limits {
    pub fn enforced(&self) -> bool {
        matches!(self, Limits::Enforced { .. })
    }

    /// The line `up` and `status` print.
    pub fn summary(&self) -> String {
        match self {
            Limits::Enforced { plugin } => format!(
                "enforced by Slurm's {plugin} plugin: each job gets the memory and cores it asked for, and a \
                 cancelled job leaves no process behind"
            ),
            Limits::Off { why } => {
                format!("NOT enforced ({why}): a job can use more memory and CPUs than it asked for")
            }
        }
    }
}

/// Whether compute node `node` is one of host `host`'s, as the compute part names them
/// over several hosts: `host`, or `host-1`, `host-2`, ...
pub fn runs_on_host(node: &str, host: &str) -> bool {
    node == host
        || node
            .strip_prefix(host)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The accounts as NSS and sshd read them: plain data, rendered into files.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Accounts {
    pub users: Vec<UserSpec>,
}

/// The shell of an account nobody may log in as.
const NO_LOGIN: &str = "/usr/sbin/nologin";

impl Accounts {
    /// `/var/lib/extrausers/passwd`: like /etc/passwd.
    pub fn passwd(&self) -> String {
        let mut out = String::new();
        for u in &self.users {
            let shell = if u.login { "/bin/bash" } else { NO_LOGIN };
            out +=
                &format!("{}:x:{}:{}::{}/{}:{shell}\n", u.name, u.uid, u.gid, crate::contract::HOME, u.name);
        }
        out
    }

    /// `/var/lib/extrausers/group`: a group of each user's name, unless their primary
    /// group is another user's.
    pub fn group(&self) -> String {
        let mut out = String::new();
        for u in &self.users {
            if u.gid == u.uid || !self.users.iter().any(|o| o.uid == u.gid) {
                out += &format!("{}:x:{}:\n", u.name, u.gid);
            }
        }
        out
    }

    /// `/var/lib/extrausers/shadow`: no password for anyone (`*`: logins are by key), and
    /// locked (`!`) where login is off, which sshd refuses even with a key.
    pub fn shadow(&self) -> String {
        let mut out = String::new();
        for u in &self.users {
            let password = if u.login { "*" } else { "!*" };
            out += &format!("{}:{password}:20000:0:99999:7:::\n", u.name);
        }
        out
    }

    /// Each user's authorized keys file (empty where login is off).
    pub fn keys(&self) -> Vec<(String, String)> {
        self.users
            .iter()
            .map(|u| {
                let keys = if u.login {
                    u.ssh_keys.iter().map(|k| format!("{k}\n")).collect()
                } else {
                    String::new()
                };
                (u.name.clone(), keys)
            })
            .collect()
    }
}

impl std::fmt::Display for Accounts {
    /// What `config render` shows: the passwd file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.passwd())
    }
}
