//! `slurmbox down`: remove the cluster's containers; `--purge` also its volumes
//! (home, Slurm state, munge key) and network, leaving nothing labelled with it.

use std::process::ExitCode;

use futures_util::future::try_join_all;

use super::{ClusterError, Context};
use crate::cli::DownArgs;
use crate::engine::Engine;
use crate::registry::Registry;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DownError {
    #[error("`down --purge` would delete cluster {0:?}'s accounting database (every job's history)")]
    #[diagnostic(help("pass --yes to delete it anyway (`slurmbox down` without --purge keeps everything)"))]
    NotConfirmed(String),
}

/// Asks on the terminal whether to purge a cluster whose accounting database goes with
/// it; without a terminal (a script) the answer is no: such callers pass --yes.
fn confirmed(cluster: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!(
        "This deletes cluster {cluster:?}'s volumes: its accounting database (every job's history), /home (unless it \
         is a host folder), Slurm's state and its munge key. Type the cluster's name to go on: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.trim() == cluster
}

pub async fn run(ctx: &Context, args: DownArgs) -> miette::Result<ExitCode> {
    let handle = ctx.cluster(&args.cluster).await?;
    let cluster = &handle.name;
    let p = &ctx.progress;
    if args.purge && !args.yes && super::load_spec(ctx, &args.cluster)?.accounting && !confirmed(cluster) {
        return Err(DownError::NotConfirmed(cluster.clone()).into());
    }

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
            Registry::new(&ctx.settings).forget(cluster)?;
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
