//! The Slurm files slurmbox writes, built from typed structures.
//!
//! `slurm.conf` and `cgroup.conf` are rendered here and nowhere else. The controller
//! holds them; compute nodes (slurmd) and the login node (sackd) fetch them from the
//! controller ("configless" mode), so there is exactly one copy to keep right.

use std::fmt::{self, Display, Write as _};

/// Where each daemon keeps things inside the containers (fixed by the image layout).
pub const STATE_SAVE_LOCATION: &str = "/var/spool/slurmctld";
pub const SLURMD_SPOOL_DIR: &str = "/var/spool/slurmd";

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SlurmConf {
    pub cluster_name: String,
    pub controller_host: String,
    pub nodes: Vec<NodeDef>,
    pub partitions: Vec<PartitionDef>,
    /// Seconds without contact before slurmctld marks a node DOWN. Slurm's default
    /// (300 s) is far too slow for a lab where a container restart takes seconds.
    pub slurmd_timeout: u32,
}

/// One `NodeName=` line.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeDef {
    /// A Slurm host list such as `node[1-2]`.
    pub names: String,
    pub cpus: u32,
    pub real_memory_mib: u64,
}

/// One `PartitionName=` line.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PartitionDef {
    pub name: String,
    pub nodes: String,
    pub default: bool,
}

impl Display for SlurmConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "# Written by slurmbox for cluster {:?}; `slurmbox up` rewrites it.",
            self.cluster_name
        )?;
        writeln!(f, "ClusterName={}", self.cluster_name)?;
        writeln!(f, "SlurmctldHost={}", self.controller_host)?;
        writeln!(
            f,
            "# Compute and login nodes fetch this file from slurmctld (slurmd/sackd --conf-server)."
        )?;
        writeln!(f, "SlurmctldParameters=enable_configless")?;
        writeln!(f, "AuthType=auth/munge")?;
        writeln!(f, "CredType=cred/munge")?;
        writeln!(f, "SlurmUser=slurm")?;
        writeln!(f, "SlurmdUser=root")?;
        writeln!(f, "StateSaveLocation={STATE_SAVE_LOCATION}")?;
        writeln!(f, "SlurmdSpoolDir={SLURMD_SPOOL_DIR}")?;
        writeln!(f, "SlurmctldPidFile=/run/slurmctld.pid")?;
        writeln!(f, "SlurmdPidFile=/run/slurmd.pid")?;
        writeln!(
            f,
            "# No cgroups yet: jobs are tracked by process tree and limits are NOT enforced."
        )?;
        writeln!(f, "ProctrackType=proctrack/linuxproc")?;
        writeln!(f, "TaskPlugin=task/none")?;
        writeln!(f, "MpiDefault=none")?;
        writeln!(f, "SelectType=select/cons_tres")?;
        writeln!(f, "SelectTypeParameters=CR_Core")?;
        writeln!(
            f,
            "# Containers on one host all see the whole host; the CPUs and memory declared"
        )?;
        writeln!(
            f,
            "# below are what Slurm schedules, even where they exceed the hardware."
        )?;
        writeln!(f, "SlurmdParameters=config_overrides")?;
        writeln!(
            f,
            "# A node that comes back (container restarted) returns to service by itself."
        )?;
        writeln!(f, "ReturnToService=2")?;
        writeln!(f, "SlurmdTimeout={}", self.slurmd_timeout)?;
        writeln!(f, "SlurmctldTimeout=30")?;
        writeln!(f, "AccountingStorageType=accounting_storage/none")?;
        writeln!(f, "JobAcctGatherType=jobacct_gather/none")?;
        for n in &self.nodes {
            writeln!(
                f,
                "NodeName={} CPUs={cpus} Sockets=1 CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory={} State=UNKNOWN",
                n.names,
                n.real_memory_mib,
                cpus = n.cpus
            )?;
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

/// `cgroup.conf`. Until slurmbox manages cgroups the plugin is disabled outright, so
/// slurmd does not probe a cgroup tree the container cannot write.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CgroupConf {
    pub plugin: CgroupPlugin,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum CgroupPlugin {
    Disabled,
}

impl Display for CgroupConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Written by slurmbox.")?;
        match self.plugin {
            CgroupPlugin::Disabled => writeln!(f, "CgroupPlugin=disabled"),
        }
    }
}

/// Compresses `prefix1..=prefixN` into a Slurm host list (`node[1-3]`, or `node1`).
pub fn hostlist(prefix: &str, count: u32) -> String {
    match count {
        1 => format!("{prefix}1"),
        n => format!("{prefix}[1-{n}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostlist_forms() {
        assert_eq!(hostlist("node", 1), "node1");
        assert_eq!(hostlist("node", 4), "node[1-4]");
    }

    #[test]
    fn cgroup_conf_renders() {
        insta::assert_snapshot!(
            CgroupConf {
                plugin: CgroupPlugin::Disabled
            }
            .to_string()
        );
    }
}
