//! `slurmbox host add` and `slurmbox host remove`: grow and shrink a running cluster
//! over several hosts.
//!
//! The spec file stays the one record of the cluster: both commands edit its `[[host]]`
//! tables (keeping comments and layout), check the result like any spec, and write it
//! whole. `add` then converges like `up` does, which creates only the new host's node:
//! the controller, the other nodes and their jobs are left alone. `remove` drains the
//! host's nodes, waits for their jobs, and takes the host out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use miette::Diagnostic;

use super::{Context, up};
use crate::actions;
use crate::cli::{ClusterName, HostAddArgs, HostCommand, HostRemoveArgs};
use crate::engine::Engine;
use crate::plan::{LABEL_NODE, LABEL_ROLE, Role, runs_on_host};
use crate::slurm::{NodeUpdate, Slurm};
use crate::spec::{self, ClusterSpec, HomeSpec};

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum HostError {
    #[error("`slurmbox host` needs the cluster's spec file")]
    #[diagnostic(help(
        "pass it with -f cluster.toml (or SLURMBOX_FILE): the host is added to or removed from it"
    ))]
    NoSpecFile,
    #[error("{0} runs the cluster on the local engine, which is not a listed host")]
    #[diagnostic(help(
        "list this machine as the first [[host]] (engine = \"unix:///var/run/docker.sock\", address = its LAN \
         address), bring it up with `slurmbox up -f`, then add hosts"
    ))]
    NoHosts(String),
    #[error("{file} has no host {host:?} (it has: {known})")]
    #[diagnostic(help("use one of the listed host names"))]
    Unknown { file: String, host: String, known: String },
    #[error("host {0:?} runs the controller and the login node; it cannot leave the cluster")]
    #[diagnostic(help("`slurmbox down` removes the whole cluster"))]
    Controller(String),
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
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

pub async fn run(ctx: &Context, cmd: HostCommand) -> miette::Result<ExitCode> {
    match cmd {
        HostCommand::Add(args) => add(ctx, args).await,
        HostCommand::Remove(args) => remove(ctx, args).await,
    }
}

/// The spec file given with -f, and its text.
fn spec_file(args: &ClusterName) -> miette::Result<(PathBuf, String)> {
    let path = args.file.clone().ok_or(HostError::NoSpecFile)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|source| spec::SpecError::Read { path: path.clone(), source })?;
    Ok((path, text))
}

fn write(path: &Path, text: &str) -> Result<(), HostError> {
    spec::write_atomic(path, text)
        .map_err(|source| HostError::Write { path: path.display().to_string(), source })
}

async fn add(ctx: &Context, args: HostAddArgs) -> miette::Result<ExitCode> {
    let p = &ctx.progress;
    let (path, text) = spec_file(&args.up.spec)?;
    let origin = path.display().to_string();
    let before = ClusterSpec::parse(&origin, &text)?;
    if before.hosts.is_empty() {
        return Err(HostError::NoHosts(origin).into());
    }
    let edited = spec::with_host(&text, &args.host, &args.engine, args.address.as_deref())?;
    // Checked like any spec: a duplicate name or a bad engine address is refused here.
    let after = ClusterSpec::parse(&origin, &edited)?;
    let host = after.hosts.iter().find(|h| h.name == args.host).expect("the added host is in the spec");

    // The new host must answer before the spec names it.
    let step = p.step(format!("Docker engine on {} ({})", host.name, host.engine));
    let (_, info) =
        ctx.host_engine(host).await.inspect_err(|_| step.fail(format!("{origin} is unchanged")))?;
    step.done_with(format!("{} CPUs, {} MiB, Docker {}", info.cpus, info.memory_mib, info.version));

    if before.hosts.len() == 1 {
        p.say(
            "Going from one host to several puts every node on its host's network: the cluster's containers are \
             made again.",
        );
    }
    write(&path, &edited)?;
    p.say(format!("Added host {:?} to {origin}.", host.name));
    up::run(ctx, args.up).await
}

async fn remove(ctx: &Context, args: HostRemoveArgs) -> miette::Result<ExitCode> {
    let p = &ctx.progress;
    let (path, text) = spec_file(&args.spec)?;
    let origin = path.display().to_string();
    let spec = up::load_spec(&args.spec)?;
    let Some(index) = spec.hosts.iter().position(|h| h.name == args.host) else {
        let known = spec.hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ");
        return Err(HostError::Unknown { file: origin, host: args.host, known }.into());
    };
    if index == 0 {
        return Err(HostError::Controller(args.host).into());
    }
    let edited = spec::without_host(&text, &args.host)?.expect("the host is in the spec");
    let remaining = ClusterSpec::parse(&origin, &edited)?;

    let cluster = ctx.cluster(&args.spec).await?;
    let containers = cluster.containers().await?;
    let controller = containers
        .iter()
        .find(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(Role::Controller.as_str()))
        .map(|c| c.name.clone())
        .ok_or_else(|| super::ClusterError::Missing(cluster.name.clone()))?;
    let control = cluster.control();
    let slurm = Slurm::new(control, &controller);
    let leaving = &cluster.hosts[index];
    let on_host: Vec<_> = containers.iter().filter(|c| c.host == index).collect();
    let nodes: Vec<String> = match &leaving.engine {
        Ok(_) => on_host
            .iter()
            .filter(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some(Role::Compute.as_str()))
            .filter_map(|c| c.labels.get(LABEL_NODE).cloned())
            .collect(),
        // Over several hosts a host's compute nodes are named after it (`pi3`, or
        // `pi3-1`, `pi3-2`, ...): ask Slurm which it knows.
        Err(_) if args.force => {
            slurm.node_states().await?.into_keys().filter(|n| runs_on_host(n, &leaving.name)).collect()
        }
        Err(e) => {
            return Err(HostError::Unreachable { host: leaving.name.clone(), reason: e.to_string() }.into());
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
    if args.force {
        // DOWN ends the jobs holding the nodes.
        slurm.update_nodes(&nodes, NodeUpdate::Down { reason: &reason }).await?;
    }
    loop {
        let jobs: Vec<String> = slurm.jobs_on(&nodes).await?.iter().map(|j| j.id.to_string()).collect();
        if jobs.is_empty() {
            step.done_with(format!("none left after {:.0?}", started.elapsed()));
            break;
        }
        let waited = started.elapsed().as_secs();
        // Killed jobs leave within seconds; --force does not wait for more than that.
        let limit = if args.force { 60 } else { args.wait };
        if waited >= limit {
            step.fail(format!("{} still running", jobs.len()));
            return Err(HostError::Busy {
                host: leaving.name.clone(),
                jobs: jobs.join(", "),
                waited,
                nodes: list,
            }
            .into());
        }
        step.message(format!(
            "job{} {} running, {waited}s",
            if jobs.len() == 1 { "" } else { "s" },
            jobs.join(", ")
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Its brick leaves the shared /home's volume while the other hosts still hold
    // every file (the volume is replicated to all of them).
    if spec.home == HomeSpec::GlusterFs {
        let step = p.step(format!("Taking {}'s brick out of the shared /home", leaving.name));
        let first = containers
            .iter()
            .find(|c| {
                c.host == 0 && c.labels.get(LABEL_ROLE).map(String::as_str) == Some(Role::Storage.as_str())
            })
            .ok_or_else(|| super::ClusterError::Missing(cluster.name.clone()))?;
        match actions::remove_storage_peer(control, &first.name, &spec.hosts[index].address).await {
            Ok(()) => step.done(),
            // A host taken out by force may be gone for good: the volume keeps its
            // copies on the other hosts either way.
            Err(e) if args.force => step.fail(format!("{e}; the volume still lists it")),
            Err(e) => return Err(e.into()),
        }
    }

    let step = p.step(format!("Removing {}'s containers and volumes", leaving.name));
    match &leaving.engine {
        Ok(engine) => {
            futures_util::future::try_join_all(on_host.iter().map(|c| engine.remove_container(&c.name)))
                .await?;
            let volumes = engine.remove_volumes(&cluster.name).await?;
            step.done_with(format!("{} containers, {} volumes", on_host.len(), volumes.len()));
        }
        Err(_) => step.fail("the host cannot be reached: its containers stay on it"),
    }
    actions::delete_nodes(control, &controller, &nodes).await?;

    write(&path, &edited)?;
    p.say(format!("Host {:?} left cluster {:?}; {origin} no longer lists it.", leaving.name, cluster.name));
    if remaining.hosts.len() == 1 {
        p.say(
            "One host is left: the next `slurmbox up` makes the cluster again as a one-host cluster (its own \
             network, nodes node1..N).",
        );
    }
    Ok(ExitCode::SUCCESS)
}
