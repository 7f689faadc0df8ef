//! The plan: everything a cluster consists of, as plain data.
//!
//! [`Plan::new`] turns a checked [`ClusterSpec`] plus facts about the Docker host into
//! the network, volumes, containers and rendered Slurm files the cluster needs. It does
//! no I/O, so the whole result is snapshot-tested. [`converge`] compares a plan with
//! what the engine reports and lists the changes to make, also without I/O.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::components::gpus::ProbedGpus;
use crate::components::limits::{CgroupHost, Limits};
use crate::components::{Config, Layout, PARTS};
use crate::render::{CgroupConf, GresConf, NodeConf, SlurmConf};
use crate::spec::{Arch, ClusterSpec};

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

pub use crate::components::compute::runs_on_host;
pub use crate::contract::{
    CONTROLLER_HOST, INIT_PATH, INIT_SCRIPT, LOGIN_HOST, STORAGE_PATH, STORAGE_SCRIPT,
};

/// Where a host's storage container mounts the GlusterFS /home (`<cluster>` replaced):
/// a folder of the host, which its node containers see as /home.
pub const SHARED_HOME_DIR: &str = "/var/lib/slurmbox/<cluster>/home";

pub const COMPUTE_PREFIX: &str = "node";
/// The feature compute nodes register with, and the node set partitions draw on.
pub const COMPUTE_FEATURE: &str = "compute";
/// Most compute nodes a cluster can have (spec limit; slurm.conf's MaxNodeCount).
pub const MAX_NODES: u32 = 128;

/// What `up` learned about a host: what its engine offers, and the node image its
/// containers run (the one built for its architecture, present there).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HostFacts {
    pub cpus: u32,
    pub memory_mib: u64,
    /// The architecture of its node image; compute nodes carry it as a Slurm feature
    /// (`sbatch --constraint=arm64`).
    pub arch: Arch,
    pub image: String,
    /// The storage image for its architecture, when the cluster's /home is GlusterFS.
    pub storage_image: Option<String>,
    /// The accounting image (MariaDB, slurmdbd), on the controller's host of a cluster
    /// with accounting.
    pub accounting_image: Option<String>,
    /// What its engine says about cgroups (whether limits can be enforced there).
    pub cgroup: CgroupHost,
    /// The port the login node's sshd is published on, when this host runs it (see
    /// [`crate::components::login::choose_ssh_port`]).
    pub ssh_port: u16,
    /// The GPUs its engine gives containers (NVIDIA container toolkit or CDI), as a
    /// probe container saw them; `None` where none was probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<ProbedGpus>,
}

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
        }
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
    pub accounts: crate::components::users::Accounts,
    /// The directory the nodes resolve users from, if any.
    pub ldap: Option<crate::spec::LdapSpec>,
    /// The Slurm accounts and their users, with accounting (empty without).
    pub slurm_accounts: Vec<crate::spec::AccountSpec>,
}

/// A host's storage container, and the address the other hosts reach it at.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoragePeer {
    /// Index into [`Plan::hosts`].
    pub host: usize,
    pub container: String,
    pub address: String,
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
    /// `facts` has one entry per host of the spec, in the spec's order (controller's
    /// host first), or one for the local engine when the spec lists no hosts.
    pub fn new(spec: &ClusterSpec, facts: &[HostFacts]) -> Plan {
        let layout = Layout::new(spec, facts);
        let mut config = Config::new(&layout);
        for part in PARTS {
            part.configure(&layout, &mut config);
        }
        let mut plan = Plan {
            cluster: layout.cluster.clone(),
            hosts: layout.hosts.clone(),
            networks: Vec::new(),
            volumes: Vec::new(),
            containers: Vec::new(),
            node_conf: crate::components::compute::node_conf(&layout, &facts[0]),
            slurm_conf: config.slurm_conf.clone(),
            cgroup_conf: config.cgroup_conf.clone(),
            gres_conf: config.gres_conf.clone(),
            compute_nodes: Vec::new(),
            default_user: spec.default_user().to_string(),
            storage: Vec::new(),
            limits: config.limits.clone(),
            accounts: Default::default(),
            ldap: None,
            slurm_accounts: Vec::new(),
        };
        for part in PARTS {
            part.add(&layout, &config, &mut plan);
        }
        // Sealed last: a part may add to another part's containers.
        plan.containers =
            std::mem::take(&mut plan.containers).into_iter().map(ContainerPlan::sealed).collect();
        plan
    }

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

    pub fn controller(&self) -> &ContainerPlan {
        self.containers.iter().find(|c| c.role == Role::Controller).expect("plan has a controller")
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
    fn sealed(mut self) -> ContainerPlan {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ClusterSpec;

    const IMAGE: &str = "slurmbox/node:24.11-test";

    fn facts() -> HostFacts {
        HostFacts {
            cpus: 2,
            memory_mib: 24000,
            arch: Arch::Amd64,
            image: IMAGE.into(),
            storage_image: None,
            accounting_image: Some("slurmbox/accounting:24.11-test".into()),
            cgroup: CgroupHost::v2(),
            ssh_port: crate::spec::DEFAULT_SSH_PORT,
            gpus: None,
        }
    }

    fn existing(plan: &Plan) -> Vec<Existing> {
        plan.containers
            .iter()
            .map(|c| Existing {
                name: c.name.clone(),
                running: true,
                spec_hash: c.labels.get(LABEL_HASH).cloned(),
            })
            .collect()
    }

    #[test]
    fn default_plan() {
        let plan = Plan::new(&ClusterSpec::default_cluster(), &[facts()]);
        insta::assert_yaml_snapshot!(plan, {
            // The digest covers the init script too; its value is checked by the converge tests.
            ".containers[].labels[\"io.slurmbox.spec-hash\"]" => "[hash]",
            ".containers[].files[].contents" => "[digest]",
        });
    }

    #[test]
    fn default_slurm_conf() {
        let plan = Plan::new(&ClusterSpec::default_cluster(), &[facts()]);
        insta::assert_snapshot!(plan.slurm_conf.to_string());
    }

    #[test]
    fn article_cluster_slurm_conf() {
        let spec = ClusterSpec::parse(
            "c.toml",
            "name = \"asai\"\n[compute]\ncount = 2\ncpus = 4\nmemory_mb = 7000\n[home]\nhost_path = \"/gfsv/home\"\n",
        )
        .unwrap();
        let plan = Plan::new(&spec, &[facts()]);
        insta::assert_snapshot!(plan.slurm_conf.to_string());
        assert_eq!(plan.login().mounts[1].source, MountSource::HostPath("/gfsv/home".into()));
        let volumes: Vec<&str> = plan.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            volumes,
            ["asai-munge", "asai-state", "asai-login-ssh", "asai-accounts", "asai-db", "asai-db-secret"],
            "no home volume when /home is a host folder"
        );
    }

    #[test]
    fn changing_node_cpus_recreates_compute_nodes_and_the_default_memory_per_cpu() {
        let mut spec = ClusterSpec::default_cluster();
        let before = Plan::new(&spec, &[facts()]);
        spec.compute.cpus = Some(8);
        let after = Plan::new(&spec, &[facts()]);
        // The controller's slurm.conf holds DefMemPerCPU, which follows the CPUs.
        assert_eq!(
            converge(&after, &existing(&before)),
            vec![
                Change::Recreate("slurmbox-controller".into()),
                Change::Recreate("slurmbox-node1".into()),
                Change::Recreate("slurmbox-node2".into())
            ]
        );
        // Without limits memory is not scheduled: only the nodes change.
        spec.compute.limits = false;
        let before = Plan::new(&spec, &[facts()]);
        spec.compute.cpus = Some(4);
        let after = Plan::new(&spec, &[facts()]);
        assert_eq!(
            converge(&after, &existing(&before)),
            vec![Change::Recreate("slurmbox-node1".into()), Change::Recreate("slurmbox-node2".into())]
        );
    }

    #[test]
    fn nothing_to_do_when_everything_matches() {
        let plan = Plan::new(&ClusterSpec::default_cluster(), &[facts()]);
        assert_eq!(converge(&plan, &existing(&plan)), vec![]);
    }

    #[test]
    fn growing_the_cluster_only_creates_the_new_node() {
        let mut spec = ClusterSpec::default_cluster();
        let before = Plan::new(&spec, &[facts()]);
        spec.compute.count = 3;
        let after = Plan::new(&spec, &[facts()]);
        assert_eq!(converge(&after, &existing(&before)), vec![Change::Create("slurmbox-node3".into())]);
    }

    #[test]
    fn shrinking_removes_the_extra_node() {
        let mut spec = ClusterSpec::default_cluster();
        let before = Plan::new(&spec, &[facts()]);
        spec.compute.count = 1;
        let after = Plan::new(&spec, &[facts()]);
        assert_eq!(converge(&after, &existing(&before)), vec![Change::Remove("slurmbox-node2".into())]);
    }

    #[test]
    fn new_image_recreates_every_container() {
        let spec = ClusterSpec::default_cluster();
        let before = Plan::new(&spec, &[facts()]);
        let after = Plan::new(&spec, &[HostFacts { image: "slurmbox/node:24.11-other".into(), ..facts() }]);
        let changes = converge(&after, &existing(&before));
        assert_eq!(changes.len(), 4);
        assert!(changes.iter().all(|c| matches!(c, Change::Recreate(_))));
    }

    #[test]
    fn stopped_container_is_started_not_recreated() {
        let plan = Plan::new(&ClusterSpec::default_cluster(), &[facts()]);
        let mut have = existing(&plan);
        have[2].running = false;
        assert_eq!(converge(&plan, &have), vec![Change::Start("slurmbox-node1".into())]);
    }

    fn lab(hosts: usize, extra: &str) -> ClusterSpec {
        let mut text = "name = \"lab\"\n[home]\nhost_path = \"/gfsv/home\"\n".to_string();
        for i in 1..=hosts {
            text.push_str(&format!("[[host]]\nname = \"pi{i}\"\nengine = \"ssh://pi@10.0.0.{i}\"\n"));
        }
        ClusterSpec::parse("c.toml", &format!("{text}{extra}")).unwrap()
    }

    #[test]
    fn glusterfs_home_puts_a_storage_container_on_every_host() {
        let text = "name = \"lab\"\n[home]\nshared = \"glusterfs\"\n[[host]]\nname = \"pi1\"\nengine = \"ssh://pi@10.0.0.1\"\n[[host]]\nname = \"pi2\"\nengine = \"ssh://pi@10.0.0.2\"\n";
        let spec = ClusterSpec::parse("c.toml", text).unwrap();
        let storage = HostFacts { storage_image: Some("slurmbox/storage:gluster-test".into()), ..facts() };
        let plan = Plan::new(&spec, &[storage.clone(), storage]);
        let peers: Vec<(usize, &str, &str)> =
            plan.storage.iter().map(|s| (s.host, s.container.as_str(), s.address.as_str())).collect();
        assert_eq!(peers, [(0, "lab-storage-pi1", "10.0.0.1"), (1, "lab-storage-pi2", "10.0.0.2")]);
        let shared = MountSource::HostPath("/var/lib/slurmbox/lab/home".into());
        for c in plan.containers.iter().filter(|c| c.role.is_slurm_node() || c.role == Role::Storage) {
            let home =
                c.mounts.iter().find(|m| m.source == shared).expect("every container sees the shared home");
            if c.role == Role::Storage {
                assert_eq!(
                    (home.target.as_str(), home.propagation),
                    ("/srv/home", Some(Propagation::Shared))
                );
                assert_eq!(c.network, HOST_NETWORK);
                assert_eq!(c.image, "slurmbox/storage:gluster-test");
                assert_eq!(c.devices, ["/dev/fuse"]);
                assert!(c.cap_add.contains(&"SYS_ADMIN".to_string()));
            } else {
                assert_eq!((home.target.as_str(), home.propagation), ("/home", Some(Propagation::Slave)));
                assert!(c.env.contains(&"SLURMBOX_SHARED_HOME=glusterfs".to_string()), "{}", c.name);
                // Compute nodes get SYS_ADMIN for their own cgroup mounts (limits), no other node.
                assert_eq!(
                    c.cap_add.contains(&"SYS_ADMIN".to_string()),
                    c.role == Role::Compute,
                    "{}",
                    c.name
                );
            }
        }
        let volumes: Vec<(usize, &str)> = plan.volumes.iter().map(|v| (v.host, v.name.as_str())).collect();
        assert_eq!(
            volumes,
            [
                (0, "lab-munge"),
                (1, "lab-munge"),
                (0, "lab-state"),
                (0, "lab-login-ssh"),
                (0, "lab-glusterd"),
                (0, "lab-brick"),
                (1, "lab-glusterd"),
                (1, "lab-brick"),
                (0, "lab-accounts"),
                (1, "lab-accounts"),
                (0, "lab-db"),
                (0, "lab-db-secret")
            ]
        );
        // A host skipped by `up --skip-unreachable` is not asked to take part.
        let kept = plan.without_hosts(&[1]);
        assert_eq!(kept.storage.len(), 1);
    }

    const MACVLAN: &str = "[compute]\nper_host = 2\n[network]\nmode = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"10.0.0.0/24\"\nip_range = \"10.0.0.64/26\"\n";

    #[test]
    fn macvlan_plan_gives_fixed_addresses_host_by_host() {
        let plan = Plan::new(&lab(2, MACVLAN), &[facts(), facts()]);
        let placed: Vec<(usize, &str, Option<&str>)> =
            plan.containers.iter().map(|c| (c.host, c.hostname.as_str(), c.ip.as_deref())).collect();
        assert_eq!(
            placed,
            [
                (0, "controller", Some("10.0.0.64")),
                (0, "login", Some("10.0.0.65")),
                (0, "pi1-1", Some("10.0.0.66")),
                (0, "pi1-2", Some("10.0.0.67")),
                (1, "pi2-1", Some("10.0.0.68")),
                (1, "pi2-2", Some("10.0.0.69")),
            ]
        );
        assert_eq!(plan.networks.len(), 2, "one macvlan network per host");
        assert!(plan.containers.iter().all(|c| c.network == "lab-lan"));
        assert_eq!(plan.slurm_conf.controller_addr.as_deref(), Some("10.0.0.64"));
        // Every container has its own address: the login node runs sackd like on one engine.
        assert!(plan.login().files.iter().all(|f| !f.path.starts_with("/etc/slurm/")));
    }

    #[test]
    fn a_host_joining_creates_only_its_nodes() {
        for extra in ["", MACVLAN] {
            let before = Plan::new(&lab(3, extra), &[facts(), facts(), facts()]);
            let after = Plan::new(&lab(4, extra), &[facts(), facts(), facts(), facts()]);
            let created: Vec<Change> = converge(&after, &existing(&before));
            assert!(
                created.iter().all(|c| matches!(c, Change::Create(n) if n.starts_with("lab-pi4"))),
                "{created:?}"
            );
            assert!(!created.is_empty());
        }
    }

    #[test]
    fn mpi_keeps_to_the_hosts_subnet() {
        let env = |plan: &Plan| plan.login().env.iter().find(|e| e.starts_with("OMPI_")).cloned();
        let plan = Plan::new(&lab(2, ""), &[facts(), facts()]);
        assert_eq!(env(&plan).as_deref(), Some("OMPI_MCA_btl_tcp_if_include=10.0.0.0/24"));
        let wide = lab(2, "[network]\nsubnet = \"10.0.0.0/16\"\n");
        let plan = Plan::new(&wide, &[facts(), facts()]);
        assert_eq!(env(&plan).as_deref(), Some("OMPI_MCA_btl_tcp_if_include=10.0.0.0/16"));
        assert_eq!(
            env(&Plan::new(&lab(2, MACVLAN), &[facts(), facts()])),
            None,
            "macvlan: eth0, the image's default"
        );
    }

    #[test]
    fn skipping_a_host_keeps_the_others_names_and_addresses() {
        let full = Plan::new(&lab(3, MACVLAN), &[facts(), facts(), facts()]);
        let part = full.clone().without_hosts(&[1]);
        assert_eq!(part.hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["pi1", "pi3"]);
        assert_eq!(part.compute_nodes, ["pi1-1", "pi1-2", "pi3-1", "pi3-2"]);
        let pi3 = |p: &Plan| p.containers.iter().find(|c| c.hostname == "pi3-1").cloned().unwrap();
        assert_eq!(pi3(&part).host, 1, "renumbered to its engine's place");
        assert_eq!(pi3(&part).ip, pi3(&full).ip);
        assert_eq!(pi3(&part).labels, pi3(&full).labels);
        assert_eq!(part.networks.len(), 2);
        assert!(part.volumes.iter().all(|v| v.host < 2));
    }

    #[test]
    fn nodes_are_named_after_their_host() {
        assert!(runs_on_host("pi3", "pi3"));
        assert!(runs_on_host("pi3-2", "pi3"));
        assert!(!runs_on_host("pi3-gpu", "pi3"));
        assert!(!runs_on_host("pi31", "pi3"));
        let plan = Plan::new(&lab(2, MACVLAN), &[facts(), facts()]);
        assert!(plan.compute_nodes.iter().all(|n| runs_on_host(n, "pi1") != runs_on_host(n, "pi2")));
    }

    #[test]
    fn cpus_default_to_at_least_four() {
        let plan = Plan::new(&ClusterSpec::default_cluster(), &[facts()]);
        assert_eq!(plan.node_conf.cpus, 4);
        let big = HostFacts { cpus: 64, memory_mib: 512_000, ..facts() };
        assert_eq!(Plan::new(&ClusterSpec::default_cluster(), &[big]).node_conf.cpus, 64);
    }
}

/// The spec-hash labels of plans made by earlier releases: `up` leaves a container
/// alone while its hash matches, so a change here recreates running clusters'
/// containers. Change these only on purpose, saying so in the commit.
#[cfg(test)]
mod pinned_hashes {
    use super::*;
    use crate::spec::ClusterSpec;

    fn facts(storage: bool) -> HostFacts {
        HostFacts {
            cpus: 2,
            memory_mib: 24000,
            arch: Arch::Amd64,
            image: "slurmbox/node:24.11-test".into(),
            storage_image: storage.then(|| "slurmbox/storage:gluster-test".into()),
            accounting_image: Some("slurmbox/accounting:24.11-test".into()),
            cgroup: CgroupHost::v2(),
            ssh_port: crate::spec::DEFAULT_SSH_PORT,
            gpus: None,
        }
    }

    fn hashes(spec: &str, hosts: usize, storage: bool) -> Vec<(String, String)> {
        let spec = ClusterSpec::parse("c.toml", spec).unwrap();
        let plan = Plan::new(&spec, &vec![facts(storage); hosts.max(1)]);
        plan.containers.iter().map(|c| (c.name.clone(), c.labels[LABEL_HASH].clone())).collect()
    }

    fn lab(hosts: usize, extra: &str) -> String {
        let mut text = format!("name = \"lab\"\n{extra}");
        for i in 1..=hosts {
            text.push_str(&format!("[[host]]\nname = \"pi{i}\"\nengine = \"ssh://pi@10.0.0.{i}\"\n"));
        }
        text
    }

    fn macvlan() -> String {
        lab(
            2,
            "[home]\nhost_path = \"/gfsv/home\"\n[compute]\nper_host = 2\n[network]\nmode = \"macvlan\"\n\
             parent = \"eth0\"\nsubnet = \"10.0.0.0/24\"\nip_range = \"10.0.0.64/26\"\n",
        )
    }

    fn assert_pinned(got: Vec<(String, String)>, want: &[(&str, &str)]) {
        let want: Vec<(String, String)> = want.iter().map(|(n, h)| (n.to_string(), h.to_string())).collect();
        assert_eq!(got, want, "spec hashes changed: running clusters' containers would be recreated");
    }

    #[test]
    fn default_cluster_hashes_are_pinned() {
        assert_pinned(
            hashes("", 0, false),
            &[
                ("slurmbox-controller", "e94761bb6b61dbb5"),
                ("slurmbox-login", "030568376199be1c"),
                ("slurmbox-node1", "7ccacdcadf50dea9"),
                ("slurmbox-node2", "d2f5c4c51ad91524"),
                ("slurmbox-db", "d777fa38d56532b9"),
                ("slurmbox-dbd", "6629d1e956bbf865"),
            ],
        );
    }

    #[test]
    fn three_host_hashes_are_pinned() {
        assert_pinned(
            hashes(&lab(3, "[home]\nhost_path = \"/gfsv/home\"\n"), 3, false),
            &[
                ("lab-controller", "150a4d18f84ad318"),
                ("lab-login", "bf7390c3b0d4c675"),
                ("lab-pi1", "9ca95a1bf7954ac5"),
                ("lab-pi2", "d448de28c6d94333"),
                ("lab-pi3", "4c3b3fb70cd03feb"),
                ("lab-db", "aa6953775996eb35"),
                ("lab-dbd", "a5b0b091af196d35"),
            ],
        );
    }

    #[test]
    fn macvlan_hashes_are_pinned() {
        assert_pinned(
            hashes(&macvlan(), 2, false),
            &[
                ("lab-controller", "91b7d8b800adbf74"),
                ("lab-login", "8d5062a2fbf27cb5"),
                ("lab-pi1-1", "099e60d4d9d19a59"),
                ("lab-pi1-2", "798c96d318d88521"),
                ("lab-pi2-1", "409f939f884c29eb"),
                ("lab-pi2-2", "efdab5c10fe05614"),
            ],
        );
    }

    // The storage containers' hashes follow slurmbox-storage.sh: a change to it (here:
    // every host mounts the volume when slurmbox asks) recreates them, once, on `up`.
    #[test]
    fn glusterfs_hashes_are_pinned() {
        assert_pinned(
            hashes(&lab(2, "[home]\nshared = \"glusterfs\"\n"), 2, true),
            &[
                ("lab-controller", "8256fb20e3849117"),
                ("lab-login", "e90ab25f000a43ae"),
                ("lab-pi1", "65a2bc4713012501"),
                ("lab-pi2", "1f7da802533f987e"),
                ("lab-storage-pi1", "a73875fa7f88814a"),
                ("lab-storage-pi2", "b5376898f0de06ec"),
                ("lab-db", "aa6953775996eb35"),
                ("lab-dbd", "a5b0b091af196d35"),
            ],
        );
    }
}
