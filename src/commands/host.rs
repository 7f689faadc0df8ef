//! `slurmbox host add` and `slurmbox host remove`: grow and shrink a running cluster
//! over several hosts.
//!
//! The spec file stays the one record of the cluster (-f, else the one `up` was given
//! for --name: see [`crate::registry::Registry::spec_file`]): both commands edit its
//! `[[host]]` tables (keeping comments and layout), check the result like any spec, and
//! write it whole ([`spec::SpecFile`]). `add` then converges like `up` does, which
//! creates only the new host's node: the controller, the other nodes and their jobs are
//! left alone. `remove` drains the host's nodes, waits for their jobs, and takes the
//! host out.

use std::process::ExitCode;
use std::time::Duration;

use miette::Diagnostic;

use super::{Context, converge, load_spec, next_steps};
use crate::cli::{ClusterName, HostAddArgs, HostCommand, HostRemoveArgs};
use crate::deploy::remove::{Leaving, RemoveOptions, remove_host};
use crate::registry::Registry;
use crate::spec::{self, HomeSpec, SpecFile};

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
}

impl HostError {
    /// Whether it is a mistake in what was asked (no spec file, a host the spec does not
    /// list or that cannot leave), which the binary turns into exit code 2.
    pub fn is_usage(&self) -> bool {
        match self {
            HostError::NoSpecFile
            | HostError::NoHosts(_)
            | HostError::Unknown { .. }
            | HostError::Controller(_) => true,
        }
    }
}

pub async fn run(ctx: &Context, cmd: HostCommand) -> miette::Result<ExitCode> {
    match cmd {
        HostCommand::Add(args) => add(ctx, args).await,
        HostCommand::Remove(args) => remove(ctx, args).await,
    }
}

/// The cluster's spec file (-f, else the one `up` remembered for --name), read.
fn spec_file(ctx: &Context, args: &ClusterName) -> miette::Result<SpecFile> {
    let path = Registry::new(&ctx.settings)
        .spec_file(args.file.as_deref(), args.name.as_deref())
        .ok_or(HostError::NoSpecFile)?;
    Ok(SpecFile::read(path)?)
}

async fn add(ctx: &Context, mut args: HostAddArgs) -> miette::Result<ExitCode> {
    let p = &ctx.progress;
    let file = spec_file(ctx, &args.up.spec)?;
    let origin = file.origin();
    let before = file.spec()?;
    if before.hosts.is_empty() {
        return Err(HostError::NoHosts(origin).into());
    }
    let edited = spec::with_host(&file.text, &args.host, &args.engine, args.address.as_deref())?;
    // Checked like any spec: a duplicate name or a bad engine address is refused here.
    let after = file.check(&edited)?;
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
    file.write(&edited)?;
    p.say(format!("Added host {:?} to {origin}.", host.name));
    // Then the cluster becomes what the file now says.
    args.up.spec.file = Some(file.path);
    let plan = converge(ctx, &args.up).await?;
    next_steps(ctx, &args.up.spec, &plan.cluster);
    Ok(ExitCode::SUCCESS)
}

async fn remove(ctx: &Context, args: HostRemoveArgs) -> miette::Result<ExitCode> {
    let p = &ctx.progress;
    let file = spec_file(ctx, &args.spec)?;
    let origin = file.origin();
    let named = ClusterName { name: args.spec.name.clone(), file: Some(file.path.clone()) };
    let spec = load_spec(ctx, &named)?;
    let Some(index) = spec.hosts.iter().position(|h| h.name == args.host) else {
        let known = spec.hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ");
        return Err(HostError::Unknown { file: origin, host: args.host, known }.into());
    };
    if index == 0 {
        return Err(HostError::Controller(args.host).into());
    }
    let edited = spec::without_host(&file.text, &args.host)?.expect("the host is in the spec");
    let remaining = file.check(&edited)?;

    let cluster = ctx.cluster(&named).await?;
    let containers = cluster.containers().await?;
    let host = &cluster.hosts[index];
    let leaving = Leaving {
        name: &host.name,
        address: &spec.hosts[index].address,
        engine: host.engine.as_ref().map_err(ToString::to_string),
        containers: containers.iter().filter(|c| c.host == index).collect(),
    };
    let options = RemoveOptions {
        force: args.force,
        wait: Duration::from_secs(args.wait),
        glusterfs: spec.home == HomeSpec::GlusterFs || spec.controller.state_on_glusterfs(),
    };
    let unreachable = leaving.engine.is_err();
    let control = cluster.control().map_err(|e| {
        miette::miette!(
            help = "a host leaves through the controller: `slurmbox host remove` again once the controller's host answers",
            "the controller's host {:?} does not answer: {e}",
            cluster.hosts[0].name
        )
    })?;
    let nodes = remove_host(&cluster.name, control, &containers, leaving, &options, p).await?;

    file.write(&edited)?;
    let entry = crate::registry::Entry::new(&remaining, Some(&file.path), edited.clone());
    Registry::new(&ctx.settings).remember(&entry)?;
    p.say(format!("Host {:?} left cluster {:?}; {origin} no longer lists it.", args.host, cluster.name));
    if unreachable {
        p.say(left_behind(&cluster.name, &args.host, &nodes, options.glusterfs));
    }
    if remaining.hosts.len() == 1 {
        p.say(
            "One host is left: the next `slurmbox up` makes the cluster again as a one-host cluster (its own \
             network, nodes node1..N).",
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What a host that did not answer keeps of the cluster, and how its admin removes it
/// there: until then, its nodes join the cluster again whenever their containers start.
fn left_behind(cluster: &str, host: &str, nodes: &[String], glusterfs: bool) -> String {
    let mut containers: Vec<String> = nodes.iter().map(|n| format!("{cluster}-{n}")).collect();
    if glusterfs {
        containers.push(format!("{cluster}-storage-{host}"));
    }
    let containers =
        if containers.is_empty() { String::new() } else { format!(" ({})", containers.join(", ")) };
    let label = format!("label={}={cluster}", crate::plan::LABEL_CLUSTER);
    format!(
        "{host} did not answer: its containers{containers} and volumes of cluster {cluster:?} are still on \
         it, and its nodes join the cluster again whenever they start. Once it is back, remove them there: \
         `docker rm -f $(docker ps -aq --filter {label})` and \
         `docker volume rm $(docker volume ls -q --filter {label})`."
    )
}
