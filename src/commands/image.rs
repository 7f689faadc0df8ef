//! `slurmbox image build` and `slurmbox image push`.

use std::process::ExitCode;

use super::Context;
use crate::cli::{ImageBuildArgs, ImageChoice, ImageCommand, ImagePushArgs};
use crate::components::{accounting, glusterfs, metrics, web};
use crate::engine::Engine;
use crate::image::{Recipe, Sources};
use crate::spec::Arch;

pub async fn run(ctx: &Context, cmd: ImageCommand) -> miette::Result<ExitCode> {
    match cmd {
        ImageCommand::Build(args) => build(ctx, args).await,
        ImageCommand::Push(args) => push(ctx, args).await,
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PushError {
    #[error("no registry to push to")]
    #[diagnostic(help(
        "name one with --registry (`registry.example.org:5000/slurmbox`) or `registry` in the spec"
    ))]
    NoRegistry,
    #[error("this engine has no image {0} to push")]
    #[diagnostic(help("`slurmbox image build` with the same options builds it first"))]
    NotBuilt(String),
}

/// The image `image build` would name, tagged for the registry and pushed there.
async fn push(ctx: &Context, args: ImagePushArgs) -> miette::Result<ExitCode> {
    let registry = match args.registry {
        Some(r) => r,
        None => super::load_spec(ctx, &args.cluster)?.registry.ok_or(PushError::NoRegistry)?,
    };
    let engine = ctx.engine(None).await?;
    let recipe = recipe(&args.image);
    let tag = recipe.tag();
    if !engine.image_exists(&tag).await? {
        return Err(PushError::NotBuilt(tag).into());
    }
    let there = Sources::in_registry(&registry, &tag);
    let step = ctx.progress.step(format!("Pushing {there}"));
    engine.tag_image(&tag, &there).await?;
    engine.push_image(&there).await?;
    step.done();
    println!("{there}");
    Ok(ExitCode::SUCCESS)
}

fn recipe(choice: &ImageChoice) -> Recipe {
    let arch = choice.arch.unwrap_or_else(Arch::native);
    if choice.storage {
        glusterfs::image_recipe(arch)
    } else if choice.accounting {
        accounting::image_recipe(choice.slurm, arch)
    } else if choice.controller {
        Recipe::controller(choice.slurm, arch)
    } else if choice.metrics {
        metrics::image_recipe(arch)
    } else if choice.web {
        web::image_recipe(arch)
    } else {
        Recipe::new(choice.slurm, arch)
    }
}

async fn build(ctx: &Context, args: ImageBuildArgs) -> miette::Result<ExitCode> {
    let engine = ctx.engine(None).await?;
    let recipe = recipe(&args.image);
    let tag = crate::image::ensure(
        &engine,
        &recipe,
        &args.build.sources(None),
        &ctx.settings.cache_dir,
        args.force,
        &ctx.progress,
    )
    .await?;
    println!("{tag}");
    Ok(ExitCode::SUCCESS)
}
