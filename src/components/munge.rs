//! The cluster's munge key: made by the controller on its first start from the
//! kernel's RNG, kept in a volume on every host (never in an image or a variable),
//! and copied over the engines' connections to hosts other than the controller's.

use std::time::Duration;

use futures_util::future::try_join_all;

use super::Layout;
use super::PartError;
use crate::actions;
use crate::apply::Apply;
use crate::contract;
use crate::engine::{Engine, FileUpload};
use crate::plan::{MountPlan, MountSource, Plan, VolumePlan};

fn volume(layout: &Layout) -> String {
    format!("{}-munge", layout.cluster)
}

/// The key's folder as a node sees it. Nodes beside the controller read its key
/// (read-only); nodes on other hosts get a copy written into their host's volume.
pub fn mount(layout: &Layout, read_only: bool) -> MountPlan {
    MountPlan {
        source: MountSource::Volume(volume(layout)),
        target: contract::MUNGE_DIR.into(),
        read_only,
        propagation: None,
    }
}

pub fn add(layout: &Layout, plan: &mut Plan) {
    for host in 0..layout.hosts.len() {
        plan.volumes.push(VolumePlan { host, name: volume(layout), labels: layout.labels(&[]) });
    }
}

/// Nodes on other hosts get a copy of the key the controller made (which therefore
/// starts first) before they start: the ones this run made, and any an earlier run made
/// but did not start.
pub async fn before_start<E: Engine>(apply: &mut Apply<'_, E>) -> Result<(), PartError> {
    let controller = apply.plan.controller();
    let remote: Vec<_> = apply.starting().into_iter().filter(|c| c.host != controller.host).collect();
    if remote.is_empty() {
        return Ok(());
    }
    apply.say("copying the munge key to the other hosts");
    apply.start_controller().await?;
    let key = actions::read_munge_key(apply.control(), &controller.name, Duration::from_secs(60)).await?;
    let upload = FileUpload { path: contract::MUNGE_KEY.into(), contents: key, mode: 0o400 };
    try_join_all(remote.iter().map(|c| apply.engines[c.host].upload(&c.name, std::slice::from_ref(&upload))))
        .await?;
    Ok(())
}
