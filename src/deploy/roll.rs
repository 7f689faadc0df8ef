//! Rolling changes: compute nodes whose containers `up` must make again while they run
//! jobs are changed a few at a time (`[compute] max_unavailable`), after everything
//! else. Each is drained (`scontrol update state=drain reason="slurmbox: ..."`), its
//! jobs end (or are requeued with `--requeue`), then its container is removed, Slurm
//! forgets the node, the new container starts and registers, and the next node goes.
//!
//! A job may run for a week: with `--drain-timeout` the nodes still busy then are left
//! draining with their reason, and the next `up` (which finds their containers still
//! outdated) finishes them. A node drained with such a reason whose container is
//! already up to date (a change interrupted after it was made) is resumed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::DeployError;
use crate::apply::Apply;
use crate::components::compute;
use crate::contract;
use crate::engine::{ContainerInfo, Engine};
use crate::plan::{Change, ContainerPlan, Plan, Role};
use crate::progress::{Progress, Step};
use crate::slurm::{CHANGE_REASON, Job, Node, NodeUpdate, Slurm, SlurmError};

/// How `up` changes compute nodes that run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// All at once, ending whatever runs in them (`up --now`).
    Now,
    /// A few at a time, each once its jobs have left.
    Rolling(Rolling),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rolling {
    /// Nodes out of service at a time (at least 1).
    pub max_unavailable: usize,
    /// How long to wait for jobs, over the whole change; `None`: as long as they run.
    pub drain_timeout: Option<Duration>,
    /// Requeue batch jobs instead of waiting for them.
    pub requeue: bool,
}

impl Default for Rollout {
    fn default() -> Rollout {
        Rollout::Rolling(Rolling { max_unavailable: 1, drain_timeout: None, requeue: false })
    }
}

/// A running compute node whose container must be made again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outdated {
    /// Its container's name.
    pub container: String,
    /// Its Slurm name.
    pub node: String,
}

/// Takes out of `changes` the compute containers that run and must be made again: the
/// ones a rolling change makes, after the rest. `found` is what the engines listed.
pub fn take_running_nodes(changes: &mut Vec<Change>, found: &[(usize, ContainerInfo)]) -> Vec<Outdated> {
    let mut outdated = Vec::new();
    changes.retain(|change| {
        let Change::Recreate(name) = change else { return true };
        let Some((_, info)) = found.iter().find(|(_, c)| &c.name == name) else { return true };
        match info.node() {
            Some(node) if info.is(Role::Compute) && info.running() => {
                outdated.push(Outdated { container: name.clone(), node: node.to_string() });
                false
            }
            _ => true,
        }
    });
    outdated
}

/// Resumes the nodes slurmbox drained for a change that is already made (their
/// containers are not among `outdated`): an earlier `up` stopped in between.
pub async fn resume_finished<E: Engine>(
    slurm: &Slurm<'_, E>,
    outdated: &[Outdated],
    p: &Progress,
) -> Result<(), SlurmError> {
    let nodes = slurm.nodes().await?;
    let done: Vec<String> = nodes
        .iter()
        .filter(|n| n.drained_for_change() && !outdated.iter().any(|o| o.node == n.name))
        .map(|n| n.name.clone())
        .collect();
    if !done.is_empty() {
        p.say(format!("Resuming {} (drained for a change already made)", done.join(", ")));
        slurm.update_nodes(&done, NodeUpdate::Resume).await?;
    }
    Ok(())
}

/// What a node being changed waits for: its jobs, by id, with their users.
fn waiting_for(node: &str, jobs: &[Job]) -> String {
    let list: Vec<String> = jobs.iter().map(|j| format!("{} (user {})", j.id, j.user)).collect();
    let s = if jobs.len() == 1 { "" } else { "s" };
    format!("{node}: waiting for job{s} {}", list.join(", "))
}

/// What changed for a node, as its drain reason says it: the image, CPUs, memory
/// (what Slurm knows of the node against what the plan gives it).
fn what_changed(planned: &ContainerPlan, info: Option<&ContainerInfo>, known: Option<&Node>) -> String {
    let mut what = Vec::new();
    if let Some(info) = info.filter(|i| i.image != planned.image) {
        what.push(format!("image {} -> {}", info.image, planned.image));
    }
    let conf = planned.env.iter().find_map(|e| e.strip_prefix(&format!("{}=", contract::env::NODE_CONF)));
    let declared = |key: &str| {
        conf.and_then(|c| {
            c.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok())
        })
    };
    if let Some(node) = known {
        if let Some(cpus) = declared("CPUs").filter(|c| *c != u64::from(node.cpus)) {
            what.push(format!("CPUs {} -> {cpus}", node.cpus));
        }
        if let Some(mem) = declared("RealMemory").filter(|m| *m != node.memory_mib) {
            what.push(format!("memory {} -> {mem} MiB", node.memory_mib));
        }
    }
    if what.is_empty() {
        what.push("its container's definition changed".into());
    }
    format!("{CHANGE_REASON} {}", what.join(", "))
}

/// What a rolling change left for the next `up`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unfinished {
    /// Nodes left draining, each with what it waits for.
    pub draining: Vec<String>,
    /// Nodes not reached yet, in service as they were.
    pub untouched: Vec<String>,
}

/// Changes `outdated` compute nodes, `rolling.max_unavailable` at a time, once their
/// jobs leave; `found` is what the engines listed, `wait` how long a new node may take
/// to be ready. Returns what is left when `--drain-timeout` passed.
pub async fn roll<E: Engine>(
    engines: &[E],
    plan: &Plan,
    found: &[(usize, ContainerInfo)],
    outdated: Vec<Outdated>,
    rolling: &Rolling,
    wait: Duration,
    p: &Progress,
) -> Result<Option<Unfinished>, DeployError> {
    let control = plan.controller();
    let slurm = Slurm::new(&engines[control.host], &control.name);
    let known = slurm.nodes().await?;
    let busy: BTreeSet<String> = slurm.jobs().await?.into_iter().flat_map(|j| j.nodes).collect();
    // Nodes already drained for it first (they are out of service anyway), then idle
    // ones, then the busy.
    let mut queue: Vec<Outdated> = outdated;
    queue.sort_by_key(|o| {
        let node = known.iter().find(|n| n.name == o.node);
        (!node.is_some_and(Node::drained_for_change), busy.contains(&o.node))
    });
    let max = rolling.max_unavailable.max(1);
    let step = p.step(format!(
        "Changing {} running compute node{}, {max} at a time",
        queue.len(),
        if queue.len() == 1 { "" } else { "s" }
    ));
    let started = Instant::now();
    let mut pending: VecDeque<Outdated> = queue.into();
    let mut draining: Vec<Outdated> = Vec::new();
    let mut said: BTreeMap<String, String> = BTreeMap::new();
    let mut requeued: BTreeSet<u64> = BTreeSet::new();
    let mut changed = 0;
    loop {
        while draining.len() < max
            && let Some(next) = pending.pop_front()
        {
            let planned = plan.containers.iter().find(|c| c.name == next.container).expect("planned");
            let info = found.iter().map(|(_, c)| c).find(|c| c.name == next.container);
            let node = known.iter().find(|n| n.name == next.node);
            let reason = what_changed(planned, info, node);
            if node.is_some() {
                slurm
                    .update_nodes(std::slice::from_ref(&next.node), NodeUpdate::Drain { reason: &reason })
                    .await?;
            }
            step.note(format!(
                "{}: draining ({})",
                next.node,
                reason.trim_start_matches(CHANGE_REASON).trim()
            ));
            draining.push(next);
        }
        if draining.is_empty() {
            break;
        }
        let mut free = Vec::new();
        let mut waits = Vec::new();
        for o in &draining {
            // A node Slurm does not know (its slurmd never registered) runs no job.
            if !known.iter().any(|n| n.name == o.node) {
                free.push(o.clone());
                continue;
            }
            let mut jobs = slurm.jobs_on(std::slice::from_ref(&o.node)).await?;
            if rolling.requeue {
                for job in &jobs {
                    if !requeued.insert(job.id) {
                        continue;
                    }
                    match slurm.requeue(job.id).await {
                        Ok(()) => {
                            step.note(format!("{}: requeued job {} (user {})", o.node, job.id, job.user))
                        }
                        Err(SlurmError::Failed { stderr, .. }) => step.note(format!(
                            "{}: job {} cannot be requeued ({stderr}): waiting",
                            o.node, job.id
                        )),
                        Err(e) => return Err(e.into()),
                    }
                }
                jobs = slurm.jobs_on(std::slice::from_ref(&o.node)).await?;
            }
            if jobs.is_empty() {
                free.push(o.clone());
            } else {
                let line = waiting_for(&o.node, &jobs);
                if said.get(&o.node) != Some(&line) {
                    step.note(&line);
                    said.insert(o.node.clone(), line.clone());
                }
                waits.push(line);
            }
        }
        if !free.is_empty() {
            draining.retain(|o| !free.contains(o));
            replace(engines, plan, found, &free, wait, p, &step).await?;
            changed += free.len();
            continue;
        }
        if rolling.drain_timeout.is_some_and(|limit| started.elapsed() >= limit) {
            step.done_with(format!("{changed} changed, {} waiting for jobs", draining.len()));
            return Ok(Some(Unfinished {
                draining: waits,
                untouched: pending.into_iter().map(|o| o.node).collect(),
            }));
        }
        step.message(format!("{} ({}s)", waits.join("; "), started.elapsed().as_secs()));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    step.done_with(format!("{changed} changed"));
    Ok(None)
}

/// Makes the containers of `nodes` again (they run no job and take none): removed,
/// forgotten by Slurm, created with their files and started, then waited for until
/// they take jobs.
async fn replace<E: Engine>(
    engines: &[E],
    plan: &Plan,
    found: &[(usize, ContainerInfo)],
    nodes: &[Outdated],
    wait: Duration,
    p: &Progress,
    step: &Step,
) -> Result<(), DeployError> {
    let names: Vec<String> = nodes.iter().map(|o| o.node.clone()).collect();
    step.message(format!("making {} again", names.join(", ")));
    let changes: Vec<Change> = nodes.iter().map(|o| Change::Recreate(o.container.clone())).collect();
    let mut applied = Apply::new(engines, plan, &changes, p, step);
    // What runs after the start concerns the whole cluster, which the first part of
    // `up` has done.
    super::prepare(&mut applied, found).await?;
    applied.start_the_rest().await?;
    // Slurm forgot the node before its new container started: it registers afresh,
    // in service (not drained).
    compute::wait_for_nodes(engines, plan, &names, wait, |_, _| {}).await?;
    step.note(format!("{}: changed", names.join(", ")));
    Ok(())
}
