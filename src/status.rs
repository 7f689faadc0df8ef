//! What a cluster is right now: its hosts (reachable or not, their engines, images and
//! nodes), each node's container and Slurm state, and the GlusterFS /home's health.
//!
//! [`gather`] asks the engines, the controller (through [`crate::slurm`]) and the
//! storage containers; what could not be asked is kept with its reason, not left out.
//! Printing (the table and `--json`) is `commands/status.rs`'s business.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use crate::commands::Cluster;
use crate::engine::{ContainerInfo, Engine, ExecSpec};
use crate::plan::{
    LABEL_GPUS, LABEL_GRES, LABEL_LIMITS, LABEL_NODE, LABEL_ROLE, Role, STORAGE_PATH, runs_on_host,
};
use crate::slurm::{NodeState, Slurm};

/// The whole picture, as `slurmbox status --json` prints it.
#[derive(Debug, serde::Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub hosts: Vec<HostStatus>,
    pub nodes: Vec<NodeStatus>,
    /// The GlusterFS /home's volume; null without one or when it cannot be asked.
    pub shared_home: Option<SharedHomeStatus>,
    /// Why the controller could not be asked for the nodes' Slurm states.
    pub slurm_error: Option<String>,
    /// When the running controller started after an unclean stop (a crash or kill),
    /// which may have cost Slurm its last seconds of changes; null after a clean start.
    pub controller_unclean_start: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct HostStatus {
    pub host: String,
    /// The engine's address ("local" for the local engine).
    pub engine: String,
    pub reachable: bool,
    /// Why it could not be reached.
    pub error: Option<String>,
    /// Docker version and CPU architecture, as its engine reports them.
    pub docker_version: Option<String>,
    pub arch: Option<String>,
    /// Why a reachable engine did not say its version and architecture.
    pub info_error: Option<String>,
    /// Images the cluster's containers there run.
    pub images: Vec<String>,
    pub nodes: Vec<String>,
    /// With a GlusterFS /home: whether its storage container has the volume mounted
    /// for the host's nodes (null without one, or when it cannot be asked).
    pub home_mounted: Option<bool>,
    /// Why its storage container could not say.
    pub home_error: Option<String>,
}

/// The GlusterFS /home's volume, as the first host's storage container reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SharedHomeStatus {
    /// "Started", "Stopped", or "none" before the first `up` made it.
    pub volume: String,
    pub bricks: u32,
    /// Bricks whose server runs and answers.
    pub online: u32,
    /// Files a brick still lacks, which self-heal will copy there.
    pub heal_pending: u32,
    /// Files whose copies disagree and which GlusterFS cannot settle by itself.
    pub split_brain: u32,
}

#[derive(Debug, serde::Serialize)]
pub struct NodeStatus {
    /// The spec's name of the host the node runs on ("local" for the local engine).
    pub host: String,
    pub node: String,
    pub role: String,
    /// Null for a node on a host that did not answer.
    pub container: Option<String>,
    pub container_state: String,
    pub container_status: String,
    /// Slurm's state for compute nodes ("idle", "down*", ...), as `sinfo` prints it;
    /// null for the others or when the controller cannot be asked.
    pub slurm_state: Option<String>,
    /// Compute nodes: the cgroup plugin confining their jobs, or "off" (`doctor` says
    /// why); null for the others.
    pub limits: Option<String>,
    /// Compute nodes with GPUs: the GRES they register with ("gpu:2"); null otherwise.
    pub gres: Option<String>,
    /// Compute nodes with GPUs: what they are ("2 × NVIDIA H200 through its engine
    /// (NVIDIA container toolkit)"); null otherwise.
    pub gpus: Option<String>,
    /// The login node: the port its sshd is published on; null for the others.
    pub ssh_port: Option<u16>,
}

/// What a storage container's `status` printed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StorageReport {
    /// Whether this host has the volume mounted for its nodes.
    pub mounted: Option<bool>,
    /// The volume, when asked for it (`--volume`).
    pub volume: Option<SharedHomeStatus>,
}

/// Parses the storage script's `status` output: `key=value` lines (`mounted=yes`,
/// then with `--volume`: `volume=Started`, `bricks=`, `online=`, `heal_pending=`,
/// `split_brain=`). Unknown lines are ignored; a missing or unreadable count is 0.
pub fn parse_storage_report(text: &str) -> StorageReport {
    let values: BTreeMap<&str, &str> =
        text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim(), v.trim())).collect();
    let number = |key: &str| values.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
    StorageReport {
        mounted: values.get("mounted").map(|m| *m == "yes"),
        volume: values.get("volume").map(|volume| SharedHomeStatus {
            volume: volume.to_string(),
            bricks: number("bricks"),
            online: number("online"),
            heal_pending: number("heal_pending"),
            split_brain: number("split_brain"),
        }),
    }
}

fn has_role(c: &ContainerInfo, role: Role) -> bool {
    c.labels.get(LABEL_ROLE).map(String::as_str) == Some(role.as_str())
}

/// Asks every part of the cluster at once what it is now.
pub async fn gather(handle: &Cluster) -> miette::Result<ClusterStatus> {
    let containers = handle.containers().await?;
    let controller = containers.iter().find(|c| has_role(c, Role::Controller) && c.running());
    let states: Result<BTreeMap<String, NodeState>, String> = match controller {
        Some(c) => Slurm::new(handle.engine(c), &c.name).node_states().await.map_err(|e| e.to_string()),
        None => Err("the controller is not running".into()),
    };
    let unclean = match controller {
        Some(c) => crate::components::controller::unclean_start(handle.engine(c), &c.name).await,
        None => None,
    };
    let known = states.as_ref().ok();
    let mut nodes: Vec<NodeStatus> = containers
        .iter()
        .map(|c| {
            let node = c.labels.get(LABEL_NODE).cloned().unwrap_or_default();
            NodeStatus {
                host: handle.hosts[c.host].name.clone(),
                slurm_state: known.and_then(|s| s.get(&node)).map(ToString::to_string),
                role: c.labels.get(LABEL_ROLE).cloned().unwrap_or_default(),
                node,
                container: Some(c.name.clone()),
                container_state: c.state.clone(),
                container_status: c.status.clone(),
                limits: c.labels.get(LABEL_LIMITS).cloned(),
                gres: c.labels.get(LABEL_GRES).cloned(),
                gpus: c.labels.get(LABEL_GPUS).cloned(),
                ssh_port: c.labels.get(crate::plan::LABEL_SSH_PORT).and_then(|p| p.parse().ok()),
            }
        })
        .collect();
    // Nodes on hosts that did not answer, as far as Slurm knows them (over several
    // hosts compute nodes are named after their host).
    for (host, _) in handle.unreachable() {
        for (node, state) in known.into_iter().flatten().filter(|(n, _)| runs_on_host(n, &host.name)) {
            nodes.push(NodeStatus {
                host: host.name.clone(),
                node: node.clone(),
                role: Role::Compute.as_str().into(),
                container: None,
                container_state: "unknown".into(),
                container_status: "host unreachable".into(),
                slurm_state: Some(state.to_string()),
                limits: None,
                gres: None,
                gpus: None,
                ssh_port: None,
            });
        }
    }

    let storage = storage_reports(handle, &containers).await;
    let first = storage.iter().map(|(host, _)| *host).min();
    let shared_home = storage
        .iter()
        .filter(|(host, _)| Some(*host) == first)
        .find_map(|(_, r)| r.as_ref().ok().and_then(|r| r.volume.clone()));

    let infos = join_all(handle.hosts.iter().map(|h| async {
        match &h.engine {
            Ok(engine) => Some(engine.info().await),
            Err(_) => None,
        }
    }))
    .await;
    let hosts = handle
        .hosts
        .iter()
        .zip(infos)
        .enumerate()
        .map(|(i, (h, info))| {
            let images: BTreeSet<String> =
                containers.iter().filter(|c| c.host == i).map(|c| c.image.clone()).collect();
            let report = storage.iter().find(|(host, _)| *host == i).map(|(_, r)| r);
            let found = info.as_ref().and_then(|i| i.as_ref().ok());
            HostStatus {
                host: h.name.clone(),
                engine: h.url.clone().unwrap_or_else(|| "local".into()),
                reachable: h.engine.is_ok(),
                error: h.engine.as_ref().err().map(ToString::to_string),
                docker_version: found.map(|i| i.version.clone()),
                arch: found.map(|i| i.arch.clone()),
                info_error: info.and_then(Result::err).map(|e| e.to_string()),
                images: images.into_iter().collect(),
                nodes: nodes.iter().filter(|n| n.host == h.name).map(|n| n.node.clone()).collect(),
                home_mounted: report.and_then(|r| r.as_ref().ok()).and_then(|r| r.mounted),
                home_error: report.and_then(|r| r.as_ref().err()).cloned(),
            }
        })
        .collect();
    Ok(ClusterStatus {
        cluster: handle.name.clone(),
        hosts,
        nodes,
        shared_home,
        slurm_error: states.err(),
        controller_unclean_start: unclean,
    })
}

/// With a GlusterFS /home, each running storage container says whether its host has
/// the volume mounted; the first one (lowest host) also reports on the volume. Each
/// answer comes with its host's index, or why it could not be had.
async fn storage_reports(
    handle: &Cluster,
    containers: &[ContainerInfo],
) -> Vec<(usize, Result<StorageReport, String>)> {
    let storage: Vec<&ContainerInfo> =
        containers.iter().filter(|c| has_role(c, Role::Storage) && c.running()).collect();
    let first = storage.iter().map(|c| c.host).min();
    join_all(storage.into_iter().map(|c| async move {
        let mut cmd = ExecSpec::new([STORAGE_PATH, "status"]);
        if Some(c.host) == first {
            cmd.cmd.push("--volume".into());
        }
        let report = match handle.engine(c).exec(&c.name, &cmd).await {
            Ok(out) if out.ok() => Ok(parse_storage_report(&out.stdout)),
            Ok(out) => Err(format!(
                "`{}` failed on {} (exit {}): {}",
                cmd.cmd.join(" "),
                c.name,
                out.code,
                out.stderr.trim()
            )),
            Err(e) => Err(e.to_string()),
        };
        (c.host, report)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_report_with_the_volume() {
        let report = parse_storage_report(
            "mounted=yes\nvolume=Started\nbricks=3\nonline=2\nheal_pending=5\nsplit_brain=0\n",
        );
        assert_eq!(
            report,
            StorageReport {
                mounted: Some(true),
                volume: Some(SharedHomeStatus {
                    volume: "Started".into(),
                    bricks: 3,
                    online: 2,
                    heal_pending: 5,
                    split_brain: 0
                }),
            }
        );
    }

    #[test]
    fn a_storage_report_without_the_volume() {
        assert_eq!(
            parse_storage_report("mounted=no\n"),
            StorageReport { mounted: Some(false), volume: None }
        );
        // Before the first `up` made the volume: no counts, which read as 0.
        let none = parse_storage_report("mounted=no\nvolume=none\n").volume.unwrap();
        assert_eq!((none.volume.as_str(), none.bricks, none.online), ("none", 0, 0));
        // Lines that are not key=value, and counts that are not numbers, are ignored.
        let odd = parse_storage_report("gluster says hi\nvolume=Started\nbricks=three\n").volume.unwrap();
        assert_eq!(odd.bricks, 0);
        assert_eq!(parse_storage_report(""), StorageReport::default());
    }
}
