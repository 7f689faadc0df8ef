//! Taking a host out of a running cluster (`slurmbox host remove`): drain its nodes,
//! wait for (or with `force`, end) their jobs, take its brick out of a GlusterFS
//! /home, remove its containers and volumes, and have Slurm forget its nodes. A host
//! that does not answer can only leave by force: its nodes are then found in Slurm.

use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use miette::Diagnostic;

use super::DeployError;
use crate::components::{PartError, compute, glusterfs};
use crate::engine::{ContainerInfo, Engine};
use crate::plan::{Role, runs_on_host};
use crate::progress::Progress;
use crate::slurm::{NodeUpdate, Slurm, SlurmError};
use crate::wait::{self, Poll, Timeout, Waited};

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum RemoveError {
    #[error("host {host:?} cannot be reached: {reason}")]
    #[diagnostic(help(
        "bring it back and run this again, or add --force to take it out of the spec anyway (its containers then \
         stay on it until you remove them there)"
    ))]
    Unreachable { host: String, reason: String },
    #[error("jobs {jobs} still run on {host:?} after {waited}s")]
    #[diagnostic(help(
        "its nodes stay drained (no new jobs): wait longer with --wait SECONDS, or --force kills the jobs. \
         `slurmbox exec -- scontrol update nodename={nodes} state=resume` puts them back in service"
    ))]
    Busy { host: String, jobs: String, waited: u64, nodes: String },
    #[error("the cluster has no {0} container")]
    #[diagnostic(help("`slurmbox up` makes the cluster whole again; then remove the host"))]
    Missing(&'static str),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Deploy(#[from] DeployError),
}

impl From<PartError> for RemoveError {
    fn from(e: PartError) -> Self {
        RemoveError::Deploy(e.into())
    }
}

impl From<SlurmError> for RemoveError {
    fn from(e: SlurmError) -> Self {
        RemoveError::Deploy(PartError::from(e).into())
    }
}

impl From<crate::engine::EngineError> for RemoveError {
    fn from(e: crate::engine::EngineError) -> Self {
        RemoveError::Deploy(e.into())
    }
}

/// The host that leaves.
pub struct Leaving<'a, E> {
    pub name: &'a str,
    /// Its address, as the GlusterFS peers know it.
    pub address: &'a str,
    /// Its engine, or why it did not answer.
    pub engine: Result<&'a E, String>,
    /// Its containers (empty when it did not answer).
    pub containers: Vec<&'a ContainerInfo>,
}

#[derive(Debug, Clone)]
pub struct RemoveOptions {
    /// End the jobs there; go on if the host does not answer.
    pub force: bool,
    /// How long to wait for its jobs.
    pub wait: Duration,
    /// Whether the cluster's /home is the GlusterFS volume.
    pub glusterfs: bool,
}

/// Takes `leaving` out of `cluster`, acting on Slurm through the controller's engine
/// `control`; `containers` are the cluster's containers on every host that answered.
/// Returns the Slurm nodes it took out.
pub async fn remove_host<E: Engine>(
    cluster: &str,
    control: &E,
    containers: &[ContainerInfo],
    leaving: Leaving<'_, E>,
    options: &RemoveOptions,
    p: &Progress,
) -> Result<Vec<String>, RemoveError> {
    let controller = containers
        .iter()
        .find(|c| c.is(Role::Controller))
        .map(|c| c.name.clone())
        .ok_or(RemoveError::Missing("controller"))?;
    let slurm = Slurm::new(control, &controller);
    let nodes: Vec<String> = match &leaving.engine {
        Ok(_) => leaving
            .containers
            .iter()
            .filter(|c| c.is(Role::Compute))
            .filter_map(|c| c.node().map(String::from))
            .collect(),
        // Over several hosts a host's compute nodes are named after it (`pi3`, or
        // `pi3-1`, `pi3-2`, ...): ask Slurm which it knows.
        Err(_) if options.force => {
            slurm.node_states().await?.into_keys().filter(|n| runs_on_host(n, leaving.name)).collect()
        }
        Err(reason) => {
            return Err(RemoveError::Unreachable { host: leaving.name.into(), reason: reason.clone() });
        }
    };

    let list =
        if nodes.is_empty() { format!("{} (no nodes left there)", leaving.name) } else { nodes.join(",") };
    let step = p.step(format!("Draining {list} (no new jobs)"));
    let reason = format!("host {} leaving the cluster", leaving.name);
    slurm.update_nodes(&nodes, NodeUpdate::Drain { reason: &reason }).await?;
    step.done();

    let step = p.step(format!("Waiting for jobs on {list}"));
    let started = Instant::now();
    if options.force {
        // DOWN ends the jobs holding the nodes.
        slurm.update_nodes(&nodes, NodeUpdate::Down { reason: &reason }).await?;
    }
    // Killed jobs leave within seconds; --force does not wait for more than that.
    let limit = if options.force { Duration::from_secs(60) } else { options.wait };
    let left = wait::until(limit, Duration::from_secs(1), async || {
        let jobs: Vec<String> = slurm.jobs_on(&nodes).await?.iter().map(|j| j.id.to_string()).collect();
        if jobs.is_empty() {
            return Ok(Poll::Ready(()));
        }
        let s = if jobs.len() == 1 { "" } else { "s" };
        step.message(format!("job{s} {} running, {}s", jobs.join(", "), started.elapsed().as_secs()));
        Ok::<_, SlurmError>(Poll::NotYet(jobs))
    });
    match left.await {
        Ok(()) => step.done_with(format!("none left after {:.0?}", started.elapsed())),
        Err(Waited::TimedOut(Timeout { waited, last: jobs })) => {
            step.fail(format!("{} still running", jobs.len()));
            return Err(RemoveError::Busy {
                host: leaving.name.into(),
                jobs: jobs.join(", "),
                waited: waited.as_secs(),
                nodes: list,
            });
        }
        Err(Waited::Failed(e)) => return Err(e.into()),
    }

    // Its bricks leave the GlusterFS volumes (the shared /home, the controllers' state)
    // while the other hosts still hold every file (each volume is replicated to all of
    // its hosts).
    if options.glusterfs {
        let step = p.step(format!("Taking {}'s GlusterFS bricks out", leaving.name));
        let first = containers
            .iter()
            .find(|c| c.host == 0 && c.is(Role::Storage))
            .ok_or(RemoveError::Missing("storage"))?;
        match glusterfs::remove_storage_peer(control, &first.name, leaving.address).await {
            Ok(()) => step.done(),
            // A host taken out by force may be gone for good: the volume keeps its
            // copies on the other hosts either way.
            Err(e) if options.force => step.fail(format!("{e}; the volume still lists it")),
            Err(e) => return Err(e.into()),
        }
    }

    let step = p.step(format!("Removing {}'s containers and volumes", leaving.name));
    match &leaving.engine {
        Ok(engine) => {
            try_join_all(leaving.containers.iter().map(|c| engine.remove_container(&c.name))).await?;
            let volumes = engine.remove_volumes(cluster).await?;
            step.done_with(format!("{} containers, {} volumes", leaving.containers.len(), volumes.len()));
        }
        Err(_) => step.fail("the host cannot be reached: its containers stay on it"),
    }
    compute::delete_nodes(control, &controller, &nodes).await?;
    Ok(nodes)
}
