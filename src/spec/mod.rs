//! The cluster spec: `cluster.toml` read, checked and turned into a [`ClusterSpec`].
//!
//! This is the edge of slurmbox. Everything a user can write is parsed here, every
//! value is checked here, and every error points at the place in the file it came
//! from (`file:line:col`) with a hint. Nothing past this module sees raw TOML or has
//! to re-check a value.
//!
//! This file holds the checked model; [`check`] turns TOML into it (with
//! [`network`], [`accounts`], [`accounting`], [`services`] and [`software`] for their
//! tables), [`edit`] changes a spec file's text for `slurmbox host` and `slurmbox
//! user`, and [`ssh_url`] reads the `ssh://` engine addresses a spec names. Of the rest of slurmbox it uses only
//! [`crate::render`]'s list of the slurm.conf keys slurmbox sets itself.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

mod accounting;
mod accounts;
mod check;
mod controller;
mod edit;
mod network;
mod services;
mod software;
mod ssh_url;

pub use accounting::{AccountSpec, DEFAULT_ACCOUNT};
pub use accounts::{DEFAULT_SSH_PORT, ID_RANGE, LdapSpec, LoginSpec, UserSpec, is_public_key};
pub use check::{InvalidSpec, SpecError};
pub use controller::{BackupPlace, ControllerSpec};
pub use edit::{
    EditError, SpecFile, WriteError, with_host, with_user, without_host, without_user, write_atomic,
};
pub use services::{DEFAULT_REST_PORT, DEFAULT_RETENTION, DEFAULT_WEB_PORT, MetricsSpec, RestSpec, WebSpec};
pub use software::{CONTAINER_RUNTIME, SoftwareSpec};
pub use ssh_url::{DEFAULT_REMOTE_SOCKET, SshUrl};

/// Slurm releases slurmbox can build images for, and the Debian suite carrying each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SlurmVersion {
    /// 24.11, from Debian trixie (stable). The default.
    V24_11,
    /// 26.05, the latest major release, from Debian forky (testing).
    V26_05,
}

impl SlurmVersion {
    pub const ALL: [SlurmVersion; 2] = [SlurmVersion::V24_11, SlurmVersion::V26_05];

    pub fn as_str(self) -> &'static str {
        match self {
            SlurmVersion::V24_11 => "24.11",
            SlurmVersion::V26_05 => "26.05",
        }
    }

    /// The Debian suite whose `slurm-wlm` packages carry this release.
    pub fn debian_suite(self) -> &'static str {
        match self {
            SlurmVersion::V24_11 => "trixie",
            SlurmVersion::V26_05 => "forky",
        }
    }

    pub fn parse(s: &str) -> Option<SlurmVersion> {
        SlurmVersion::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for SlurmVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CPU architectures slurmbox builds node images for (Debian's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// From Debian's name or the kernel's (`uname -m`, which Docker reports).
    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "amd64" | "x86_64" => Some(Arch::Amd64),
            "arm64" | "aarch64" | "armv8" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// The machine slurmbox itself runs on.
    pub fn native() -> Arch {
        Arch::parse(std::env::consts::ARCH).unwrap_or(Arch::Amd64)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checked cluster description. Every field holds a valid value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClusterSpec {
    pub name: String,
    pub slurm: SlurmVersion,
    pub compute: ComputeSpec,
    pub home: HomeSpec,
    /// Accounts created on every node with the same UID/GID; the first is the default
    /// user of `exec`, `shell` and `verify`.
    pub users: Vec<UserSpec>,
    /// The machines the cluster runs on. Empty: the local engine (DOCKER_HOST or the
    /// local socket).
    pub hosts: Vec<HostSpec>,
    /// A backup controller, and where the controllers keep their state.
    #[serde(skip_serializing_if = "ControllerSpec::is_default")]
    pub controller: ControllerSpec,
    pub network: NetworkSpec,
    /// How users reach the login node (sshd).
    pub login: LoginSpec,
    /// A directory the nodes resolve more users from.
    pub ldap: Option<LdapSpec>,
    /// slurmdbd and MariaDB keep who ran what (`sacct`) and drive fair share.
    pub accounting: bool,
    /// Slurm accounts (research groups) and their users.
    pub accounts: Vec<AccountSpec>,
    /// Lines the site adds to slurm.conf (`[slurm_conf]`), replacing slurmbox's
    /// defaults for the same keys.
    pub slurm_conf: std::collections::BTreeMap<String, String>,
    /// A site's registry the images are pulled from before they are built
    /// (`registry.example.org/slurmbox`; `slurmbox image push` fills it).
    pub registry: Option<String>,
    /// Slurm's REST API (slurmrestd, JWT tokens).
    pub rest: RestSpec,
    /// The cluster's numbers, and Prometheus keeping their history.
    pub metrics: MetricsSpec,
    /// The dashboard (nginx serving slurmbox's pages).
    pub web: WebSpec,
    /// The site's Debian packages in every node image (`[software]`).
    pub software: SoftwareSpec,
}

/// How the cluster's containers reach each other.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum NetworkSpec {
    /// The default: on one engine a bridge network of the cluster's own; over several
    /// hosts every node on its host's network, like bare metal. `subnet`: the hosts'
    /// network, which MPI traffic keeps to (default: the controller address's /24).
    Default { subnet: Option<Ipv4Net> },
    /// The article's set-up: every container gets its own fixed address on the hosts'
    /// LAN through a macvlan network on each host.
    Macvlan(MacvlanSpec),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MacvlanSpec {
    /// The hosts' interface on the LAN (the same name on every host), e.g. `eth0`.
    pub parent: String,
    pub subnet: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    /// The block slurmbox hands addresses out of, in order: controller, login, then
    /// the compute nodes host by host. Keep the LAN's DHCP server out of it.
    pub ip_range: Ipv4Net,
}

impl MacvlanSpec {
    /// The first `n` addresses slurmbox may give out, or `None` if the range holds
    /// fewer: the range's addresses minus the subnet's own, its broadcast address and
    /// the gateway's.
    pub fn addresses(&self, n: usize) -> Option<Vec<Ipv4Addr>> {
        // Without a gateway setting, Docker takes the subnet's first address for it.
        let gateway = self.gateway.or_else(|| self.subnet.hosts().next());
        let usable: Vec<Ipv4Addr> = self
            .ip_range
            .hosts()
            .chain([self.ip_range.network(), self.ip_range.broadcast()])
            .filter(|a| *a != self.subnet.network() && *a != self.subnet.broadcast() && Some(*a) != gateway)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .take(n)
            .collect();
        (usable.len() == n).then_some(usable)
    }
}

/// A machine with a Docker engine.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HostSpec {
    pub name: String,
    /// `ssh://user@addr[:port]`, `tcp://addr:port` or `unix:///path`.
    pub engine: String,
    /// How the other hosts reach this one: the `address` key, else the engine's host.
    pub address: String,
    /// The architecture of its node image; `None`: the one its engine reports.
    pub arch: Option<Arch>,
    /// Device files on the host given to its compute node(s) as GPUs (`gpu_devices`).
    pub gpu_devices: Vec<String>,
    /// Whether GPUs its engine knows go to Slurm (`gpus`); `None`: as `[compute]` says.
    pub gpus: Option<EngineGpus>,
}

/// The GPUs a host's engine gives containers (the NVIDIA container toolkit, or CDI),
/// for a host whose spec lists no `gpu_devices`: the `gpus` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineGpus {
    /// `"auto"`: those the engine knows (the `nvidia` runtime, or NVIDIA CDI devices it
    /// lists), found by a probe container when `up` runs.
    #[default]
    Auto,
    /// `"none"`: the host's GPUs stay out of Slurm.
    None,
    /// `"cdi"`: ask the engine's CDI driver for `nvidia.com/gpu=all` even where it does
    /// not list its CDI devices (Docker 25 to 28.1, with the `cdi` feature on).
    Cdi,
}

impl EngineGpus {
    pub(super) fn parse(s: &str) -> Option<EngineGpus> {
        match s {
            "auto" => Some(EngineGpus::Auto),
            "none" => Some(EngineGpus::None),
            "cdi" => Some(EngineGpus::Cdi),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ComputeSpec {
    pub count: u32,
    /// CPUs declared to Slurm per node; `None` means "decide from the host".
    pub cpus: Option<u32>,
    /// Memory declared to Slurm per node in MiB; `None` means "the host's".
    pub memory_mb: Option<u64>,
    /// Confine jobs with cgroups wherever the hosts allow (`limits = false`: never).
    pub limits: bool,
    /// GPUs of the one host of a cluster without `[[host]]` tables (device files).
    pub gpu_devices: Vec<String>,
    /// Slurm `shard`s per GPU, so that several jobs share one (0: none).
    pub gpu_shards: u32,
    /// Whether GPUs the engines know go to Slurm, on hosts that do not say (`gpus`).
    pub gpus: EngineGpus,
    /// How many compute nodes `up` takes out of service at a time when it must make
    /// their containers again (`max_unavailable`, at least 1).
    pub max_unavailable: u32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum HomeSpec {
    /// A Docker volume owned by the cluster (removed by `down --purge`).
    Volume,
    /// A folder on the host, e.g. an existing GlusterFS or NFS mount such as /gfsv/home.
    HostPath(PathBuf),
    /// A GlusterFS volume slurmbox runs on the hosts themselves, replicated to every
    /// host (`[home] shared = "glusterfs"`).
    GlusterFs,
}

pub const DEFAULT_NAME: &str = "slurmbox";
pub const DEFAULT_USER: &str = "researcher";
pub const DEFAULT_UID: u32 = 1000;

impl ClusterSpec {
    /// The cluster `slurmbox up` makes when given no file.
    pub fn default_cluster() -> ClusterSpec {
        ClusterSpec {
            name: DEFAULT_NAME.to_string(),
            slurm: SlurmVersion::V24_11,
            compute: ComputeSpec {
                count: 2,
                cpus: None,
                memory_mb: None,
                limits: true,
                gpu_devices: vec![],
                gpu_shards: 0,
                gpus: EngineGpus::Auto,
                max_unavailable: 1,
            },
            home: HomeSpec::Volume,
            users: vec![UserSpec::new(DEFAULT_USER, DEFAULT_UID)],
            hosts: Vec::new(),
            controller: ControllerSpec::default(),
            network: NetworkSpec::Default { subnet: None },
            login: LoginSpec::default(),
            ldap: None,
            accounting: true,
            accounts: Vec::new(),
            slurm_conf: Default::default(),
            registry: None,
            rest: RestSpec::default_for(&NetworkSpec::Default { subnet: None }),
            metrics: MetricsSpec::default_for(&NetworkSpec::Default { subnet: None }),
            web: WebSpec::default_for(&NetworkSpec::Default { subnet: None }),
            software: SoftwareSpec::default(),
        }
    }

    /// The engine the cluster's containers live on: the controller's host, else the
    /// local one (`None`).
    pub fn engine(&self) -> Option<&str> {
        self.hosts.first().map(|h| h.engine.as_str())
    }

    /// The device files the spec gives host `host` (index into the hosts; 0 for the
    /// one engine of a cluster without `[[host]]` tables) as GPUs.
    pub fn gpu_devices(&self, host: usize) -> &[String] {
        match self.hosts.get(host) {
            Some(h) => &h.gpu_devices,
            None => &self.compute.gpu_devices,
        }
    }

    /// Whether host `host`'s engine GPUs go to Slurm: its own `gpus`, else `[compute]`'s.
    pub fn engine_gpus(&self, host: usize) -> EngineGpus {
        self.hosts.get(host).and_then(|h| h.gpus).unwrap_or(self.compute.gpus)
    }

    pub fn default_user(&self) -> &str {
        &self.users[0].name
    }
}

/// The error a spec's text gets, as people read it ("cluster.toml:2:8: ..."), for the
/// checks' tests.
#[cfg(test)]
pub(crate) fn error_of(text: &str) -> String {
    match ClusterSpec::parse("cluster.toml", text) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{text} was accepted"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default_cluster() {
        assert_eq!(ClusterSpec::parse("c.toml", "").unwrap(), ClusterSpec::default_cluster());
    }

    #[test]
    fn full_spec_parses() {
        let spec = ClusterSpec::parse(
            "c.toml",
            r#"
name = "pi-lab"
slurm = "26.05"
registry = "registry.example.org:5000/slurmbox/"
[compute]
count = 3
cpus = 4
memory_mb = 2048
[home]
host_path = "/gfsv/home"
[[user]]
name = "alice"
uid = 2001
[[user]]
name = "bob"
"#,
        )
        .unwrap();
        insta::assert_debug_snapshot!(spec);
    }
}
