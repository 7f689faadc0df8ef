//! Limits that hold: Slurm's cgroup plugins confine each job to the CPUs and memory it
//! was given, and track every process it starts.
//!
//! What a host offers is read from its engine ([`CgroupHost::from_engine`]): the cgroup
//! version, the engine's cgroup driver, whether it runs rootless, and whether AppArmor
//! confines containers. [`decide`] turns that into one decision for the cluster
//! (slurm.conf's plugins are the same on every node): either every compute node
//! enforces limits through `cgroup/v1` or `cgroup/v2`, or none does and `up`, `status`
//! and `doctor` say why.
//!
//! How a compute container gets a cgroup tree of its own, without `--privileged`:
//! a private cgroup namespace (`--cgroupns=private`), so the cgroup mounts it sees are
//! rooted at its own cgroup, never the host's; SYS_ADMIN, so slurmbox-init can turn
//! those read-only mounts writable (`mount -o remount,bind,rw`); SYS_NICE, so slurmd
//! may pin job tasks to cores (task/affinity). On cgroup v2 Slurm itself moves the
//! container's processes out of the namespace's root and enables the controllers below
//! it (`IgnoreSystemd=yes`, `EnableControllers=yes`). The container's memory limit is the
//! node's declared memory plus [`DAEMON_MEMORY_MIB`], so jobs can use what Slurm gave
//! them and the node can never use more than it declared.

mod doctor;

pub use doctor::{NodeReport, PROBE, doctor, judge};

use super::{Config, Layout};
use crate::contract;
use crate::engine::EngineInfo;
use crate::plan::{LABEL_LIMITS, Limits, Plan, Role};
use crate::render::{CgroupConf, CgroupPlugin};

/// Headroom above a node's declared memory for slurmd, munged and the step daemons.
pub const DAEMON_MEMORY_MIB: u64 = 128;

/// Capabilities a compute node gets on top of every node's when limits are enforced.
pub const LIMIT_CAPS: &[(&str, &str)] = &[
    ("SYS_ADMIN", "make the container's own (namespaced) cgroup mounts writable for Slurm"),
    ("SYS_NICE", "pin job tasks to their cores (task/affinity sets other users' CPU affinity)"),
];

/// What a host's engine says about cgroups.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CgroupHost {
    /// 1 (also hybrid hosts: controllers on v1), 2 (unified), `None`: not reported.
    pub version: Option<u8>,
    /// `cgroupfs` or `systemd` (or `none`, as rootless engines without systemd say).
    pub driver: String,
    pub rootless: bool,
    /// AppArmor confines containers: its default profile forbids the remount.
    pub apparmor: bool,
}

impl CgroupHost {
    pub fn from_engine(info: &EngineInfo) -> CgroupHost {
        let has = |name: &str| {
            info.security_options.iter().any(|o| o.split(',').any(|kv| kv == format!("name={name}")))
        };
        CgroupHost {
            version: info.cgroup_version.parse().ok(),
            driver: info.cgroup_driver.clone(),
            rootless: has("rootless"),
            apparmor: has("apparmor"),
        }
    }

    /// The usual Linux host today: cgroup v2, root engine, no AppArmor.
    pub fn v2() -> CgroupHost {
        CgroupHost { version: Some(2), driver: "systemd".into(), rootless: false, apparmor: false }
    }

    /// Whether a compute container on this host can get a writable cgroup tree of its
    /// own, and with which plugin; or why not.
    pub fn plugin(&self) -> Result<CgroupPlugin, String> {
        if self.rootless {
            return Err(
                "its Docker engine runs rootless: a container cannot be given cgroup controllers of \
                        its own there (slurmbox does not set up systemd delegation for rootless engines)"
                    .into(),
            );
        }
        match self.version {
            Some(1) => Ok(CgroupPlugin::V1),
            Some(2) => Ok(CgroupPlugin::V2),
            _ => Err("its Docker engine does not say which cgroup version the host runs (engine older than \
                      20.10?)"
                .into()),
        }
    }

    /// How the host looks, for `doctor`: "cgroup v2, systemd driver".
    pub fn describe(&self) -> String {
        let version = self.version.map_or("cgroup version unknown".to_string(), |v| format!("cgroup v{v}"));
        let mut s =
            format!("{version}, {} driver", if self.driver.is_empty() { "unknown" } else { &self.driver });
        if self.rootless {
            s.push_str(", rootless engine");
        }
        if self.apparmor {
            s.push_str(", AppArmor");
        }
        s
    }
}

/// Limits for a cluster whose hosts look like `hosts`: on wherever every host can
/// enforce them and the spec does not turn them off.
pub fn decide(wanted: bool, hosts: &[(String, CgroupHost)]) -> Limits {
    if !wanted {
        return Limits::Off { why: "compute.limits = false in the spec".into() };
    }
    let mut plugins = Vec::new();
    for (name, host) in hosts {
        match host.plugin() {
            Ok(p) => plugins.push(p),
            Err(why) => return Limits::Off { why: format!("host {name:?}: {why}") },
        }
    }
    // Hosts on different versions: each slurmd finds its own.
    let plugin = match plugins.split_first() {
        Some((first, rest)) if rest.iter().all(|p| p == first) => *first,
        _ => CgroupPlugin::Autodetect,
    };
    Limits::Enforced { plugin }
}

/// The layout's decision.
pub fn of_layout(layout: &Layout) -> Limits {
    let hosts: Vec<(String, CgroupHost)> =
        layout.hosts.iter().zip(layout.facts).map(|(h, f)| (h.name.clone(), f.cgroup.clone())).collect();
    decide(layout.spec.compute.limits, &hosts)
}

/// slurm.conf's plugins and cgroup.conf follow the decision.
pub fn configure(layout: &Layout, config: &mut Config) {
    let limits = of_layout(layout);
    if let Limits::Enforced { plugin } = &limits {
        config.slurm_conf.cgroups = true;
        // Memory is now a scheduled resource: a job that asks for none gets its
        // share of a node's memory per CPU, so jobs still pack onto a node.
        config.slurm_conf.def_mem_per_cpu = layout
            .facts
            .iter()
            .map(|f| {
                let node = super::compute::node_conf(layout, f);
                node.real_memory_mib / u64::from(node.cpus.max(1))
            })
            .min();
        config.cgroup_conf = CgroupConf::enforcing(*plugin);
    }
    config.limits = limits;
}

/// Compute containers get what enforcing takes: a private cgroup namespace, the two
/// capabilities, a memory limit, and (under AppArmor) a profile that allows the remount.
pub fn add(layout: &Layout, config: &Config, plan: &mut Plan) {
    plan.limits = config.limits.clone();
    let label = match &config.limits {
        Limits::Enforced { plugin } => plugin.to_string(),
        Limits::Off { .. } => "off".to_string(),
    };
    for c in plan.containers.iter_mut().filter(|c| c.role == Role::Compute) {
        c.labels.insert(LABEL_LIMITS.into(), label.clone());
        if !config.limits.enforced() {
            continue;
        }
        let facts = &layout.facts[c.host];
        let node = super::compute::node_conf(layout, facts);
        c.cap_add.extend(LIMIT_CAPS.iter().map(|(cap, _)| cap.to_string()));
        c.cgroupns_private = true;
        // What the node declares, and room for its daemons; never more than the host has.
        c.memory_mib =
            Some((node.real_memory_mib + DAEMON_MEMORY_MIB).min(facts.memory_mib.max(node.real_memory_mib)));
        c.env.push(format!("{}=1", contract::env::CGROUP_WRITABLE));
        if facts.cgroup.apparmor {
            // docker-default denies every mount, the bind remount of cgroup mounts too.
            c.security_opt.push("apparmor=unconfined".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(version: &str, driver: &str, options: &[&str]) -> EngineInfo {
        EngineInfo {
            version: "27.0".into(),
            cpus: 2,
            memory_mib: 4096,
            arch: "x86_64".into(),
            cgroup_version: version.into(),
            cgroup_driver: driver.into(),
            security_options: options.iter().map(|s| s.to_string()).collect(),
            runtimes: vec!["runc".into()],
            cdi_devices: vec![],
        }
    }

    #[test]
    fn hosts_are_read_from_their_engines() {
        // Docker 20.10 on a hybrid host (this project's CI machine).
        let hybrid = CgroupHost::from_engine(&info("1", "cgroupfs", &["name=seccomp,profile=default"]));
        assert_eq!(hybrid.plugin(), Ok(CgroupPlugin::V1));
        assert!(!hybrid.apparmor && !hybrid.rootless);
        // Debian 12 / Ubuntu 24.04 with AppArmor.
        let ubuntu = CgroupHost::from_engine(&info(
            "2",
            "systemd",
            &["name=apparmor", "name=seccomp,profile=builtin", "name=cgroupns"],
        ));
        assert_eq!(ubuntu.plugin(), Ok(CgroupPlugin::V2));
        assert!(ubuntu.apparmor);
        assert_eq!(ubuntu.describe(), "cgroup v2, systemd driver, AppArmor");
        let rootless = CgroupHost::from_engine(&info(
            "2",
            "systemd",
            &["name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"],
        ));
        assert!(rootless.plugin().unwrap_err().contains("rootless"));
        assert!(CgroupHost::from_engine(&info("", "", &[])).plugin().is_err());
    }

    #[test]
    fn one_decision_for_the_cluster() {
        let v1 = CgroupHost { version: Some(1), ..CgroupHost::v2() };
        let rootless = CgroupHost { rootless: true, ..CgroupHost::v2() };
        let host = |n: &str, h: &CgroupHost| (n.to_string(), h.clone());
        assert_eq!(
            decide(true, &[host("a", &CgroupHost::v2())]),
            Limits::Enforced { plugin: CgroupPlugin::V2 }
        );
        assert_eq!(
            decide(true, &[host("a", &v1), host("b", &v1)]),
            Limits::Enforced { plugin: CgroupPlugin::V1 }
        );
        assert_eq!(
            decide(true, &[host("a", &v1), host("b", &CgroupHost::v2())]),
            Limits::Enforced { plugin: CgroupPlugin::Autodetect }
        );
        let off = decide(true, &[host("a", &v1), host("pi2", &rootless)]);
        assert!(
            matches!(&off, Limits::Off { why } if why.starts_with("host \"pi2\": its Docker engine runs rootless"))
        );
        assert!(off.summary().contains("NOT enforced"));
        assert!(
            matches!(decide(false, &[host("a", &v1)]), Limits::Off { why } if why.contains("compute.limits = false"))
        );
    }

    fn plan_on(cgroup: CgroupHost) -> Plan {
        let facts = crate::components::HostFacts {
            cpus: 2,
            memory_mib: 4096,
            arch: crate::spec::Arch::Amd64,
            emulated: false,
            image: "slurmbox/node:24.11-test".into(),
            storage_image: None,
            accounting_image: None,
            controller_image: None,
            metrics_image: None,
            web_image: None,
            cgroup,
            ssh_port: crate::spec::DEFAULT_SSH_PORT,
            rest_port: crate::spec::DEFAULT_REST_PORT,
            web_port: crate::spec::DEFAULT_WEB_PORT,
            gpus: None,
        };
        crate::components::plan(&crate::spec::ClusterSpec::default_cluster(), &[facts])
    }

    #[test]
    fn only_compute_containers_change_where_limits_hold() {
        let plan = plan_on(CgroupHost { apparmor: true, ..CgroupHost::v2() });
        assert_eq!(plan.limits, Limits::Enforced { plugin: CgroupPlugin::V2 });
        assert_eq!(plan.cgroup_conf, CgroupConf::enforcing(CgroupPlugin::V2));
        assert!(plan.slurm_conf.cgroups);
        // The smallest node's memory per CPU: 4096 MiB over 4 declared CPUs.
        assert_eq!(plan.slurm_conf.def_mem_per_cpu, Some(1024));
        for c in &plan.containers {
            let compute = c.role == Role::Compute;
            assert_eq!(c.cgroupns_private, compute, "{}", c.name);
            assert_eq!(c.cap_add.iter().any(|cap| cap == "SYS_ADMIN"), compute, "{}", c.name);
            assert_eq!(c.security_opt.contains(&"apparmor=unconfined".to_string()), compute, "{}", c.name);
            // Declared memory and the daemons' room, never more than the host has.
            assert_eq!(c.memory_mib, compute.then_some(4096), "{}", c.name);
            if compute {
                assert_eq!(c.labels[LABEL_LIMITS], "cgroup/v2");
                assert!(c.env.contains(&format!("{}=1", contract::env::CGROUP_WRITABLE)));
            }
        }
        // Without AppArmor the profile stays.
        let plain = plan_on(CgroupHost { version: Some(1), ..CgroupHost::v2() });
        assert!(plain.containers.iter().all(|c| c.security_opt.is_empty()));
    }

    #[test]
    fn a_rootless_host_leaves_the_cluster_as_before() {
        let plan = plan_on(CgroupHost { rootless: true, ..CgroupHost::v2() });
        assert!(!plan.limits.enforced());
        assert_eq!(plan.cgroup_conf, CgroupConf::disabled());
        assert!(!plan.slurm_conf.cgroups);
        assert!(plan.slurm_conf.to_string().contains("ProctrackType=proctrack/linuxproc"));
        for c in &plan.containers {
            assert!(!c.cgroupns_private && c.memory_mib.is_none(), "{}", c.name);
            assert!(!c.cap_add.iter().any(|cap| cap == "SYS_ADMIN" || cap == "SYS_NICE"), "{}", c.name);
            if c.role == Role::Compute {
                assert_eq!(c.labels[LABEL_LIMITS], "off");
            }
        }
    }

    const ENFORCING: &str = "cgroup=1\nwritable=yes\nmemory_limit=1207959552\nslurm_tree=yes\ncores=2\n\
        declared=CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=1024 Feature=compute,amd64\n\
        ProctrackType=proctrack/cgroup\nTaskPlugin=task/cgroup,task/affinity\nConstrainCores=yes\n\
        ConstrainRAMSpace=yes\n";

    #[test]
    fn a_node_that_enforces_everything() {
        let report = NodeReport::parse(ENFORCING);
        assert_eq!(report.cgroup, Some(1));
        assert_eq!(report.memory_limit, Some(1152 * 1024 * 1024));
        assert_eq!((report.cores, report.declared_cpus), (2, Some(2)));
        let limits = judge(&report, 0);
        assert!(limits.memory.enforced && limits.cores.enforced && limits.processes.enforced);
        assert!(limits.exclusive_cores);
        assert!(limits.memory.detail.contains("held to 1152 MiB"), "{}", limits.memory.detail);
        assert!(limits.cores.detail.contains("its own cores"));
        assert_eq!(limits.gpus, None, "no GPUs, no line");
        let gpus = NodeReport::parse(&format!(
            "{}ConstrainDevices=yes\n",
            ENFORCING.replace("compute,amd64", "compute,amd64,gpu Gres=gpu:2")
        ));
        assert_eq!(gpus.gres, "gpu:2");
        assert!(
            judge(&gpus, 0)
                .gpus
                .is_some_and(|v| v.enforced && v.detail.starts_with("gpu:2: a job can open only"))
        );
    }

    #[test]
    fn oversubscribed_or_crowded_nodes_share_cores() {
        let four = NodeReport::parse(&ENFORCING.replace("declared=CPUs=2", "declared=CPUs=4"));
        let limits = judge(&four, 0);
        assert!(limits.cores.enforced && !limits.exclusive_cores);
        assert!(limits.cores.detail.contains("declares 4 CPUs on 2 real ones"), "{}", limits.cores.detail);
        let crowded = judge(&NodeReport::parse(ENFORCING), 1);
        assert!(crowded.cores.detail.contains("1 other node(s)"), "{}", crowded.cores.detail);
        assert!(crowded.memory.enforced);
    }

    #[test]
    fn a_node_without_limits_says_why() {
        let off = NodeReport::parse(
            "cgroup=1\nwritable=no\nmemory_limit=9223372036854771712\nslurm_tree=no\ncores=2\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nConstrainCores=\nConstrainRAMSpace=\n",
        );
        assert_eq!(off.memory_limit, None);
        let limits = judge(&off, 0);
        assert!(!limits.memory.enforced && !limits.cores.enforced && !limits.processes.enforced);
        assert!(limits.memory.detail.contains("read-only"), "{}", limits.memory.detail);
        assert!(limits.processes.detail.contains("proctrack/linuxproc"));
        // Nothing could be read at all.
        assert!(judge(&NodeReport::parse(""), 0).memory.detail.contains("could not be read"));
    }
}
