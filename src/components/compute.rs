//! Compute nodes: one slurmd container per node, a Slurm dynamic node that registers
//! itself (`slurmd -Z`) with the CPUs, memory and features in its [`NodeConf`]. On one
//! engine they are `node1..N`; over several hosts (or in macvlan mode) they are named
//! after their host: `pi1`, or `pi1-1`, `pi1-2`, ... with several per host.

use std::time::Duration;

use super::HostFacts;
use super::PartError;
use super::{Config, Layout, NodeContainer, gpus, home, munge};
use crate::actions;
use crate::apply::Apply;
use crate::contract;
use crate::plan::{COMPUTE_FEATURE, COMPUTE_PREFIX, HostPlan, LABEL_GPUS, LABEL_GRES, Plan, Role};
use crate::render::NodeConf;

/// `(host, name)` of every compute node, host by host.
pub fn node_names(hosts: &[HostPlan], per_host: u32, named_after_host: bool) -> Vec<(usize, String)> {
    let per_host = per_host as usize;
    (0..hosts.len())
        .flat_map(|host| (1..=per_host).map(move |i| (host, i)))
        .map(|(host, i)| {
            let name = match (named_after_host, per_host) {
                (false, _) => format!("{COMPUTE_PREFIX}{i}"),
                (true, 1) => hosts[host].name.clone(),
                (true, _) => format!("{}-{i}", hosts[host].name),
            };
            (host, name)
        })
        .collect()
}

/// What a node on a host with these facts registers with.
pub fn node_conf(layout: &Layout, facts: &HostFacts) -> NodeConf {
    let compute = &layout.spec.compute;
    NodeConf {
        // Enough CPUs for the article's job (8 tasks on 2 nodes) even on small hosts.
        cpus: compute.cpus.unwrap_or(facts.cpus.max(4)),
        // Without `memory_mb` every node on a host declares all of its memory, which is
        // what its container has (its limit is the host's): each job is held to its
        // share, the nodes together are not. Not divided by the node count, so growing
        // the cluster leaves existing nodes alone; `memory_mb` caps each node.
        real_memory_mib: compute.memory_mb.unwrap_or(facts.memory_mib.max(1)),
        features: vec![COMPUTE_FEATURE.into(), facts.arch.to_string()],
        gres: vec![],
    }
}

pub fn add(layout: &Layout, config: &Config, plan: &mut Plan) {
    for placed in &layout.nodes {
        let mut conf = node_conf(layout, &layout.facts[placed.host]);
        let gpus = gpus::of_node(layout, placed);
        if !gpus.is_empty() {
            conf.features.push(gpus::GPU_FEATURE.into());
            conf.gres = gpus::gres(layout, &gpus);
        }
        let mut container = layout.node_container(
            config,
            NodeContainer {
                placed,
                role: Role::Compute,
                mounts: vec![
                    munge::mount(layout, layout.controllers.iter().any(|c| c.host == placed.host)),
                    home::mount(layout),
                ],
                env: vec![format!("{}={conf}", contract::env::NODE_CONF)],
                files: vec![],
            },
        );
        if !conf.gres.is_empty() {
            let gres: Vec<String> = conf.gres.iter().map(|(name, n)| format!("{name}:{n}")).collect();
            container.labels.insert(LABEL_GRES.into(), gres.join(","));
            container.labels.insert(LABEL_GPUS.into(), gpus.describe());
        }
        container.devices = gpus.devices();
        plan.containers.push(container);
        plan.compute_nodes.push(placed.name.clone());
    }
}

/// Dynamic nodes stay registered until deleted: Slurm forgets the ones that went away,
/// and the ones being replaced (they may register with other resources), before the
/// new containers start.
pub async fn before_start<E: crate::engine::Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    if apply.gone_nodes.is_empty() {
        return Ok(());
    }
    apply.say("removing nodes from Slurm");
    apply.start_controller().await?;
    let controller = &apply.plan.controller().name;
    actions::wait_for_controller(apply.control(), controller, Duration::from_secs(60)).await?;
    actions::delete_nodes(apply.control(), controller, &apply.gone_nodes).await?;
    Ok(())
}
