//! `slurmbox exec` and `slurmbox shell`: commands in the cluster, stdio passed through.

use std::process::ExitCode;

use super::{Context, default_user, exit_code, running_node};
use crate::cli::{ClusterName, ExecArgs, ShellArgs, Target};
use crate::engine::{Engine, ExecSpec};
use crate::plan::{CONTROLLER_HOST, LOGIN_HOST};

/// The home folder of `user` in `container`, from its passwd database (daemon
/// accounts have theirs outside /home, or none: slurm's is /nonexistent); `None`
/// when it has no entry or the folder does not exist.
async fn account_home(engine: &impl Engine, container: &str, user: &str) -> Option<String> {
    let script = r#"home=$(getent passwd "$1" | cut -d: -f6) && [ -d "$home" ] && echo "$home""#;
    let out = engine.exec(container, &ExecSpec::new(["sh", "-c", script, "sh", user])).await.ok()?;
    let home = out.stdout.trim();
    (out.ok() && !home.is_empty()).then(|| home.to_string())
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
    let engine = cluster.engine(node);
    // Commands start in the account's home, like a login; runuser names an account
    // it does not know in its own error.
    let workdir = account_home(engine, &node.name, &user).await;
    let spec = ExecSpec::new(cmd).run_as(&user, workdir);
    let code = engine.exec_attached(&node.name, &spec, tty).await?;
    Ok(exit_code(code))
}
