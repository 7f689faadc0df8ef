//! The Slurm files slurmbox writes, built from typed structures.
//!
//! `slurm.conf` and `cgroup.conf` are rendered here and nowhere else. The controller
//! holds them; compute nodes (slurmd) and the login node (sackd) fetch them from the
//! controller ("configless" mode), so there is exactly one copy to keep right.
//!
//! Compute nodes are "dynamic nodes": each slurmd registers itself (`slurmd -Z`) with
//! the resources in its [`NodeConf`], and the controller learns its address from the
//! registration. So slurm.conf lists no nodes and no addresses: growing or shrinking
//! a cluster never changes it.

use std::fmt::{self, Display, Write as _};

/// Where each daemon keeps things inside the containers (fixed by the image layout).
pub const STATE_SAVE_LOCATION: &str = crate::contract::STATE_SAVE_LOCATION;
pub const SLURMD_SPOOL_DIR: &str = "/var/spool/slurmd";

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SlurmConf {
    pub cluster_name: String,
    /// `SlurmctldHost=` lines: the primary controller first, then its backups.
    #[serde(flatten)]
    pub controllers: Controllers,
    /// Upper bound on registered nodes (dynamic nodes need one).
    pub max_node_count: u32,
    /// `NodeSet=` lines: nodes grouped by a feature they register with.
    pub node_sets: Vec<NodeSetDef>,
    pub partitions: Vec<PartitionDef>,
    /// Seconds without contact before slurmctld marks a node DOWN. Slurm's default
    /// (300 s) is far too slow for a lab where a container restart takes seconds.
    pub slurmd_timeout: u32,
    /// Jobs are confined and tracked by cgroups (proctrack/cgroup, task/cgroup):
    /// memory becomes a scheduled resource.
    pub cgroups: bool,
    /// Memory a job gets per CPU when it asks for none (with `cgroups`).
    pub def_mem_per_cpu: Option<u64>,
    /// `GresTypes=`: "gpu", and "shard" where GPUs are shared (empty: none).
    pub gres_types: Vec<String>,
    /// Jobs are recorded by slurmdbd (sacct), and scheduled by fair share.
    pub accounting: Option<AccountingConf>,
    /// The site's own lines (`[slurm_conf]`); each replaces slurmbox's default for its key.
    pub site: std::collections::BTreeMap<String, String>,
    /// JWT tokens are accepted beside munge (`AuthAltTypes=auth/jwt`), signed with the
    /// key at this path (on slurmctld's and slurmdbd's containers alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_key: Option<String>,
    /// slurmctld answers OpenMetrics on its port (`MetricsType=metrics/openmetrics`,
    /// Slurm 25.11 and later).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub openmetrics: bool,
    /// Some node runs under qemu-user emulation (see [`SlurmConf::settings`]'s epilog).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub emulated_nodes: bool,
}

/// Where slurmctld sends its accounting, and what it enforces from it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AccountingConf {
    /// slurmdbd's host name (or address, on a host's network).
    pub host: String,
    /// `AccountingStorageEnforce=`: jobs of users without an association are refused
    /// where every user has one (empty: nothing enforced).
    pub enforce: String,
}

/// Keys of slurm.conf slurmbox writes itself and a site may not set (`[slurm_conf]`),
/// each with why.
const OWNED: &[(&str, &str)] = &[
    ("ClusterName", "it is the cluster's name: set `name`"),
    ("SlurmctldHost", "the controller's container is named by slurmbox"),
    (
        "SlurmctldParameters",
        "compute and login nodes fetch their files from the controller (enable_configless)",
    ),
    ("AuthType", "munge is what the cluster's key is for"),
    ("AuthAltTypes", "set by [rest]: JWT tokens beside munge"),
    ("AuthAltParameters", "the JWT key is the cluster's own, on its volume"),
    ("MetricsType", "set by [metrics]"),
    ("CredType", "munge is what the cluster's key is for"),
    ("SlurmUser", "the images run Slurm as the slurm account"),
    ("SlurmdUser", "slurmd runs as root to start jobs as their users"),
    ("StateSaveLocation", "the controller's state is on its volume"),
    ("SlurmdSpoolDir", "fixed by the node image"),
    ("SlurmctldPidFile", "fixed by the node image"),
    ("SlurmdPidFile", "fixed by the node image"),
    ("ProctrackType", "set by [compute] limits"),
    ("TaskPlugin", "set by [compute] limits"),
    ("SelectType", "slurmbox schedules cores and memory (cons_tres)"),
    ("SelectTypeParameters", "set by [compute] limits"),
    ("GresTypes", "set from the GPUs in the spec"),
    ("SlurmdParameters", "nodes may declare more than their host has (config_overrides)"),
    ("MaxNodeCount", "compute nodes register themselves"),
    ("NodeName", "compute nodes register themselves with what [compute] declares"),
    ("NodeSet", "slurmbox groups the nodes by feature"),
    ("PartitionName", "slurmbox makes the partitions"),
    ("AccountingStorageType", "set by `accounting`"),
    ("AccountingStorageHost", "slurmbox runs slurmdbd"),
    ("AccountingStoragePort", "slurmbox runs slurmdbd"),
    ("JobAcctGatherType", "follows [compute] limits and `accounting`"),
    ("DefMemPerCPU", "slurmbox shares each node's memory among its CPUs"),
];

/// Why a site may not set `key` in `[slurm_conf]`; `None` when it may.
pub fn owned_key(key: &str) -> Option<&'static str> {
    OWNED.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, why)| *why)
}

/// What a compute node declares when it registers (`slurmd -Z --conf "..."`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeConf {
    pub cpus: u32,
    pub real_memory_mib: u64,
    /// Slurm features: the one node sets select on, and the image's architecture.
    pub features: Vec<String>,
    /// Generic resources it has: `("gpu", 2)`, `("shard", 8)`.
    pub gres: Vec<(String, u32)>,
}

impl Display for NodeConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CPUs={cpus} Sockets=1 CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory={} Feature={}",
            self.real_memory_mib,
            self.features.join(","),
            cpus = self.cpus
        )?;
        if !self.gres.is_empty() {
            let gres: Vec<String> = self.gres.iter().map(|(name, n)| format!("{name}:{n}")).collect();
            write!(f, " Gres={}", gres.join(","))?;
        }
        Ok(())
    }
}

/// `gres.conf`: each compute node's GPUs, as device files the node sees, and the
/// shards they are cut into. One file for the cluster (served like slurm.conf); each
/// line names its node, so nodes without GPUs have none.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct GresConf {
    pub lines: Vec<GresLine>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GresLine {
    pub node: String,
    /// `AutoDetect=` for this node ("nvidia"), on its first line.
    pub autodetect: Option<String>,
    /// "gpu" or "shard".
    pub name: String,
    /// The GPU's model as a GRES type ("nvidia_h200"), where known.
    pub typ: Option<String>,
    /// The device file in the node (`/dev/nvidia0`).
    pub file: String,
    /// Shards of that GPU; `None` for a GPU line.
    pub count: Option<u32>,
}

impl Display for GresConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Written by slurmbox: the compute nodes' GPUs, as device files in the node.")?;
        for l in &self.lines {
            write!(f, "NodeName={}", l.node)?;
            if let Some(auto) = &l.autodetect {
                write!(f, " AutoDetect={auto}")?;
            }
            write!(f, " Name={}", l.name)?;
            if let Some(typ) = &l.typ {
                write!(f, " Type={typ}")?;
            }
            if let Some(count) = l.count {
                write!(f, " Count={count}")?;
            }
            writeln!(f, " File={}", l.file)?;
        }
        Ok(())
    }
}

/// One `NodeSet=` line: every node registering with `feature` belongs to it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeSetDef {
    pub name: String,
    pub feature: String,
}

/// One `PartitionName=` line.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PartitionDef {
    pub name: String,
    pub nodes: String,
    pub default: bool,
}

impl SlurmConf {
    /// The settings a site may change: slurmbox's defaults, each replaced by the
    /// site's value for its key, then the site's other keys. A site's empty value
    /// leaves its key out: Slurm's own default.
    pub fn settings(&self) -> Vec<(String, String)> {
        let mut defaults: Vec<(&str, String)> = vec![
            ("MpiDefault", "none".into()),
            // A node that comes back (container restarted) returns to service by itself.
            ("ReturnToService", "2".into()),
            ("SlurmdTimeout", self.slurmd_timeout.to_string()),
            // With a backup controller it takes over 10 s after the primary stops
            // answering (it looks every few seconds), not 30.
            ("SlurmctldTimeout", if self.controllers.0.len() > 1 { "10" } else { "30" }.into()),
            // Finished jobs stay visible to `scontrol show job` for five minutes.
            ("MinJobAge", "300".into()),
            // Many small jobs: a batch job is scheduled as soon as it is submitted or
            // resources free up (not up to 3 s later), the backfill pass runs every 5 s
            // and goes on where it paused, and the whole queue is looked at. (Not
            // `defer`: it would make every srun wait for the next pass.)
            (
                "SchedulerParameters",
                "batch_sched_delay=0,sched_min_interval=20000,bf_interval=5,bf_continue,default_queue_depth=1000"
                    .into(),
            ),
            // A job requeued after its node failed may start again 30 s later, not 120 s
            // (the job credential's lifetime, which is also how long it must wait).
            ("AuthInfo", "cred_expire=30".into()),
        ];
        // An epilog that does nothing makes slurmd report each job's end on its node
        // when it is done there, and slurmctld gives the CPUs to the next job at once;
        // without one they wait for its once-a-second timer, which holds trivial jobs at
        // about one per CPU per second. Not where a node runs under qemu-user emulation
        // (an arm64 lab on an amd64 machine): slurmd reports the epilog failed there
        // and drains the node.
        if !self.emulated_nodes {
            defaults.push(("Epilog", "/bin/true".into()));
        }
        if self.accounting.is_some() {
            defaults.extend([
                // Fair share first: who used less waits less; then age, so nobody starves.
                ("PriorityType", "priority/multifactor".to_string()),
                ("PriorityWeightFairshare", "10000".into()),
                ("PriorityWeightAge", "1000".into()),
                ("PriorityDecayHalfLife", "7-0".into()),
                ("PriorityMaxAge", "7-0".into()),
            ]);
        }
        let site = |key: &str| self.site.iter().find(|(k, _)| k.eq_ignore_ascii_case(key));
        let mut out: Vec<(String, String)> = defaults
            .into_iter()
            .map(|(k, v)| match site(k) {
                Some((_, value)) => (k.to_string(), value.clone()),
                None => (k.to_string(), v),
            })
            .collect();
        for (k, v) in &self.site {
            if !out.iter().any(|(o, _)| o.eq_ignore_ascii_case(k)) {
                out.push((k.clone(), v.clone()));
            }
        }
        out.retain(|(_, v)| !v.is_empty());
        out
    }
}

/// One slurmctld: its node name, and its address when nodes cannot resolve that name
/// (several hosts, macvlan).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlurmctldHost {
    pub name: String,
    pub addr: Option<String>,
}

/// The controllers slurm.conf names, the primary first. A cluster with one serializes
/// as `controller_host` and `controller_addr`, as plans always have, so that snapshots
/// of earlier plans still compare; with more, as a `controllers` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controllers(pub Vec<SlurmctldHost>);

impl serde::Serialize for Controllers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        match self.0.as_slice() {
            [one] => {
                map.serialize_entry("controller_host", &one.name)?;
                map.serialize_entry("controller_addr", &one.addr)?;
            }
            all => map.serialize_entry("controllers", all)?,
        }
        map.end()
    }
}

impl Display for SlurmConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Written by slurmbox for cluster {:?}; `slurmbox up` rewrites it.", self.cluster_name)?;
        writeln!(f, "ClusterName={}", self.cluster_name)?;
        for c in &self.controllers.0 {
            match &c.addr {
                Some(addr) => writeln!(f, "SlurmctldHost={}({addr})", c.name)?,
                None => writeln!(f, "SlurmctldHost={}", c.name)?,
            }
        }
        writeln!(
            f,
            "# Compute and login nodes fetch this file from slurmctld (slurmd/sackd --conf-server)."
        )?;
        writeln!(f, "SlurmctldParameters=enable_configless")?;
        writeln!(f, "AuthType=auth/munge")?;
        if let Some(key) = &self.jwt_key {
            writeln!(f, "# Tools and people also come with tokens (slurmrestd, `scontrol token`).")?;
            writeln!(f, "AuthAltTypes=auth/jwt")?;
            writeln!(f, "AuthAltParameters=jwt_key={key}")?;
        }
        writeln!(f, "CredType=cred/munge")?;
        writeln!(f, "SlurmUser=slurm")?;
        writeln!(f, "SlurmdUser=root")?;
        if self.openmetrics {
            writeln!(f, "# slurmctld answers OpenMetrics on its port (/metrics/...).")?;
            writeln!(f, "MetricsType=metrics/openmetrics")?;
        }
        writeln!(f, "StateSaveLocation={STATE_SAVE_LOCATION}")?;
        writeln!(f, "SlurmdSpoolDir={SLURMD_SPOOL_DIR}")?;
        writeln!(f, "SlurmctldPidFile=/run/slurmctld.pid")?;
        writeln!(f, "SlurmdPidFile=/run/slurmd.pid")?;
        if self.cgroups {
            writeln!(
                f,
                "# Each job is confined to its cores and memory and tracked by its cgroup (cgroup.conf)."
            )?;
            writeln!(f, "ProctrackType=proctrack/cgroup")?;
            writeln!(f, "TaskPlugin=task/cgroup,task/affinity")?;
        } else {
            writeln!(f, "# No cgroups: jobs are tracked by process tree and limits are NOT enforced.")?;
            writeln!(f, "ProctrackType=proctrack/linuxproc")?;
            writeln!(f, "TaskPlugin=task/none")?;
        }
        if !self.gres_types.is_empty() {
            writeln!(f, "GresTypes={}", self.gres_types.join(","))?;
        }
        writeln!(f, "SelectType=select/cons_tres")?;
        if self.cgroups {
            writeln!(f, "SelectTypeParameters=CR_Core_Memory")?;
            if let Some(mem) = self.def_mem_per_cpu {
                writeln!(f, "# A job that asks for no memory gets its share of a node's per CPU.")?;
                writeln!(f, "DefMemPerCPU={mem}")?;
            }
        } else {
            writeln!(f, "SelectTypeParameters=CR_Core")?;
        }
        writeln!(f, "# Containers on one host all see the whole host; the CPUs and memory declared")?;
        writeln!(f, "# below are what Slurm schedules, even where they exceed the hardware.")?;
        writeln!(f, "SlurmdParameters=config_overrides")?;
        match &self.accounting {
            Some(a) => {
                writeln!(f, "# Every job is recorded by slurmdbd (sacct, sreport, sshare).")?;
                writeln!(f, "AccountingStorageType=accounting_storage/slurmdbd")?;
                writeln!(f, "AccountingStorageHost={}", a.host)?;
                if !a.enforce.is_empty() {
                    writeln!(f, "AccountingStorageEnforce={}", a.enforce)?;
                }
                let gather = if self.cgroups { "cgroup" } else { "linux" };
                writeln!(f, "JobAcctGatherType=jobacct_gather/{gather}")?;
            }
            None => {
                writeln!(f, "AccountingStorageType=accounting_storage/none")?;
                writeln!(f, "JobAcctGatherType=jobacct_gather/none")?;
            }
        }
        writeln!(f, "# slurmbox's defaults below; the spec's [slurm_conf] replaces any of them.")?;
        for (key, value) in self.settings() {
            writeln!(f, "{key}={value}")?;
        }
        writeln!(f, "# Compute nodes register themselves (slurmd -Z): none are listed here.")?;
        writeln!(f, "MaxNodeCount={}", self.max_node_count)?;
        for set in &self.node_sets {
            writeln!(f, "NodeSet={} Feature={}", set.name, set.feature)?;
        }
        for p in &self.partitions {
            let mut line = format!("PartitionName={} Nodes={}", p.name, p.nodes);
            if p.default {
                line.push_str(" Default=YES");
            }
            write!(line, " MaxTime=INFINITE State=UP")?;
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// `cgroup.conf`. Where limits cannot be enforced the plugin is disabled outright, so
/// slurmd does not probe a cgroup tree the container cannot write.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CgroupConf {
    pub plugin: CgroupPlugin,
    /// Cores, memory (no swap beyond it) and devices of each job are constrained.
    pub constrain: bool,
}

impl CgroupConf {
    pub fn disabled() -> CgroupConf {
        CgroupConf { plugin: CgroupPlugin::Disabled, constrain: false }
    }

    pub fn enforcing(plugin: CgroupPlugin) -> CgroupConf {
        CgroupConf { plugin, constrain: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CgroupPlugin {
    Disabled,
    /// cgroup v1, also on hybrid hosts (controllers on v1 hierarchies).
    V1,
    /// The unified hierarchy.
    V2,
    /// Hosts on different versions: each slurmd finds its own.
    Autodetect,
}

impl Display for CgroupPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupPlugin::Disabled => "disabled",
            CgroupPlugin::V1 => "cgroup/v1",
            CgroupPlugin::V2 => "cgroup/v2",
            CgroupPlugin::Autodetect => "autodetect",
        })
    }
}

impl Display for CgroupConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Written by slurmbox.")?;
        writeln!(f, "CgroupPlugin={}", self.plugin)?;
        if !self.constrain {
            return Ok(());
        }
        writeln!(f, "# No systemd in the containers: slurmd makes its cgroups itself, below the")?;
        writeln!(f, "# container's own (private cgroup namespace), and enables the controllers there.")?;
        writeln!(f, "IgnoreSystemd=yes")?;
        writeln!(f, "EnableControllers=yes")?;
        writeln!(f, "ConstrainCores=yes")?;
        writeln!(f, "ConstrainRAMSpace=yes")?;
        writeln!(f, "# A job's memory is its limit: no swap beyond it.")?;
        writeln!(f, "ConstrainSwapSpace=yes")?;
        writeln!(f, "AllowedSwapSpace=0")?;
        writeln!(f, "ConstrainDevices=yes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_conf_renders_for_slurmd_z() {
        let conf = NodeConf {
            cpus: 4,
            real_memory_mib: 7000,
            features: vec!["compute".into(), "arm64".into()],
            gres: vec![],
        };
        assert_eq!(
            conf.to_string(),
            "CPUs=4 Sockets=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=7000 Feature=compute,arm64"
        );
        let gpus = NodeConf { gres: vec![("gpu".into(), 2), ("shard".into(), 8)], ..conf };
        assert!(gpus.to_string().ends_with("Feature=compute,arm64 Gres=gpu:2,shard:8"), "{gpus}");
    }

    #[test]
    fn cgroup_conf_renders() {
        insta::assert_snapshot!(CgroupConf::disabled().to_string());
    }

    #[test]
    fn cgroup_conf_renders_enforcing() {
        for plugin in [CgroupPlugin::V1, CgroupPlugin::V2, CgroupPlugin::Autodetect] {
            insta::assert_snapshot!(
                format!("enforcing_{}", plugin.to_string().replace('/', "_")),
                CgroupConf::enforcing(plugin).to_string()
            );
        }
    }
}

/// Prometheus's settings (`prometheus.yml`): how often it scrapes, and the cluster's
/// endpoints. Written as JSON, which is YAML too.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrometheusConf {
    pub global: PrometheusGlobal,
    pub scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrometheusGlobal {
    pub scrape_interval: String,
    pub scrape_timeout: String,
    /// Labels every series gets (`cluster`).
    pub external_labels: std::collections::BTreeMap<String, String>,
}

/// One endpoint Prometheus scrapes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub metrics_path: String,
    pub static_configs: Vec<StaticConfig>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StaticConfig {
    pub targets: Vec<String>,
}

/// The endpoints slurmctld serves itself (Slurm 25.11 and later), each a scrape job
/// `slurm-<name>` on `/metrics/<name>`.
pub const SLURMCTLD_METRICS: &[&str] = &["jobs", "nodes", "partitions", "scheduler", "jobs-users-accts"];

impl PrometheusConf {
    /// Every 15 s: slurmbox-exporter on `controller:exporter_port`, and slurmctld's own
    /// endpoints on its port where it has them.
    pub fn for_cluster(
        cluster: &str,
        controller: &str,
        exporter_port: u16,
        slurmctld: bool,
    ) -> PrometheusConf {
        let job = |name: String, path: String, port: u16| ScrapeConfig {
            job_name: name,
            metrics_path: path,
            static_configs: vec![StaticConfig { targets: vec![format!("{controller}:{port}")] }],
        };
        let mut scrape_configs = vec![job("slurmbox-exporter".into(), "/metrics".into(), exporter_port)];
        if slurmctld {
            scrape_configs.extend(
                SLURMCTLD_METRICS.iter().map(|m| job(format!("slurm-{m}"), format!("/metrics/{m}"), 6817)),
            );
        }
        PrometheusConf {
            global: PrometheusGlobal {
                scrape_interval: "15s".into(),
                scrape_timeout: "10s".into(),
                external_labels: [("cluster".to_string(), cluster.to_string())].into(),
            },
            scrape_configs,
        }
    }
}

impl Display for PrometheusConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string_pretty(self).map_err(|_| fmt::Error)?;
        writeln!(f, "{json}")
    }
}

/// `slurmdbd.conf` without its `StoragePass=` line: slurmbox-init adds that from the
/// cluster's secret volume when slurmdbd starts, so the password is in no plan.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SlurmdbdConf {
    /// slurmdbd's host name (its container's).
    pub dbd_host: String,
    /// Where MariaDB listens.
    pub storage_host: String,
    pub storage_port: u16,
    /// JWT tokens are accepted beside munge, signed with the key at this path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_key: Option<String>,
}

impl Display for SlurmdbdConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Written by slurmbox: slurmdbd keeps the cluster's accounting in MariaDB.")?;
        writeln!(f, "AuthType=auth/munge")?;
        if let Some(key) = &self.jwt_key {
            writeln!(f, "AuthAltTypes=auth/jwt")?;
            writeln!(f, "AuthAltParameters=jwt_key={key}")?;
        }
        writeln!(f, "DbdHost={}", self.dbd_host)?;
        writeln!(f, "SlurmUser=slurm")?;
        writeln!(f, "PidFile=/run/slurmdbd.pid")?;
        writeln!(f, "StorageType=accounting_storage/mysql")?;
        writeln!(f, "StorageHost={}", self.storage_host)?;
        writeln!(f, "StoragePort={}", self.storage_port)?;
        writeln!(f, "StorageUser=slurm")?;
        writeln!(f, "StorageLoc=slurm_acct_db")
    }
}
