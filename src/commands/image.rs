//! `slurmbox image build`.

use std::process::ExitCode;

use super::Context;
use crate::cli::{ImageBuildArgs, ImageCommand};
use crate::image::Recipe;

pub async fn run(ctx: &Context, cmd: ImageCommand) -> miette::Result<ExitCode> {
    match cmd {
        ImageCommand::Build(args) => build(ctx, args).await,
    }
}

async fn build(ctx: &Context, args: ImageBuildArgs) -> miette::Result<ExitCode> {
    let engine = ctx.engine(None).await?;
    let arch = args.arch.unwrap_or_else(crate::spec::Arch::native);
    let recipe = match (args.storage, args.accounting) {
        (true, _) => Recipe::storage(arch),
        (false, true) => Recipe::accounting(args.slurm, arch),
        (false, false) => Recipe::new(args.slurm, arch),
    };
    let tag = crate::image::ensure(&engine, &recipe, &args.build.mirror, args.force, &ctx.progress).await?;
    println!("{tag}");
    Ok(ExitCode::SUCCESS)
}
