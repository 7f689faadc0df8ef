//! Checking: TOML text → [`ClusterSpec`]. The text is read into a raw form holding
//! exactly what TOML may (each value with its place in the file), then every table is
//! checked in a fixed order, so that of several mistakes the same one is always named
//! first; an error is a [`SpecError`] whose message starts with `file:line:col`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Deserialize;
use toml::Spanned;

use super::network::{RawNetwork, check_network};
use super::{
    Arch, ClusterSpec, ComputeSpec, EngineGpus, HomeSpec, HostSpec, NetworkSpec, SlurmVersion, SshUrl,
    accounting, accounts, services, software,
};

impl ClusterSpec {
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
    controller: Option<Spanned<super::controller::RawController>>,
    #[serde(default)]
    host: Vec<RawHost>,
    network: Option<RawNetwork>,
    rest: Option<services::RawRest>,
    metrics: Option<services::RawMetrics>,
    web: Option<services::RawWeb>,
    software: Option<software::RawSoftware>,
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
    max_unavailable: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHome {
    host_path: Option<Spanned<String>>,
    shared: Option<Spanned<String>>,
}

/// Names the rest of slurmbox relies on: Docker object names, host names, user names.
pub(super) fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl RawSpec {
    /// Every table, in the order their mistakes are named.
    fn check(
        self,
        err: impl Fn(Range<usize>, String, String) -> SpecError,
    ) -> Result<ClusterSpec, SpecError> {
        let err = &err;
        let mut spec = ClusterSpec::default_cluster();
        if let Some(name) = &self.name {
            spec.name = check_name(name, err)?;
        }
        if let Some(slurm) = &self.slurm {
            spec.slurm = check_slurm(slurm, err)?;
        }
        let controller_host = self.controller.as_ref().and_then(super::controller::RawController::host);
        let hosts = check_hosts(&self.host, controller_host.as_ref(), err)?;
        spec.controller = super::controller::check_controller(self.controller.as_ref(), &hosts, err)?;
        if !hosts.is_empty() {
            // One compute node per host unless compute.per_host says otherwise.
            spec.compute.count = 1;
        }
        if let Some(compute) = &self.compute {
            let macvlan =
                self.network.as_ref().and_then(|n| n.mode.as_ref()).is_some_and(|m| m.get_ref() == "macvlan");
            check_compute(compute, &hosts, !self.host.is_empty(), macvlan, &mut spec.compute, err)?;
        }
        for raw in &self.host {
            if let Some(devices) = &raw.gpu_devices {
                gpu_devices(devices, spec.compute.count, err)?;
            }
        }
        spec.home = check_home(self.home.as_ref(), &hosts, &self.host, err)?;
        spec.hosts = hosts;
        if let Some(network) = &self.network {
            // Every compute node, and a backup controller, gets an address.
            let nodes = spec.hosts.len().max(1) * spec.compute.count as usize
                + usize::from(spec.controller.backup.is_some());
            spec.network = check_network(network, nodes, spec.hosts.len(), err)?;
        }
        if !self.user.is_empty() {
            spec.users = accounts::check_users(self.user, err)?;
        }
        if let Some(login) = &self.login {
            spec.login = accounts::check_login(login, err)?;
        }
        if let Some(ldap) = self.ldap {
            spec.ldap = Some(accounts::check_ldap(ldap, err)?);
        }
        spec.accounting = check_accounting(self.accounting.as_ref(), &spec.network, err)?;
        spec.accounts = accounting::check_accounts(self.account, err)?;
        if let Some(table) = &self.slurm_conf {
            spec.slurm_conf = accounting::check_slurm_conf(table, err)?;
        }
        if let Some(registry) = &self.registry {
            spec.registry = Some(check_registry(registry, err)?);
        }
        spec.rest = services::check_rest(self.rest.as_ref(), &spec.network, &spec.login, err)?;
        spec.metrics =
            services::check_metrics(self.metrics.as_ref(), &spec.network, &spec.login, &spec.rest, err)?;
        spec.web = services::check_web(
            self.web.as_ref(),
            &spec.network,
            &spec.login,
            (&spec.rest, &spec.metrics),
            err,
        )?;
        if let Some(software) = &self.software {
            spec.software = software::check_software(software, err)?;
        }
        Ok(spec)
    }
}

fn check_name(
    name: &Spanned<String>,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<String, SpecError> {
    if !is_dns_label(name.get_ref(), 40) {
        return Err(err(
            name.span(),
            format!("invalid cluster name {:?}", name.get_ref()),
            "use 1-40 lowercase letters, digits and '-', not starting or ending with '-'".into(),
        ));
    }
    Ok(name.get_ref().clone())
}

fn check_slurm(
    slurm: &Spanned<String>,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<SlurmVersion, SpecError> {
    SlurmVersion::parse(slurm.get_ref()).ok_or_else(|| {
        err(
            slurm.span(),
            format!("unsupported Slurm version {:?}", slurm.get_ref()),
            "use \"24.11\" (Debian trixie, the default) or \"26.05\" (Debian forky, the latest)".into(),
        )
    })
}

/// Checks `[compute]` into `compute` (which holds the defaults); `hosts`: the checked
/// `[[host]]` tables, `listed`: whether the spec has any, `macvlan`: whether its
/// network mode is "macvlan".
fn check_compute(
    raw: &RawCompute,
    hosts: &[HostSpec],
    listed: bool,
    macvlan: bool,
    compute: &mut ComputeSpec,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<(), SpecError> {
    if let (Some(count), false) = (&raw.count, hosts.is_empty()) {
        return Err(err(
            count.span(),
            "compute.count does not go with [[host]] tables".into(),
            "say how many compute nodes each host runs with compute.per_host".into(),
        ));
    }
    if let Some(per_host) = &raw.per_host {
        if hosts.is_empty() {
            return Err(err(
                per_host.span(),
                "compute.per_host needs [[host]] tables".into(),
                "on the local engine, say how many compute nodes with compute.count".into(),
            ));
        }
        compute.count = in_range(per_host, 1, 16, "compute.per_host", err)? as u32;
        if hosts.len() > 1 && compute.count > 1 && !macvlan {
            return Err(err(
                per_host.span(),
                "more than one compute node per host needs network mode \"macvlan\" over several hosts".into(),
                "on a host's own network two nodes would need the same ports: leave compute.per_host out, or give every node its own address with [network] mode = \"macvlan\"".into(),
            ));
        }
    }
    if let Some(count) = &raw.count {
        compute.count = in_range(count, 1, 128, "compute.count", err)? as u32;
    }
    if let Some(cpus) = &raw.cpus {
        compute.cpus = Some(in_range(cpus, 1, 4096, "compute.cpus", err)? as u32);
    }
    if let Some(mem) = &raw.memory_mb {
        compute.memory_mb =
            Some(in_range(mem, MIN_NODE_MEMORY_MB, 64 * 1024 * 1024, "compute.memory_mb", err)? as u64);
    }
    if let Some(limits) = raw.limits {
        compute.limits = limits;
    }
    if let Some(devices) = &raw.gpu_devices {
        if listed {
            return Err(err(
                devices.span(),
                "compute.gpu_devices is for a cluster without [[host]] tables".into(),
                "give each GPU host its devices in its own [[host]] table: gpu_devices = [\"/dev/nvidia0\"]"
                    .into(),
            ));
        }
        compute.gpu_devices = gpu_devices(devices, compute.count, err)?;
    }
    if let Some(shards) = &raw.gpu_shards {
        compute.gpu_shards = in_range(shards, 0, 1024, "compute.gpu_shards", err)? as u32;
    }
    compute.gpus = engine_gpus(raw.gpus.as_ref(), raw.gpu_devices.is_some(), "compute.gpus", err)?;
    if let Some(n) = &raw.max_unavailable {
        compute.max_unavailable = in_range(n, 1, 128, "compute.max_unavailable", err)? as u32;
    }
    Ok(())
}

/// Checks `[home]`; `hosts`: the checked `[[host]]` tables, from `raw_hosts`.
fn check_home(
    raw: Option<&RawHome>,
    hosts: &[HostSpec],
    raw_hosts: &[RawHost],
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<HomeSpec, SpecError> {
    let mut home = HomeSpec::Volume;
    if let Some(shared) = raw.and_then(|h| h.shared.as_ref()) {
        check_shared_home(shared, raw.is_some_and(|h| h.host_path.is_some()), hosts, raw_hosts, err)?;
        home = HomeSpec::GlusterFs;
    }
    if let Some(path) = raw.and_then(|h| h.host_path.as_ref()) {
        home = HomeSpec::HostPath(check_host_path(path, err)?);
    }
    if hosts.len() > 1 && home == HomeSpec::Volume {
        let span = raw_hosts.get(1).map_or(0..0, |h| h.name.span());
        return Err(err(
            span,
            "a cluster over several hosts needs a /home every host shares".into(),
            "set [home] shared = \"glusterfs\" for one slurmbox runs on the hosts, or mount a shared folder (NFS, GlusterFS) at the same path on every host and set home.host_path"
                .into(),
        ));
    }
    Ok(home)
}

/// Checks `home.shared` (with `home.host_path` set or not).
fn check_shared_home(
    shared: &Spanned<String>,
    with_host_path: bool,
    hosts: &[HostSpec],
    raw_hosts: &[RawHost],
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<(), SpecError> {
    if shared.get_ref() != "glusterfs" {
        return Err(err(
            shared.span(),
            format!("unknown home.shared {:?}", shared.get_ref()),
            "slurmbox provides \"glusterfs\"; for NFS or another shared folder, mount it on every host and set home.host_path".into(),
        ));
    }
    if with_host_path {
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
            "list the machines as [[host]] tables, or leave [home] out on one machine (a volume holds /home)"
                .into(),
        ));
    }
    // The hosts' GlusterFS servers find each other at these addresses.
    if let Some(host) = hosts.iter().find(|h| h.address.is_empty()) {
        let raw = raw_hosts
            .iter()
            .find(|r| r.name.get_ref() == &host.name)
            .expect("checked hosts come from [[host]]");
        return Err(err(
            raw.engine.span(),
            format!("host {:?} needs an address for the GlusterFS /home", host.name),
            "add address = \"192.168.0.106\" (its address on the hosts' network)".into(),
        ));
    }
    Ok(())
}

/// Checks `home.host_path`: an absolute path that is none of the host's system folders.
fn check_host_path(
    path: &Spanned<String>,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<PathBuf, SpecError> {
    checked_folder(
        path,
        "home.host_path",
        "users' homes are made (and handed to their owners) inside it: name a folder of its own, e.g. a shared mount such as host_path = \"/gfsv/home\"",
        err,
    )
}

/// Checks a folder of the hosts the spec names at `key`: an absolute path that is none
/// of the host's system folders (`why`: what slurmbox does in it, and an example).
pub(super) fn checked_folder(
    path: &Spanned<String>,
    key: &str,
    why: &str,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<PathBuf, SpecError> {
    let p = PathBuf::from(path.get_ref());
    if !p.is_absolute() || path.get_ref().contains(':') {
        return Err(err(
            path.span(),
            format!("{key} must be an absolute path, got {:?}", path.get_ref()),
            "name a folder on the Docker host, e.g. \"/gfsv/home\"".into(),
        ));
    }
    if let Some(reason) = system_folder(&p) {
        return Err(err(path.span(), format!("{key} {:?} {reason}", path.get_ref()), why.into()));
    }
    Ok(p)
}

/// Checks `accounting`: on by default, except with a macvlan network, where
/// accounting's two containers have no address of their own on the LAN yet.
fn check_accounting(
    raw: Option<&Spanned<bool>>,
    network: &NetworkSpec,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<bool, SpecError> {
    let macvlan = matches!(network, NetworkSpec::Macvlan(_));
    let Some(on) = raw else {
        return Ok(!macvlan);
    };
    if *on.get_ref() && macvlan {
        return Err(err(
            on.span(),
            "accounting does not work with network mode \"macvlan\" yet".into(),
            "leave accounting out (it is off in macvlan mode), or use the default network".into(),
        ));
    }
    Ok(*on.get_ref())
}

/// Checks `registry`: a host and path without a scheme; the trailing '/' goes.
fn check_registry(
    registry: &Spanned<String>,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<String, SpecError> {
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
    Ok(r.to_string())
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
                rest.split('/').next().is_some_and(|a| a.contains('@')) && SshUrl::parse(engine).is_some()
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

pub(super) fn in_range(
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

    use crate::spec::error_of;

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
    fn a_rolling_change_takes_at_least_one_node_at_a_time() {
        let e = error_of("name = \"a\"\n[compute]\nmax_unavailable = 0\n");
        assert!(e.starts_with("cluster.toml:3:19: compute.max_unavailable = 0 is out of range"), "{e}");
        let ok = ClusterSpec::parse("c.toml", "[compute]\nmax_unavailable = 2\n").unwrap();
        assert_eq!(ok.compute.max_unavailable, 2);
        assert_eq!(ClusterSpec::default_cluster().compute.max_unavailable, 1);
    }

    #[test]
    fn a_registry_is_a_host_and_path() {
        let err = ClusterSpec::parse("c.toml", "registry = \"https://registry.example.org\"\n").unwrap_err();
        assert!(err.to_string().contains("is not a registry path"), "{err}");
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
