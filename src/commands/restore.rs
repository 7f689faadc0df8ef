//! `slurmbox restore FILE`: puts a backup's controller state and accounting database
//! (`slurmbox backup FILE`) into a running cluster of the same name, e.g. one just
//! brought up on other hosts. Queued jobs come back queued, `sacct` shows the old jobs,
//! and job IDs go on after the backup's. What the cluster had before is backed up first,
//! under the user's config folder, so a restore into the wrong cluster can be undone.

use std::process::ExitCode;

use super::{Context, converge, running_node};
use crate::backup::{self, BackupError, Part};
use crate::cli::{RestoreArgs, UpArgs};

pub async fn run(ctx: &Context, args: RestoreArgs) -> miette::Result<ExitCode> {
    let p = &ctx.progress;
    let restored = backup::read(&args.path)?;
    let handle = ctx.cluster(&args.cluster).await?;
    let cluster = handle.name.clone();
    let model = handle.model().await?;
    backup::check(&handle, &model, &restored).await?;

    let step = p.step("Backing up what the cluster has now");
    let before = backup::take(&handle, &model).await?;
    let kept = ctx
        .settings
        .config_dir
        .join("backups")
        .join(format!("{cluster}-before-restore-{}.tar", before.manifest.created));
    std::fs::create_dir_all(kept.parent().expect("a folder"))
        .map_err(|source| BackupError::Write { path: kept.clone(), source })?;
    backup::write(&kept, &before)?;
    step.done_with(kept.display().to_string());

    let step = p.step(format!("Restoring {}", backup::describe(&restored)));
    if let Err(e) = backup::put_back(&handle, &model, &restored).await {
        step.fail("stopped half way");
        return Err(miette::Report::new(e).wrap_err(format!(
            "the restore stopped half way; what the cluster had is in {0}: `slurmbox restore {0}` puts it back",
            kept.display()
        )));
    }
    step.done();

    // The nodes register with the restored controller, and the spec's users get their
    // associations, as on any `up`.
    converge(ctx, &UpArgs::defaults(args.cluster.clone())).await?;
    let ctld = running_node(&cluster, &model.containers, crate::contract::CONTROLLER_HOST)?;
    let jobs = match backup::jobs(handle.engine(ctld), &ctld.name).await {
        Some((n, highest)) if restored.share(Part::Accounting).is_some() => {
            format!(": {n} jobs in its accounting, new jobs get IDs after {highest}")
        }
        _ => String::new(),
    };
    p.say(format!("Cluster {cluster:?} is restored from {}{jobs}.", args.path.display()));
    Ok(ExitCode::SUCCESS)
}
