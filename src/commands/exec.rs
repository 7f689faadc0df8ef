//! `slurmbox exec` and `slurmbox shell`: commands in the cluster, stdio passed through.

use std::process::ExitCode;

use super::{Context, default_user, exit_code, running_node};
use crate::cli::{ClusterName, ExecArgs, ShellArgs, Target};
use crate::engine::{Engine, ExecSpec};
use crate::plan::{CONTROLLER_HOST, LOGIN_HOST};

fn exec_spec(cmd: Vec<String>, user: &str) -> ExecSpec {
    let spec = ExecSpec { cmd, ..Default::default() };
    if user == "root" {
        ExecSpec { user: Some("root".into()), workdir: Some("/root".into()), ..spec }
    } else {
        spec.as_user(user)
    }
}

pub async fn run(ctx: &Context, args: ExecArgs) -> miette::Result<ExitCode> {
    attach(ctx, &args.cluster, &args.target, args.command, args.tty).await
}

pub async fn shell(ctx: &Context, args: ShellArgs) -> miette::Result<ExitCode> {
    attach(ctx, &args.cluster, &args.target, vec!["bash".into(), "-l".into()], true).await
}

/// Runs `cmd` on the target node as the target user, wired to this terminal.
async fn attach(
    ctx: &Context,
    cluster: &ClusterName,
    target: &Target,
    cmd: Vec<String>,
    tty: bool,
) -> miette::Result<ExitCode> {
    let node = target.node.as_deref().unwrap_or(LOGIN_HOST);
    let cluster = match node {
        LOGIN_HOST | CONTROLLER_HOST => ctx.cluster_controller(cluster).await?,
        _ => ctx.cluster(cluster).await?,
    };
    let containers = cluster.containers().await?;
    let node = running_node(&cluster.name, &containers, node)?;
    let user = target.user.clone().unwrap_or_else(|| default_user(&containers));
    let code = cluster.engine(node).exec_attached(&node.name, &exec_spec(cmd, &user), tty).await?;
    Ok(exit_code(code))
}
