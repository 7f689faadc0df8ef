//! `slurmbox token USER`: a JWT token for the cluster's REST API, which the controller
//! signs (`scontrol token`), printed as `SLURM_JWT=...`; `slurmbox web-login USER`: the
//! dashboard's link holding one.

use std::process::ExitCode;

use super::Context;
use crate::cli::{TokenArgs, WebLoginArgs};
use crate::components::{rest, web};

pub async fn run(ctx: &Context, args: TokenArgs) -> miette::Result<ExitCode> {
    let cluster = ctx.cluster_controller(&args.cluster).await?;
    let containers = cluster.containers().await?;
    print!("{}", rest::token(&cluster, &containers, &args.user, args.lifespan).await?);
    Ok(ExitCode::SUCCESS)
}

pub async fn web_login(ctx: &Context, args: WebLoginArgs) -> miette::Result<ExitCode> {
    let cluster = ctx.cluster_controller(&args.cluster).await?;
    let containers = cluster.containers().await?;
    println!("{}", web::login_link(&cluster, &containers, &args.user, args.lifespan).await?);
    Ok(ExitCode::SUCCESS)
}
