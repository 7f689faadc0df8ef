//! Compute nodes: one slurmd container per node, a Slurm dynamic node that registers
//! itself (`slurmd -Z`) with the CPUs, memory and features in its [`NodeConf`]. On one
//! engine they are `node1..N`; over several hosts (or in macvlan mode) they are named
//! after their host: `pi1`, or `pi1-1`, `pi1-2`, ... with several per host.

use std::convert::Infallible;
use std::time::Duration;

use super::HostFacts;
use super::PartError;
use super::{Config, Layout, NodeContainer, controller, gpus, home, munge};
use crate::apply::Apply;
use crate::contract;
use crate::engine::{Engine, ExecSpec};
use crate::plan::{COMPUTE_FEATURE, COMPUTE_PREFIX, HostPlan, LABEL_GPUS, LABEL_GRES, Plan, Role};
use crate::render::NodeConf;
use crate::slurm::{Node, Slurm, SlurmError};
use crate::wait::{self, Poll};

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
                    // Beside the primary controller its key is read as it is; elsewhere
                    // slurmbox writes a copy (a backup controller's host too).
                    munge::mount(layout, placed.host == layout.controller().host),
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
pub async fn before_start<E: Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    if apply.gone_nodes.is_empty() {
        return Ok(());
    }
    apply.say("removing nodes from Slurm");
    apply.start_controller().await?;
    let controller = &apply.plan.controller().name;
    controller::wait_for_controller(apply.control(), controller, Duration::from_secs(60)).await?;
    delete_nodes(apply.control(), controller, &apply.gone_nodes).await?;
    Ok(())
}

/// Waits until the compute nodes `nodes` of the plan answer and are ready for jobs. On
/// timeout the error names each node that is not, with Slurm's reason and the tail of
/// its container's log.
pub async fn wait_for_nodes<E: Engine>(
    engines: &[E],
    plan: &Plan,
    nodes: &[String],
    timeout: Duration,
    mut on_poll: impl FnMut(usize, usize),
) -> Result<(), PartError> {
    let engine = &engines[plan.controller().host];
    let slurm = Slurm::new(engine, &plan.controller().name);
    let login = Slurm::new(engine, &plan.login().name);
    let awaited = nodes;
    let ready = async || {
        // Not answering yet counts as no node ready.
        let nodes = slurm.nodes().await.unwrap_or_default();
        let ready = awaited.iter().filter(|n| is_ready(&nodes, n)).count();
        on_poll(ready, awaited.len());
        // The login node is ready once its client commands reach the controller.
        let all = ready == awaited.len() && login.answers().await;
        Ok::<_, Infallible>(if all { Poll::Ready(()) } else { Poll::NotYet(nodes) })
    };
    let Err(waited) = wait::until(timeout, Duration::from_millis(100), ready).await else {
        return Ok(());
    };
    Err(PartError::NodesNotReady {
        cluster: plan.cluster.clone(),
        waited: timeout.as_secs(),
        report: not_ready(engines, plan, awaited, &login, &waited.timeout().last).await,
    })
}

/// Whether `node` is among `nodes` and ready for jobs.
fn is_ready(nodes: &[Node], node: &str) -> bool {
    nodes.iter().find(|n| n.name == node).is_some_and(|n| n.state.is_ready())
}

/// What is not ready, as `nodes` (the last look) and the login node show: each with
/// Slurm's state and reason and the last lines of its log.
async fn not_ready<E: Engine>(
    engines: &[E],
    plan: &Plan,
    awaited: &[String],
    login: &Slurm<'_, E>,
    nodes: &[Node],
) -> String {
    let engine = &engines[plan.controller().host];
    let mut report = String::new();
    if !login.answers().await {
        let tail = engine.logs(&plan.login().name, "15").await.unwrap_or_else(|e| e.to_string());
        report
            .push_str("  login: its Slurm commands cannot reach the controller\n  last lines of its log:\n");
        for line in tail.lines() {
            report.push_str(&format!("    | {line}\n"));
        }
    }
    for node in awaited {
        if is_ready(nodes, node) {
            continue;
        }
        let found = nodes.iter().find(|n| &n.name == node);
        let state = found.map_or("not registered".to_string(), |n| n.state.to_string());
        let reason = found.and_then(|n| n.reason.as_deref()).unwrap_or("-");
        // The node's log lives on its own host's engine.
        let tail = match plan.containers.iter().find(|c| &c.hostname == node) {
            Some(c) => engines[c.host].logs(&c.name, "15").await.unwrap_or_else(|e| e.to_string()),
            None => String::new(),
        };
        report.push_str(&format!("  {node}: {state} (reason: {reason})\n  last lines of its log:\n"));
        for line in tail.lines() {
            report.push_str(&format!("    | {line}\n"));
        }
    }
    report
}

/// Makes running compute nodes register with the controller again: Slurm forgets them
/// (refused, and harmless, while they run jobs) and their slurmd, on SIGHUP, re-reads
/// its configuration and registers, without disturbing running job steps.
/// Each node is (its host's engine, its container, its Slurm name).
pub async fn reregister_nodes<E: Engine>(
    control: &E,
    controller: &str,
    nodes: &[(&E, &str, &str)],
) -> Result<(), PartError> {
    let slurm = Slurm::new(control, controller);
    for (engine, container, node) in nodes {
        match slurm.delete_node(node).await {
            // Refused while it runs jobs: it stays known, which is what re-registering wants.
            Ok(_) | Err(SlurmError::Failed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let root = ExecSpec { user: Some("root".into()), ..ExecSpec::new(["pkill", "-HUP", "-x", "slurmd"]) };
        engine.exec(container, &root).await?;
    }
    Ok(())
}

/// Forgets compute nodes that no longer exist (dynamic nodes stay registered until
/// deleted). A node Slurm does not know is not an error.
pub async fn delete_nodes(engine: &impl Engine, controller: &str, nodes: &[String]) -> Result<(), PartError> {
    let slurm = Slurm::new(engine, controller);
    for node in nodes {
        slurm.delete_node(node).await?;
    }
    Ok(())
}
