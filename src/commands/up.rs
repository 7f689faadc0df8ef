//! `slurmbox up`: bring the cluster to what its spec says (see [`crate::deploy`]) and
//! say what to do next.

use std::process::ExitCode;
use std::time::Duration;

use super::{Context, load_spec, spec_text};
use crate::cli::UpArgs;
use crate::deploy::{self, UpOptions};
use crate::registry::{Entry, Registry};

pub async fn run(ctx: &Context, args: UpArgs) -> miette::Result<ExitCode> {
    let plan = bring_up(ctx, &args).await?;
    let flag = match (&args.spec.file, plan.cluster.as_str()) {
        (Some(file), _) => format!(" -f {}", file.display()),
        (None, crate::spec::DEFAULT_NAME) => String::new(),
        (None, name) => format!(" --name {name}"),
    };
    let p = &ctx.progress;
    p.say(format!("Cluster {:?} is up. Next:", plan.cluster));
    p.say(format!("  slurmbox exec{flag} -- sinfo"));
    p.say(format!("  slurmbox verify{flag}"));
    Ok(ExitCode::SUCCESS)
}

/// What `up` does, for commands that edit the spec and then converge (`user add`).
pub async fn converge_quietly(ctx: &Context, args: UpArgs) -> miette::Result<ExitCode> {
    bring_up(ctx, &args).await?;
    Ok(ExitCode::SUCCESS)
}

/// Converges the cluster and remembers it.
async fn bring_up(ctx: &Context, args: &UpArgs) -> miette::Result<crate::plan::Plan> {
    let spec = load_spec(ctx, &args.spec)?;
    let options = UpOptions {
        skip_unreachable: args.skip_unreachable,
        wait: Duration::from_secs(args.wait),
        sources: args.build.sources(spec.registry.as_deref()),
        local_engine: ctx.settings.local_engine().map(String::from),
        cache_dir: ctx.settings.cache_dir.clone(),
    };
    let plan = deploy::up(&spec, &options, &ctx.progress).await?;
    // `--name` finds it from any folder from now on.
    let text = spec_text(ctx, &args.spec, &spec);
    Registry::new(&ctx.settings).remember(&Entry::new(&spec, args.spec.file.as_deref(), text))?;
    Ok(plan)
}
