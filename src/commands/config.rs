//! `slurmbox config render`: the generated Slurm files, without starting anything.

use std::process::ExitCode;

use super::{Context, load_spec};
use crate::cli::ConfigCommand;
use crate::deploy::hosts::assumed_facts;

pub async fn run(ctx: &Context, cmd: ConfigCommand) -> miette::Result<ExitCode> {
    let ConfigCommand::Render(args) = cmd;
    let spec = load_spec(ctx, &args.spec)?;
    // Node sizes default to a share of the Docker host, so ask it; every host is
    // assumed to look like it here (`up` asks each one).
    let plan = crate::components::plan(&spec, &assumed_facts(&spec, ctx.settings.local_engine()).await?);
    for file in plan.slurm_files() {
        println!("# ---- {} (controller; nodes fetch it) ----", file.path);
        print!("{}", file.contents);
    }
    println!("# ---- compute nodes register with (slurmd -Z --conf) ----");
    println!("{}", plan.node_conf);
    Ok(ExitCode::SUCCESS)
}
