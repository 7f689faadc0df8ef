//! The client over a [`RecordingEngine`]: which commands it sends, and how it reads
//! their output and their failures.

use super::*;
use crate::engine::ExecOutput;
use crate::engine::recording::RecordingEngine;

const STORAGE: &str = "lab-storage-pi1";

fn engine() -> RecordingEngine {
    RecordingEngine::with_running(STORAGE, "slurmbox/storage:gluster-test")
}

fn answer(engine: &RecordingEngine, what: &[&str], xml: &str) {
    let cmd: Vec<&str> = ["gluster", "--mode=script", "--xml"].iter().chain(what).copied().collect();
    engine.answer(STORAGE, &cmd, ExecOutput::success(xml));
}

/// As `gluster` exits when it refuses a heal: 251, the XML on stdout.
fn refused_heal(engine: &RecordingEngine, xml: &str) {
    let cmd = ["gluster", "--mode=script", "--xml", "volume", "heal"];
    engine.answer(STORAGE, &cmd, ExecOutput { code: 251, stdout: xml.into(), stderr: String::new() });
}

#[tokio::test]
async fn health_of_a_started_volume_with_a_brick_down() {
    let engine = engine();
    answer(&engine, &["volume", "info"], include_str!("fixtures/volume-info-started.xml"));
    answer(&engine, &["volume", "status"], include_str!("fixtures/volume-status-brick-down.xml"));
    answer(&engine, &["volume", "heal"], include_str!("fixtures/heal-summary-pending.xml"));
    let health = Gluster::new(&engine, STORAGE).volume_health("home").await.unwrap();
    assert_eq!(
        health,
        VolumeHealth {
            state: Some(VolumeState::Started),
            bricks: 2,
            online: 1,
            heal_pending: 5,
            split_brain: 0
        }
    );
    assert_eq!(health.state_name(), "Started");
    assert_eq!(
        engine.exec_log(),
        [
            "lab-storage-pi1: gluster --mode=script --xml volume info home",
            "lab-storage-pi1: gluster --mode=script --xml volume status home",
            "lab-storage-pi1: gluster --mode=script --xml volume heal home info summary",
        ]
    );
}

#[tokio::test]
async fn health_counts_split_brain_over_the_bricks() {
    let engine = engine();
    answer(&engine, &["volume", "info"], include_str!("fixtures/volume-info-started.xml"));
    answer(&engine, &["volume", "status"], include_str!("fixtures/volume-status-started.xml"));
    answer(&engine, &["volume", "heal"], include_str!("fixtures/heal-summary-split-brain.xml"));
    let health = Gluster::new(&engine, STORAGE).volume_health("home").await.unwrap();
    assert_eq!((health.online, health.heal_pending, health.split_brain), (2, 2, 2));
}

#[tokio::test]
async fn no_volume_yet_is_none_and_asks_nothing_more() {
    let engine = engine();
    answer(&engine, &["volume", "info"], include_str!("fixtures/volume-info-none.xml"));
    let health = Gluster::new(&engine, STORAGE).volume_health("home").await.unwrap();
    assert_eq!((health.state_name(), health.bricks, health.online), ("none", 0, 0));
    assert_eq!(engine.exec_log().len(), 1);
}

#[tokio::test]
async fn a_stopped_volume_has_nothing_online_and_nothing_to_heal() {
    let engine = engine();
    answer(&engine, &["volume", "info"], include_str!("fixtures/volume-info-stopped.xml"));
    answer(&engine, &["volume", "status"], include_str!("fixtures/volume-status-stopped.xml"));
    refused_heal(&engine, include_str!("fixtures/heal-summary-failed.xml"));
    let health = Gluster::new(&engine, STORAGE).volume_health("home").await.unwrap();
    assert_eq!(
        health,
        VolumeHealth {
            state: Some(VolumeState::Stopped),
            bricks: 2,
            online: 0,
            heal_pending: 0,
            split_brain: 0
        }
    );
    let e = Gluster::new(&engine, STORAGE).heal_summary("home").await.unwrap_err();
    assert!(matches!(&e, GlusterError::Refused { errno: 5, .. }), "{e}");
}

#[tokio::test]
async fn peers_are_read_and_a_glusterd_that_does_not_answer_is_a_failure() {
    let engine = engine();
    answer(&engine, &["peer", "status"], include_str!("fixtures/peer-status-disconnected.xml"));
    let peers = Gluster::new(&engine, STORAGE).peers().await.unwrap();
    assert_eq!((peers[0].hostname.as_str(), peers[0].connected), ("gl2", false));

    let down = "Connection failed. Please check if gluster daemon is operational.\n";
    engine.answer(STORAGE, &["gluster"], ExecOutput { code: 1, stdout: down.into(), stderr: String::new() });
    let e = Gluster::new(&engine, STORAGE).volume_health("home").await.unwrap_err();
    match e {
        GlusterError::Failed { cmd, code, stderr, .. } => {
            assert_eq!(cmd, "gluster --mode=script --xml volume info home");
            assert_eq!((code, stderr.as_str()), (1, down.trim()));
        }
        other => panic!("{other}"),
    }
    engine.answer(STORAGE, &["gluster"], ExecOutput::success("<cliOutput><opRet>0</opRet></cliOutput>"));
    let e = Gluster::new(&engine, STORAGE).peers().await.unwrap_err();
    assert!(matches!(e, GlusterError::Unreadable { .. }), "{e}");
    engine.set_unreachable(true);
    let e = Gluster::new(&engine, STORAGE).peers().await.unwrap_err();
    assert!(matches!(e, GlusterError::Engine(_)), "{e}");
}
