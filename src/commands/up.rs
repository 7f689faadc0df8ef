//! `slurmbox up`: spec → plan → converge → apply → wait until every node is idle.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

use futures_util::future::{join_all, try_join_all};

use super::Context;
use crate::actions;
use crate::cli::UpArgs;
use crate::engine::docker::DockerEngine;
use crate::engine::{ContainerInfo, Engine, EngineError, EngineInfo, FileUpload};
use crate::image;
use crate::image::Recipe;
use crate::plan::{
    Change, ContainerPlan, Existing, HostFacts, LABEL_HASH, LABEL_NODE, LABEL_ROLE, Plan, Role, converge,
};
use crate::spec::{Arch, ClusterSpec, HomeSpec};

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
    let hosts = spec.hosts.len().max(1);
    let nodes = hosts as u32 * spec.compute.count;
    p.say(format!(
        "Bringing up cluster {:?}: Slurm {}, {nodes} compute node{}{}",
        spec.name,
        spec.slurm,
        if nodes == 1 { "" } else { "s" },
        if spec.hosts.len() > 1 { format!(" on {hosts} hosts") } else { String::new() },
    ));

    // Every engine first, all at once.
    let step = p.step(match spec.hosts.as_slice() {
        [] => "Docker engine".to_string(),
        [host] => format!("Docker engine on {} ({})", host.name, host.engine),
        many => format!(
            "Docker engines on {}",
            many.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    });
    let probed: Vec<Result<(DockerEngine, EngineInfo), EngineError>> = if spec.hosts.is_empty() {
        let local = async {
            let engine = ctx.engine(None).await?;
            let info = engine.info().await?;
            Ok((engine, info))
        };
        vec![local.await]
    } else {
        join_all(spec.hosts.iter().map(|h| ctx.host_engine(h))).await
    };
    // The controller's host must answer. Another that does not stops `up` before it
    // changes anything, unless --skip-unreachable leaves that host as it is.
    let (mut reached, mut skipped) = (Vec::new(), Vec::new());
    for (i, probe) in probed.into_iter().enumerate() {
        match probe {
            Ok(found) => reached.push((i, found)),
            Err(e) if i > 0 && args.skip_unreachable => skipped.push((i, e)),
            Err(e) => {
                step.fail("nothing was created on any host");
                return Err(e.into());
            }
        }
    }
    step.done_with(
        reached
            .iter()
            .map(|(_, (_, i))| {
                format!("{} CPUs, {} MiB, {}, Docker {}", i.cpus, i.memory_mib, i.arch, i.version)
            })
            .collect::<Vec<_>>()
            .join("; "),
    );
    for (i, e) in &skipped {
        p.say(format!(
            "Skipping host {:?} ({e}): its nodes are left as they are; `up` again once it answers.",
            spec.hosts[*i].name
        ));
    }
    // Each host runs the image of its architecture: the spec's `arch`, else the one
    // its engine reports.
    let arches: Vec<Arch> = reached
        .iter()
        .map(|(i, (_, info))| {
            let listed = spec.hosts.get(*i).and_then(|h| h.arch);
            listed.or_else(|| Arch::parse(&info.arch)).unwrap_or(Arch::native())
        })
        .collect();
    let wanted: BTreeSet<Arch> = arches.iter().copied().collect();

    // Images are built where slurmbox runs, when it has an engine, and streamed to
    // each host that lacks them; without a local engine they are built on each host.
    // A GlusterFS /home adds the storage image.
    let gluster = spec.home == HomeSpec::GlusterFs;
    let recipes = |arch: Arch| {
        let mut r = vec![Recipe::new(spec.slurm, arch)];
        if gluster {
            r.push(Recipe::storage(arch));
        }
        r
    };
    let local = if spec.hosts.is_empty() { None } else { ctx.engine(None).await.ok() };
    // Built here when slurmbox has a local engine (and sent on below), else on each host.
    let builds: Vec<(&DockerEngine, Arch)> = match &local {
        None => reached.iter().zip(&arches).map(|((_, (engine, _)), arch)| (engine, *arch)).collect(),
        Some(local) => wanted.iter().map(|arch| (local, *arch)).collect(),
    };
    // Architecture → tag, of the node images and of the storage images.
    let (mut tags, mut storage_tags) = (BTreeMap::new(), BTreeMap::new());
    for (engine, arch) in builds {
        for recipe in recipes(arch) {
            let tag = image::ensure(engine, &recipe, &args.build.mirror, false, p).await?;
            match recipe.kind {
                image::Kind::Node(_) => tags.insert(arch, tag),
                image::Kind::Storage => storage_tags.insert(arch, tag),
            };
        }
    }
    if let Some(local) = &local {
        let (hosts, tags, storage_tags) = (&spec.hosts, &tags, &storage_tags);
        let sends = reached.iter().zip(&arches).map(|((i, (engine, _)), arch)| async move {
            let host = &hosts[*i].name;
            image::send_if_missing(local, engine, host, &tags[arch], "Image", p).await?;
            if let Some(storage) = storage_tags.get(arch) {
                image::send_if_missing(local, engine, host, storage, "Storage image", p).await?;
            }
            Ok::<_, image::ImageError>(())
        });
        try_join_all(sends).await?;
    }
    let mut facts: Vec<HostFacts> = reached
        .iter()
        .zip(&arches)
        .map(|((_, (_, i)), arch)| HostFacts {
            cpus: i.cpus,
            memory_mib: i.memory_mib,
            arch: *arch,
            image: tags[arch].clone(),
            storage_image: storage_tags.get(arch).cloned(),
        })
        .collect();
    // Skipped hosts are planned like the controller's (for names and addresses that
    // stay put); nothing planned for them is carried out.
    let skipped: Vec<usize> = skipped.into_iter().map(|(i, _)| i).collect();
    for &i in &skipped {
        facts.insert(i, facts[0].clone());
    }
    let plan = Plan::new(&spec, &facts).without_hosts(&skipped);
    let engines: Vec<DockerEngine> = reached.into_iter().map(|(_, (engine, _))| engine).collect();

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
    let mut found: Vec<(usize, ContainerInfo)> = Vec::new();
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
    let changes = converge(&plan, &existing);
    let summary = apply(&engines, &plan, &found, &changes, &step).await?;
    step.done_with(summary);

    if !plan.storage.is_empty() {
        let step = p.step(format!("Shared /home (GlusterFS on {} hosts)", plan.storage.len()));
        step.message("peers, bricks and volume");
        let changed = actions::converge_storage(&engines, &plan).await?;
        step.done_with(if changed.is_empty() { "as it was".to_string() } else { changed });
    }

    let wait = Duration::from_secs(args.wait);
    let step = p.step(format!("Waiting for {} compute nodes to be idle", plan.compute_nodes.len()));
    actions::wait_for_nodes(&engines, &plan, wait, |ready, all| step.message(format!("{ready}/{all} ready")))
        .await?;
    step.done();

    let flag = match (&args.spec.file, plan.cluster.as_str()) {
        (Some(file), _) => format!(" -f {}", file.display()),
        (None, crate::spec::DEFAULT_NAME) => String::new(),
        (None, name) => format!(" --name {name}"),
    };
    p.say(format!("Cluster {:?} is up. Next:", plan.cluster));
    p.say(format!("  slurmbox exec{flag} -- sinfo"));
    p.say(format!("  slurmbox verify{flag}"));
    Ok(ExitCode::SUCCESS)
}

/// Carries out `changes` on each container's own engine (`engines[host]`): removals
/// first, then creations (each container gets its files before it starts; nodes on
/// other hosts than the controller's also get the cluster's munge key), then Slurm
/// forgets compute nodes that went away or are being replaced, then everything new or
/// stopped starts at once. Returns a one-line summary.
async fn apply<E: Engine>(
    engines: &[E],
    plan: &Plan,
    found: &[(usize, ContainerInfo)],
    changes: &[Change],
    step: &crate::progress::Step,
) -> miette::Result<String> {
    let planned = |name: &str| plan.containers.iter().find(|c| c.name == name);
    let (mut created, mut recreated, mut started, mut removed) = (0, 0, 0, 0);
    let mut to_start: Vec<&ContainerPlan> = Vec::new();
    let mut gone_nodes: Vec<String> = Vec::new();
    let controller = plan.controller();
    let control = &engines[controller.host];

    step.message("removing outdated containers");
    let mut removals = Vec::new();
    for change in changes {
        if let Change::Remove(name) | Change::Recreate(name) = change
            && let Some((host, info)) = found.iter().find(|(_, c)| &c.name == name)
        {
            if info.labels.get(LABEL_ROLE).map(String::as_str) == Some(Role::Compute.as_str())
                && let Some(node) = info.labels.get(LABEL_NODE)
            {
                gone_nodes.push(node.clone());
            }
            removals.push(engines[*host].remove_container(name));
        }
    }
    try_join_all(removals).await?;

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
    try_join_all(to_create.iter().map(|c| create_with_files(&engines[c.host], c))).await?;
    tracing::info!(containers = to_create.len(), elapsed = ?t.elapsed(), "created");

    // Nodes on other hosts get a copy of the key the controller made.
    let remote: Vec<&ContainerPlan> =
        to_create.iter().copied().filter(|c| c.host != controller.host).collect();
    to_start.extend(to_create);
    let mut start_controller_first = || -> Option<&ContainerPlan> {
        to_start.iter().position(|c| c.name == controller.name).map(|i| to_start.remove(i))
    };
    if !remote.is_empty() {
        step.message("copying the munge key to the other hosts");
        if let Some(c) = start_controller_first() {
            control.start_container(&c.name).await?;
        }
        let key = actions::read_munge_key(control, &controller.name, Duration::from_secs(60)).await?;
        let upload = FileUpload { path: "/etc/munge/munge.key".into(), contents: key, mode: 0o400 };
        try_join_all(remote.iter().map(|c| engines[c.host].upload(&c.name, std::slice::from_ref(&upload))))
            .await?;
    }

    // Dynamic nodes stay registered until deleted: forget the ones that went away, and
    // the ones being replaced (they may register with other resources).
    if !gone_nodes.is_empty() {
        step.message("removing nodes from Slurm");
        if let Some(c) = start_controller_first() {
            control.start_container(&c.name).await?;
        }
        actions::wait_for_controller(control, &controller.name, Duration::from_secs(60)).await?;
        actions::delete_nodes(control, &controller.name, &gone_nodes).await?;
    }

    step.message("starting");
    let t = std::time::Instant::now();
    try_join_all(to_start.iter().map(|c| engines[c.host].start_container(&c.name))).await?;
    tracing::info!(containers = to_start.len(), elapsed = ?t.elapsed(), "started");

    // A new controller container may not know compute nodes that kept running: dynamic
    // nodes live in its saved state, and a crash loses whatever was not saved yet.
    // Have them register again.
    let fresh_controller = changes.iter().any(
        |c| matches!(c, Change::Create(n) | Change::Recreate(n) | Change::Start(n) if *n == controller.name),
    );
    if fresh_controller {
        let restarted: Vec<&str> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Create(n) | Change::Recreate(n) | Change::Start(n) => Some(n.as_str()),
                Change::Remove(_) => None,
            })
            .collect();
        let kept: Vec<&ContainerPlan> = plan
            .containers
            .iter()
            .filter(|c| c.role == Role::Compute && !restarted.contains(&c.name.as_str()))
            .collect();
        if !kept.is_empty() {
            step.message("registering running nodes with the new controller");
            actions::wait_for_controller(control, &controller.name, Duration::from_secs(60)).await?;
            actions::reregister_nodes(engines, &controller.name, &kept).await?;
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
