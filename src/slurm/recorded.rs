//! The client over a [`RecordingEngine`]: which commands it sends, and how it reads
//! their output and their failures.

use super::*;
use crate::engine::recording::RecordingEngine;

const CTLD: &str = "lab-controller";

fn engine() -> RecordingEngine {
    RecordingEngine::with_running(CTLD, "slurmbox/node:24.11-test")
}

fn changes() -> Vec<SacctmgrChange> {
    vec![
        SacctmgrChange::AddCluster { name: "lab".into() },
        SacctmgrChange::AddAccount { name: "physics".into(), cluster: "lab".into() },
        SacctmgrChange::AddUser {
            name: "alice".into(),
            account: "physics".into(),
            cluster: "lab".into(),
            default_account: true,
        },
    ]
}

/// What the batch script prints: each call's output, then its status line.
fn batch_output(calls: &[(i64, &str)]) -> ExecOutput {
    let text: String =
        calls.iter().map(|(code, out)| format!("{out}\n@@slurmbox-sacctmgr-status={code}\n")).collect();
    ExecOutput::success(&text)
}

#[tokio::test]
async fn sacctmgr_changes_run_in_one_exec_one_call_each_in_order() {
    let engine = engine();
    let printed = batch_output(&[
        (1, " This cluster lab already exists.  Not adding."),
        (0, " Adding Account(s)\n  physics"),
        (0, " Adding User(s)\n  alice"),
    ]);
    engine.answer(CTLD, &["bash", "-c"], printed);
    let applied = Slurm::new(&engine, CTLD).apply(&changes()).await.unwrap();
    assert_eq!(applied, [Applied::AlreadySo, Applied::Changed, Applied::Changed]);
    let log = engine.exec_log();
    assert_eq!(log.len(), 1, "{log:?}");
    let calls: Vec<&str> = log[0].lines().collect();
    assert_eq!(calls.len(), 3, "{log:?}");
    assert!(
        calls[0].starts_with("lab-controller: bash -c sacctmgr -i 'add' 'cluster' 'lab' 2>&1"),
        "{log:?}"
    );
    assert!(calls[1].starts_with("sacctmgr -i 'add' 'account' 'physics' 'cluster=lab'"), "{log:?}");
    assert!(calls[2].starts_with("sacctmgr -i 'add' 'user' 'alice' 'account=physics'"), "{log:?}");
}

#[tokio::test]
async fn a_sacctmgr_failure_is_the_error_and_says_what_sacctmgr_said() {
    let engine = engine();
    let printed = batch_output(&[
        (0, " Adding Cluster(s)\n  lab"),
        (1, " error: No parent account 'nope' on cluster 'lab'"),
        (1, " error: no such account"),
    ]);
    engine.answer(CTLD, &["bash", "-c"], printed);
    let e = Slurm::new(&engine, CTLD).apply(&changes()).await.unwrap_err();
    match e {
        SlurmError::Failed { cmd, code, stderr, .. } => {
            assert!(cmd.starts_with("sacctmgr -i add account physics"), "{cmd}");
            assert_eq!((code, stderr.as_str()), (1, "error: No parent account 'nope' on cluster 'lab'"));
        }
        other => panic!("{other}"),
    }
    // A batch that ends early (the shell killed) names the first change it did not report.
    let engine2 = self::engine();
    engine2.answer(CTLD, &["bash", "-c"], batch_output(&[(1, " This cluster lab already exists.")]));
    match Slurm::new(&engine2, CTLD).apply(&changes()).await.unwrap_err() {
        SlurmError::Failed { cmd, .. } => assert!(cmd.starts_with("sacctmgr -i add account"), "{cmd}"),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn an_engine_that_does_not_answer_is_an_engine_error() {
    let engine = engine();
    engine.set_unreachable(true);
    let e = Slurm::new(&engine, CTLD).apply(&changes()).await.unwrap_err();
    assert!(matches!(e, SlurmError::Engine(_)), "{e}");
}

#[tokio::test]
async fn reads_ask_for_json_and_time_limits_come_first() {
    let engine = engine();
    let ping = include_str!("fixtures/26.05-ping-up.json");
    engine.answer(CTLD, &["timeout", "5", "scontrol", "ping"], ExecOutput::success(ping));
    let sacct = include_str!("fixtures/26.05-sacct-jobs.json");
    engine.answer(CTLD, &["sacct"], ExecOutput::success(sacct));
    let assoc = include_str!("fixtures/26.05-sacctmgr-assoc.json");
    engine.answer(CTLD, &["sacctmgr", "show", "associations"], ExecOutput::success(assoc));
    let slurm = Slurm::new(&engine, CTLD);
    assert!(Slurm::new(&engine, CTLD).within(5).controller_up().await.unwrap());
    assert_eq!(slurm.accounted_jobs().await.unwrap().iter().map(|j| j.id).max(), Some(4));
    assert_eq!(slurm.associations().await.unwrap().len(), 8);
    assert_eq!(
        engine.exec_log(),
        [
            "lab-controller: timeout 5 scontrol ping --json=v0.0.42",
            "lab-controller: sacct -a -X -S 1970-01-01T00:00:00 -E now --json=v0.0.42",
            "lab-controller: sacctmgr show associations --json=v0.0.42",
        ]
    );
}

#[tokio::test]
async fn output_that_is_not_the_json_is_unreadable_and_a_failure_is_failed() {
    let engine = engine();
    engine.answer(CTLD, &["sacctmgr", "show", "users"], ExecOutput::success("alice|physics|\n"));
    let e = Slurm::new(&engine, CTLD).accounting_users().await.unwrap_err();
    assert!(
        matches!(&e, SlurmError::Unreadable { cmd, .. } if cmd == "sacctmgr show users --json=v0.0.42"),
        "{e}"
    );
    let refused = ExecOutput::failure(1, "sacctmgr: error: Sending PersistInit msg: Connection refused\n");
    engine.answer(CTLD, &["bash", "-c"], refused);
    assert!(!Slurm::new(&engine, CTLD).accounting_answers_within(20).await.unwrap());
    let asked = engine.exec_log().pop().unwrap();
    assert!(asked.contains("end=$((SECONDS + 20))") && asked.contains("sacctmgr -n list cluster"), "{asked}");
}

#[tokio::test]
async fn the_controller_learns_associations_in_its_own_time() {
    let engine = engine();
    let show = ["scontrol", "-o", "show", "assoc_mgr", "flags=assoc"];
    let early = "ClusterName=lab Account=physics UserName=alice(4294967294) Partition= ID=6\n";
    engine.answer_once(CTLD, &show, ExecOutput::success(early));
    engine.answer(CTLD, &show, ExecOutput::success(include_str!("fixtures/24.11-assoc-mgr.txt")));
    let slurm = Slurm::new(&engine, CTLD);
    assert!(!controller_knows(&slurm.controller_associations().await.unwrap(), &["alice"]));
    assert!(controller_knows(&slurm.controller_associations().await.unwrap(), &["alice", "bob"]));
    assert_eq!(engine.exec_log()[0], "lab-controller: scontrol -o show assoc_mgr flags=assoc");
}
