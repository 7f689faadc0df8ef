//! `slurmbox down`: remove the cluster's containers; `--purge` also its volumes
//! (home, Slurm state, munge key) and network, leaving nothing labelled with it.

use std::process::ExitCode;

use futures_util::future::try_join_all;

use super::Context;
use crate::cli::DownArgs;
use crate::engine::Engine;

pub async fn run(ctx: &Context, args: DownArgs) -> miette::Result<ExitCode> {
    let (cluster, engine) = ctx.cluster(&args.cluster).await?;
    let p = &ctx.progress;

    let containers = engine.list_containers(&cluster).await?;
    let step = p.step(format!("Removing cluster {cluster:?}'s containers"));
    try_join_all(containers.iter().map(|c| engine.remove_container(&c.name))).await?;
    step.done_with(format!("{} removed", containers.len()));
    if args.purge {
        let step = p.step("Removing its volumes and network");
        let volumes = engine.remove_volumes(&cluster).await?;
        let networks = engine.remove_network(&cluster).await?;
        step.done_with(format!("{} volumes, {} networks", volumes.len(), networks.len()));
    } else if !containers.is_empty() {
        p.say(format!(
            "Home, Slurm state and munge key are kept; `slurmbox down --purge --name {cluster}` removes them."
        ));
    }
    Ok(ExitCode::SUCCESS)
}
