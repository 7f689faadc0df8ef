//! `slurmbox up`: bring the cluster to what its spec says (see [`super::converge`]) and
//! say what to do next.

use std::process::ExitCode;

use super::{Context, converge, next_steps};
use crate::cli::UpArgs;

pub async fn run(ctx: &Context, args: UpArgs) -> miette::Result<ExitCode> {
    let plan = converge(ctx, &args).await?;
    next_steps(ctx, &args.spec, &plan.cluster);
    Ok(ExitCode::SUCCESS)
}
