//! `slurmbox token USER`: a JWT token for the cluster's REST API, which the controller
//! signs (`scontrol token`), printed as `SLURM_JWT=...`.

use std::process::ExitCode;

use super::Context;
use crate::cli::TokenArgs;
use crate::components::rest;

pub async fn run(ctx: &Context, args: TokenArgs) -> miette::Result<ExitCode> {
    let cluster = ctx.cluster_controller(&args.cluster).await?;
    let containers = cluster.containers().await?;
    print!("{}", rest::token(&cluster, &containers, &args.user, args.lifespan).await?);
    Ok(ExitCode::SUCCESS)
}
