//! The plan: everything a cluster consists of, as plain data.
//!
//! [`Plan::new`] turns a checked [`ClusterSpec`] plus facts about the Docker host into
//! the network, volumes, containers and rendered Slurm files the cluster needs. It does
//! no I/O, so the whole result is snapshot-tested. [`converge`] compares a plan with
//! what the engine reports and lists the changes to make, also without I/O.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::render::{self, CgroupConf, CgroupPlugin, NodeConf, NodeSetDef, PartitionDef, SlurmConf};
use crate::spec::{Arch, ClusterSpec, HomeSpec, NetworkSpec};

/// Labels every object slurmbox creates carries; "what exists" is always asked of the
/// engine through them, so there is no state file to lose or corrupt.
pub const LABEL_CLUSTER: &str = "io.slurmbox.cluster";
pub const LABEL_ROLE: &str = "io.slurmbox.role";
pub const LABEL_NODE: &str = "io.slurmbox.node";
pub const LABEL_HASH: &str = "io.slurmbox.spec-hash";
/// The cluster's default user (for `exec`, `shell` and `verify`).
pub const LABEL_USER: &str = "io.slurmbox.user";

/// The init script every container runs under tini (see assets/slurmbox-init.sh).
pub const INIT_SCRIPT: &str = include_str!("../assets/slurmbox-init.sh");
pub const INIT_PATH: &str = "/usr/local/sbin/slurmbox-init";
/// The storage containers' script (see assets/slurmbox-storage.sh).
pub const STORAGE_SCRIPT: &str = include_str!("../assets/slurmbox-storage.sh");
pub const STORAGE_PATH: &str = "/usr/local/sbin/slurmbox-storage";
/// Where a host's storage container mounts the GlusterFS /home (`<cluster>` replaced):
/// a folder of the host, which its node containers see as /home.
pub const SHARED_HOME_DIR: &str = "/var/lib/slurmbox/<cluster>/home";

pub const CONTROLLER_HOST: &str = "controller";
pub const LOGIN_HOST: &str = "login";
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Role {
    Controller,
    Login,
    Compute,
    /// A host's part of the shared /home (GlusterFS).
    Storage,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Login => "login",
            Role::Compute => "compute",
            Role::Storage => "storage",
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
    /// What each compute node registers with.
    pub node_conf: NodeConf,
    /// Slurm names of the compute nodes, in order.
    pub compute_nodes: Vec<String>,
    pub default_user: String,
    /// The hosts holding the GlusterFS /home, first host's first; empty otherwise.
    pub storage: Vec<StoragePeer>,
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
    /// Host devices it gets (`/dev/fuse` for a storage container).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Security options (`apparmor=unconfined`: AppArmor's default profile forbids mount).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
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

/// Capabilities. Every container starts from none (`--cap-drop ALL`, never
/// `--privileged`) and gets back exactly these, each for a reason.
const BASE_CAPS: &[(&str, &str)] = &[
    // slurmbox-init chowns the munge key, state and home folders to their owners.
    ("CHOWN", "hand key, spool and home folders to munge, slurm and users"),
    // root writes into folders owned by munge/slurm (key, spool) while preparing them.
    ("DAC_OVERRIDE", "prepare folders owned by the munge and slurm accounts"),
    // chmod of files root does not own (the key after chown, homes).
    ("FOWNER", "set modes on files handed to other accounts"),
    // munged and slurmctld drop to their accounts; slurmd starts job steps as the user.
    ("SETUID", "drop to munge/slurm and start jobs as the submitting user"),
    ("SETGID", "set the job user's groups"),
    // slurmd signals job steps (scancel, time limits); init stops munged on exit.
    ("KILL", "signal processes of other accounts (scancel, shutdown)"),
];

/// A storage container's capabilities: GlusterFS's servers act as root on the brick
/// for every user's files, and its client mounts the volume.
const STORAGE_CAPS: &[(&str, &str)] = &[
    // The FUSE mount, and the trusted.* extended attributes GlusterFS keeps on bricks.
    ("SYS_ADMIN", "mount the volume; GlusterFS's trusted.* attributes on the brick"),
    ("CHOWN", "files on the brick keep their users' owners"),
    ("DAC_OVERRIDE", "the brick server reads and writes every user's files"),
    ("DAC_READ_SEARCH", "the brick server walks every user's folders"),
    ("FOWNER", "set modes and times on files of other owners"),
    ("FSETID", "keep setgid bits on shared folders"),
    ("KILL", "stop the brick processes on shutdown"),
    ("NET_BIND_SERVICE", "GlusterFS clients connect from privileged ports"),
];

impl Plan {
    /// `facts` has one entry per host of the spec, in the spec's order (controller's
    /// host first), or one for the local engine when the spec lists no hosts.
    pub fn new(spec: &ClusterSpec, facts: &[HostFacts]) -> Plan {
        let cluster = spec.name.clone();
        let labels = |extra: &[(&str, &str)]| {
            let mut l = BTreeMap::from([(LABEL_CLUSTER.to_string(), cluster.clone())]);
            for (k, v) in extra {
                l.insert(k.to_string(), v.to_string());
            }
            l
        };
        let hosts: Vec<HostPlan> = match spec.hosts.as_slice() {
            [] => vec![HostPlan { name: "local".into(), engine: None }],
            listed => listed
                .iter()
                .map(|h| HostPlan { name: h.name.clone(), engine: Some(h.engine.clone()) })
                .collect(),
        };
        // Over several hosts the nodes use their host's network by default, like bare
        // metal: one engine's bridge network does not reach the others. In macvlan mode
        // every container has its own address on the LAN instead, as in the article.
        let multi_host = hosts.len() > 1;
        let macvlan = match &spec.network {
            NetworkSpec::Macvlan(m) => Some(m),
            NetworkSpec::Default { .. } => None,
        };
        let on_host_network = multi_host && macvlan.is_none();
        let networks: Vec<NetworkPlan> = match macvlan {
            Some(m) => (0..hosts.len())
                .map(|host| NetworkPlan {
                    host,
                    name: format!("{cluster}-lan"),
                    driver: NetworkDriver::Macvlan {
                        parent: m.parent.clone(),
                        subnet: m.subnet.to_string(),
                        gateway: m.gateway.map(|g| g.to_string()),
                        ip_range: m.ip_range.to_string(),
                    },
                    labels: labels(&[]),
                })
                .collect(),
            None if multi_host => Vec::new(),
            None => vec![NetworkPlan {
                host: 0,
                name: format!("{cluster}-net"),
                driver: NetworkDriver::Bridge,
                labels: labels(&[]),
            }],
        };
        let container_network = networks.first().map_or_else(|| HOST_NETWORK.to_string(), |n| n.name.clone());

        // Compute node names and hosts: node1..N on one engine; over several hosts (or
        // in macvlan mode) named after their host, `pi1` or `pi1-1`, `pi1-2`, ...
        let per_host = spec.compute.count as usize;
        let node_names: Vec<(usize, String)> = (0..hosts.len())
            .flat_map(|host| (1..=per_host).map(move |i| (host, i)))
            .map(|(host, i)| {
                let name = match (multi_host || macvlan.is_some(), per_host) {
                    (false, _) => format!("{COMPUTE_PREFIX}{i}"),
                    (true, 1) => hosts[host].name.clone(),
                    (true, _) => format!("{}-{i}", hosts[host].name),
                };
                (host, name)
            })
            .collect();
        // Fixed addresses in macvlan mode: controller, login, then the compute nodes.
        let addresses: Vec<Option<String>> = match macvlan {
            Some(m) => m
                .addresses(node_names.len() + 2)
                .expect("the spec checked the range's size")
                .into_iter()
                .map(|a| Some(a.to_string()))
                .collect(),
            None => vec![None; node_names.len() + 2],
        };
        let controller_addr = match macvlan {
            Some(_) => addresses[0].clone(),
            None => spec.hosts.first().filter(|_| multi_host).map(|h| h.address.clone()),
        };

        let munge_vol = format!("{cluster}-munge");
        let state_vol = format!("{cluster}-state");
        let home_vol = format!("{cluster}-home");
        let mut volumes = Vec::new();
        for host in 0..hosts.len() {
            volumes.push(VolumePlan { host, name: munge_vol.clone(), labels: labels(&[]) });
        }
        volumes.push(VolumePlan { host: 0, name: state_vol.clone(), labels: labels(&[]) });
        let home_source = match &spec.home {
            HomeSpec::Volume => {
                volumes.push(VolumePlan { host: 0, name: home_vol.clone(), labels: labels(&[]) });
                MountSource::Volume(home_vol)
            }
            HomeSpec::HostPath(p) => MountSource::HostPath(p.display().to_string()),
            HomeSpec::GlusterFs => MountSource::HostPath(SHARED_HOME_DIR.replace("<cluster>", &cluster)),
        };
        let gluster = spec.home == HomeSpec::GlusterFs;
        let home = MountPlan {
            source: home_source.clone(),
            target: "/home".into(),
            read_only: false,
            propagation: gluster.then_some(Propagation::Slave),
        };
        // Nodes beside the controller read its key; nodes on other hosts get a copy
        // written into their host's munge volume before they start.
        let munge = |read_only| MountPlan {
            source: MountSource::Volume(munge_vol.clone()),
            target: "/etc/munge".into(),
            read_only,
            propagation: None,
        };

        let users: Vec<String> =
            spec.users.iter().map(|u| format!("{}:{}:{}", u.name, u.uid, u.uid)).collect();
        let mut base_env = vec![
            format!("SLURMBOX_USERS={}", users.join(" ")),
            format!("SLURMBOX_CONTROLLER={}", controller_addr.as_deref().unwrap_or(CONTROLLER_HOST)),
        ];
        // MPI ranks on the hosts' network talk over the hosts' subnet (the spec's
        // network.subnet, else the controller address's /24), never over a bridge every
        // host has (docker0).
        // Jobs inherit it from the login node's environment.
        let hosts_subnet = match &spec.network {
            NetworkSpec::Default { subnet: Some(subnet) } => Some(subnet.to_string()),
            _ => controller_addr.as_deref().and_then(subnet_24),
        };
        if let Some(subnet) = hosts_subnet.filter(|_| on_host_network) {
            base_env.push(format!("OMPI_MCA_btl_tcp_if_include={subnet}"));
        }
        if gluster {
            base_env.push("SLURMBOX_SHARED_HOME=glusterfs".into());
        }

        let init = PlannedFile { path: INIT_PATH.into(), mode: 0o755, contents: INIT_SCRIPT.into() };
        let container = |host: usize,
                         ip: &Option<String>,
                         role: Role,
                         node: &str,
                         mounts: Vec<MountPlan>,
                         extra: Vec<String>,
                         config: Vec<PlannedFile>| {
            let mut env = base_env.clone();
            env.push(format!("SLURMBOX_NODE={node}"));
            env.extend(extra);
            let mut files = vec![init.clone()];
            files.extend(config);
            ContainerPlan {
                host,
                name: format!("{cluster}-{node}"),
                hostname: node.to_string(),
                role,
                image: facts[host].image.clone(),
                command: vec![INIT_PATH.to_string(), role.as_str().to_string()],
                env,
                mounts,
                cap_add: BASE_CAPS.iter().map(|(c, _)| c.to_string()).collect(),
                network: container_network.clone(),
                ip: ip.clone(),
                files,
                labels: labels(&[
                    (LABEL_ROLE, role.as_str()),
                    (LABEL_NODE, node),
                    (LABEL_USER, spec.default_user()),
                ]),
                devices: vec![],
                security_opt: vec![],
            }
            .sealed()
        };

        // Enough CPUs for the article's job (8 tasks on 2 nodes) even on small hosts.
        let node_conf_for = |facts: &HostFacts| NodeConf {
            cpus: spec.compute.cpus.unwrap_or(facts.cpus.max(4)),
            // Every node on a host sees all of its memory, and memory is not a
            // scheduled resource (CR_Core) until cgroups can enforce it. Not divided by
            // the node count, so growing the cluster leaves existing nodes alone.
            real_memory_mib: spec.compute.memory_mb.unwrap_or(facts.memory_mib.max(1)),
            features: vec![COMPUTE_FEATURE.into(), facts.arch.to_string()],
        };
        let node_conf = node_conf_for(&facts[0]);
        let slurm_conf = SlurmConf {
            cluster_name: cluster.clone(),
            controller_host: CONTROLLER_HOST.into(),
            controller_addr: controller_addr.clone(),
            max_node_count: MAX_NODES,
            node_sets: vec![NodeSetDef { name: COMPUTE_FEATURE.into(), feature: COMPUTE_FEATURE.into() }],
            partitions: vec![PartitionDef {
                name: "debug".into(),
                nodes: COMPUTE_FEATURE.into(),
                default: true,
            }],
            slurmd_timeout: 20,
        };
        let cgroup_conf = CgroupConf { plugin: CgroupPlugin::Disabled };
        let slurm_files = vec![
            PlannedFile {
                path: "/etc/slurm/slurm.conf".into(),
                mode: 0o644,
                contents: slurm_conf.to_string(),
            },
            PlannedFile {
                path: "/etc/slurm/cgroup.conf".into(),
                mode: 0o644,
                contents: cgroup_conf.to_string(),
            },
        ];

        let state = MountPlan {
            source: MountSource::Volume(state_vol),
            target: render::STATE_SAVE_LOCATION.into(),
            read_only: false,
            propagation: None,
        };
        let mut containers = vec![
            container(
                0,
                &addresses[0],
                Role::Controller,
                CONTROLLER_HOST,
                vec![munge(false), state, home.clone()],
                vec![],
                slurm_files.clone(),
            ),
            // On the host's network the login node cannot run sackd beside the compute
            // node (same port), so it gets its own copy of the files.
            container(
                0,
                &addresses[1],
                Role::Login,
                LOGIN_HOST,
                vec![munge(true), home.clone()],
                vec![],
                if on_host_network { slurm_files.clone() } else { vec![] },
            ),
        ];
        let mut compute_nodes = Vec::new();
        for ((host, node), ip) in node_names.iter().zip(&addresses[2..]) {
            let conf = format!("SLURMBOX_NODE_CONF={}", node_conf_for(&facts[*host]));
            containers.push(container(
                *host,
                ip,
                Role::Compute,
                node,
                vec![munge(*host == 0), home.clone()],
                vec![conf],
                vec![],
            ));
            compute_nodes.push(node.clone());
        }

        // The GlusterFS /home: a storage container on every host, on the host's
        // network, with its brick and glusterd's state in volumes of that host.
        let mut storage = Vec::new();
        if gluster {
            let glusterd_vol = format!("{cluster}-glusterd");
            let brick_vol = format!("{cluster}-brick");
            for (host, listed) in spec.hosts.iter().enumerate() {
                for name in [&glusterd_vol, &brick_vol] {
                    volumes.push(VolumePlan { host, name: name.clone(), labels: labels(&[]) });
                }
                let volume = |name: &str, target: &str| MountPlan {
                    source: MountSource::Volume(name.to_string()),
                    target: target.into(),
                    read_only: false,
                    propagation: None,
                };
                let node = format!("storage-{}", listed.name);
                let c = ContainerPlan {
                    host,
                    name: format!("{cluster}-{node}"),
                    hostname: node.clone(),
                    role: Role::Storage,
                    image: facts[host].storage_image.clone().expect("facts carry the storage image"),
                    command: vec![STORAGE_PATH.to_string(), "run".into()],
                    env: vec![format!("SLURMBOX_STORAGE_ADDRESS={}", listed.address)],
                    mounts: vec![
                        volume(&glusterd_vol, "/var/lib/glusterd"),
                        volume(&brick_vol, "/srv/brick"),
                        MountPlan {
                            source: home_source.clone(),
                            target: "/srv/home".into(),
                            read_only: false,
                            propagation: Some(Propagation::Shared),
                        },
                    ],
                    cap_add: STORAGE_CAPS.iter().map(|(c, _)| c.to_string()).collect(),
                    network: HOST_NETWORK.into(),
                    ip: None,
                    files: vec![PlannedFile {
                        path: STORAGE_PATH.into(),
                        mode: 0o755,
                        contents: STORAGE_SCRIPT.into(),
                    }],
                    labels: labels(&[(LABEL_ROLE, Role::Storage.as_str()), (LABEL_NODE, &node)]),
                    devices: vec!["/dev/fuse".into()],
                    security_opt: vec!["apparmor=unconfined".into()],
                }
                .sealed();
                storage.push(StoragePeer {
                    host,
                    container: c.name.clone(),
                    address: listed.address.clone(),
                });
                containers.push(c);
            }
        }

        Plan {
            cluster,
            hosts,
            networks,
            volumes,
            containers,
            slurm_conf,
            cgroup_conf,
            node_conf,
            compute_nodes,
            default_user: spec.default_user().to_string(),
            storage,
        }
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

/// Whether compute node `node` is one of host `host`'s, as [`Plan::new`] names them
/// over several hosts: `host`, or `host-1`, `host-2`, ...
pub fn runs_on_host(node: &str, host: &str) -> bool {
    node == host
        || node
            .strip_prefix(host)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `a.b.c.0/24` for an IPv4 address `a.b.c.d`.
fn subnet_24(addr: &str) -> Option<String> {
    let ip: std::net::Ipv4Addr = addr.parse().ok()?;
    let [a, b, c, _] = ip.octets();
    Some(format!("{a}.{b}.{c}.0/24"))
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
        HostFacts { cpus: 2, memory_mib: 24000, arch: Arch::Amd64, image: IMAGE.into(), storage_image: None }
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
        assert_eq!(plan.volumes.len(), 2, "no home volume when /home is a host folder");
    }

    #[test]
    fn changing_node_cpus_recreates_compute_nodes_only() {
        let mut spec = ClusterSpec::default_cluster();
        let before = Plan::new(&spec, &[facts()]);
        spec.compute.cpus = Some(8);
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
        for c in &plan.containers {
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
                assert!(!c.cap_add.contains(&"SYS_ADMIN".to_string()), "{}", c.name);
            }
        }
        let volumes: Vec<(usize, &str)> = plan.volumes.iter().map(|v| (v.host, v.name.as_str())).collect();
        assert_eq!(
            volumes,
            [
                (0, "lab-munge"),
                (1, "lab-munge"),
                (0, "lab-state"),
                (0, "lab-glusterd"),
                (0, "lab-brick"),
                (1, "lab-glusterd"),
                (1, "lab-brick")
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
                ("slurmbox-controller", "87854afecd3ad5be"),
                ("slurmbox-login", "d6ae867f48bbb44e"),
                ("slurmbox-node1", "aa1ef2c042975f4b"),
                ("slurmbox-node2", "32b640f28c87a800"),
            ],
        );
    }

    #[test]
    fn three_host_hashes_are_pinned() {
        assert_pinned(
            hashes(&lab(3, "[home]\nhost_path = \"/gfsv/home\"\n"), 3, false),
            &[
                ("lab-controller", "7063771e1e5c88ea"),
                ("lab-login", "3f4fda8efcae876d"),
                ("lab-pi1", "96f556b251552e4e"),
                ("lab-pi2", "12cccef1d025edc3"),
                ("lab-pi3", "43900321d8657b3b"),
            ],
        );
    }

    #[test]
    fn macvlan_hashes_are_pinned() {
        assert_pinned(
            hashes(&macvlan(), 2, false),
            &[
                ("lab-controller", "903d964d38b0dd21"),
                ("lab-login", "50933f7b5cefc787"),
                ("lab-pi1-1", "11524183b52f6efd"),
                ("lab-pi1-2", "45533edab293b593"),
                ("lab-pi2-1", "df168845944c0c42"),
                ("lab-pi2-2", "a95c592f3f44c494"),
            ],
        );
    }

    #[test]
    fn glusterfs_hashes_are_pinned() {
        assert_pinned(
            hashes(&lab(2, "[home]\nshared = \"glusterfs\"\n"), 2, true),
            &[
                ("lab-controller", "d74eb25b29a18dd1"),
                ("lab-login", "7572e02595dfcf94"),
                ("lab-pi1", "817cbc1cd68e2c23"),
                ("lab-pi2", "ed62ea6029358faf"),
                ("lab-storage-pi1", "0b4e5d4b31a6f83b"),
                ("lab-storage-pi2", "fe4cd2638e63a346"),
            ],
        );
    }
}
