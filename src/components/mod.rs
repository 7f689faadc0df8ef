//! The parts of a cluster, one file each, and what each owns of its whole life. Every
//! column is a hook of [`Part`] (in `part.rs`), which dispatches to functions in the
//! part's file; `–`: the part has nothing to do then.
//!
//! | part | file | plan ([`Part::configure`], [`Part::add`]) | image ([`Part::image`]) | checks ([`Part::check`]) | start ([`Part::on_created`], [`Part::before_start`], [`Part::after_start`]) | status ([`Part::status`]) | doctor ([`Part::doctor`]) | backup ([`Part::backup`], [`Part::restore`]) |
//! |---|---|---|---|---|---|---|---|---|
//! | network | [`network`] | bridge, hosts' or macvlan networks; MPI's subnet | – | – | – | – | – | – |
//! | munge key | [`munge`] | a key volume per host | – | – | copies the key to nodes on other hosts | – | – | – |
//! | controllers | [`controller`] | slurmctld's containers (a list, the primary first), the state storage they share, slurm.conf's `SlurmctldHost` lines | the controller image (the node image, slurmrestd, the JWT plugin), the controller's host | – | running nodes register again with a new controller | an unclean start | what an unclean start may have cost | its state; after a restore, nodes register again |
//! | shared /home | [`home`] | the home volume or host folder every node mounts | – | – | – | – | – | – |
//! | login node | [`login`] | the login container, its sshd, host keys, published port | – | – | – | – | – | – |
//! | compute nodes | [`compute`] | a slurmd container per node, what each registers with | the node image, every host | – | forgets nodes that went away; waits until they take jobs | – | – | – |
//! | GPUs | [`gpus`] | gres.conf, GresTypes, the `gpu` partition; each node's devices and GRES | – | – (its probe runs while `up` learns the hosts' facts) | – | – | each host's GPUs | – |
//! | limits | [`limits`] | cgroup plugins, cgroup.conf; each compute container's cgroup namespace, capabilities, memory limit | – | – | – | – | each host's cgroups, each node's limits | – |
//! | GlusterFS /home | [`glusterfs`] | a storage container, brick and state volumes per host | the storage image, every host | one such cluster per host | shapes the replicated volume, mounts it | the volume's health, each host's mount | – | – |
//! | LDAP | [`ldap`] | nslcd.conf on every node, the login node's key lookup | – | – | gives new nodes the bind password | – | – | – |
//! | users | [`users`] | an accounts volume per host, mounted on every node | – | – | writes accounts and keys, makes homes | – | – | – |
//! | accounting | [`accounting`] | MariaDB's and slurmdbd's containers and volumes, slurm.conf's accounting | the accounting image, the controller's host | – | starts the database and slurmdbd with the controller, ahead of the rest; the accounts and associations | – | – | the database (slurmdbd stops first) |
//! | REST API | [`rest`] | the JWT key's volume on slurmctld and slurmdbd, `AuthAltTypes`; slurmrestd's container and published port | – (the controller image) | its port is no other cluster's | – | its URL | – | – |
//! | containers in jobs | [`containers`] | oci.conf on the controller; SYS_CHROOT on compute nodes; `slurmbox-bundle` on login and compute nodes (only with `[software] containers`) | – (crun in the node image, with the site's packages) | – | – | – | – | – |
//! | metrics | [`metrics`] | the exporter beside slurmctld, `MetricsType` on 26.05; Prometheus's container, volume and settings | the metrics image, the controller's host | – | – | where Prometheus answers | – | – |
//!
//! [`plan`] folds over [`PARTS`] in two passes: first each part configures what other
//! parts' containers carry (slurm.conf, the nodes' environment), then each adds its
//! networks, volumes and containers. Both passes are pure. The deploy module runs the
//! engine hooks at their moments, through [`crate::apply::Apply`]; `status`, `doctor`
//! and backups gather the running cluster's [`crate::cluster::Model`] once and ask
//! every part for its share. A new part is a new file, a variant in `part.rs` and its
//! line in [`PARTS`]: no command knows the parts.

pub mod accounting;
pub mod compute;
pub mod containers;
pub mod controller;
pub mod glusterfs;
pub mod gpus;
pub mod home;
pub mod ldap;
pub mod limits;
pub mod login;
pub mod metrics;
pub mod munge;
pub mod network;
mod part;
pub mod rest;
pub mod users;
pub mod web;

pub use part::{ImageHosts, PARTS, Part};

use std::collections::BTreeMap;

use crate::contract;
use miette::Diagnostic;

use crate::engine::{CheckedError, EngineError, ExecFailed};
use crate::plan::{
    ContainerPlan, HostPlan, LABEL_CLUSTER, LABEL_NODE, LABEL_ROLE, LABEL_USER, MountPlan, Plan, PlannedFile,
    Role,
};
use crate::render::{CgroupConf, GresConf, SlurmConf};
use crate::slurm::SlurmError;
use crate::spec::{Arch, BackupPlace, ClusterSpec, MacvlanSpec, NetworkSpec};

/// What went wrong in a part's work through the engines.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum PartError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Engine(#[from] EngineError),
    #[error("compute nodes not ready after {waited}s:\n{report}")]
    #[diagnostic(help(
        "`slurmbox logs --name {cluster} NODE` shows each node's daemons; `slurmbox status --name {cluster}` their state"
    ))]
    NodesNotReady { cluster: String, waited: u64, report: String },
    #[error("the controller did not answer within {0}s")]
    #[diagnostic(help("see `slurmbox logs controller`"))]
    ControllerDown(u64),
    #[error("the backup controller {name} did not answer the primary's `scontrol ping` within {waited}s")]
    #[diagnostic(help(
        "`slurmbox logs {name}` shows why (it starts once the primary's heartbeat is in the shared state folder); `slurmbox doctor` checks that both controllers see that folder"
    ))]
    BackupDown { name: String, waited: u64 },
    /// A command that must succeed did not (see [`crate::engine::checked`]).
    #[error(transparent)]
    #[diagnostic(transparent)]
    ExecFailed(#[from] ExecFailed),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Slurm(#[from] SlurmError),
    #[error("host {host:?} already holds the GlusterFS /home of cluster {other:?}")]
    #[diagnostic(help(
        "GlusterFS takes fixed ports of its host, so one cluster per host can have shared = \"glusterfs\": give \
         this cluster other hosts, or a /home of its own with [home] host_path. Nothing was changed"
    ))]
    SharedHomeTaken { host: String, other: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    LdapFile(#[from] ldap::LdapFileError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error(
        "{key} = {port} in the spec is taken on host {host:?}: cluster {other:?} publishes its {what} there"
    )]
    #[diagnostic(help(
        "give {key} another number, or leave it out: `up` then takes the next free one. Nothing was changed"
    ))]
    PortTaken { key: &'static str, what: &'static str, port: u16, host: String, other: String },
    #[error("cluster {0:?} has no REST API, so its controller signs no JWT tokens")]
    #[diagnostic(help("remove `enabled = false` from [rest] in its spec, then `slurmbox up`"))]
    RestOff(String),
    #[error("cluster {0:?} has no dashboard")]
    #[diagnostic(help("remove `enabled = false` from [web] (and [rest]) in its spec, then `slurmbox up`"))]
    WebOff(String),
    #[error(transparent)]
    #[diagnostic(transparent)]
    TlsFile(#[from] web::TlsFileError),
    #[error("the backup holds an accounting database, and cluster {0:?} has no accounting")]
    #[diagnostic(help("remove `accounting = false` from its spec and `slurmbox up`, then restore"))]
    NoAccounting(String),
}

impl PartError {
    /// Whether asking again unchanged cannot help: the spec must change (see
    /// the exit module).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PartError::PortTaken { .. }
                | PartError::RestOff(_)
                | PartError::WebOff(_)
                | PartError::TlsFile(_)
        )
    }
}

impl From<CheckedError> for PartError {
    fn from(e: CheckedError) -> Self {
        match e {
            CheckedError::Failed(e) => PartError::ExecFailed(e),
            CheckedError::Engine(e) => PartError::Engine(e),
        }
    }
}

/// What `up` learned about a host: what its engine offers, and the node image its
/// containers run (the one built for its architecture, present there).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HostFacts {
    pub cpus: u32,
    pub memory_mib: u64,
    /// The architecture of its node image; compute nodes carry it as a Slurm feature
    /// (`sbatch --constraint=arm64`).
    pub arch: Arch,
    /// Its engine's machine is of another architecture, so the node image runs under
    /// qemu-user emulation (binfmt_misc): a lab or a test, never a site's real host.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub emulated: bool,
    pub image: String,
    /// The storage image for its architecture, when the cluster's /home is GlusterFS.
    pub storage_image: Option<String>,
    /// The accounting image (MariaDB, slurmdbd), on the controller's host of a cluster
    /// with accounting.
    pub accounting_image: Option<String>,
    /// The controller's image (the node image with slurmrestd and the JWT plugin), on
    /// the controller's host; `None`: the controller runs the node image.
    pub controller_image: Option<String>,
    /// The metrics image (Prometheus), on the controller's host of a cluster with
    /// metrics.
    pub metrics_image: Option<String>,
    /// The dashboard's image (nginx), on the controller's host of a cluster with one.
    pub web_image: Option<String>,
    /// What its engine says about cgroups (whether limits can be enforced there).
    pub cgroup: limits::CgroupHost,
    /// The port the login node's sshd is published on, when this host runs it (see
    /// [`login::choose_ssh_port`]).
    pub ssh_port: u16,
    /// The port slurmrestd is published on, when this host runs it (see
    /// [`rest::choose_port`]).
    pub rest_port: u16,
    /// The port the dashboard is published on, when this host runs it (see
    /// [`web::choose_port`]).
    pub web_port: u16,
    /// The GPUs its engine gives containers (NVIDIA container toolkit or CDI), as a
    /// probe container saw them; `None` where none was probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<gpus::ProbedGpus>,
}

/// The plan for `spec` on hosts with these facts: every part configures, then adds
/// its share; pure, so whole plans are snapshot-tested.
///
/// `facts` has one entry per host of the spec, in the spec's order (controller's
/// host first), or one for the local engine when the spec lists no hosts.
pub fn plan(spec: &ClusterSpec, facts: &[HostFacts]) -> Plan {
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
        node_conf: compute::node_conf(&layout, &facts[0]),
        slurm_conf: config.slurm_conf.clone(),
        cgroup_conf: config.cgroup_conf.clone(),
        gres_conf: config.gres_conf.clone(),
        compute_nodes: Vec::new(),
        default_user: spec.default_user().to_string(),
        storage: Vec::new(),
        limits: config.limits.clone(),
        accounts: Default::default(),
        ldap: None,
        web_tls: None,
        slurm_accounts: Vec::new(),
    };
    for part in PARTS {
        part.add(&layout, &config, &mut plan);
    }
    // Sealed last: a part may add to another part's containers.
    plan.containers = std::mem::take(&mut plan.containers).into_iter().map(ContainerPlan::sealed).collect();
    plan
}

/// Where things go, decided once from the spec and the hosts' facts: the hosts, the
/// network the nodes share, and which host (and address) each node gets.
pub struct Layout<'a> {
    pub spec: &'a ClusterSpec,
    /// One per host, in [`Layout::hosts`]' order.
    pub facts: &'a [HostFacts],
    pub cluster: String,
    /// The machines, controller's first; one ("local") when the spec lists none.
    pub hosts: Vec<HostPlan>,
    pub multi_host: bool,
    pub macvlan: Option<&'a MacvlanSpec>,
    /// Over several hosts (not macvlan) nodes use their host's own network.
    pub on_host_network: bool,
    /// The network node containers join ([`crate::plan::HOST_NETWORK`] on hosts' networks).
    pub network: String,
    /// The controllers, the primary first: slurm.conf names each (`SlurmctldHost`),
    /// every node is given all of them (`--conf-server`), and they share one state
    /// storage. A second with `[controller] backup`.
    pub controllers: Vec<Placed>,
    pub login: Placed,
    /// The compute nodes, host by host.
    pub nodes: Vec<Placed>,
}

/// The controllers, the primary first (on the first host), then the spec's backup.
fn controllers(
    spec: &ClusterSpec,
    hosts: &[HostPlan],
    primary_ip: Option<String>,
    backup_ip: Option<String>,
) -> Vec<Placed> {
    let mut all = vec![Placed { host: 0, name: contract::CONTROLLER_HOST.into(), ip: primary_ip }];
    if let Some(backup) = &spec.controller.backup {
        let host = match backup {
            BackupPlace::SameHost => 0,
            BackupPlace::Host(name) => {
                hosts.iter().position(|h| &h.name == name).expect("the spec checked it")
            }
        };
        all.push(Placed { host, name: contract::BACKUP_CONTROLLER_HOST.into(), ip: backup_ip });
    }
    all
}

/// A node's place: its host (index into [`Layout::hosts`]), its name, and its fixed
/// address in macvlan mode.
#[derive(Debug, Clone)]
pub struct Placed {
    pub host: usize,
    pub name: String,
    pub ip: Option<String>,
}

impl<'a> Layout<'a> {
    pub fn new(spec: &'a ClusterSpec, facts: &'a [HostFacts]) -> Layout<'a> {
        let cluster = spec.name.clone();
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
        let names = compute::node_names(&hosts, spec.compute.count, multi_host || macvlan.is_some());
        // Fixed addresses in macvlan mode: controller, login, then the compute nodes.
        // A backup controller's address comes last, so that adding one moves no other.
        let backup = usize::from(spec.controller.backup.is_some());
        let mut ips: Vec<Option<String>> = match macvlan {
            Some(m) => m
                .addresses(names.len() + 2 + backup)
                .expect("the spec checked the range's size")
                .into_iter()
                .map(|a| Some(a.to_string()))
                .collect(),
            None => vec![None; names.len() + 2 + backup],
        };
        let backup_ip = if backup == 1 { ips.pop().flatten() } else { None };
        let nodes_ips = ips.split_off(2);
        let login_ip = ips.pop().flatten();
        let controller_ip = ips.pop().flatten();
        let nodes =
            names.into_iter().zip(nodes_ips).map(|((host, name), ip)| Placed { host, name, ip }).collect();
        let controllers = controllers(spec, &hosts, controller_ip, backup_ip);
        Layout {
            network: network::node_network(&cluster, multi_host, macvlan.is_some()),
            spec,
            facts,
            hosts,
            multi_host,
            macvlan,
            on_host_network: multi_host && macvlan.is_none(),
            controllers,
            login: Placed { host: 0, name: contract::LOGIN_HOST.into(), ip: login_ip },
            nodes,
            cluster,
        }
    }

    /// Whether this controller is the backup.
    pub fn is_backup(&self, controller: &Placed) -> bool {
        controller.name != self.controller().name
    }

    /// The primary controller: the one in charge when all run, on the cluster's first
    /// host, beside the login node and the accounting database.
    pub fn controller(&self) -> &Placed {
        &self.controllers[0]
    }

    /// How the other nodes reach a controller when its name does not resolve: its own
    /// address in macvlan mode, its host's over several hosts; `None` on one engine's
    /// network, where its name does.
    pub fn controller_addr(&self, controller: &Placed) -> Option<String> {
        match self.macvlan {
            Some(_) => controller.ip.clone(),
            None => {
                self.spec.hosts.get(controller.host).filter(|_| self.multi_host).map(|h| h.address.clone())
            }
        }
    }

    /// What every node is given to find the controllers (`--conf-server`): each one's
    /// address where its name does not resolve, else its name; comma-separated.
    pub fn conf_servers(&self) -> String {
        let each = |c: &Placed| self.controller_addr(c).unwrap_or_else(|| c.name.clone());
        self.controllers.iter().map(each).collect::<Vec<_>>().join(",")
    }

    /// The labels every object of the cluster carries, plus `extra`.
    pub fn labels(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(LABEL_CLUSTER.to_string(), self.cluster.clone())]);
        labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        labels
    }

    /// A Slurm node's container (controller, login or compute): the node image of its
    /// host, slurmbox-init as its command, the nodes' shared environment and
    /// capabilities. Sealed later, once every part has had its say.
    pub fn node_container(&self, config: &Config, node: NodeContainer) -> ContainerPlan {
        let NodeContainer { placed, role, mounts, env, files } = node;
        let mut all_env = config.node_env.clone();
        all_env.push(format!("{}={}", contract::env::NODE, placed.name));
        all_env.extend(env);
        let mut all_files = vec![PlannedFile {
            path: contract::INIT_PATH.into(),
            mode: 0o755,
            contents: contract::INIT_SCRIPT.into(),
        }];
        all_files.extend(files);
        ContainerPlan {
            host: placed.host,
            name: format!("{}-{}", self.cluster, placed.name),
            hostname: placed.name.clone(),
            role,
            image: self.facts[placed.host].image.clone(),
            command: vec![contract::INIT_PATH.to_string(), role.as_str().to_string()],
            env: all_env,
            mounts,
            cap_add: NODE_CAPS.iter().map(|(c, _)| c.to_string()).collect(),
            network: self.network.clone(),
            ip: placed.ip.clone(),
            files: all_files,
            labels: self.labels(&[
                (LABEL_ROLE, role.as_str()),
                (LABEL_NODE, &placed.name),
                (LABEL_USER, self.spec.default_user()),
            ]),
            devices: vec![],
            security_opt: vec![],
            cgroupns_private: false,
            ports: vec![],
            memory_mib: None,
            // slurmbox-init's own watchdog restarts a daemon that stops answering;
            // the engine's check shows it. The login node's sackd has nothing to ask.
            health: (role != Role::Login).then(|| {
                vec![contract::INIT_PATH.to_string(), contract::HEALTH.to_string(), role.as_str().to_string()]
            }),
        }
    }
}

/// What makes one Slurm node's container differ from the others'.
pub struct NodeContainer<'p> {
    pub placed: &'p Placed,
    pub role: Role,
    pub mounts: Vec<MountPlan>,
    /// Variables beyond the ones every node gets.
    pub env: Vec<String>,
    /// Files beyond slurmbox-init.
    pub files: Vec<PlannedFile>,
}

/// What the parts set for each other in the first pass.
pub struct Config {
    pub slurm_conf: SlurmConf,
    pub cgroup_conf: CgroupConf,
    pub gres_conf: GresConf,
    /// Whether jobs are confined by cgroups (the limits part decides).
    pub limits: crate::plan::Limits,
    /// The environment every Slurm node's container starts with.
    pub node_env: Vec<String>,
    /// The login node's sshd.
    pub sshd: login::SshdConf,
}

impl Config {
    pub fn new(layout: &Layout) -> Config {
        Config {
            slurm_conf: controller::slurm_conf(layout),
            cgroup_conf: controller::cgroup_conf(),
            sshd: login::sshd_conf(layout),
            gres_conf: GresConf::default(),
            limits: crate::plan::Limits::Off { why: "not decided".into() },
            node_env: vec![format!("{}={}", contract::env::CONTROLLER, layout.conf_servers())],
        }
    }

    /// The Slurm files the controller holds (and serves to the other nodes).
    pub fn slurm_files(&self) -> Vec<PlannedFile> {
        vec![
            PlannedFile {
                path: contract::SLURM_CONF.into(),
                mode: 0o644,
                contents: self.slurm_conf.to_string(),
            },
            PlannedFile {
                path: contract::CGROUP_CONF.into(),
                mode: 0o644,
                contents: self.cgroup_conf.to_string(),
            },
            PlannedFile {
                path: contract::GRES_CONF.into(),
                mode: 0o644,
                contents: self.gres_conf.to_string(),
            },
        ]
    }
}

/// Capabilities of Slurm nodes' containers. Every container starts from none
/// (`--cap-drop ALL`, never `--privileged`) and gets back exactly these, each for a
/// reason.
pub const NODE_CAPS: &[(&str, &str)] = &[
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

#[cfg(test)]
mod tests;
