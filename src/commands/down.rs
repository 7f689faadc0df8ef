//! `slurmbox down`: remove the cluster's containers; `--purge` also its volumes
//! (home, Slurm state, munge key) and network, leaving nothing labelled with it.

use std::process::ExitCode;

use futures_util::future::try_join_all;

use super::{ClusterError, Context};
use crate::cli::DownArgs;
use crate::engine::Engine;

pub async fn run(ctx: &Context, args: DownArgs) -> miette::Result<ExitCode> {
    let handle = ctx.cluster(&args.cluster).await?;
    let cluster = &handle.name;
    let p = &ctx.progress;

    let step = p.step(format!("Removing cluster {cluster:?}'s containers"));
    let mut removed = 0;
    for (_, engine) in handle.reachable() {
        let containers = engine.list_containers(cluster).await?;
        try_join_all(containers.iter().map(|c| engine.remove_container(&c.name))).await?;
        removed += containers.len();
    }
    step.done_with(if removed == 0 { "none found".to_string() } else { format!("{removed} removed") });
    for (host, e) in handle.unreachable() {
        p.say(format!(
            "Host {:?} did not answer ({e}); its containers are left there: run `down` again once it is back.",
            host.name
        ));
    }
    let mut purged = 0;
    if args.purge {
        let step = p.step("Removing its volumes and network");
        let (mut volumes, mut networks) = (0, 0);
        for (_, engine) in handle.reachable() {
            volumes += engine.remove_volumes(cluster).await?.len();
            networks += engine.remove_network(cluster).await?.len();
        }
        step.done_with(format!("{volumes} volumes, {networks} networks"));
        purged = volumes + networks;
        // Nothing of it left where its hosts answered: forget it, unless a host still
        // holds its containers.
        if handle.unreachable().next().is_none() {
            crate::registry::forget(cluster)?;
        }
    } else if removed > 0 {
        p.say(format!(
            "Home, Slurm state and munge key are kept; `slurmbox down --purge --name {cluster}` removes them."
        ));
    }
    // Nothing of it anywhere that answered: say so rather than report a success.
    if removed + purged == 0 && handle.unreachable().next().is_none() {
        return Err(ClusterError::Missing(cluster.clone()).into());
    }
    Ok(ExitCode::SUCCESS)
}
