//! `slurmbox image build` and `slurmbox image push`.

use std::process::ExitCode;

use super::Context;
use crate::cli::{ImageBuildArgs, ImageChoice, ImageCommand, ImagePushArgs};
use crate::components::{accounting, glusterfs, metrics, web};
use crate::engine::Engine;
use crate::image::{Recipe, Sources};
use crate::spec::{Arch, ClusterSpec};

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
    let spec = super::load_spec(ctx, &args.cluster)?;
    let registry = args.registry.or(spec.registry.clone()).ok_or(PushError::NoRegistry)?;
    let engine = ctx.engine(None).await?;
    let recipe = recipe(&args.image, &spec);
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

/// The image `choice` names; a node image is `spec`'s (its `[software]` is in it), of
/// its Slurm release unless `--slurm` says otherwise.
fn recipe(choice: &ImageChoice, spec: &ClusterSpec) -> Recipe {
    let arch = choice.arch.unwrap_or_else(Arch::native);
    let slurm = choice.slurm.unwrap_or(spec.slurm);
    if choice.storage {
        glusterfs::image_recipe(arch)
    } else if choice.accounting {
        accounting::image_recipe(slurm, arch)
    } else if choice.controller {
        Recipe::controller(slurm, arch)
    } else if choice.metrics {
        metrics::image_recipe(arch)
    } else if choice.web {
        web::image_recipe(arch)
    } else {
        Recipe::new(slurm, arch).with_software(&spec.software.image_packages())
    }
}

async fn build(ctx: &Context, args: ImageBuildArgs) -> miette::Result<ExitCode> {
    let spec = super::load_spec(ctx, &args.cluster)?;
    let engine = ctx.engine(None).await?;
    let recipe = recipe(&args.image, &spec);
    let tag = crate::image::ensure(
        &engine,
        &recipe,
        &args.build.sources(spec.registry.as_deref()),
        &ctx.settings.cache_dir,
        args.force,
        &ctx.progress,
    )
    .await?;
    println!("{tag}");
    Ok(ExitCode::SUCCESS)
}
