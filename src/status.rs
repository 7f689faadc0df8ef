//! What a cluster is right now, for `slurmbox status`: its hosts (reachable or not,
//! their engines, images and nodes), each node's container and Slurm state, the jobs
//! in the queue, and what each part of the cluster adds (the GlusterFS /home's health,
//! a controller's unclean start); and for `slurmbox doctor`: what each host offers and
//! each compute node enforces.
//!
//! [`gather`] and [`doctor`] ask the [`Model`] once and then every part for its share;
//! what could not be asked is kept with its reason, not left out. Printing (tables and
//! `--json`) is the commands' business.

use std::collections::BTreeSet;

use crate::cluster::report::{ClusterStatus, DoctorReport, HostDoctor, HostStatus, JobStatus, NodeStatus};
use crate::cluster::{Cluster, Model};
use crate::components::PARTS;
use crate::plan::{LABEL_GPUS, LABEL_GRES, LABEL_LIMITS, LABEL_SSH_PORT, Role, runs_on_host};
use crate::slurm::CHANGE_REASON;
use crate::spec::ClusterSpec;

/// Asks every part of the cluster at once what it is now.
pub async fn gather(cluster: &Cluster) -> miette::Result<ClusterStatus> {
    let model = cluster.model().await?;
    let mut status = base(cluster, &model);
    for part in PARTS {
        part.status(cluster, &model, &mut status).await;
    }
    Ok(status)
}

/// What the engines and the controller say, before the parts add theirs.
fn base(cluster: &Cluster, model: &Model) -> ClusterStatus {
    let slurm = model.slurm.as_ref().ok();
    let found = |node: &str| slurm.and_then(|s| s.nodes.iter().find(|n| n.name == node));
    let state = |node: &str| found(node).map(|n| n.state.to_string());
    // Drained by `up` for a change, with what changes.
    let change = |node: &str| {
        found(node)
            .filter(|n| n.drained_for_change())
            .and_then(|n| n.reason.as_deref())
            .map(|r| r.trim_start_matches(CHANGE_REASON).trim().to_string())
    };
    let mut nodes: Vec<NodeStatus> = model
        .containers
        .iter()
        .map(|c| {
            let node = c.node().unwrap_or_default().to_string();
            NodeStatus {
                host: cluster.hosts[c.host].name.clone(),
                slurm_state: state(&node),
                waiting_for_change: change(&node),
                role: c.role().map(|r| r.as_str().to_string()).unwrap_or_default(),
                node,
                container: Some(c.name.clone()),
                container_state: c.state.clone(),
                container_status: c.status.clone(),
                limits: c.labels.get(LABEL_LIMITS).cloned(),
                gres: c.labels.get(LABEL_GRES).cloned(),
                gpus: c.labels.get(LABEL_GPUS).cloned(),
                ssh_port: c.labels.get(LABEL_SSH_PORT).and_then(|p| p.parse().ok()),
            }
        })
        .collect();
    // Nodes on hosts that did not answer, as far as Slurm knows them (over several
    // hosts compute nodes are named after their host).
    for (host, _) in cluster.unreachable() {
        for node in slurm.into_iter().flat_map(|s| &s.nodes).filter(|n| runs_on_host(&n.name, &host.name)) {
            nodes.push(NodeStatus {
                host: host.name.clone(),
                node: node.name.clone(),
                role: Role::Compute.as_str().into(),
                container: None,
                container_state: "unknown".into(),
                container_status: "host unreachable".into(),
                slurm_state: Some(node.state.to_string()),
                waiting_for_change: None,
                limits: None,
                gres: None,
                gpus: None,
                ssh_port: None,
            });
        }
    }
    let hosts = cluster
        .hosts
        .iter()
        .zip(&model.infos)
        .enumerate()
        .map(|(i, (h, info))| {
            let images: BTreeSet<String> =
                model.containers.iter().filter(|c| c.host == i).map(|c| c.image.clone()).collect();
            HostStatus {
                host: h.name.clone(),
                engine: h.url.clone().unwrap_or_else(|| "local".into()),
                reachable: h.engine.is_ok(),
                error: h.engine.as_ref().err().map(ToString::to_string),
                docker_version: info.as_ref().ok().map(|i| i.version.clone()),
                arch: info.as_ref().ok().map(|i| i.arch.clone()),
                info_error: info.as_ref().err().filter(|_| h.engine.is_ok()).cloned(),
                images: images.into_iter().collect(),
                nodes: nodes.iter().filter(|n| n.host == h.name).map(|n| n.node.clone()).collect(),
                home_mounted: None,
                home_error: None,
            }
        })
        .collect();
    let jobs = slurm
        .into_iter()
        .flat_map(|s| &s.jobs)
        .map(|j| JobStatus {
            id: j.id,
            name: j.name.clone(),
            user: j.user.clone(),
            partition: j.partition.clone(),
            state: j.state.to_string(),
            reason: j.reason.clone(),
            nodes: j.nodes.clone(),
        })
        .collect();
    ClusterStatus {
        cluster: cluster.name.clone(),
        hosts,
        nodes,
        shared_home: None,
        slurm_error: model.slurm.as_ref().err().cloned(),
        controller_unclean_start: None,
        controllers: Vec::new(),
        rest_url: None,
        web_url: None,
        jobs,
        metrics: None,
    }
}

/// Asks every part what the hosts offer and the nodes enforce.
pub async fn doctor(cluster: &Cluster, spec: &ClusterSpec) -> miette::Result<DoctorReport> {
    let model = cluster.model().await?;
    let hosts = cluster
        .hosts
        .iter()
        .map(|h| HostDoctor {
            host: h.name.clone(),
            cgroup: String::new(),
            can_enforce: Err("its engine did not answer".into()),
            gpus: None,
        })
        .collect();
    let mut report = DoctorReport { cluster: cluster.name.clone(), hosts, ..Default::default() };
    for part in PARTS {
        part.doctor(cluster, &model, spec, &mut report).await;
    }
    Ok(report)
}
