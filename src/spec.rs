//! The cluster spec: `cluster.toml` read, checked and turned into a [`ClusterSpec`].
//!
//! This is the edge of slurmbox. Everything a user can write is parsed here, every
//! value is checked here, and every error points at the place in the file it came
//! from (`file:line:col`) with a hint. Nothing past this module sees raw TOML or has
//! to re-check a value.

use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Deserialize;
use toml::Spanned;

mod accounting;
mod accounts;
pub use accounting::{AccountSpec, DEFAULT_ACCOUNT};
pub use accounts::{
    DEFAULT_SSH_PORT, ID_RANGE, LdapSpec, LoginSpec, UserSpec, is_public_key, with_user, without_user,
};

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
    fn parse(s: &str) -> Option<EngineGpus> {
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
            },
            home: HomeSpec::Volume,
            users: vec![UserSpec::new(DEFAULT_USER, DEFAULT_UID)],
            hosts: Vec::new(),
            network: NetworkSpec::Default { subnet: None },
            login: LoginSpec::default(),
            ldap: None,
            accounting: true,
            accounts: Vec::new(),
            slurm_conf: Default::default(),
            registry: None,
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

    /// Reads and checks a spec file.
    pub fn load(path: &Path) -> Result<ClusterSpec, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SpecError::Read { path: path.to_path_buf(), source })?;
        ClusterSpec::parse(&path.display().to_string(), &text)
    }

    /// Parses and checks spec text; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<ClusterSpec, SpecError> {
        let located = |span: Range<usize>, message: String, hint: String| {
            let (line, col) = line_col(text, span.start);
            SpecError::Invalid(Box::new(InvalidSpec {
                message: format!("{origin}:{line}:{col}: {message}"),
                src: NamedSource::new(origin, text.to_string()),
                span: span.into(),
                hint,
            }))
        };
        let raw: RawSpec = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().to_string();
            let hint = if message.contains("unknown field") {
                "check the spelling; the README lists every key slurmbox understands".to_string()
            } else {
                "see the README for the form of each key".to_string()
            };
            located(span, message, hint)
        })?;
        raw.check(located)
    }
}

/// Line and column (both from 1) of a byte offset, as editors count them.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum SpecError {
    #[error("cannot read the cluster spec {}: {source}", path.display())]
    #[diagnostic(help("pass an existing file with -f, or leave -f out for the default cluster"))]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<InvalidSpec>),
}

#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
pub struct InvalidSpec {
    message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    span: SourceSpan,
    #[help]
    hint: String,
}

// ---- raw form: exactly what TOML may hold --------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: Option<Spanned<String>>,
    slurm: Option<Spanned<String>>,
    compute: Option<RawCompute>,
    home: Option<RawHome>,
    #[serde(default)]
    user: Vec<accounts::RawUser>,
    login: Option<accounts::RawLogin>,
    ldap: Option<accounts::RawLdap>,
    accounting: Option<Spanned<bool>>,
    #[serde(default)]
    account: Vec<accounting::RawAccount>,
    slurm_conf: Option<Spanned<toml::Table>>,
    registry: Option<Spanned<String>>,
    controller: Option<Spanned<String>>,
    #[serde(default)]
    host: Vec<RawHost>,
    network: Option<RawNetwork>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    mode: Option<Spanned<String>>,
    parent: Option<Spanned<String>>,
    subnet: Option<Spanned<String>>,
    gateway: Option<Spanned<String>>,
    ip_range: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    engine: Spanned<String>,
    address: Option<Spanned<String>>,
    arch: Option<Spanned<String>>,
    gpu_devices: Option<Spanned<Vec<String>>>,
    gpus: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompute {
    count: Option<Spanned<i64>>,
    per_host: Option<Spanned<i64>>,
    cpus: Option<Spanned<i64>>,
    memory_mb: Option<Spanned<i64>>,
    limits: Option<bool>,
    gpu_devices: Option<Spanned<Vec<String>>>,
    gpu_shards: Option<Spanned<i64>>,
    gpus: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHome {
    host_path: Option<Spanned<String>>,
    shared: Option<Spanned<String>>,
}

/// Names the rest of slurmbox relies on: Docker object names, host names, user names.
fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl RawSpec {
    fn check(
        self,
        err: impl Fn(Range<usize>, String, String) -> SpecError,
    ) -> Result<ClusterSpec, SpecError> {
        let mut spec = ClusterSpec::default_cluster();
        if let Some(name) = self.name {
            if !is_dns_label(name.get_ref(), 40) {
                return Err(err(
                    name.span(),
                    format!("invalid cluster name {:?}", name.get_ref()),
                    "use 1-40 lowercase letters, digits and '-', not starting or ending with '-'".into(),
                ));
            }
            spec.name = name.into_inner();
        }
        if let Some(slurm) = self.slurm {
            spec.slurm = SlurmVersion::parse(slurm.get_ref()).ok_or_else(|| {
                err(
                    slurm.span(),
                    format!("unsupported Slurm version {:?}", slurm.get_ref()),
                    "use \"24.11\" (Debian trixie, the default) or \"26.05\" (Debian forky, the latest)"
                        .into(),
                )
            })?;
        }
        let hosts = check_hosts(&self.host, self.controller.as_ref(), &err)?;
        if !hosts.is_empty() {
            // One compute node per host unless compute.per_host says otherwise.
            spec.compute.count = 1;
        }
        if let Some(compute) = self.compute {
            if let (Some(count), false) = (&compute.count, hosts.is_empty()) {
                return Err(err(
                    count.span(),
                    "compute.count does not go with [[host]] tables".into(),
                    "say how many compute nodes each host runs with compute.per_host".into(),
                ));
            }
            if let Some(per_host) = &compute.per_host {
                if hosts.is_empty() {
                    return Err(err(
                        per_host.span(),
                        "compute.per_host needs [[host]] tables".into(),
                        "on the local engine, say how many compute nodes with compute.count".into(),
                    ));
                }
                spec.compute.count = in_range(per_host, 1, 16, "compute.per_host", &err)? as u32;
                let macvlan = self
                    .network
                    .as_ref()
                    .and_then(|n| n.mode.as_ref())
                    .is_some_and(|m| m.get_ref() == "macvlan");
                if hosts.len() > 1 && spec.compute.count > 1 && !macvlan {
                    return Err(err(
                        per_host.span(),
                        "more than one compute node per host needs network mode \"macvlan\" over several hosts".into(),
                        "on a host's own network two nodes would need the same ports: leave compute.per_host out, or give every node its own address with [network] mode = \"macvlan\"".into(),
                    ));
                }
            }
            if let Some(count) = compute.count {
                spec.compute.count = in_range(&count, 1, 128, "compute.count", &err)? as u32;
            }
            if let Some(cpus) = compute.cpus {
                spec.compute.cpus = Some(in_range(&cpus, 1, 4096, "compute.cpus", &err)? as u32);
            }
            if let Some(mem) = compute.memory_mb {
                spec.compute.memory_mb =
                    Some(in_range(&mem, MIN_NODE_MEMORY_MB, 64 * 1024 * 1024, "compute.memory_mb", &err)?
                        as u64);
            }
            if let Some(limits) = compute.limits {
                spec.compute.limits = limits;
            }
            if let Some(devices) = &compute.gpu_devices {
                if !self.host.is_empty() {
                    return Err(err(
                        devices.span(),
                        "compute.gpu_devices is for a cluster without [[host]] tables".into(),
                        "give each GPU host its devices in its own [[host]] table: gpu_devices = [\"/dev/nvidia0\"]".into(),
                    ));
                }
                spec.compute.gpu_devices = gpu_devices(devices, spec.compute.count, &err)?;
            }
            if let Some(shards) = &compute.gpu_shards {
                spec.compute.gpu_shards = in_range(shards, 0, 1024, "compute.gpu_shards", &err)? as u32;
            }
            spec.compute.gpus =
                engine_gpus(compute.gpus.as_ref(), compute.gpu_devices.is_some(), "compute.gpus", &err)?;
        }
        for raw in &self.host {
            if let Some(devices) = &raw.gpu_devices {
                gpu_devices(devices, spec.compute.count, &err)?;
            }
        }
        if let Some(home) = &self.home
            && let Some(shared) = &home.shared
        {
            if shared.get_ref() != "glusterfs" {
                return Err(err(
                    shared.span(),
                    format!("unknown home.shared {:?}", shared.get_ref()),
                    "slurmbox provides \"glusterfs\"; for NFS or another shared folder, mount it on every host and set home.host_path".into(),
                ));
            }
            if home.host_path.is_some() {
                return Err(err(
                    shared.span(),
                    "home.shared and home.host_path cannot both be set".into(),
                    "use host_path for a shared folder the hosts already have, shared = \"glusterfs\" for one slurmbox runs".into(),
                ));
            }
            if hosts.is_empty() {
                return Err(err(
                    shared.span(),
                    "a GlusterFS /home is replicated across hosts, and this spec lists none".into(),
                    "list the machines as [[host]] tables, or leave [home] out on one machine (a volume holds /home)".into(),
                ));
            }
            // The hosts' GlusterFS servers find each other at these addresses.
            if let Some(host) = hosts.iter().find(|h| h.address.is_empty()) {
                let raw = self
                    .host
                    .iter()
                    .find(|r| r.name.get_ref() == &host.name)
                    .expect("checked hosts come from [[host]]");
                return Err(err(
                    raw.engine.span(),
                    format!("host {:?} needs an address for the GlusterFS /home", host.name),
                    "add address = \"192.168.0.106\" (its address on the hosts' network)".into(),
                ));
            }
            spec.home = HomeSpec::GlusterFs;
        }
        if let Some(home) = self.home
            && let Some(path) = home.host_path
        {
            let p = PathBuf::from(path.get_ref());
            if !p.is_absolute() || path.get_ref().contains(':') {
                return Err(err(
                    path.span(),
                    format!("home.host_path must be an absolute path, got {:?}", path.get_ref()),
                    "name a folder on the Docker host, e.g. host_path = \"/gfsv/home\"".into(),
                ));
            }
            if let Some(reason) = system_folder(&p) {
                return Err(err(
                    path.span(),
                    format!("home.host_path {:?} {reason}", path.get_ref()),
                    "users' homes are made (and handed to their owners) inside it: name a folder of its own, e.g. a shared mount such as host_path = \"/gfsv/home\"".into(),
                ));
            }
            spec.home = HomeSpec::HostPath(p);
        }
        if hosts.len() > 1 && spec.home == HomeSpec::Volume {
            let span = self.host.get(1).map_or(0..0, |h| h.name.span());
            return Err(err(
                span,
                "a cluster over several hosts needs a /home every host shares".into(),
                "set [home] shared = \"glusterfs\" for one slurmbox runs on the hosts, or mount a shared folder (NFS, GlusterFS) at the same path on every host and set home.host_path"
                    .into(),
            ));
        }
        spec.hosts = hosts;
        if let Some(network) = &self.network {
            let nodes = spec.hosts.len().max(1) * spec.compute.count as usize;
            spec.network = check_network(network, nodes, spec.hosts.len(), &err)?;
        }
        if !self.user.is_empty() {
            spec.users = accounts::check_users(self.user, &err)?;
        }
        if let Some(login) = &self.login {
            spec.login = accounts::check_login(login, &err)?;
        }
        if let Some(ldap) = self.ldap {
            spec.ldap = Some(accounts::check_ldap(ldap, &err)?);
        }
        // Accounting's two containers have no address of their own on a macvlan LAN yet.
        let macvlan = matches!(spec.network, NetworkSpec::Macvlan(_));
        spec.accounting = !macvlan;
        if let Some(on) = &self.accounting {
            if *on.get_ref() && macvlan {
                return Err(err(
                    on.span(),
                    "accounting does not work with network mode \"macvlan\" yet".into(),
                    "leave accounting out (it is off in macvlan mode), or use the default network".into(),
                ));
            }
            spec.accounting = *on.get_ref();
        }
        spec.accounts = accounting::check_accounts(self.account, &err)?;
        if let Some(table) = &self.slurm_conf {
            spec.slurm_conf = accounting::check_slurm_conf(table, &err)?;
        }
        if let Some(registry) = &self.registry {
            let r = registry.get_ref().trim_end_matches('/');
            let valid = !r.is_empty()
                && !r.contains("://")
                && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b));
            if !valid {
                return Err(err(
                    registry.span(),
                    format!("registry {:?} is not a registry path", registry.get_ref()),
                    "give a host and path without a scheme, e.g. registry = \"registry.example.org:5000/slurmbox\""
                        .into(),
                ));
            }
            spec.registry = Some(r.to_string());
        }
        Ok(spec)
    }
}

/// Checks `[[host]]` tables and `controller`; returns the hosts, controller first.
fn check_hosts(
    raw: &[RawHost],
    controller: Option<&Spanned<String>>,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<Vec<HostSpec>, SpecError> {
    let mut hosts: Vec<HostSpec> = Vec::new();
    for host in raw {
        let name = host.name.get_ref();
        if !is_dns_label(name, 40) {
            return Err(err(
                host.name.span(),
                format!("invalid host name {name:?}"),
                "use lowercase letters, digits and '-'".into(),
            ));
        }
        if hosts.iter().any(|h| &h.name == name) {
            return Err(err(
                host.name.span(),
                format!("host {name:?} is listed twice"),
                "give each [[host]] its own name".into(),
            ));
        }
        let engine = host.engine.get_ref();
        let valid = match engine.split_once("://") {
            // An optional path names the engine's socket on the host (rootless Docker).
            Some(("ssh", rest)) => {
                rest.split('/').next().is_some_and(|a| a.contains('@'))
                    && crate::engine::ssh::SshTarget::parse(engine).is_some()
            }
            Some(("tcp", rest)) => rest.contains(':') && !rest.contains('/'),
            Some(("unix", rest)) => rest.starts_with('/'),
            _ => false,
        };
        if !valid {
            return Err(err(
                host.engine.span(),
                format!("invalid engine address {engine:?}"),
                "use ssh://user@host (your own ssh setup is used; ssh://user@host/path/docker.sock for another socket there), tcp://host:port or unix:///var/run/docker.sock".into(),
            ));
        }
        let arch = match &host.arch {
            Some(arch) => Some(Arch::parse(arch.get_ref()).ok_or_else(|| {
                err(
                    arch.span(),
                    format!("unsupported architecture {:?}", arch.get_ref()),
                    "use \"amd64\" (x86_64) or \"arm64\" (aarch64, a Raspberry Pi), or leave arch out to use the one the host's engine reports".into(),
                )
            })?),
            None => None,
        };
        let address = match (&host.address, engine.split_once("://")) {
            (Some(address), _) => address.get_ref().clone(),
            (None, Some(("ssh", rest))) => {
                let rest = rest.split('/').next().unwrap_or(rest);
                let at = rest.rsplit_once('@').map_or(rest, |(_, a)| a);
                at.rsplit_once(':').map_or(at, |(a, _)| a).to_string()
            }
            (None, Some(("tcp", rest))) => rest.rsplit_once(':').map_or(rest, |(a, _)| a).to_string(),
            _ if raw.len() > 1 => {
                return Err(err(
                    host.engine.span(),
                    format!("host {name:?} needs an address the other hosts can reach it at"),
                    "add address = \"192.168.0.106\" (its address on the hosts' network)".into(),
                ));
            }
            _ => String::new(),
        };
        // (Whether the host's nodes can share them evenly is checked with [compute].)
        let devices = match &host.gpu_devices {
            Some(devices) => gpu_devices(devices, 1, &err)?,
            None => vec![],
        };
        let gpus = match &host.gpus {
            Some(_) => Some(engine_gpus(host.gpus.as_ref(), host.gpu_devices.is_some(), "gpus", err)?),
            None => None,
        };
        hosts.push(HostSpec {
            name: name.clone(),
            engine: engine.clone(),
            address,
            arch,
            gpu_devices: devices,
            gpus,
        });
    }
    if let Some(controller) = controller {
        let Some(i) = hosts.iter().position(|h| &h.name == controller.get_ref()) else {
            return Err(err(
                controller.span(),
                format!("controller {:?} is not one of the [[host]] names", controller.get_ref()),
                "name the host that runs the controller and login node".into(),
            ));
        };
        hosts.swap(0, i);
    }
    Ok(hosts)
}

// ---- editing a spec file -------------------------------------------------------------
//
// `slurmbox host add/remove` change a spec by editing its text, so the user's comments
// and layout stay; the result is parsed and checked like any spec before it is written.

/// The spec text with one more `[[host]]` table at its end.
pub fn with_host(text: &str, name: &str, engine: &str, address: Option<&str>) -> Result<String, EditError> {
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| EditError(e.to_string()))?;
    let hosts = doc
        .entry("host")
        .or_insert(toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| EditError("`host` is not a list of [[host]] tables".into()))?;
    let mut table = toml_edit::Table::new();
    table["name"] = toml_edit::value(name);
    table["engine"] = toml_edit::value(engine);
    if let Some(address) = address {
        table["address"] = toml_edit::value(address);
    }
    hosts.push(table);
    Ok(doc.to_string())
}

/// The spec text without the `[[host]]` table named `name`; `None` when it has none.
pub fn without_host(text: &str, name: &str) -> Result<Option<String>, EditError> {
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| EditError(e.to_string()))?;
    let Some(hosts) = doc.get_mut("host").and_then(|h| h.as_array_of_tables_mut()) else {
        return Ok(None);
    };
    let Some(i) = hosts.iter().position(|t| t.get("name").and_then(|n| n.as_str()) == Some(name)) else {
        return Ok(None);
    };
    hosts.remove(i);
    if hosts.is_empty() {
        doc.remove("host");
    }
    Ok(Some(doc.to_string()))
}

/// Replaces the file at `path` with `text` in one step: written next to it, then
/// renamed over it, so a crash leaves the old spec or the new one, never half of one.
/// The file keeps its permissions.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.slurmbox-{}", std::process::id()));
    let write = || {
        std::fs::write(&tmp, text)?;
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("cannot edit the spec: {0}")]
#[diagnostic(help("fix the file by hand (`slurmbox up -f FILE` checks it), then run this again"))]
pub struct EditError(pub(crate) String);

/// Checks `[network]`; `nodes` is how many compute nodes the spec asks for, on
/// `hosts` listed hosts.
fn check_network(
    raw: &RawNetwork,
    nodes: usize,
    hosts: usize,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<NetworkSpec, SpecError> {
    let macvlan = match &raw.mode {
        Some(mode) if mode.get_ref() == "macvlan" => true,
        Some(mode) if mode.get_ref() == "default" => false,
        Some(mode) => {
            return Err(err(
                mode.span(),
                format!("unknown network mode {:?}", mode.get_ref()),
                "use \"macvlan\" (a LAN address for every container), or leave mode out for the default"
                    .into(),
            ));
        }
        None => false,
    };
    let net = |value: &Spanned<String>, key: &str| -> Result<Ipv4Net, SpecError> {
        value.get_ref().parse::<Ipv4Net>().map(|n| n.trunc()).map_err(|_| {
            err(
                value.span(),
                format!("{key} must be an IPv4 block such as \"192.168.0.0/24\", got {:?}", value.get_ref()),
                "write the address, a slash and the prefix length".into(),
            )
        })
    };
    if !macvlan {
        if let Some(key) = [&raw.parent, &raw.gateway, &raw.ip_range].into_iter().flatten().next() {
            return Err(err(
                key.span(),
                "parent, gateway and ip_range are macvlan settings".into(),
                "add mode = \"macvlan\" to [network], or leave them out".into(),
            ));
        }
        let subnet = match &raw.subnet {
            Some(subnet) if hosts < 2 => {
                return Err(err(
                    subnet.span(),
                    "network.subnet names the hosts' network of a cluster over several hosts".into(),
                    "on one engine the cluster has a network of its own: leave subnet out".into(),
                ));
            }
            Some(subnet) => Some(net(subnet, "subnet")?),
            None => None,
        };
        return Ok(NetworkSpec::Default { subnet });
    }
    let missing = |key: &str, example: &str| {
        let span = raw.mode.as_ref().map_or(0..0, |m| m.span());
        err(
            span,
            format!("network mode \"macvlan\" needs {key}"),
            format!("add {key} = {example} to [network]"),
        )
    };
    let parent =
        raw.parent.as_ref().ok_or_else(|| missing("parent", "\"eth0\" (the hosts' LAN interface)"))?;
    if !(1..=15).contains(&parent.get_ref().len())
        || !parent.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
    {
        return Err(err(
            parent.span(),
            format!("invalid interface name {:?}", parent.get_ref()),
            "name the hosts' network interface on the LAN, as `ip link` shows it (e.g. eth0)".into(),
        ));
    }
    let subnet = net(raw.subnet.as_ref().ok_or_else(|| missing("subnet", "\"192.168.0.0/24\""))?, "subnet")?;
    let range_value = raw.ip_range.as_ref().ok_or_else(|| missing("ip_range", "\"192.168.0.192/27\""))?;
    let ip_range = net(range_value, "ip_range")?;
    if !subnet.contains(&ip_range) {
        return Err(err(
            range_value.span(),
            format!("ip_range {ip_range} is not inside subnet {subnet}"),
            "pick a block of the LAN's subnet that no other machine uses".into(),
        ));
    }
    let gateway = match &raw.gateway {
        Some(g) => {
            let addr: Ipv4Addr = g.get_ref().parse().map_err(|_| {
                err(
                    g.span(),
                    format!("invalid gateway address {:?}", g.get_ref()),
                    "write an IPv4 address".into(),
                )
            })?;
            if !subnet.contains(&addr) {
                return Err(err(
                    g.span(),
                    format!("gateway {addr} is not inside subnet {subnet}"),
                    "use the LAN router's address".into(),
                ));
            }
            Some(addr)
        }
        None => None,
    };
    let spec = MacvlanSpec { parent: parent.get_ref().clone(), subnet, gateway, ip_range };
    // Controller and login node, then every compute node.
    if spec.addresses(nodes + 2).is_none() {
        return Err(err(
            range_value.span(),
            format!("ip_range {ip_range} has too few addresses for {} containers", nodes + 2),
            "the controller, the login node and every compute node each take one: widen the range".into(),
        ));
    }
    Ok(NetworkSpec::Macvlan(spec))
}

/// A `gpus` value: "auto" (the default), "none" or "cdi"; only "auto" goes with
/// `gpu_devices` in the same table, which already names the GPUs.
fn engine_gpus(
    value: Option<&Spanned<String>>,
    with_devices: bool,
    key: &str,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<EngineGpus, SpecError> {
    let Some(value) = value else {
        return Ok(EngineGpus::Auto);
    };
    let gpus = EngineGpus::parse(value.get_ref()).ok_or_else(|| {
        err(
            value.span(),
            format!("{key} = {:?} is not a choice", value.get_ref()),
            "use \"auto\" (the GPUs the host's engine gives containers, the default), \"none\" (keep them out of Slurm) or \"cdi\" (ask the engine's CDI driver for nvidia.com/gpu=all)".into(),
        )
    })?;
    if with_devices && gpus != EngineGpus::Auto {
        return Err(err(
            value.span(),
            format!("{key} = {:?} does not go with gpu_devices", value.get_ref()),
            "gpu_devices already names this host's GPUs: leave one of the two out".into(),
        ));
    }
    Ok(gpus)
}

/// A `gpu_devices` list: absolute paths of device files, each once, with distinct file
/// names (a node sees each as /dev/NAME), shared evenly by the host's `nodes`.
fn gpu_devices(
    devices: &Spanned<Vec<String>>,
    nodes: u32,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<Vec<String>, SpecError> {
    let list = devices.get_ref();
    let mut names = std::collections::BTreeSet::new();
    for d in list {
        let path = Path::new(d);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !path.is_absolute() || name.is_empty() || d.contains("..") {
            return Err(err(
                devices.span(),
                format!("gpu_devices entry {d:?} is not a device file's absolute path"),
                "name each GPU's device file on the host, e.g. \"/dev/nvidia0\" or \"/dev/dri/renderD128\""
                    .into(),
            ));
        }
        if !names.insert(name.to_string()) {
            return Err(err(
                devices.span(),
                format!("two gpu_devices entries are named {name:?}"),
                "a node sees each device as /dev/NAME: every file name must differ".into(),
            ));
        }
    }
    if !list.is_empty() && !list.len().is_multiple_of(nodes.max(1) as usize) {
        return Err(err(
            devices.span(),
            format!("{} GPUs cannot be shared evenly by {nodes} compute nodes on the host", list.len()),
            "list a multiple of the host's node count: each node gets the same number, in order".into(),
        ));
    }
    Ok(list.clone())
}

/// The least memory a compute node can be given: its daemons (slurmd, munged) and a
/// small job need about that much.
const MIN_NODE_MEMORY_MB: i64 = 256;

/// Folders of a host's system that must never hold users' homes (slurmbox makes a
/// folder per user in `home.host_path` and hands it to its owner): why, or `None`.
fn system_folder(path: &Path) -> Option<&'static str> {
    use std::path::Component;
    if path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return Some("has '.' or '..' in it");
    }
    let p = path.components().collect::<PathBuf>();
    // Nothing at or under these is the users' to have.
    const SYSTEM_TREES: &[&str] = &[
        "/etc",
        "/usr",
        "/boot",
        "/proc",
        "/sys",
        "/dev",
        "/run",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/root",
        "/var/lib/docker",
        "/var/lib/containerd",
        "/var/run",
        "/var/lib/slurmbox",
        "/snap",
    ];
    // These themselves hold the system's own folders (subfolders may be fine).
    const SYSTEM_FOLDERS: &[&str] =
        &["/", "/var", "/var/lib", "/home", "/opt", "/srv", "/mnt", "/media", "/tmp"];
    if SYSTEM_TREES.iter().any(|t| p.starts_with(t)) {
        return Some("is a system folder of the host (or inside one)");
    }
    if SYSTEM_FOLDERS.iter().any(|f| p == Path::new(f)) {
        return Some("is a system folder of the host");
    }
    None
}

fn in_range(
    value: &Spanned<i64>,
    min: i64,
    max: i64,
    key: &str,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<i64, SpecError> {
    let v = *value.get_ref();
    if v < min || v > max {
        return Err(err(
            value.span(),
            format!("{key} = {v} is out of range"),
            format!("{key} must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        ClusterSpec::parse("cluster.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn host_path_refuses_the_hosts_system_folders() {
        for path in [
            "/",
            "/etc",
            "/etc/researcher",
            "/usr/local",
            "/var",
            "/var/lib/docker/volumes",
            "/boot",
            "/proc",
            "/sys",
            "/dev",
            "/run",
            "/bin",
            "/sbin",
            "/lib",
            "/lib64",
            "/home",
            "/root",
            "/tmp",
            "/srv/../etc",
        ] {
            let e = error_of(&format!("[home]\nhost_path = \"{path}\"\n"));
            assert!(
                e.contains("home.host_path") && (e.contains("system folder") || e.contains("'..'")),
                "{path}: {e}"
            );
        }
        for path in
            ["/gfsv/home", "/srv/nfs/home", "/home/shared", "/tmp/x/home", "/var/nfs/home", "/mnt/cluster"]
        {
            let spec = ClusterSpec::parse("c.toml", &format!("[home]\nhost_path = \"{path}\"\n")).unwrap();
            assert_eq!(spec.home, HomeSpec::HostPath(path.into()));
        }
    }

    #[test]
    fn gpu_devices_are_checked() {
        let ok = ClusterSpec::parse(
            "c.toml",
            "[compute]\ngpu_devices = [\"/dev/nvidia0\", \"/srv/fake/nvidia1\"]\ngpu_shards = 4\n",
        )
        .unwrap();
        assert_eq!(ok.compute.gpu_devices, ["/dev/nvidia0", "/srv/fake/nvidia1"]);
        assert_eq!(ok.compute.gpu_shards, 4);
        for (text, message) in [
            ("[compute]\ngpu_devices = [\"nvidia0\"]\n", "is not a device file's absolute path"),
            (
                "[compute]\ngpu_devices = [\"/dev/nvidia0\", \"/srv/nvidia0\"]\n",
                "two gpu_devices entries are named \"nvidia0\"",
            ),
            (
                "[compute]\ncount = 2\ngpu_devices = [\"/dev/nvidia0\"]\n",
                "1 GPUs cannot be shared evenly by 2 compute nodes",
            ),
            ("[compute]\ngpu_shards = -1\n", "compute.gpu_shards = -1 is out of range"),
        ] {
            let e = error_of(text);
            assert!(e.contains(message), "{text}: {e}");
        }
        let e = error_of(
            "name = \"lab\"\n[home]\nhost_path = \"/gfsv/home\"\n[compute]\ngpu_devices = [\"/dev/nvidia0\"]\n[[host]]\nname = \"pi1\"\nengine = \"ssh://pi@10.0.0.1\"\n",
        );
        assert!(e.contains("compute.gpu_devices is for a cluster without [[host]] tables"), "{e}");
        let hosts = ClusterSpec::parse(
            "c.toml",
            "name = \"lab\"\n[home]\nhost_path = \"/gfsv/home\"\n[[host]]\nname = \"gpu1\"\nengine = \"ssh://a@10.0.0.1\"\ngpu_devices = [\"/dev/nvidia0\"]\n[[host]]\nname = \"pi1\"\nengine = \"ssh://pi@10.0.0.2\"\n",
        )
        .unwrap();
        assert_eq!(hosts.hosts[0].gpu_devices, ["/dev/nvidia0"]);
        assert!(hosts.hosts[1].gpu_devices.is_empty());
    }

    #[test]
    fn engine_gpus_are_chosen_per_host() {
        let text = "name = \"lab\"\n[home]\nhost_path = \"/gfsv/home\"\n[compute]\ngpus = \"none\"\n\
                    [[host]]\nname = \"gpu1\"\nengine = \"ssh://a@10.0.0.1\"\ngpus = \"cdi\"\n\
                    [[host]]\nname = \"pi1\"\nengine = \"ssh://pi@10.0.0.2\"\n";
        let spec = ClusterSpec::parse("c.toml", text).unwrap();
        // A host's own setting, else [compute]'s; "auto" where neither says.
        assert_eq!(spec.engine_gpus(0), EngineGpus::Cdi);
        assert_eq!(spec.engine_gpus(1), EngineGpus::None);
        assert_eq!(ClusterSpec::parse("c.toml", "").unwrap().engine_gpus(0), EngineGpus::Auto);
        for (text, message) in [
            ("[compute]\ngpus = \"all\"\n", "compute.gpus = \"all\" is not a choice"),
            (
                "[compute]\ncount = 1\ngpus = \"none\"\ngpu_devices = [\"/dev/nvidia0\"]\n",
                "compute.gpus = \"none\" does not go with gpu_devices",
            ),
            (
                "[[host]]\nname = \"gpu1\"\nengine = \"ssh://a@10.0.0.1\"\ngpus = \"cdi\"\ngpu_devices = [\"/dev/nvidia0\"]\n",
                "gpus = \"cdi\" does not go with gpu_devices",
            ),
        ] {
            let e = error_of(text);
            assert!(e.contains(message), "{text}: {e}");
        }
    }

    #[test]
    fn node_memory_no_node_can_run_with_is_refused() {
        let e = error_of("[compute]\nmemory_mb = 1\n");
        assert!(e.contains("compute.memory_mb = 1 is out of range"), "{e}");
        assert!(ClusterSpec::parse("c.toml", "[compute]\nmemory_mb = 256\n").is_ok());
    }

    #[test]
    fn empty_file_is_the_default_cluster() {
        assert_eq!(ClusterSpec::parse("c.toml", "").unwrap(), ClusterSpec::default_cluster());
    }

    #[test]
    fn a_registry_is_a_host_and_path() {
        let err = ClusterSpec::parse("c.toml", "registry = \"https://registry.example.org\"\n").unwrap_err();
        assert!(err.to_string().contains("is not a registry path"), "{err}");
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

    #[test]
    fn unknown_key_points_at_line_and_column() {
        let e = error_of("name = \"a\"\n[compute]\ncuont = 2\n");
        assert!(e.starts_with("cluster.toml:3:1: unknown field `cuont`"), "{e}");
    }

    #[test]
    fn wrong_type_is_rejected_with_location() {
        let e = error_of("[compute]\ncount = \"two\"\n");
        assert!(e.starts_with("cluster.toml:2:9:"), "{e}");
    }

    #[test]
    fn zero_compute_nodes_is_impossible() {
        let e = error_of("[compute]\ncount = 0\n");
        assert_eq!(e, "cluster.toml:2:9: compute.count = 0 is out of range");
    }

    #[test]
    fn unsupported_slurm_version_is_rejected() {
        let e = error_of("slurm = \"21.08\"\n");
        assert_eq!(e, "cluster.toml:1:9: unsupported Slurm version \"21.08\"");
    }

    #[test]
    fn cluster_name_must_be_a_dns_label() {
        let e = error_of("name = \"My Cluster\"\n");
        assert_eq!(e, "cluster.toml:1:8: invalid cluster name \"My Cluster\"");
    }

    #[test]
    fn relative_home_path_is_rejected() {
        let e = error_of("[home]\nhost_path = \"gfsv/home\"\n");
        assert!(e.starts_with("cluster.toml:2:13: home.host_path must be an absolute path"), "{e}");
    }

    #[test]
    fn root_cannot_be_a_cluster_user() {
        let e = error_of("[[user]]\nname = \"root\"\n");
        assert_eq!(e, "cluster.toml:2:8: user name \"root\" is reserved for the system");
    }

    #[test]
    fn duplicate_uids_are_rejected() {
        let e = error_of("[[user]]\nname = \"a\"\nuid = 1500\n[[user]]\nname = \"b\"\nuid = 1500\n");
        assert_eq!(e, "cluster.toml:6:7: uid 1500 is used by two users");
    }

    #[test]
    fn one_remote_host_runs_the_whole_cluster() {
        let spec = ClusterSpec::parse(
            "c.toml",
            "controller = \"gpu1\"\n[[host]]\nname = \"gpu1\"\nengine = \"ssh://admin@192.168.0.106\"\n[compute]\nper_host = 2\n",
        )
        .unwrap();
        assert_eq!(spec.engine(), Some("ssh://admin@192.168.0.106"));
        assert_eq!(spec.compute.count, 2);
        let one = ClusterSpec::parse("c.toml", "[[host]]\nname = \"a\"\nengine = \"tcp://10.0.0.1:2375\"\n")
            .unwrap();
        assert_eq!(one.compute.count, 1, "per_host defaults to 1");
    }

    #[test]
    fn engine_addresses_are_checked() {
        let e = error_of("[[host]]\nname = \"a\"\nengine = \"ssh://host-without-user\"\n");
        assert_eq!(e, "cluster.toml:3:10: invalid engine address \"ssh://host-without-user\"");
        // A rootless engine's socket on the host.
        let rootless = "[[host]]\nname = \"a\"\nengine = \"ssh://pi@10.0.0.2/run/user/1000/docker.sock\"\n";
        let spec = ClusterSpec::parse("c.toml", rootless).unwrap();
        assert_eq!(spec.hosts[0].address, "10.0.0.2");
        let e = error_of("[[host]]\nname = \"a\"\nengine = \"ssh://10.0.0.2/u@x\"\n");
        assert_eq!(e, "cluster.toml:3:10: invalid engine address \"ssh://10.0.0.2/u@x\"");
    }

    #[test]
    fn count_and_per_host_do_not_mix() {
        let e =
            error_of("[[host]]\nname = \"a\"\nengine = \"unix:///run/docker.sock\"\n[compute]\ncount = 2\n");
        assert_eq!(e, "cluster.toml:5:9: compute.count does not go with [[host]] tables");
        let e = error_of("[compute]\nper_host = 2\n");
        assert_eq!(e, "cluster.toml:2:12: compute.per_host needs [[host]] tables");
    }

    #[test]
    fn controller_must_name_a_host() {
        let e = error_of("controller = \"b\"\n[[host]]\nname = \"a\"\nengine = \"tcp://a:2375\"\n");
        assert_eq!(e, "cluster.toml:1:14: controller \"b\" is not one of the [[host]] names");
    }

    #[test]
    fn several_hosts_need_a_shared_home() {
        let two = "[[host]]\nname = \"a\"\nengine = \"tcp://a:2375\"\n[[host]]\nname = \"b\"\nengine = \"ssh://pi@10.0.0.2\"\n";
        let e = error_of(two);
        assert_eq!(e, "cluster.toml:5:8: a cluster over several hosts needs a /home every host shares");
        let spec =
            ClusterSpec::parse("c.toml", &format!("{two}[home]\nhost_path = \"/gfsv/home\"\n")).unwrap();
        let addresses: Vec<&str> = spec.hosts.iter().map(|h| h.address.as_str()).collect();
        assert_eq!(addresses, ["a", "10.0.0.2"]);
        let gluster =
            ClusterSpec::parse("c.toml", &format!("{two}[home]\nshared = \"glusterfs\"\n")).unwrap();
        assert_eq!(gluster.home, HomeSpec::GlusterFs);
    }

    #[test]
    fn glusterfs_home_is_checked() {
        let e = error_of("[home]\nshared = \"nfs\"\n");
        assert_eq!(e, "cluster.toml:2:10: unknown home.shared \"nfs\"");
        let e = error_of("[home]\nshared = \"glusterfs\"\n");
        assert_eq!(
            e,
            "cluster.toml:2:10: a GlusterFS /home is replicated across hosts, and this spec lists none"
        );
        let e = error_of(
            "[home]\nshared = \"glusterfs\"\n[[host]]\nname = \"a\"\nengine = \"unix:///run/docker.sock\"\n",
        );
        assert_eq!(e, "cluster.toml:5:10: host \"a\" needs an address for the GlusterFS /home");
        let e = error_of("[home]\nshared = \"glusterfs\"\nhost_path = \"/gfsv\"\n");
        assert_eq!(e, "cluster.toml:2:10: home.shared and home.host_path cannot both be set");
    }

    #[test]
    fn hosts_are_added_and_removed_keeping_comments() {
        let text = "# the lab\nname = \"lab\"\n[home]\nhost_path = \"/gfsv/home\" # shared\n[[host]]\nname = \"pi1\"\nengine = \"ssh://pi@10.0.0.1\"\n";
        let added = with_host(text, "pi2", "ssh://pi@10.0.0.2", Some("10.0.0.2")).unwrap();
        assert!(added.starts_with(text), "{added}");
        let spec = ClusterSpec::parse("c.toml", &added).unwrap();
        let names: Vec<&str> = spec.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["pi1", "pi2"]);
        assert_eq!(without_host(&added, "pi2").unwrap().as_deref(), Some(text));
        assert_eq!(without_host(&added, "pi9").unwrap(), None);
        let first = with_host("name = \"x\"\n", "a", "tcp://a:2375", None).unwrap();
        assert_eq!(ClusterSpec::parse("c.toml", &first).unwrap().hosts[0].engine, "tcp://a:2375");
        assert_eq!(without_host(&first, "a").unwrap().as_deref(), Some("name = \"x\"\n"));
    }

    #[test]
    fn spec_files_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, "name = \"a\"\n").unwrap();
        write_atomic(&path, "name = \"b\"\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "name = \"b\"\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
    }

    const LAB: &str = "name = \"lab\"\n[home]\nhost_path = \"/gfsv/home\"\n[[host]]\nname = \"pi1\"\nengine = \"ssh://pi@10.0.0.1\"\n[[host]]\nname = \"pi2\"\nengine = \"ssh://pi@10.0.0.2\"\n";

    #[test]
    fn macvlan_network_parses_and_hands_out_addresses() {
        let text = format!(
            "{LAB}[compute]\nper_host = 2\n[network]\nmode = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"192.168.0.0/24\"\ngateway = \"192.168.0.1\"\nip_range = \"192.168.0.0/29\"\n"
        );
        let spec = ClusterSpec::parse("c.toml", &text).unwrap();
        let NetworkSpec::Macvlan(mv) = &spec.network else { panic!("{:?}", spec.network) };
        // .0 is the subnet's own address and .1 the gateway: neither is handed out.
        let six: Vec<String> = mv.addresses(6).unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(
            six,
            ["192.168.0.2", "192.168.0.3", "192.168.0.4", "192.168.0.5", "192.168.0.6", "192.168.0.7"]
        );
        assert_eq!(mv.addresses(7), None);
    }

    #[test]
    fn macvlan_settings_are_checked() {
        let base =
            format!("{LAB}[network]\nmode = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"192.168.0.0/24\"\n");
        let e = error_of(&base);
        assert!(e.ends_with("network mode \"macvlan\" needs ip_range"), "{e}");
        let e = error_of(&format!("{base}ip_range = \"10.0.0.0/28\"\n"));
        assert!(e.ends_with("ip_range 10.0.0.0/28 is not inside subnet 192.168.0.0/24"), "{e}");
        let e = error_of(&format!("{base}ip_range = \"192.168.0.200/31\"\n"));
        assert!(e.ends_with("ip_range 192.168.0.200/31 has too few addresses for 4 containers"), "{e}");
        let e = error_of(&format!("{LAB}[network]\nparent = \"eth0\"\n"));
        assert!(e.ends_with("parent, gateway and ip_range are macvlan settings"), "{e}");
        let e = error_of("[network]\nsubnet = \"10.1.0.0/16\"\n");
        assert!(
            e.ends_with("network.subnet names the hosts' network of a cluster over several hosts"),
            "{e}"
        );
        let spec =
            ClusterSpec::parse("c.toml", &format!("{LAB}[network]\nsubnet = \"10.1.2.3/16\"\n")).unwrap();
        assert_eq!(spec.network, NetworkSpec::Default { subnet: Some("10.1.0.0/16".parse().unwrap()) });
        let e = error_of(&format!("{LAB}[compute]\nper_host = 2\n"));
        assert!(e.contains("more than one compute node per host needs network mode \"macvlan\""), "{e}");
    }

    #[test]
    fn host_architectures_are_checked() {
        let spec = ClusterSpec::parse("c.toml", &format!("{LAB}arch = \"aarch64\"\n")).unwrap();
        assert_eq!(spec.hosts[1].arch, Some(Arch::Arm64));
        assert_eq!(spec.hosts[0].arch, None, "detected from the engine");
        let e = error_of(&format!("{LAB}arch = \"riscv64\"\n"));
        assert!(e.ends_with("unsupported architecture \"riscv64\""), "{e}");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
