//! The deploy logic against recording engines: which changes, in what order, on which
//! host; what `host remove` does when a host does not answer. Milliseconds each; the
//! real-engine tests in tests/ stay.

use std::time::Duration;

use super::remove::{Leaving, RemoveError, RemoveOptions, remove_host};
use super::{DeployError, converge};
use crate::components::HostFacts;
use crate::components::PartError;
use crate::components::limits::CgroupHost;
use crate::engine::recording::{ANY_CONTAINER, Call, RecordingEngine};
use crate::engine::{ContainerInfo, Engine, ExecOutput};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::spec::{Arch, ClusterSpec};

const IMAGE: &str = "slurmbox/node:24.11-test";

fn facts() -> HostFacts {
    HostFacts {
        cpus: 2,
        memory_mib: 4096,
        arch: Arch::Amd64,
        emulated: false,
        image: IMAGE.into(),
        storage_image: None,
        accounting_image: None,
        controller_image: None,
        metrics_image: None,
        web_image: None,
        cgroup: CgroupHost::v2(),
        ssh_port: crate::spec::DEFAULT_SSH_PORT,
        rest_port: crate::spec::DEFAULT_REST_PORT,
        web_port: crate::spec::DEFAULT_WEB_PORT,
        gpus: None,
    }
}

fn quiet() -> Progress {
    Progress::new(true)
}

fn lab(hosts: usize) -> ClusterSpec {
    let mut text = "name = \"lab\"\n[home]\nhost_path = \"/gfsv/home\"\n".to_string();
    for i in 1..=hosts {
        text.push_str(&format!("[[host]]\nname = \"pi{i}\"\nengine = \"ssh://pi@10.0.0.{i}\"\n"));
    }
    ClusterSpec::parse("c.toml", &text).unwrap()
}

/// Engines for the plan's hosts, holding its image; the controller's answers Slurm's
/// questions as a cluster whose every compute node is idle.
fn engines(plan: &Plan) -> Vec<RecordingEngine> {
    let engines: Vec<RecordingEngine> = plan.hosts.iter().map(|h| RecordingEngine::named(&h.name)).collect();
    for e in &engines {
        e.insert_image(IMAGE);
    }
    let control = &engines[plan.controller().host];
    let names: Vec<(&str, &str)> = plan.compute_nodes.iter().map(|n| (n.as_str(), "IDLE")).collect();
    answer_nodes(control, &names);
    let ping =
        serde_json::json!({ "pings": [{ "hostname": "controller", "responding": true, "mode": "primary" }] });
    control.answer(ANY_CONTAINER, &["scontrol", "ping"], ExecOutput::success(&ping.to_string()));
    // The munge key, as the controller made it (base64).
    control.answer(&plan.controller().name, &["bash", "-c"], ExecOutput::success("a2V5\n"));
    engines
}

/// Has the controller answer `scontrol show nodes --json` with these nodes and states,
/// the way Slurm writes them (see src/slurm/fixtures for real ones).
fn answer_nodes(engine: &RecordingEngine, nodes: &[(&str, &str)]) {
    let nodes: Vec<serde_json::Value> = nodes
        .iter()
        .map(|(name, state)| {
            serde_json::json!({
                "name": name, "state": [state], "reason": "", "cpus": 4, "real_memory": 4096,
                "features": ["compute"], "partitions": ["debug"],
            })
        })
        .collect();
    let doc = serde_json::json!({ "nodes": nodes });
    engine.answer(ANY_CONTAINER, &["scontrol", "show", "nodes"], ExecOutput::success(&doc.to_string()));
    engine.answer(ANY_CONTAINER, &["squeue"], ExecOutput::success(r#"{"jobs": []}"#));
}

async fn up(engines: &[RecordingEngine], plan: &Plan) -> Result<(), DeployError> {
    converge(engines, plan, Duration::from_secs(2), Default::default(), &quiet()).await
}

/// The calls that change something, as `verb name` lines.
fn changes(engine: &RecordingEngine) -> Vec<String> {
    engine
        .take_calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::CreateContainer { name, .. } => Some(format!("create {name}")),
            Call::StartContainer { name } => Some(format!("start {name}")),
            Call::RemoveContainer { name } => Some(format!("remove {name}")),
            Call::Upload { container, paths } => Some(format!("upload {container} {}", paths.join(" "))),
            // Questions (sinfo, ping, show, squeue) change nothing; the controller
            // writing its state (see the test of it) is left out of the others'.
            Call::Exec { container, cmd, .. }
                if cmd[0] != "sinfo"
                    && cmd[0] != "squeue"
                    && !matches!(cmd[1].as_str(), "ping" | "show")
                    && !is_state_write(&cmd) =>
            {
                Some(format!("exec {container} {}", cmd.join(" ")))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_new_cluster_is_created_then_started_and_left_alone_the_next_time() {
    let plan = crate::components::plan(&ClusterSpec::default_cluster(), &[facts()]);
    let engines = engines(&plan);
    up(&engines, &plan).await.unwrap();
    let done = changes(&engines[0]);
    let (creates, rest): (Vec<_>, Vec<_>) = done.iter().partition(|c| !c.starts_with("start"));
    assert_eq!(
        creates,
        [
            "create slurmbox-controller",
            CONTROLLER_FILES,
            "create slurmbox-login",
            "upload slurmbox-login /usr/local/sbin/slurmbox-init /etc/ssh/sshd_config.d/slurmbox.conf",
            "create slurmbox-node1",
            "upload slurmbox-node1 /usr/local/sbin/slurmbox-init",
            "create slurmbox-node2",
            "upload slurmbox-node2 /usr/local/sbin/slurmbox-init",
            "create slurmbox-rest",
            "upload slurmbox-rest /etc/slurm/slurm.conf /etc/slurm/cgroup.conf /etc/slurm/gres.conf /usr/local/sbin/slurmbox-rest /usr/local/sbin/slurmbox-init",
            ACCOUNTS,
            HOMES,
        ]
    );
    assert_eq!(rest.len(), 5, "everything starts once it is created: {done:?}");
    assert!(engines[0].has_network("slurmbox-net") && engines[0].has_volume("slurmbox-munge"));

    up(&engines, &plan).await.unwrap();
    assert_eq!(changes(&engines[0]), [ACCOUNTS, HOMES], "nothing changed, no container touched");
}

#[tokio::test]
async fn nodes_on_other_hosts_get_the_key_before_they_start() {
    let plan = crate::components::plan(&lab(3), &[facts(), facts(), facts()]);
    let engines = engines(&plan);
    up(&engines, &plan).await.unwrap();
    let control = changes(&engines[0]);
    let started = control.iter().position(|c| c == "start lab-controller").unwrap();
    let read = control.iter().position(|c| c.starts_with("exec lab-controller bash -c")).unwrap();
    assert!(started < read, "the controller makes the key: {control:?}");
    for (host, node) in [(1, "lab-pi2"), (2, "lab-pi3")] {
        let there = changes(&engines[host]);
        let key = there.iter().position(|c| c == &format!("upload {node} /etc/munge/munge.key")).unwrap();
        let start = there.iter().position(|c| c == &format!("start {node}")).unwrap();
        assert!(key < start, "{there:?}");
        assert_eq!(engines[host].file(node, "/etc/munge/munge.key").as_deref(), Some(&b"key"[..]));
    }
    // The controller's own host reads the key from its volume.
    assert!(!control.iter().any(|c| c.contains("munge.key") && c.starts_with("upload")));
}

#[tokio::test]
async fn slurm_forgets_a_removed_node_and_a_new_controller_hears_from_the_others() {
    let mut spec = ClusterSpec::default_cluster();
    let before = crate::components::plan(&spec, &[facts()]);
    let engines = engines(&before);
    up(&engines, &before).await.unwrap();
    engines[0].take_calls();

    spec.compute.count = 1;
    let after = crate::components::plan(&spec, &[facts()]);
    up(&engines, &after).await.unwrap();
    let done = changes(&engines[0]);
    let removed = done.iter().position(|c| c == "remove slurmbox-node2").unwrap();
    let forgot =
        done.iter().position(|c| c == "exec slurmbox-controller scontrol delete nodename=node2").unwrap();
    assert!(removed < forgot, "{done:?}");
    assert!(!done.iter().any(|c| c.contains("node1")), "node1 is left alone: {done:?}");

    // The controller's container is lost: only it is made again, and the node that kept
    // running registers with it again.
    engines[0].remove_container("slurmbox-controller").await.unwrap();
    engines[0].take_calls();
    up(&engines, &after).await.unwrap();
    let done = changes(&engines[0]);
    assert_eq!(
        done,
        [
            "create slurmbox-controller",
            CONTROLLER_FILES,
            "start slurmbox-controller",
            "exec slurmbox-controller scontrol delete nodename=node1",
            "exec slurmbox-node1 pkill -HUP -x slurmd",
            ACCOUNTS,
            HOMES,
        ]
    );
}

/// The files a new controller is given: its init script, Slurm's files, the JWT key's script.
const CONTROLLER_FILES: &str = "upload slurmbox-controller /usr/local/sbin/slurmbox-init /etc/slurm/slurm.conf /etc/slurm/cgroup.conf /etc/slurm/gres.conf /usr/local/sbin/slurmbox-jwt";

/// What every `up` does last: the accounts written into the host's volume (through
/// its first node), and the homes that are missing made.
const ACCOUNTS: &str = "upload slurmbox-controller /var/lib/extrausers/passwd /var/lib/extrausers/group /var/lib/extrausers/shadow /var/lib/extrausers/ssh/researcher";
const HOMES: &str = "exec slurmbox-login /usr/local/sbin/slurmbox-init homes researcher:1000:1000";

fn compute(cluster: &str, host: usize, node: &str) -> ContainerInfo {
    ContainerInfo {
        host,
        name: format!("{cluster}-{node}"),
        id: node.into(),
        image: IMAGE.into(),
        labels: [
            ("io.slurmbox.cluster", cluster),
            ("io.slurmbox.role", if node == "controller" { "controller" } else { "compute" }),
            ("io.slurmbox.node", node),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        state: "running".into(),
        status: "Up".into(),
    }
}

#[tokio::test]
async fn a_host_that_does_not_answer_leaves_only_by_force() {
    let control = RecordingEngine::named("pi1");
    let controller = compute("lab", 0, "controller");
    control.insert_container(controller.clone());
    answer_nodes(&control, &[("pi1", "IDLE"), ("pi3", "DOWN"), ("pi3-2", "DOWN"), ("pi31", "IDLE")]);
    let containers = vec![controller];
    let options = |force| RemoveOptions { force, wait: Duration::from_secs(5), glusterfs: false };
    let leaving = || Leaving::<RecordingEngine> {
        name: "pi3",
        address: "10.0.0.3",
        engine: Err("no answer within 15s".into()),
        containers: vec![],
    };

    let refused = remove_host("lab", &control, &containers, leaving(), &options(false), &quiet()).await;
    assert!(matches!(refused, Err(RemoveError::Unreachable { .. })), "{refused:?}");
    assert_eq!(changes(&control), Vec::<String>::new(), "nothing is touched without --force");

    remove_host("lab", &control, &containers, leaving(), &options(true), &quiet()).await.unwrap();
    assert_eq!(
        changes(&control),
        [
            "exec lab-controller scontrol update nodename=pi3,pi3-2 state=drain reason=host pi3 leaving the cluster",
            "exec lab-controller scontrol update nodename=pi3,pi3-2 state=down reason=host pi3 leaving the cluster",
            "exec lab-controller scontrol delete nodename=pi3",
            "exec lab-controller scontrol delete nodename=pi3-2",
        ],
        "its nodes (found in Slurm, pi31 is another host's) are drained, downed and forgotten"
    );
}

#[tokio::test]
async fn a_host_holds_the_glusterfs_home_of_one_cluster_only() {
    let text = |name: &str| {
        format!(
            "name = \"{name}\"\n[home]\nshared = \"glusterfs\"\n[[host]]\nname = \"pi1\"\nengine = \"ssh://pi@10.0.0.1\"\n"
        )
    };
    let storage = HostFacts { storage_image: Some("slurmbox/storage:gluster-test".into()), ..facts() };
    let first = crate::components::plan(
        &ClusterSpec::parse("c.toml", &text("lab")).unwrap(),
        std::slice::from_ref(&storage),
    );
    let second = crate::components::plan(&ClusterSpec::parse("c.toml", &text("other")).unwrap(), &[storage]);
    let engines = engines(&first);
    engines[0].insert_image("slurmbox/storage:gluster-test");
    engines[0].insert_planned(
        &first.containers.iter().find(|c| c.name == "lab-storage-pi1").unwrap().clone(),
        true,
    );
    engines[0].take_calls();
    let refused = up(&engines, &second).await;
    assert!(
        matches!(&refused, Err(DeployError::Part(PartError::SharedHomeTaken { host, other })) if host == "pi1" && other == "lab"),
        "{refused:?}"
    );
    assert_eq!(changes(&engines[0]), Vec::<String>::new(), "nothing changed");
}

/// A host whose engine has the NVIDIA container toolkit: the probe container is made
/// with every GPU and the node image, and what it prints becomes the host's GPUs.
#[tokio::test]
async fn a_probe_container_finds_the_gpus_an_engine_gives() {
    use crate::components::gpus::{PROBE_SCRIPT, probe_request};
    use crate::spec::EngineGpus;
    let engine = RecordingEngine::named("gpu1");
    engine.insert_image(IMAGE);
    let info = crate::engine::EngineInfo {
        runtimes: vec!["nvidia".into(), "runc".into()],
        ..engine.info().await.unwrap()
    };
    let request = probe_request(&info, EngineGpus::Auto, &[]).unwrap();
    engine.answer(
        "lab-gpu-probe",
        &["sh", "-c"],
        ExecOutput::success("file /dev/nvidia0\nsmi 0, NVIDIA H200, GPU-aaaa, 00000000:1B:00.0\nproc\n"),
    );
    let probed = super::hosts::probe(&engine, "lab", IMAGE, &request).await.unwrap().unwrap();
    assert_eq!(probed.gpus[0].model.as_deref(), Some("NVIDIA H200"));
    assert_eq!(
        engine.calls().last().unwrap(),
        &Call::RunProbe {
            name: "lab-gpu-probe".into(),
            image: IMAGE.into(),
            cmd: vec!["sh".into(), "-c".into(), PROBE_SCRIPT.into()],
            gpus: request.clone(),
        }
    );
    // A probe that fails says why; up goes on without the host's engine GPUs.
    engine.answer("lab-gpu-probe", &["sh", "-c"], ExecOutput::failure(125, "could not select device driver"));
    let e = super::hosts::probe(&engine, "lab", IMAGE, &request).await.unwrap_err();
    assert!(e.contains("could not select device driver"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn nodes_that_are_not_ready_in_time_are_named_with_their_reason_and_log() {
    let plan = crate::components::plan(&ClusterSpec::default_cluster(), &[facts()]);
    let engines = engines(&plan);
    for c in &plan.containers {
        engines[0].insert_planned(c, true);
    }
    let doc = serde_json::json!({ "nodes": [
        { "name": "node1", "state": ["IDLE"], "reason": "", "cpus": 4, "real_memory": 4096 },
        { "name": "node2", "state": ["DOWN", "NOT_RESPONDING"], "reason": "Not responding", "cpus": 4,
          "real_memory": 4096 },
    ]});
    engines[0].answer(ANY_CONTAINER, &["scontrol", "show", "nodes"], ExecOutput::success(&doc.to_string()));
    engines[0].answer(
        "slurmbox-login",
        &["sinfo"],
        ExecOutput::failure(1, "Unable to contact slurm controller"),
    );
    engines[0].set_logs("slurmbox-node2", "slurmd: error: Unable to register\n").unwrap();
    engines[0].set_logs("slurmbox-login", "sackd: error: no controller\n").unwrap();

    let e = up(&engines, &plan).await.unwrap_err();
    let DeployError::Part(PartError::NodesNotReady { cluster, waited, report }) = &e else {
        panic!("{e:?}");
    };
    assert_eq!((cluster.as_str(), *waited), ("slurmbox", 2));
    assert_eq!(
        report,
        "  login: its Slurm commands cannot reach the controller\n  last lines of its log:\n    | sackd: error: \
         no controller\n  node2: down* (reason: Not responding)\n  last lines of its log:\n    | \
         slurmd: error: Unable to register\n"
    );
    assert!(e.to_string().starts_with("compute nodes not ready after 2s:\n  login:"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn jobs_that_outlast_the_wait_keep_a_host_from_leaving() {
    let control = RecordingEngine::named("pi1");
    let controller = compute("lab", 0, "controller");
    let node = compute("lab", 0, "pi3");
    control.insert_container(controller.clone());
    control.insert_container(node.clone());
    let job = serde_json::json!({ "jobs": [{ "job_id": 7, "job_state": ["RUNNING"] }] });
    control.answer(ANY_CONTAINER, &["squeue"], ExecOutput::success(&job.to_string()));
    let containers = vec![controller, node.clone()];
    let leaving = Leaving { name: "pi3", address: "10.0.0.3", engine: Ok(&control), containers: vec![&node] };
    let options = RemoveOptions { force: false, wait: Duration::from_secs(5), glusterfs: false };

    let started = tokio::time::Instant::now();
    let e = remove_host("lab", &control, &containers, leaving, &options, &quiet()).await.unwrap_err();
    let RemoveError::Busy { host, jobs, waited, nodes } = e else { panic!("{e:?}") };
    assert_eq!((host.as_str(), jobs.as_str(), waited, nodes.as_str()), ("pi3", "7", 6, "pi3"));
    // Asked once a second until a look found more than the 5 s passed.
    assert_eq!(started.elapsed(), Duration::from_secs(6));
    let asked = control.exec_log().iter().filter(|c| c.contains("squeue")).count();
    assert_eq!(asked, 7);
}

/// `squeue --json` listing one running job of `user` on `node`.
fn running_job(id: u64, user: &str, node: &str) -> ExecOutput {
    let job = serde_json::json!({ "jobs": [{
        "job_id": id, "user_name": user, "job_state": ["RUNNING"],
        "job_resources": { "nodes": { "allocation": [{ "name": node }] } },
    }]});
    ExecOutput::success(&job.to_string())
}

#[tokio::test(start_paused = true)]
async fn a_changed_node_is_drained_emptied_forgotten_and_made_again_one_at_a_time() {
    let mut spec = ClusterSpec::default_cluster();
    let before = crate::components::plan(&spec, &[facts()]);
    let engines = engines(&before);
    up(&engines, &before).await.unwrap();
    engines[0].take_calls();

    spec.compute.memory_mb = Some(2048);
    let after = crate::components::plan(&spec, &[facts()]);
    let control = &engines[0];
    // node1 runs alice's job 12 for two more looks; node2 is idle.
    control.answer(ANY_CONTAINER, &["squeue"], running_job(12, "alice", "node1"));
    control.answer(ANY_CONTAINER, &["squeue", "-w", "node2"], ExecOutput::success(r#"{"jobs": []}"#));
    control.answer(ANY_CONTAINER, &["squeue", "-w", "node1"], ExecOutput::success(r#"{"jobs": []}"#));
    for _ in 0..2 {
        control.answer_once(ANY_CONTAINER, &["squeue", "-w", "node1"], running_job(12, "alice", "node1"));
    }
    up(&engines, &after).await.unwrap();
    // node1 was asked about until job 12 left it (twice busy, then empty).
    let asked = control.exec_log().iter().filter(|c| c.contains("squeue -w node1")).count();
    assert_eq!(asked, 3);
    let done: Vec<String> = changes(control).into_iter().filter(|c| c.contains("node")).collect();
    let drain = |n: &str| {
        format!(
            "exec slurmbox-controller scontrol update nodename={n} state=drain reason=slurmbox: memory 4096 -> 2048 MiB"
        )
    };
    assert_eq!(
        done,
        [
            // The controller is made again first (slurm.conf changed); the nodes the
            // rolling change makes next are left as they are (an older slurmd told to
            // read the new configuration may not understand it). The idle node first,
            // while node1 still takes jobs: drained, removed, forgotten by Slurm before
            // its new container starts.
            drain("node2"),
            "remove slurmbox-node2".into(),
            "create slurmbox-node2".into(),
            "upload slurmbox-node2 /usr/local/sbin/slurmbox-init".into(),
            "exec slurmbox-controller scontrol delete nodename=node2".into(),
            "start slurmbox-node2".into(),
            // Then node1, once job 12 left it.
            drain("node1"),
            "remove slurmbox-node1".into(),
            "create slurmbox-node1".into(),
            "upload slurmbox-node1 /usr/local/sbin/slurmbox-init".into(),
            "exec slurmbox-controller scontrol delete nodename=node1".into(),
            "start slurmbox-node1".into(),
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_busy_past_the_drain_timeout_is_left_draining_for_the_next_up() {
    use super::roll::{Rolling, Rollout};
    let mut spec = ClusterSpec::default_cluster();
    spec.compute.count = 1;
    let before = crate::components::plan(&spec, &[facts()]);
    let engines = engines(&before);
    up(&engines, &before).await.unwrap();
    spec.compute.memory_mb = Some(2048);
    let after = crate::components::plan(&spec, &[facts()]);
    let control = &engines[0];
    control.answer(ANY_CONTAINER, &["squeue"], running_job(12, "alice", "node1"));
    let rolling =
        Rolling { max_unavailable: 1, drain_timeout: Some(Duration::from_secs(30)), requeue: false };
    control.take_calls();
    converge(&engines, &after, Duration::from_secs(2), Rollout::Rolling(rolling), &quiet()).await.unwrap();
    let done: Vec<String> = changes(control).into_iter().filter(|c| c.contains("node1")).collect();
    assert!(done.last().unwrap().contains("state=drain reason=slurmbox: memory"), "{done:?}");
    assert!(
        !done.iter().any(|c| c.contains("remove") || c.contains("create")),
        "job 12 still runs: {done:?}"
    );

    // The next `up`, once the job has ended, finishes it.
    control.answer(ANY_CONTAINER, &["squeue"], ExecOutput::success(r#"{"jobs": []}"#));
    converge(&engines, &after, Duration::from_secs(2), Rollout::Rolling(rolling), &quiet()).await.unwrap();
    let done = changes(control);
    assert!(
        done.contains(&"remove slurmbox-node1".to_string()) && done.contains(&"start slurmbox-node1".into())
    );

    // A node Slurm still holds drained for the change, on a container already made
    // again (an `up` stopped in between), is resumed; others' drains are left.
    let doc = serde_json::json!({ "nodes": [
        { "name": "node1", "state": ["IDLE", "DRAIN"], "reason": "slurmbox: memory 4096 -> 2048 MiB" },
    ]});
    control.answer_once(ANY_CONTAINER, &["scontrol", "show", "nodes"], ExecOutput::success(&doc.to_string()));
    converge(&engines, &after, Duration::from_secs(2), Rollout::Rolling(rolling), &quiet()).await.unwrap();
    assert!(
        changes(control)
            .contains(&"exec slurmbox-controller scontrol update nodename=node1 state=resume".into())
    );
}

#[tokio::test]
async fn up_now_makes_running_nodes_again_at_once() {
    let mut spec = ClusterSpec::default_cluster();
    let before = crate::components::plan(&spec, &[facts()]);
    let engines = engines(&before);
    up(&engines, &before).await.unwrap();
    spec.compute.memory_mb = Some(2048);
    let after = crate::components::plan(&spec, &[facts()]);
    engines[0].answer(ANY_CONTAINER, &["squeue"], running_job(12, "alice", "node1"));
    engines[0].take_calls();
    converge(&engines, &after, Duration::from_secs(2), super::roll::Rollout::Now, &quiet()).await.unwrap();
    let done = changes(&engines[0]);
    assert!(!done.iter().any(|c| c.contains("state=drain")), "{done:?}");
    let removed = done.iter().position(|c| c == "remove slurmbox-node1").unwrap();
    let created = done.iter().position(|c| c == "create slurmbox-controller").unwrap();
    assert!(removed < created, "removed with the rest, before anything is made: {done:?}");
}

fn is_state_write(cmd: &[String]) -> bool {
    cmd.len() == 3 && cmd[2].contains("scontrol update nodename=node1 comment= ")
}

#[tokio::test]
async fn up_ends_with_the_controller_writing_its_nodes_when_anything_changed() {
    let spec = ClusterSpec::default_cluster();
    let plan = crate::components::plan(&spec, &[facts()]);
    let engines = engines(&plan);
    let writes = |engine: &RecordingEngine| -> Vec<(String, bool)> {
        engine
            .take_calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Exec { container, cmd, .. } => Some((container, is_state_write(&cmd))),
                _ => None,
            })
            .collect()
    };
    up(&engines, &plan).await.unwrap();
    let execs = writes(&engines[0]);
    assert_eq!(execs.last(), Some(&("slurmbox-controller".to_string(), true)), "{execs:?}");
    assert_eq!(execs.iter().filter(|(_, w)| *w).count(), 1);
    // Nothing changed: nothing to write.
    up(&engines, &plan).await.unwrap();
    assert!(!writes(&engines[0]).iter().any(|(_, w)| *w));
}

#[tokio::test]
async fn with_a_backup_the_controllers_are_made_again_one_at_a_time() {
    let mut spec =
        ClusterSpec::parse("c.toml", "name = \"slurmbox\"\n[controller]\nbackup = true\n").unwrap();
    let before = crate::components::plan(&spec, &[facts()]);
    let engines = engines(&before);
    let both = serde_json::json!({ "pings": [
        { "hostname": "controller", "responding": true, "mode": "primary" },
        { "hostname": "controller2", "responding": true, "mode": "backup1" },
    ] });
    engines[0].answer(ANY_CONTAINER, &["scontrol", "ping"], ExecOutput::success(&both.to_string()));
    up(&engines, &before).await.unwrap();
    // A change to slurm.conf makes both controllers' containers again.
    spec.slurm_conf.insert("MinJobAge".into(), "301".into());
    let after = crate::components::plan(&spec, &[facts()]);
    let at = |done: &[String], what: &str| {
        done.iter().position(|c| c == what).unwrap_or_else(|| panic!("no {what:?} in {done:?}"))
    };

    engines[0].take_calls();
    up(&engines, &after).await.unwrap();
    let done = changes(&engines[0]);
    // The backup is made again and started while the primary runs; then the primary.
    assert!(at(&done, "start slurmbox-controller2") < at(&done, "remove slurmbox-controller"), "{done:?}");
    assert!(at(&done, "remove slurmbox-controller2") < at(&done, "create slurmbox-controller2"), "{done:?}");

    // `up --now`: both go before either is made again.
    spec.slurm_conf.insert("MinJobAge".into(), "302".into());
    let now = crate::components::plan(&spec, &[facts()]);
    engines[0].take_calls();
    converge(&engines, &now, Duration::from_secs(2), super::roll::Rollout::Now, &quiet()).await.unwrap();
    let done = changes(&engines[0]);
    assert!(at(&done, "remove slurmbox-controller") < at(&done, "create slurmbox-controller2"), "{done:?}");
    assert!(at(&done, "remove slurmbox-controller2") < at(&done, "create slurmbox-controller"), "{done:?}");
}

/// A backup on another host without `state_path`: the storage containers start, and
/// the state's GlusterFS volume is made and mounted on the controllers' hosts, before
/// either controller starts.
#[tokio::test]
async fn the_state_on_glusterfs_is_there_before_the_controllers_start() {
    let mut spec = lab(3);
    spec.controller.backup = Some(crate::spec::BackupPlace::Host("pi3".into()));
    let storage = HostFacts { storage_image: Some("slurmbox/storage:gluster-test".into()), ..facts() };
    let plan = crate::components::plan(&spec, &vec![storage; 3]);
    let engines = engines(&plan);
    let both = serde_json::json!({ "pings": [
        { "hostname": "controller", "responding": true, "mode": "primary" },
        { "hostname": "controller2", "responding": true, "mode": "backup1" },
    ] });
    engines[0].answer(ANY_CONTAINER, &["scontrol", "ping"], ExecOutput::success(&both.to_string()));
    for e in &engines {
        e.insert_image("slurmbox/storage:gluster-test");
    }
    up(&engines, &plan).await.unwrap();
    let at = |done: &[String], what: &str| {
        done.iter().position(|c| c == what).unwrap_or_else(|| panic!("no {what:?} in {done:?}"))
    };
    let first = changes(&engines[0]);
    let converge =
        "exec lab-storage-pi1 /usr/local/sbin/slurmbox-storage converge ctld 10.0.0.1 10.0.0.2 10.0.0.3";
    assert!(at(&first, "start lab-storage-pi1") < at(&first, converge), "{first:?}");
    let mount = "exec lab-storage-pi1 /usr/local/sbin/slurmbox-storage mount ctld";
    assert!(
        at(&first, converge) < at(&first, mount) && at(&first, mount) < at(&first, "start lab-controller")
    );
    let backup = changes(&engines[2]);
    let mount = "exec lab-storage-pi3 /usr/local/sbin/slurmbox-storage mount ctld";
    assert!(at(&backup, mount) < at(&backup, "start lab-controller2"), "{backup:?}");
    // The third brick's host mounts nothing; no /home volume is made.
    let third = changes(&engines[1]);
    assert!(third.contains(&"start lab-storage-pi2".to_string()), "{third:?}");
    assert!(!third.iter().chain(&first).any(|c| c.contains("mount home") || c.contains("converge home")));
}
