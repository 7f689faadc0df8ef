//! `slurmbox logs`: the daemons' output (munged, slurmctld/slurmd/sackd, init).

use std::process::ExitCode;

use super::{Context, running_node};
use crate::cli::LogsArgs;
use crate::engine::Engine;

pub async fn run(ctx: &Context, args: LogsArgs) -> miette::Result<ExitCode> {
    let handle = ctx.cluster(&args.cluster).await?;
    let cluster = handle.name.clone();
    let containers = handle.containers().await?;
    if let Some(node) = &args.node {
        // A stopped node's log is what one most wants to read: don't require it running.
        let c = match running_node(&cluster, &containers, node) {
            Ok(c) => c,
            Err(_) => containers.iter().find(|c| c.node() == Some(node.as_str())).ok_or_else(|| {
                super::ClusterError::NoNode {
                    cluster: cluster.clone(),
                    node: node.clone(),
                    known: containers
                        .iter()
                        .filter_map(|c| c.node().map(String::from))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?,
        };
        print!("{}", handle.engine(c).logs(&c.name, &args.tail).await?);
        return Ok(ExitCode::SUCCESS);
    }
    for c in &containers {
        let node = c.node().unwrap_or(&c.name).to_string();
        for line in handle.engine(c).logs(&c.name, &args.tail).await?.lines() {
            println!("{node:>10} | {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
