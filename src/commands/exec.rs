//! `slurmbox exec` and `slurmbox shell`: commands in the cluster, stdio passed through.

use std::process::ExitCode;

use super::{Context, cluster_containers, default_user, exit_code, running_node};
use crate::cli::{ExecArgs, ShellArgs};
use crate::engine::{Engine, ExecSpec};
use crate::plan::LOGIN_HOST;

fn exec_spec(cmd: Vec<String>, user: &str) -> ExecSpec {
    let spec = ExecSpec { cmd, ..Default::default() };
    if user == "root" {
        ExecSpec { user: Some("root".into()), workdir: Some("/root".into()), ..spec }
    } else {
        spec.as_user(user)
    }
}

pub async fn run(ctx: &Context, args: ExecArgs) -> miette::Result<ExitCode> {
    let (cluster, engine) = ctx.cluster(&args.cluster).await?;

    let containers = cluster_containers(&engine, &cluster).await?;
    let node = running_node(&cluster, &containers, args.node.as_deref().unwrap_or(LOGIN_HOST))?;
    let user = args.user.unwrap_or_else(|| default_user(&containers));
    let code = engine.exec_attached(&node.name, &exec_spec(args.command, &user), args.tty).await?;
    Ok(exit_code(code))
}

pub async fn shell(ctx: &Context, args: ShellArgs) -> miette::Result<ExitCode> {
    let (cluster, engine) = ctx.cluster(&args.cluster).await?;

    let containers = cluster_containers(&engine, &cluster).await?;
    let node = running_node(&cluster, &containers, args.node.as_deref().unwrap_or(LOGIN_HOST))?;
    let user = args.user.unwrap_or_else(|| default_user(&containers));
    let code =
        engine.exec_attached(&node.name, &exec_spec(vec!["bash".into(), "-l".into()], &user), true).await?;
    Ok(exit_code(code))
}
