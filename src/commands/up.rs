//! `slurmbox up`: spec → plan → converge → apply → wait until every node is idle.

use std::process::ExitCode;
use std::time::Duration;

use futures_util::future::try_join_all;

use super::Context;
use crate::actions;
use crate::cli::UpArgs;
use crate::engine::{Engine, FileUpload};
use crate::image;
use crate::plan::{
    Change, ContainerPlan, Existing, HostFacts, LABEL_HASH, LABEL_NODE, LABEL_ROLE, Plan, Role, converge,
};
use crate::spec::ClusterSpec;

/// Reads the spec named by `-f` (or the default), with `--name` taking precedence.
pub fn load_spec(args: &crate::cli::ClusterName) -> miette::Result<ClusterSpec> {
    let mut spec = match &args.file {
        Some(path) => ClusterSpec::load(path)?,
        None => ClusterSpec::default_cluster(),
    };
    if let Some(name) = &args.name {
        spec = ClusterSpec::parse("--name", &format!("name = {}", toml_string(name)))
            .map(|named| ClusterSpec { name: named.name, ..spec })?;
    }
    Ok(spec)
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub async fn run(ctx: &Context, args: UpArgs) -> miette::Result<ExitCode> {
    let spec = load_spec(&args.spec)?;
    let p = &ctx.progress;
    p.say(format!(
        "Bringing up cluster {:?}: Slurm {}, {} compute node{}",
        spec.name,
        spec.slurm,
        spec.compute.count,
        if spec.compute.count == 1 { "" } else { "s" }
    ));

    let step = p.step(match spec.hosts.first() {
        Some(host) => format!("Docker engine on {} ({})", host.name, host.engine),
        None => "Docker engine".to_string(),
    });
    let engine = ctx.engine(spec.engine()).await?;
    let info = engine.info().await?;
    step.done_with(format!("{} CPUs, {} MiB, Docker {}", info.cpus, info.memory_mib, info.version));
    let facts = HostFacts { cpus: info.cpus, memory_mib: info.memory_mib };

    let tag = match spec.hosts.first() {
        None => image::ensure(&engine, spec.slurm, &args.build.mirror, false, p).await?,
        Some(host) => {
            // The machine running slurmbox builds images when it has an engine.
            let local = ctx.engine(None).await.ok();
            image::ensure_on_host(&engine, local.as_ref(), &host.name, spec.slurm, &args.build.mirror, p)
                .await?
        }
    };
    let plan = Plan::new(&spec, &facts, &tag);

    let step = p.step("Network and volumes");
    engine.ensure_network(&plan.network).await?;
    for v in &plan.volumes {
        engine.ensure_volume(v).await?;
    }
    step.done_with(format!("{}, {} volumes", plan.network.name, plan.volumes.len()));

    let step = p.step("Containers");
    let existing: Vec<Existing> = engine
        .list_containers(&plan.cluster)
        .await?
        .into_iter()
        .map(|c| Existing {
            running: c.running(),
            spec_hash: c.labels.get(LABEL_HASH).cloned(),
            name: c.name,
        })
        .collect();
    let changes = converge(&plan, &existing);
    let summary = apply(&engine, &plan, &changes, &step).await?;
    step.done_with(summary);

    let wait = Duration::from_secs(args.wait);
    let step = p.step(format!("Waiting for {} compute nodes to be idle", plan.compute_nodes.len()));
    actions::wait_for_nodes(&engine, &plan, wait, |ready, all| step.message(format!("{ready}/{all} ready")))
        .await?;
    step.done();

    let flag = if plan.cluster == crate::spec::DEFAULT_NAME {
        String::new()
    } else {
        format!(" --name {}", plan.cluster)
    };
    p.say(format!("Cluster {:?} is up. Next:", plan.cluster));
    p.say(format!("  slurmbox exec{flag} -- sinfo"));
    p.say(format!("  slurmbox verify{flag}"));
    Ok(ExitCode::SUCCESS)
}

/// Carries out `changes`: removals first, then creations (each container gets its
/// files before it starts), then Slurm forgets compute nodes that went away or are
/// being replaced, then everything new or stopped starts at once. Returns a one-line
/// summary.
async fn apply(
    engine: &impl Engine,
    plan: &Plan,
    changes: &[Change],
    step: &crate::progress::Step,
) -> miette::Result<String> {
    let planned = |name: &str| plan.containers.iter().find(|c| c.name == name);
    let (mut created, mut recreated, mut started, mut removed) = (0, 0, 0, 0);
    let mut to_start: Vec<&ContainerPlan> = Vec::new();
    let mut gone_nodes: Vec<String> = Vec::new();

    step.message("removing outdated containers");
    let existing = engine.list_containers(&plan.cluster).await?;
    for change in changes {
        if let Change::Remove(name) | Change::Recreate(name) = change {
            let info = existing.iter().find(|c| &c.name == name);
            if let Some(node) = info
                .filter(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(Role::Compute.as_str()))
                .and_then(|c| c.labels.get(LABEL_NODE))
            {
                gone_nodes.push(node.clone());
            }
        }
    }
    let removals = changes.iter().filter_map(|c| match c {
        Change::Remove(n) | Change::Recreate(n) => Some(n.as_str()),
        _ => None,
    });
    try_join_all(removals.map(|n| engine.remove_container(n))).await?;

    let mut to_create: Vec<&ContainerPlan> = Vec::new();
    for change in changes {
        let (counter, list, name) = match change {
            Change::Create(n) => (&mut created, &mut to_create, n),
            Change::Recreate(n) => (&mut recreated, &mut to_create, n),
            Change::Start(n) => (&mut started, &mut to_start, n),
            Change::Remove(_) => {
                removed += 1;
                continue;
            }
        };
        *counter += 1;
        list.push(planned(name).expect("changes name planned containers"));
    }
    step.message(format!("creating {} containers", to_create.len()));
    let t = std::time::Instant::now();
    try_join_all(to_create.iter().map(|c| create_with_files(engine, c))).await?;
    tracing::info!(containers = to_create.len(), elapsed = ?t.elapsed(), "created");
    to_start.extend(to_create);

    // Dynamic nodes stay registered until deleted: forget the ones that went away, and
    // the ones being replaced (they may register with other resources).
    if !gone_nodes.is_empty() {
        step.message("removing nodes from Slurm");
        let controller = plan.controller();
        if let Some(i) = to_start.iter().position(|c| c.name == controller.name) {
            engine.start_container(&to_start.remove(i).name).await?;
        }
        actions::wait_for_controller(engine, &controller.name, Duration::from_secs(60)).await?;
        actions::delete_nodes(engine, &controller.name, &gone_nodes).await?;
    }

    step.message("starting");
    let t = std::time::Instant::now();
    try_join_all(to_start.iter().map(|c| engine.start_container(&c.name))).await?;
    tracing::info!(containers = to_start.len(), elapsed = ?t.elapsed(), "started");

    // A new controller container may not know compute nodes that kept running: dynamic
    // nodes live in its saved state, and a crash loses whatever was not saved yet.
    // Have them register again.
    let controller = plan.controller();
    if to_start.iter().any(|c| c.name == controller.name) {
        let kept: Vec<&ContainerPlan> = plan
            .containers
            .iter()
            .filter(|c| c.role == Role::Compute && !to_start.iter().any(|s| s.name == c.name))
            .collect();
        if !kept.is_empty() {
            step.message("registering running nodes with the new controller");
            actions::wait_for_controller(engine, &controller.name, Duration::from_secs(60)).await?;
            actions::reregister_nodes(engine, &controller.name, &kept).await?;
        }
    }

    let kept = plan.containers.len() - created - recreated - started;
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
    Ok(parts.join(", "))
}

/// Creates a container and places its files in it, ready to start.
async fn create_with_files(engine: &impl Engine, c: &ContainerPlan) -> miette::Result<()> {
    engine.create_container(c).await?;
    let files: Vec<FileUpload> = c
        .files
        .iter()
        .map(|f| FileUpload { path: f.path.clone(), contents: f.contents.clone().into_bytes(), mode: f.mode })
        .collect();
    engine.upload(&c.name, &files).await?;
    Ok(())
}
