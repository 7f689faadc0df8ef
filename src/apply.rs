//! One run of the changes [`crate::plan::converge`] listed, on each container's own
//! engine, as the parts of a cluster see it: what this run creates and starts, and the
//! means to start some containers ahead of the others. The deploy module drives it:
//! removals first, then creations (each container gets its files before it starts),
//! then each part's work around the start (the parts' hooks, which get an [`Apply`]),
//! then everything new or stopped starts at once.
//!
//! It lives below the parts so that they can do their engine work through it without
//! knowing the deploy sequence that calls them.

use futures_util::future::join_all;

use crate::engine::{ContainerInfo, Engine, EngineError, FileUpload};
use crate::plan::{Change, ContainerPlan, Plan, Role};
use crate::progress::{Progress, Step};

/// One run of the changes, as the parts' hooks see it.
pub struct Apply<'a, E> {
    /// One per host of the plan, in its order.
    pub engines: &'a [E],
    pub plan: &'a Plan,
    pub progress: &'a Progress,
    changes: &'a [Change],
    step: &'a Step,
    /// Compute nodes whose containers went away or are replaced: Slurm must forget them.
    pub gone_nodes: Vec<String>,
    /// Containers already started by a hook (the controller, for the others' sake).
    started: Vec<String>,
    /// Running compute containers that a rolling change makes again after this run:
    /// they go on as they are until then (they keep the configuration they have).
    pub rolling: Vec<String>,
}

impl<'a, E: Engine> Apply<'a, E> {
    pub fn new(
        engines: &'a [E],
        plan: &'a Plan,
        changes: &'a [Change],
        progress: &'a Progress,
        step: &'a Step,
    ) -> Apply<'a, E> {
        Apply {
            engines,
            plan,
            progress,
            changes,
            step,
            gone_nodes: Vec::new(),
            started: Vec::new(),
            rolling: Vec::new(),
        }
    }

    /// The controller's engine.
    pub fn control(&self) -> &'a E {
        &self.engines[self.plan.controller().host]
    }

    /// Containers created (or created again) by this run.
    pub fn created(&self) -> Vec<&'a ContainerPlan> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                Change::Create(n) | Change::Recreate(n) => Some(n),
                Change::Start(_) | Change::Remove(_) => None,
            })
            .filter_map(|n| self.planned(n))
            .collect()
    }

    /// Containers this run starts that are not running yet: the ones it created, and
    /// ones an earlier run made but did not get to start (it failed in between). What a
    /// container needs before it starts goes to these.
    pub fn starting(&self) -> Vec<&'a ContainerPlan> {
        self.plan
            .containers
            .iter()
            .filter(|c| self.touched(&c.name) && !self.started.contains(&c.name))
            .collect()
    }

    /// Whether this run created, replaced or started the container `name`.
    pub fn touched(&self, name: &str) -> bool {
        self.changes
            .iter()
            .any(|c| matches!(c, Change::Create(n) | Change::Recreate(n) | Change::Start(n) if n == name))
    }

    /// Starts the (primary) controller ahead of the others, if this run starts it at
    /// all, and the accounting containers with it, all at once: slurmdbd waits for the
    /// munge key the controller makes, slurmctld for slurmdbd to listen (slurmbox-init),
    /// and the other nodes for slurmctld. A backup controller starts with the rest, once
    /// the parts have handed it what it needs from the primary (keys, for one on another
    /// host).
    pub async fn start_controller(&mut self) -> Result<(), EngineError> {
        let primary = self.plan.controller().name.clone();
        self.start_where(|c| matches!(c.role, Role::Database | Role::Dbd) || c.name == primary).await
    }

    /// Starts the containers of `role` this run starts, ahead of the others, all at once.
    pub async fn start_role(&mut self, role: Role) -> Result<(), EngineError> {
        self.start_where(|c| c.role == role).await
    }

    /// Starts, all at once, the planned containers `which` picks that this run starts
    /// and has not started yet.
    async fn start_where(&mut self, which: impl Fn(&ContainerPlan) -> bool) -> Result<(), EngineError> {
        let now: Vec<&ContainerPlan> = self
            .plan
            .containers
            .iter()
            .filter(|c| which(c) && self.touched(&c.name) && !self.started.contains(&c.name))
            .collect();
        all(now.iter().map(|c| self.engines[c.host].start_container(&c.name))).await?;
        self.started.extend(now.iter().map(|c| c.name.clone()));
        Ok(())
    }

    /// Says what is happening now, on the containers step's line.
    pub fn say(&self, message: impl Into<String>) {
        self.step.message(message);
    }

    fn planned(&self, name: &str) -> Option<&'a ContainerPlan> {
        self.plan.containers.iter().find(|c| c.name == name)
    }

    /// Removes the containers that go away or are made again; `found` is what the
    /// engines listed (`(host, container)`). Compute nodes among them are kept in
    /// [`Apply::gone_nodes`], for Slurm to forget.
    pub async fn remove_outdated(&mut self, found: &[(usize, ContainerInfo)]) -> Result<(), EngineError> {
        self.say("removing outdated containers");
        let mut removals = Vec::new();
        for change in self.changes {
            if let Change::Remove(name) | Change::Recreate(name) = change
                && let Some((host, info)) = found.iter().find(|(_, c)| &c.name == name)
            {
                if info.role() == Some(Role::Compute)
                    && let Some(node) = info.node()
                {
                    self.gone_nodes.push(node.to_string());
                }
                removals.push(self.engines[*host].remove_container(name));
            }
        }
        all(removals).await?;
        Ok(())
    }

    /// Creates the containers this run makes (or makes again), each with its files.
    pub async fn create(&mut self) -> Result<(), EngineError> {
        let to_create = self.created();
        self.say(format!("creating {} containers", to_create.len()));
        let t = std::time::Instant::now();
        all(to_create.iter().map(|c| create_with_files(&self.engines[c.host], c))).await?;
        tracing::info!(containers = to_create.len(), elapsed = ?t.elapsed(), "created");
        Ok(())
    }

    /// Starts everything this run touches that no hook started yet, all at once.
    /// Returns a one-line summary of the run.
    pub async fn start_the_rest(&mut self) -> Result<String, EngineError> {
        self.say("starting");
        let to_start: Vec<&ContainerPlan> = self
            .plan
            .containers
            .iter()
            .filter(|c| self.touched(&c.name) && !self.started.contains(&c.name))
            .collect();
        let t = std::time::Instant::now();
        all(to_start.iter().map(|c| self.engines[c.host].start_container(&c.name))).await?;
        tracing::info!(containers = to_start.len(), elapsed = ?t.elapsed(), "started");
        Ok(self.summary())
    }

    fn summary(&self) -> String {
        let count = |f: fn(&Change) -> bool| self.changes.iter().filter(|c| f(c)).count();
        let created = count(|c| matches!(c, Change::Create(_)));
        let recreated = count(|c| matches!(c, Change::Recreate(_)));
        let started = count(|c| matches!(c, Change::Start(_)));
        let removed = count(|c| matches!(c, Change::Remove(_)));
        let kept = self.plan.containers.len() - created - recreated - started;
        let mut parts = vec![];
        for (n, what) in
            [(created, "created"), (recreated, "recreated"), (started, "started"), (removed, "removed")]
        {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if kept > 0 {
            parts.push(format!("{kept} kept"));
        }
        parts.join(", ")
    }
}

/// Runs the requests to their ends, then returns the first error: a request left in
/// flight when `up` stops would still be carried out by its engine (a container made
/// after `up` said it failed, which the next `up` would not expect).
async fn all<T>(
    requests: impl IntoIterator<Item = impl std::future::Future<Output = Result<T, EngineError>>>,
) -> Result<Vec<T>, EngineError> {
    join_all(requests).await.into_iter().collect()
}

/// Creates a container and places its files in it, ready to start.
async fn create_with_files(engine: &impl Engine, c: &ContainerPlan) -> Result<(), EngineError> {
    engine.create_container(c).await?;
    let files: Vec<FileUpload> = c
        .files
        .iter()
        .map(|f| FileUpload { path: f.path.clone(), contents: f.contents.clone().into_bytes(), mode: f.mode })
        .collect();
    engine.upload(&c.name, &files).await
}
