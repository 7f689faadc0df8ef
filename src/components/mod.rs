//! The parts of a cluster, one file each.
//!
//! | part | file | adds to the plan | once its containers run |
//! |---|---|---|---|
//! | network | [`network`] | the bridge or macvlan networks; MPI's subnet | – |
//! | munge key | [`munge`] | a key volume per host | copies the key to other hosts |
//! | controller | [`controller`] | slurmctld's container, state volume, slurm.conf | has running nodes register again |
//! | shared /home | [`home`] | the home volume or host folder every node mounts | – |
//! | login node | [`login`] | the login container (sackd, or its own slurm.conf) | – |
//! | compute nodes | [`compute`] | a slurmd container per node, what each registers with | forgets nodes that went away |
//! | GPUs | [`gpus`] | gres.conf, GresTypes and the `gpu` partition; each compute node's device files and GRES | – |
//! | limits | [`limits`] | cgroup plugins in slurm.conf, cgroup.conf; each compute container's cgroup namespace, capabilities, memory limit | – |
//! | GlusterFS /home | [`glusterfs`] | a storage container, brick and state volume per host | shapes the replicated volume |
//! | LDAP | [`ldap`] | nslcd.conf on every node, the login node's key lookup | gives new nodes the bind password |
//! | accounting | [`accounting`] | MariaDB's and slurmdbd's containers, their volumes; slurm.conf's accounting | makes the accounts and users' associations |
//! | users | [`users`] | an accounts volume per host, mounted on every node | writes the accounts and keys, makes homes |
//!
//! [`plan`] folds over [`PARTS`] in two passes: first each part
//! [`configures`](Part::configure) what other parts' containers carry (slurm.conf,
//! the nodes' environment), then each [`adds`](Part::add) its networks, volumes and
//! containers. Both passes are pure. What a part does through the engine once its
//! containers exist is in the same file; the deploy module runs it at the right
//! moment ([`Part::check`], [`Part::on_created`], [`Part::before_start`], [`Part::after_start`]). A new part is a new file, a
//! variant here and its line in [`PARTS`]: no command knows the parts.

pub mod accounting;
pub mod compute;
pub mod controller;
pub mod glusterfs;
pub mod gpus;
pub mod home;
pub mod ldap;
pub mod limits;
pub mod login;
pub mod munge;
pub mod network;
pub mod users;

use std::collections::BTreeMap;

use crate::contract;
use miette::Diagnostic;

use crate::apply::Apply;
use crate::cluster::report::{ClusterStatus, DoctorReport};
use crate::cluster::{Cluster, Model};
use crate::engine::{CheckedError, Engine, EngineError, ExecFailed};
use crate::image::Recipe;
use crate::plan::{
    ContainerPlan, HostPlan, LABEL_CLUSTER, LABEL_NODE, LABEL_ROLE, LABEL_USER, MountPlan, Plan, PlannedFile,
    Role,
};
use crate::render::{CgroupConf, GresConf, SlurmConf};
use crate::slurm::SlurmError;
use crate::spec::{Arch, ClusterSpec, HomeSpec, MacvlanSpec, NetworkSpec};

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
    #[error("the backup holds an accounting database, and cluster {0:?} has no accounting")]
    #[diagnostic(help("remove `accounting = false` from its spec and `slurmbox up`, then restore"))]
    NoAccounting(String),
}

impl From<CheckedError> for PartError {
    fn from(e: CheckedError) -> Self {
        match e {
            CheckedError::Failed(e) => PartError::ExecFailed(e),
            CheckedError::Engine(e) => PartError::Engine(e),
        }
    }
}

/// Every part of a cluster, in the order the plan is folded (and its containers listed).
pub const PARTS: [Part; 12] = [
    Part::Network,
    Part::Munge,
    Part::Controller,
    Part::Home,
    Part::Login,
    Part::Compute,
    Part::Gpus,
    Part::Limits,
    Part::GlusterFs,
    Part::Ldap,
    // After every Slurm node's part (it mounts its volume on each) and the GlusterFS
    // /home (it makes homes there); before accounting, whose associations slurmctld
    // ties to the users' UIDs as it learns of them.
    Part::Users,
    Part::Accounting,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Network,
    Munge,
    Controller,
    Home,
    Login,
    Compute,
    Users,
    Gpus,
    Limits,
    GlusterFs,
    Ldap,
    Accounting,
}

impl Part {
    /// What this part sets that other parts' containers carry.
    pub fn configure(self, layout: &Layout, config: &mut Config) {
        match self {
            Part::Network => network::configure(layout, config),
            Part::Home => home::configure(layout, config),
            Part::Limits => limits::configure(layout, config),
            Part::Gpus => gpus::configure(layout, config),
            Part::Ldap => ldap::configure(layout, config),
            Part::Accounting => accounting::configure(layout, config),
            Part::Munge | Part::Controller | Part::Login | Part::Compute | Part::Users | Part::GlusterFs => {}
        }
    }

    /// The networks, volumes and containers this part adds to the plan.
    pub fn add(self, layout: &Layout, config: &Config, plan: &mut Plan) {
        match self {
            Part::Network => network::add(layout, plan),
            Part::Munge => munge::add(layout, plan),
            Part::Controller => controller::add(layout, config, plan),
            Part::Home => home::add(layout, plan),
            Part::Login => login::add(layout, config, plan),
            Part::Compute => compute::add(layout, config, plan),
            Part::Users => users::add(layout, plan),
            Part::Ldap => ldap::add(layout, plan),
            Part::Accounting => accounting::add(layout, plan),
            Part::Limits => limits::add(layout, config, plan),
            // Compute nodes carry their GPUs ([`gpus::of_node`]); gres.conf is the controller's.
            Part::Gpus => {}
            Part::GlusterFs => glusterfs::add(layout, plan),
        }
    }

    /// Checks against what already runs on the hosts, before anything changes.
    pub async fn check<E: Engine>(self, engines: &[E], plan: &Plan) -> Result<(), PartError> {
        match self {
            Part::GlusterFs => glusterfs::check(engines, plan).await,
            _ => Ok(()),
        }
    }

    /// Work right after the containers are created, before any part prepares its own:
    /// what can start ahead of the rest.
    pub async fn on_created<E: Engine>(self, apply: &mut Apply<'_, E>) -> Result<(), PartError> {
        match self {
            Part::GlusterFs => glusterfs::on_created(apply).await,
            _ => Ok(()),
        }
    }

    /// Work between creating the containers and starting them all (the controller may
    /// be started first). Returns what it did, for the progress line.
    pub async fn before_start<E: Engine>(self, apply: &mut Apply<'_, E>) -> Result<(), PartError> {
        match self {
            Part::Munge => munge::before_start(apply).await,
            Part::Compute => compute::before_start(apply).await,
            Part::Ldap => ldap::before_start(apply).await,
            _ => Ok(()),
        }
    }

    /// Work once every container runs. Returns a line for the progress output when the
    /// part had something to do.
    pub async fn after_start<E: Engine>(self, apply: &mut Apply<'_, E>) -> Result<(), PartError> {
        match self {
            Part::Controller => controller::after_start(apply).await,
            Part::GlusterFs => glusterfs::after_start(apply).await,
            Part::Users => users::after_start(apply).await,
            Part::Accounting => accounting::after_start(apply).await,
            _ => Ok(()),
        }
    }
}

/// Which hosts run a part's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageHosts {
    /// Every host (of the image's architecture).
    Every,
    /// The controller's host alone.
    Controller,
}

impl Part {
    /// The image this part's containers run on hosts of `arch`, and which hosts those
    /// are; `None` where it runs no container of its own image.
    pub fn image(self, spec: &ClusterSpec, arch: Arch) -> Option<(Recipe, ImageHosts)> {
        match self {
            // The node image: controller, login and compute nodes.
            Part::Compute => Some((Recipe::new(spec.slurm, arch), ImageHosts::Every)),
            Part::GlusterFs => {
                (spec.home == HomeSpec::GlusterFs).then(|| (glusterfs::image_recipe(arch), ImageHosts::Every))
            }
            Part::Accounting => {
                spec.accounting.then(|| (accounting::image_recipe(spec.slurm, arch), ImageHosts::Controller))
            }
            _ => None,
        }
    }

    /// What this part adds to `status`, asked of what runs.
    pub async fn status(self, cluster: &Cluster, model: &Model, status: &mut ClusterStatus) {
        match self {
            Part::Controller => controller::status(cluster, model, status).await,
            Part::GlusterFs => glusterfs::status(cluster, model, status).await,
            _ => {}
        }
    }

    /// What this part adds to `doctor`: what the hosts offer it and what it holds.
    pub async fn doctor(
        self,
        cluster: &Cluster,
        model: &Model,
        spec: &ClusterSpec,
        report: &mut DoctorReport,
    ) {
        match self {
            Part::Controller => controller::doctor(cluster, model, report).await,
            Part::Gpus => gpus::doctor(model, spec, report),
            Part::Limits => limits::doctor(cluster, model, spec, report).await,
            _ => {}
        }
    }
    /// The file this part keeps in a backup and what it holds ("controller state");
    /// `None` for a part with nothing to back up.
    pub fn backup_file(self) -> Option<(&'static str, &'static str)> {
        match self {
            Part::Controller => Some((controller::BACKUP_FILE, "controller state")),
            Part::Accounting => Some((accounting::BACKUP_FILE, "accounting database")),
            _ => None,
        }
    }

    /// This part's share of `slurmbox backup`, read from what runs; `None` where it has
    /// none in this cluster. A backup takes the shares in the reverse of [`PARTS`]'
    /// order: the accounting database before the controller's state, so that a job the
    /// database has is in the state too.
    pub async fn backup(self, cluster: &Cluster, model: &Model) -> Result<Option<Vec<u8>>, PartError> {
        match self {
            Part::Controller => controller::backup(cluster, model).await.map(Some),
            Part::Accounting => accounting::backup(cluster, model).await,
            _ => Ok(None),
        }
    }

    /// Whether this cluster can take this part's share of a backup back (`share`:
    /// what the backup holds for it), asked before anything changes.
    pub fn restorable(self, cluster: &Cluster, model: &Model, share: Option<&[u8]>) -> Result<(), PartError> {
        match self {
            Part::Accounting => accounting::restorable(cluster, model, share),
            _ => Ok(()),
        }
    }

    /// Before any part's share is put back: stop what would write meanwhile.
    pub async fn before_restore(
        self,
        cluster: &Cluster,
        model: &Model,
        share: Option<&[u8]>,
    ) -> Result<(), PartError> {
        match self {
            Part::Accounting => accounting::before_restore(cluster, model, share).await,
            _ => Ok(()),
        }
    }

    /// Once every part's share is back: what makes the cluster whole again.
    pub async fn after_restore(self, cluster: &Cluster, model: &Model) -> Result<(), PartError> {
        match self {
            Part::Controller => controller::after_restore(cluster, model).await,
            _ => Ok(()),
        }
    }

    /// Puts this part's share of a backup back, in [`PARTS`]' order.
    pub async fn restore(self, cluster: &Cluster, model: &Model, share: &[u8]) -> Result<(), PartError> {
        match self {
            Part::Controller => controller::restore(cluster, model, share).await,
            Part::Accounting => accounting::restore(cluster, model, share).await,
            _ => Ok(()),
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
    pub image: String,
    /// The storage image for its architecture, when the cluster's /home is GlusterFS.
    pub storage_image: Option<String>,
    /// The accounting image (MariaDB, slurmdbd), on the controller's host of a cluster
    /// with accounting.
    pub accounting_image: Option<String>,
    /// What its engine says about cgroups (whether limits can be enforced there).
    pub cgroup: limits::CgroupHost,
    /// The port the login node's sshd is published on, when this host runs it (see
    /// [`login::choose_ssh_port`]).
    pub ssh_port: u16,
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
    /// storage. slurmbox makes one today.
    pub controllers: Vec<Placed>,
    pub login: Placed,
    /// The compute nodes, host by host.
    pub nodes: Vec<Placed>,
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
        let mut ips: Vec<Option<String>> = match macvlan {
            Some(m) => m
                .addresses(names.len() + 2)
                .expect("the spec checked the range's size")
                .into_iter()
                .map(|a| Some(a.to_string()))
                .collect(),
            None => vec![None; names.len() + 2],
        };
        let nodes_ips = ips.split_off(2);
        let login_ip = ips.pop().flatten();
        let controller_ip = ips.pop().flatten();
        let nodes =
            names.into_iter().zip(nodes_ips).map(|((host, name), ip)| Placed { host, name, ip }).collect();
        Layout {
            network: network::node_network(&cluster, multi_host, macvlan.is_some()),
            spec,
            facts,
            hosts,
            multi_host,
            macvlan,
            on_host_network: multi_host && macvlan.is_none(),
            controllers: vec![Placed { host: 0, name: contract::CONTROLLER_HOST.into(), ip: controller_ip }],
            login: Placed { host: 0, name: contract::LOGIN_HOST.into(), ip: login_ip },
            nodes,
            cluster,
        }
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
