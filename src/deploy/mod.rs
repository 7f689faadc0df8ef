//! Deploying a cluster: everything `up`, `host add`, `host remove` and `config render`
//! do through the engines, in one place.
//!
//! [`up`]: reach every host and learn its facts ([`hosts`]), have the images there,
//! build the [`Plan`], then [`converge`]: networks and volumes, the containers that
//! must change ([`crate::plan::converge`] decides, [`apply`] carries it out, each part
//! of the cluster doing its own work before and after the containers start, see
//! [`crate::components`]), and wait until every compute node takes jobs.
//! Everything past reaching the hosts is generic over [`Engine`], so the deploy logic
//! is unit-tested with [`crate::engine::recording::RecordingEngine`].

mod controllers;
pub mod hosts;
pub mod remove;
pub mod roll;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::Duration;

use miette::Diagnostic;

use crate::apply::Apply;

use crate::components::{PARTS, PartError, compute, login, rest, web};
use crate::engine::{Engine, EngineError};
use crate::image::ImageError;
use crate::plan::{self, Existing, LABEL_HASH, Plan};
use crate::progress::Progress;
use crate::slurm::Slurm;
use crate::spec::ClusterSpec;
use roll::{Rolling, Rollout};

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum DeployError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Part(#[from] PartError),
}

impl From<crate::slurm::SlurmError> for DeployError {
    fn from(e: crate::slurm::SlurmError) -> Self {
        DeployError::Part(PartError::Slurm(e))
    }
}

impl DeployError {
    /// Whether the spec must change first (the exit module makes that exit 2).
    pub fn is_usage(&self) -> bool {
        match self {
            DeployError::Part(e) => e.is_usage(),
            DeployError::Image(e) => e.is_usage(),
            DeployError::Engine(_) => false,
        }
    }
}

/// How `up` goes about it (from its flags).
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Go on without hosts that do not answer (never the controller's).
    pub skip_unreachable: bool,
    /// How long the compute nodes may take to be ready.
    pub wait: Duration,
    /// Where images come from (a site registry, the Debian mirror they are built from).
    pub sources: crate::image::Sources,
    /// The local engine's address where the Docker client's defaults do not find it
    /// (see [`crate::settings::Settings::local_engine`]).
    pub local_engine: Option<String>,
    /// slurmbox's cache folder, where the image build lock lives.
    pub cache_dir: std::path::PathBuf,
    /// How long to wait for jobs on compute nodes being changed (`--drain-timeout`).
    pub drain_timeout: Option<Duration>,
    /// Requeue their batch jobs instead (`--requeue`).
    pub requeue: bool,
    /// Make them again at once, whatever runs there (`--now`).
    pub now: bool,
}

impl UpOptions {
    /// How compute nodes that run are changed: the flags, and the spec's
    /// `max_unavailable`.
    pub fn rollout(&self, spec: &ClusterSpec) -> Rollout {
        if self.now {
            return Rollout::Now;
        }
        Rollout::Rolling(Rolling {
            max_unavailable: spec.compute.max_unavailable as usize,
            drain_timeout: self.drain_timeout,
            requeue: self.requeue,
        })
    }
}

/// Brings the cluster of `spec` to what the spec says, on every host that answers, and
/// returns the plan it carried out.
pub async fn up(spec: &ClusterSpec, options: &UpOptions, p: &Progress) -> Result<Plan, DeployError> {
    let hosts = spec.hosts.len().max(1);
    let nodes = hosts as u32 * spec.compute.count;
    p.say(format!(
        "Bringing up cluster {:?}: Slurm {}, {nodes} compute node{}{}",
        spec.name,
        spec.slurm,
        if nodes == 1 { "" } else { "s" },
        if spec.hosts.len() > 1 { format!(" on {hosts} hosts") } else { String::new() },
    ));
    let reached = hosts::reach(spec, options.skip_unreachable, options.local_engine.as_deref(), p).await?;
    let mut facts = hosts::images(spec, &reached, options, p).await?;
    hosts::probe_gpus(spec, &reached, &mut facts, p).await;
    // The ports published on the controller's host (the login node's sshd,
    // slurmrestd, the dashboard): several clusters there each get their own, unless the
    // spec names one. Each: its container's name, the spec's port, what takes it.
    let published = [
        (crate::plan::LOGIN_HOST, spec.login.ssh_port, "the login node"),
        (rest::REST_HOST, spec.rest.port, "slurmrestd"),
        (web::WEB_HOST, spec.web.port, "the dashboard"),
    ];
    let mut avoid: [BTreeSet<u16>; 3] = Default::default();
    loop {
        let engine = &reached.engines[0];
        facts[0].ssh_port =
            login::choose_ssh_port(spec.login.ssh_port, &login::ports(engine, &spec.name).await?, &avoid[0]);
        facts[0].rest_port =
            rest::choose_port(spec.rest.port, &rest::ports(engine, &spec.name).await?, &avoid[1]);
        facts[0].web_port =
            web::choose_port(spec.web.port, &web::ports(engine, &spec.name).await?, &avoid[2]);
        let plan = crate::components::plan(spec, &facts).without_hosts(&reached.skipped);
        if avoid.iter().all(BTreeSet::is_empty) {
            // Plainly, either way: a cluster that cannot enforce limits still comes up.
            p.say(format!("Limits: {}", plan.limits.summary()));
        }
        // Taken since it was chosen (another `up` at the same moment) or by a program:
        // the next free one, where `up` chose it.
        match converge(&reached.engines, &plan, options.wait, options.rollout(spec), p).await {
            Err(DeployError::Engine(EngineError::PortTaken { port, container })) => {
                let which =
                    published.iter().position(|(host, _, _)| container == format!("{}-{host}", spec.name));
                match which {
                    Some(i) if published[i].1.is_none() && avoid[i].len() < 20 => {
                        p.say(format!(
                            "Port {port} is in use on the controller's host: {} takes another",
                            published[i].2
                        ));
                        avoid[i].insert(port);
                    }
                    _ => return Err(EngineError::PortTaken { port, container }.into()),
                }
            }
            done => return done.map(|()| plan),
        }
    }
}

/// The containers `apply` makes (again) up to their start: those it replaces removed
/// (`found`: what the engines listed), the new ones created with their files, and what
/// each part does then and before they start (a key to another host, a password).
async fn prepare<E: Engine>(
    apply: &mut Apply<'_, E>,
    found: &[(usize, crate::engine::ContainerInfo)],
) -> Result<(), PartError> {
    apply.remove_outdated(found).await?;
    apply.create().await?;
    for part in PARTS {
        part.on_created(apply).await?;
    }
    for part in PARTS {
        part.before_start(apply).await?;
    }
    Ok(())
}

/// Makes what runs on `engines` (one per host of the plan, in its order) match the plan,
/// then waits for the compute nodes. Compute nodes that run and must be made again
/// go last, as `rollout` says (see [`roll`]).
pub async fn converge<E: Engine>(
    engines: &[E],
    plan: &Plan,
    wait: Duration,
    rollout: Rollout,
    p: &Progress,
) -> Result<(), DeployError> {
    for part in PARTS {
        part.check(engines, plan).await?;
    }
    let step = p.step("Network and volumes");
    for network in &plan.networks {
        engines[network.host].ensure_network(network).await?;
    }
    for v in &plan.volumes {
        engines[v.host].ensure_volume(v).await?;
    }
    let network = plan.networks.first().map_or("host networks", |n| n.name.as_str());
    step.done_with(format!("{network}, {} volumes", plan.volumes.len()));

    let step = p.step("Containers");
    let mut found = Vec::new();
    for (host, engine) in engines.iter().enumerate() {
        found.extend(engine.list_containers(&plan.cluster).await?.into_iter().map(|c| (host, c)));
    }
    let existing: Vec<Existing> = found
        .iter()
        .map(|(_, c)| Existing {
            running: c.running(),
            spec_hash: c.labels.get(LABEL_HASH).cloned(),
            name: c.name.clone(),
        })
        .collect();
    let mut changes = plan::converge(plan, &existing);
    // Slurm's order: slurmdbd, the controllers, the login node, then compute nodes
    // that run jobs, a few at a time.
    let (outdated, backup_first) = match rollout {
        Rollout::Now => (Vec::new(), None),
        Rollout::Rolling(_) => (
            roll::take_running_nodes(&mut changes, &found),
            controllers::take_backup(plan, &mut changes, &found),
        ),
    };
    let changed = !changes.is_empty() || !outdated.is_empty() || backup_first.is_some();
    if let Some(backup) = &backup_first {
        controllers::replace_first(engines, plan, backup, &found, p, &step).await?;
    }
    let mut applied = Apply::new(engines, plan, &changes, p, &step);
    applied.rolling = outdated.iter().map(|o| o.container.clone()).collect();
    prepare(&mut applied, &found).await?;
    let mut summary = applied.start_the_rest().await?;
    if !outdated.is_empty() {
        summary.push_str(&format!(", {} to change node by node", outdated.len()));
    }
    step.done_with(summary);
    for part in PARTS {
        part.after_start(&mut applied).await?;
    }

    let control = plan.controller();
    let slurm = Slurm::new(&engines[control.host], &control.name);
    // Nodes drained for a change that is made (or undone) go back in service.
    crate::components::controller::wait_for_controller(&engines[control.host], &control.name, wait).await?;
    roll::resume_finished(&slurm, &outdated, p).await?;
    let ready: Vec<String> =
        plan.compute_nodes.iter().filter(|n| !outdated.iter().any(|o| &o.node == *n)).cloned().collect();
    let step = p.step(format!("Waiting for {} compute nodes to be idle", ready.len()));
    compute::wait_for_nodes(engines, plan, &ready, wait, |ready, all| {
        step.message(format!("{ready}/{all} ready"))
    })
    .await?;
    step.done();

    if let Rollout::Rolling(rolling) = rollout
        && !outdated.is_empty()
        && let Some(left) = roll::roll(engines, plan, &found, outdated, &rolling, wait, p).await?
    {
        p.say("The drain timeout passed: these nodes wait for their jobs, draining (no new jobs):");
        for line in &left.draining {
            p.say(format!("  {line}"));
        }
        if !left.untouched.is_empty() {
            p.say(format!("  not changed yet (in service as they were): {}", left.untouched.join(", ")));
        }
        p.say("Run `slurmbox up` again to finish the change once those jobs end (`slurmbox status` shows them).");
    }
    // A controller back from a crash, or a backup taking over, reads its nodes there.
    if changed && let Some(node) = plan.compute_nodes.first() {
        let step = p.step("Controller state: nodes and associations written");
        let accounting = plan.slurm_conf.accounting.is_some();
        crate::components::controller::wait_state_written(
            &engines[control.host],
            &control.name,
            node,
            accounting,
        )
        .await?;
        step.done();
    }
    Ok(())
}
