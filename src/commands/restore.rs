//! `slurmbox restore FILE`: puts a backup's controller state and accounting database
//! (`slurmbox backup FILE`) into a running cluster of the same name, e.g. one just
//! brought up on other hosts. Queued jobs come back queued, `sacct` shows the old jobs,
//! and job IDs go on after the backup's. What the cluster had before is backed up first,
//! under the user's config folder, so a restore into the wrong cluster can be undone.

use std::convert::Infallible;
use std::process::ExitCode;
use std::time::Duration;

use miette::Diagnostic;

use super::backup::{self, Backup};
use super::{Context, running_node};
use crate::cli::{RestoreArgs, UpArgs};
use crate::components::{PartError, accounting, compute, controller};
use crate::engine::Engine;
use crate::plan::{LABEL_NODE, LABEL_ROLE, Role};
use crate::slurm::Slurm;
use crate::wait::{self, Poll};

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum RestoreError {
    #[error("the backup is of cluster {backup:?}, not {cluster:?}")]
    #[diagnostic(help(
        "Slurm keys its state and database by the cluster's name: restore it into a cluster named {backup:?} \
         (`name = \"{backup}\"` in its spec, or --name {backup})"
    ))]
    OtherCluster { backup: String, cluster: String },
    #[error("the backup was written by Slurm {backup}, and cluster {cluster:?} runs the older {running}")]
    #[diagnostic(help(
        "Slurm reads older state, never newer: bring the cluster up on the backup's release first"
    ))]
    Newer { backup: String, running: String, cluster: String },
    #[error("the backup holds an accounting database, and cluster {0:?} has no accounting")]
    #[diagnostic(help("remove `accounting = false` from its spec and `slurmbox up`, then restore"))]
    NoAccounting(String),
}

/// "24.11.5" as (24, 11, 5), to compare releases.
fn version(text: &str) -> Vec<u64> {
    text.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

pub async fn run(ctx: &Context, args: RestoreArgs) -> miette::Result<ExitCode> {
    let p = &ctx.progress;
    let restored = backup::read(&args.path)?;
    let handle = ctx.cluster(&args.cluster).await?;
    let cluster = handle.name.clone();
    if restored.manifest.cluster != cluster {
        return Err(RestoreError::OtherCluster { backup: restored.manifest.cluster.clone(), cluster }.into());
    }
    let containers = handle.containers().await?;
    let engine = handle.control();
    let ctld = running_node(&cluster, &containers, crate::contract::CONTROLLER_HOST)?.name.clone();
    let running = backup::release(engine, &ctld).await?;
    if version(&restored.manifest.slurm) > version(&running) {
        return Err(RestoreError::Newer { backup: restored.manifest.slurm.clone(), running, cluster }.into());
    }
    let db = match &restored.database {
        Some(_) => {
            let (Ok(db), Ok(dbd)) = (
                running_node(&cluster, &containers, accounting::DB_HOST),
                running_node(&cluster, &containers, accounting::DBD_HOST),
            ) else {
                return Err(RestoreError::NoAccounting(cluster).into());
            };
            Some((db.name.clone(), dbd.name.clone()))
        }
        None => None,
    };

    let step = p.step("Backing up what the cluster has now");
    let before = backup::take(&handle).await?;
    let kept = ctx
        .settings
        .config_dir
        .join("backups")
        .join(format!("{cluster}-before-restore-{}.tar", before.manifest.created));
    std::fs::create_dir_all(kept.parent().expect("a folder"))
        .map_err(|source| backup::BackupError::Write { path: kept.clone(), source })?;
    backup::write(&kept, &before)?;
    step.done_with(kept.display().to_string());

    let step = p.step(format!("Restoring {}", backup::describe(&restored)));
    put_back(engine, &ctld, db.as_ref(), &restored).await.map_err(|e| {
        e.wrap_err(format!(
            "the restore stopped half way; what the cluster had is in {0}: `slurmbox restore {0}` puts it back",
            kept.display()
        ))
    })?;
    // The controller's container starts again (the engine refuses commands meanwhile);
    // slurmctld answers once it reads the state and reaches slurmdbd.
    let answers = Slurm::new(engine, &ctld).within(5);
    let up = wait::until(Duration::from_secs(180), Duration::from_millis(500), async || {
        let up = answers.controller_up().await.unwrap_or(false);
        Ok::<_, Infallible>(if up { Poll::Ready(()) } else { Poll::NotYet(()) })
    });
    if up.await.is_err() {
        step.fail("the controller did not answer");
        return Err(PartError::ControllerDown(180).into());
    }
    // The restored state knows the nodes as they were when the backup was taken (their
    // addresses too): the running ones register again.
    let nodes: Vec<_> = containers
        .iter()
        .filter(|c| {
            c.running() && c.labels.get(LABEL_ROLE).map(String::as_str) == Some(Role::Compute.as_str())
        })
        .filter_map(|c| Some((handle.engine(c), c.name.as_str(), c.labels.get(LABEL_NODE)?.as_str())))
        .collect();
    compute::reregister_nodes(engine, &ctld, &nodes).await?;
    step.done();

    // The nodes register with the restored controller, and the spec's users get their
    // associations, as on any `up`.
    super::converge(ctx, &UpArgs::defaults(args.cluster.clone())).await?;
    let jobs = match backup::jobs(engine, &ctld).await {
        Some((n, highest)) if restored.database.is_some() => {
            format!(": {n} jobs in its accounting, new jobs get IDs after {highest}")
        }
        _ => String::new(),
    };
    p.say(format!("Cluster {:?} is restored from {}{jobs}.", handle.name, args.path.display()));
    Ok(ExitCode::SUCCESS)
}

/// slurmdbd stops first, so that what slurmctld sends as it stops waits in the state that
/// the backup's replaces; then the controller takes the backup's state, and the database
/// the backup's dump.
async fn put_back<E: Engine>(
    engine: &E,
    ctld: &str,
    db: Option<&(String, String)>,
    backup: &Backup,
) -> miette::Result<()> {
    if let Some((db, dbd)) = db {
        accounting::stop_dbd(engine, db, dbd).await?;
    }
    controller::restore_state(engine, ctld, &backup.state).await?;
    if let (Some((db, _)), Some(dump)) = (db, &backup.database) {
        accounting::load(engine, db, dump).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::version;

    #[test]
    fn releases_compare_by_number() {
        assert!(version("26.05.5") > version("24.11.5"));
        assert!(version("24.11.10") > version("24.11.5"));
        assert!(version("24.11.5") <= version("24.11.5"));
    }
}
