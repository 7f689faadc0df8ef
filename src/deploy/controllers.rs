//! Controllers made again one at a time: where a cluster has a backup controller and
//! a change makes both controllers' containers again, the backup goes first, alone,
//! while the primary keeps taking jobs; once the new backup answers, the rest of the
//! change goes on and replaces the primary, whose work the backup covers meanwhile
//! (Slurm's clients try the backup when the primary does not answer). `up --now`
//! replaces both at once.

use std::time::Duration;

use crate::apply::Apply;
use crate::components::{PartError, controller};
use crate::engine::{ContainerInfo, Engine};
use crate::plan::{Change, Plan, Role};
use crate::progress::{Progress, Step};

/// Takes the backup controller's replacement out of `changes` when both controllers
/// run (in `found`, `(host, container)` as the engines listed them) and are made
/// again: its container's name, to replace first with [`replace_first`].
pub fn take_backup(
    plan: &Plan,
    changes: &mut Vec<Change>,
    found: &[(usize, ContainerInfo)],
) -> Option<String> {
    let controllers: Vec<&str> = plan.controllers().map(|c| c.name.as_str()).collect();
    let [primary, backup] = controllers[..] else { return None };
    let replaced_running = |name: &str| {
        changes.iter().any(|c| matches!(c, Change::Recreate(n) if n == name))
            && found.iter().any(|(_, c)| c.name == name && c.running())
    };
    if !(replaced_running(primary) && replaced_running(backup)) {
        return None;
    }
    changes.retain(|c| !matches!(c, Change::Recreate(n) if n == backup));
    Some(backup.to_string())
}

/// Makes the controller `name` again on its own, with what each part does before a
/// container starts, and waits until it answers `scontrol ping` (in standby).
pub async fn replace_first<E: Engine>(
    engines: &[E],
    plan: &Plan,
    name: &str,
    found: &[(usize, ContainerInfo)],
    p: &Progress,
    step: &Step,
) -> Result<(), PartError> {
    let alone = [Change::Recreate(name.to_string())];
    let mut apply = Apply::new(engines, plan, &alone, p, step);
    apply.say(format!("{name} first (the primary takes jobs meanwhile)"));
    super::prepare(&mut apply, found).await?;
    apply.start_role(Role::Controller).await?;
    let hostname = plan.containers.iter().find(|c| c.name == name).map_or(name, |c| c.hostname.as_str());
    let control = plan.controller();
    controller::wait_for_ping(&engines[control.host], &control.name, hostname, Duration::from_secs(60))
        .await?;
    apply.say(format!("{name} answers; the primary next"));
    Ok(())
}
