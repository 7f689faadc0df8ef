//! `slurmbox backup FILE`: the controller's state (queued jobs, the next job ID, node and
//! reservation state) and the accounting database (a consistent dump) in one file, from
//! a running cluster, so that it can be rebuilt or moved to other hosts with
//! `slurmbox restore FILE` (the file: see [`crate::backup`]).

use std::process::ExitCode;

use super::Context;
use crate::backup::{describe, take, write};
use crate::cli::BackupArgs;

pub async fn run(ctx: &Context, args: BackupArgs) -> miette::Result<ExitCode> {
    let handle = ctx.cluster_controller(&args.cluster).await?;
    let step = ctx.progress.step(format!("Backing up cluster {:?}", handle.name));
    let backup = take(&handle, &handle.model().await?).await?;
    write(&args.path, &backup)?;
    step.done_with(describe(&backup));
    println!("{}", args.path.display());
    Ok(ExitCode::SUCCESS)
}
