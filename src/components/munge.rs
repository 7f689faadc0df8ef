//! The cluster's munge key: made by the controller on its first start from the
//! kernel's RNG, kept in a volume on every host (never in an image or a variable),
//! and copied over the engines' connections to hosts other than the controller's.

use std::time::Duration;

use futures_util::future::try_join_all;

use super::Layout;
use super::PartError;
use crate::apply::Apply;
use crate::contract;
use crate::engine::{Engine, EngineError, ExecFailed, ExecSpec, FileUpload};
use crate::plan::{MountPlan, MountSource, Plan, VolumePlan};
use crate::wait::{self, Poll};

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
    let key = read_key(apply.control(), &controller.name, Duration::from_secs(60)).await?;
    let upload = FileUpload { path: contract::MUNGE_KEY.into(), contents: key, mode: 0o400 };
    try_join_all(remote.iter().map(|c| apply.engines[c.host].upload(&c.name, std::slice::from_ref(&upload))))
        .await?;
    Ok(())
}

/// The cluster's munge key, read from the controller (which makes it on first start),
/// for nodes on other hosts. It travels only over the engines' API connections.
pub async fn read_key(
    engine: &impl Engine,
    controller: &str,
    timeout: Duration,
) -> Result<Vec<u8>, PartError> {
    read_secret(engine, controller, contract::MUNGE_KEY, "munge key", timeout).await
}

/// A key file the controller makes on first start (`path`, `what` it is), read once it
/// is there, for containers on other hosts.
pub async fn read_secret(
    engine: &impl Engine,
    controller: &str,
    path: &str,
    what: &str,
    timeout: Duration,
) -> Result<Vec<u8>, PartError> {
    use base64::Engine as _;
    let read = ExecSpec {
        user: Some("root".into()),
        ..ExecSpec::shell(&format!("test -s {path} && base64 -w0 {path}"))
    };
    let key = wait::until(timeout, Duration::from_millis(100), async || {
        let out = engine.exec(controller, &read).await?;
        if out.ok()
            && let Ok(key) = base64::engine::general_purpose::STANDARD.decode(out.stdout.trim())
        {
            return Ok(Poll::Ready(key));
        }
        Ok::<_, EngineError>(Poll::NotYet(out.code))
    })
    .await;
    key.map_err(|waited| {
        waited.or_timeout(|t| {
            PartError::ExecFailed(ExecFailed {
                cmd: format!("read the {what}"),
                container: controller.into(),
                code: t.last,
                said: format!("the controller made no {what}"),
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ExecOutput;
    use crate::engine::recording::{ANY_CONTAINER, RecordingEngine};

    fn controller() -> RecordingEngine {
        RecordingEngine::with_running("lab-controller", "slurmbox/node:24.11-test")
    }

    #[tokio::test(start_paused = true)]
    async fn the_key_is_read_once_the_controller_made_it() {
        let engine = controller();
        engine.answer_once(ANY_CONTAINER, &["bash", "-c"], ExecOutput::failure(1, ""));
        engine.answer(ANY_CONTAINER, &["bash", "-c"], ExecOutput::success("a2V5\n"));
        let key = read_key(&engine, "lab-controller", Duration::from_secs(60)).await.unwrap();
        assert_eq!(key, b"key");
        assert_eq!(engine.exec_log().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn no_key_in_time_is_a_failed_read_with_the_last_exit_code() {
        let engine = controller();
        engine.answer(ANY_CONTAINER, &["bash", "-c"], ExecOutput::failure(1, ""));
        let e = read_key(&engine, "lab-controller", Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "`read the munge key` failed on lab-controller (exit 1): the controller made no munge key"
        );
    }
}
