//! `doctor`'s share of the limits: what each compute node really enforces, asked of its
//! container ([`PROBE`]) and judged ([`judge`]), beside what each host offers.

use futures_util::future::join_all;

use super::{CgroupHost, decide};
use crate::cluster::report::{DoctorReport, NodeDoctor, NodeLimits, Verdict};
use crate::cluster::{Cluster, Model};
use crate::engine::{ContainerInfo, Engine, ExecSpec};
use crate::plan::Role;
use crate::spec::ClusterSpec;

/// What a compute node's container shows about its limits, as [`PROBE`] prints it:
/// what slurmd really runs with, not what the plan meant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// 1 or 2, from the filesystem at /sys/fs/cgroup.
    pub cgroup: Option<u8>,
    /// Every cgroup mount the container sees is writable.
    pub writable: bool,
    /// Slurm made its cgroup tree (slurmd started with a cgroup plugin).
    pub slurm_tree: bool,
    /// The container's memory limit in bytes (`None`: none).
    pub memory_limit: Option<u64>,
    /// CPUs the container may run on.
    pub cores: u32,
    /// CPUs the node declares to Slurm.
    pub declared_cpus: Option<u32>,
    /// From the slurm.conf and cgroup.conf slurmd fetched from the controller.
    pub proctrack: String,
    pub task_plugin: String,
    pub constrain_cores: bool,
    pub constrain_ram: bool,
    pub constrain_devices: bool,
    /// The GRES the node declares ("gpu:2,shard:8"), empty without GPUs.
    pub gres: String,
}

/// Run in a compute container (as root): prints `key=value` lines for [`NodeReport`].
pub const PROBE: &str = r#"
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then v=2; else v=1; fi
echo "cgroup=$v"
rw=yes
while read -r _ _ fs opts _; do
    case "$fs" in cgroup | cgroup2) case ",$opts," in *,ro,*) rw=no ;; esac ;; esac
done < <(awk '$2 ~ "^/sys/fs/cgroup"' /proc/self/mounts)
echo "writable=$rw"
if [ "$v" = 2 ]; then
    echo "memory_limit=$(cat /sys/fs/cgroup/memory.max 2>/dev/null)"
    trees=(/sys/fs/cgroup/system.slice/*slurmstepd.scope)
else
    echo "memory_limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null)"
    # Debian builds Slurm for several slurmd per machine: /slurm_NODE, not /slurm.
    trees=(/sys/fs/cgroup/*/slurm*)
fi
if [ -d "${trees[0]}" ]; then echo slurm_tree=yes; else echo slurm_tree=no; fi
echo "cores=$(nproc)"
echo "declared=${SLURMBOX_NODE_CONF:-}"
conf=/var/spool/slurmd/conf-cache
for k in ProctrackType TaskPlugin; do echo "$k=$(sed -n "s/^$k=//p" "$conf/slurm.conf" 2>/dev/null)"; done
for k in ConstrainCores ConstrainRAMSpace ConstrainDevices; do echo "$k=$(sed -n "s/^$k=//p" "$conf/cgroup.conf" 2>/dev/null)"; done
"#;

impl NodeReport {
    pub fn parse(text: &str) -> NodeReport {
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .unwrap_or("")
                .trim()
        };
        let yes = |key: &str| value(key).eq_ignore_ascii_case("yes");
        // A limit near 2^63 (v1) or "max" (v2) is no limit.
        let memory_limit = value("memory_limit").parse::<u64>().ok().filter(|b| *b < 1 << 62);
        let declared_cpus = value("declared")
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("CPUs="))
            .and_then(|n| n.parse().ok());
        NodeReport {
            cgroup: value("cgroup").parse().ok(),
            writable: yes("writable"),
            slurm_tree: yes("slurm_tree"),
            memory_limit,
            cores: value("cores").parse().unwrap_or(0),
            declared_cpus,
            proctrack: value("ProctrackType").to_string(),
            task_plugin: value("TaskPlugin").to_string(),
            constrain_cores: yes("ConstrainCores"),
            constrain_ram: yes("ConstrainRAMSpace"),
            constrain_devices: yes("ConstrainDevices"),
            gres: value("declared")
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("Gres="))
                .unwrap_or("")
                .to_string(),
        }
    }
}

/// What `report` means for the node, which shares its host with `neighbours` other
/// compute nodes.
pub fn judge(report: &NodeReport, neighbours: usize) -> NodeLimits {
    let task_cgroup = report.task_plugin.split(',').any(|p| p.trim() == "task/cgroup");
    // Why no limit holds, when the cgroup tree is not there for Slurm.
    let missing = if report.task_plugin.is_empty() {
        Some("slurmd's configuration could not be read (is the node up?)".to_string())
    } else if !report.writable {
        Some("the container's cgroup mounts are read-only (limits are off for this cluster)".to_string())
    } else if !report.slurm_tree {
        Some("slurmd has made no cgroup tree (see `slurmbox logs` of the node)".to_string())
    } else {
        None
    };
    let version = report.cgroup.map_or("cgroup".to_string(), |v| format!("cgroup v{v}"));
    let off = |what: &str, setting: &str| Verdict {
        enforced: false,
        detail: match &missing {
            Some(why) => format!("NOT enforced: {why}"),
            None => format!("NOT enforced: {what} ({setting})"),
        },
    };
    let memory = if missing.is_none() && task_cgroup && report.constrain_ram {
        let container = match report.memory_limit {
            Some(b) => format!("; the node's container is held to {} MiB", b / (1024 * 1024)),
            None => "; the node's container has no memory limit of its own".into(),
        };
        Verdict {
            enforced: true,
            detail: format!(
                "enforced ({version}): a job that uses more than it asked for is killed (OUT_OF_MEMORY){container}"
            ),
        }
    } else {
        off("slurmd does not constrain memory", &format!("TaskPlugin={}", report.task_plugin))
    };
    let declared = report.declared_cpus.unwrap_or(report.cores);
    let exclusive = declared <= report.cores && neighbours == 0;
    let cores = if missing.is_none() && task_cgroup && report.constrain_cores {
        let detail = if exclusive {
            format!("enforced ({version}): each job runs on its own cores, as many as it asked for")
        } else if declared > report.cores {
            format!(
                "enforced, shared: a job runs on as many cores as it asked for, but the node declares {declared} CPUs on {} real ones, so jobs may share a core (compute.cpus = {} gives each job cores of its own)",
                report.cores, report.cores
            )
        } else {
            format!(
                "enforced, shared: a job runs on as many cores as it asked for, but {neighbours} other node(s) on this host use the same cores (one node per host gives each job cores of its own)"
            )
        };
        Verdict { enforced: true, detail }
    } else {
        off("slurmd does not constrain cores", &format!("TaskPlugin={}", report.task_plugin))
    };
    let processes = if missing.is_none() && report.proctrack == "proctrack/cgroup" {
        Verdict {
            enforced: true,
            detail: "tracked by cgroup: every process a job starts, daemonized ones too, ends with the job"
                .into(),
        }
    } else {
        Verdict {
            enforced: false,
            detail: format!(
                "NOT tracked by cgroup ({}): a process a job daemonizes can outlive it",
                if report.proctrack.is_empty() { "unknown" } else { &report.proctrack }
            ),
        }
    };
    let gpus = (!report.gres.is_empty()).then(|| {
        if missing.is_none() && task_cgroup && report.constrain_devices {
            Verdict {
                enforced: true,
                detail: format!(
                    "{}: a job can open only the GPUs it was given (device cgroup, ConstrainDevices)",
                    report.gres
                ),
            }
        } else {
            Verdict {
                enforced: false,
                detail: format!("{}: NOT isolated: every job on the node can open all of them", report.gres),
            }
        }
    });
    NodeLimits { exclusive_cores: cores.enforced && exclusive, memory, cores, processes, gpus }
}

/// For `doctor`: each host's cgroups and whether limits can be enforced there, the
/// cluster's decision, and what each running compute node really enforces (asked with
/// [`PROBE`]).
pub async fn doctor(cluster: &Cluster, model: &Model, spec: &ClusterSpec, report: &mut DoctorReport) {
    let hosts: Vec<Option<CgroupHost>> =
        model.infos.iter().map(|i| i.as_ref().ok().map(CgroupHost::from_engine)).collect();
    for ((host, info), cgroup) in report.hosts.iter_mut().zip(&model.infos).zip(&hosts) {
        match (info, cgroup) {
            (Ok(_), Some(c)) => {
                host.cgroup = c.describe();
                host.can_enforce = c.plugin().map(|p| p.to_string());
            }
            (Err(e), _) => host.cgroup = format!("not asked: {e}"),
            (Ok(_), None) => {}
        }
    }
    let answered: Vec<(String, CgroupHost)> =
        cluster.hosts.iter().zip(hosts).filter_map(|(h, c)| c.map(|c| (h.name.clone(), c))).collect();
    let decision = decide(spec.compute.limits, &answered);
    report.limits = decision.summary();
    report.limits_off = !decision.enforced();

    let compute: Vec<&ContainerInfo> = model.of_role(Role::Compute).collect();
    report.nodes = join_all(compute.iter().map(|c| {
        let neighbours = compute.iter().filter(|o| o.host == c.host).count() - 1;
        async move {
            let limits = if !c.running() {
                Err(format!("its container is {}", c.state))
            } else {
                match cluster.engine(c).exec(&c.name, &ExecSpec::shell(PROBE)).await {
                    Ok(out) if out.ok() => Ok(judge(&NodeReport::parse(&out.stdout), neighbours)),
                    Ok(out) => Err(format!("the probe failed (exit {}): {}", out.code, out.stderr.trim())),
                    Err(e) => Err(e.to_string()),
                }
            };
            NodeDoctor {
                node: c.node().unwrap_or_default().to_string(),
                host: cluster.hosts[c.host].name.clone(),
                limits,
            }
        }
    }))
    .await;
}
