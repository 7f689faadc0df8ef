//! Things done to a running cluster through its daemons' own tools (`sinfo`,
//! `scontrol`, `gluster` through the storage script): waiting for the controller and
//! the nodes, forgetting removed nodes, shaping the shared /home's volume.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use miette::Diagnostic;

use crate::engine::{Engine, ExecOutput, ExecSpec};
use crate::plan::Plan;

/// Slurm node states (as `sinfo %T` prints them) of a node that answers and takes jobs.
pub const READY_STATES: &[&str] = &["idle", "mixed", "allocated", "completing"];

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ActionError {
    #[error("compute nodes not ready after {waited}s:\n{report}")]
    #[diagnostic(help(
        "`slurmbox logs --name {cluster} NODE` shows each node's daemons; `slurmbox status --name {cluster}` their state"
    ))]
    NodesNotReady { cluster: String, waited: u64, report: String },
    #[error("the controller did not answer within {0}s")]
    #[diagnostic(help("see `slurmbox logs controller`"))]
    ControllerDown(u64),
    #[error("`{cmd}` failed on {container} (exit {code}): {stderr}")]
    CommandFailed { cmd: String, container: String, code: i64, stderr: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

/// Runs a command (`sinfo`, `scontrol`, the storage script, ...) in `container`; a
/// failure is an error carrying the command and its stderr.
async fn checked<S: AsRef<str>>(
    engine: &impl Engine,
    container: &str,
    cmd: &[S],
) -> Result<ExecOutput, ActionError> {
    let cmd: Vec<String> = cmd.iter().map(|c| c.as_ref().to_string()).collect();
    let out = engine.exec(container, &ExecSpec::new(cmd.iter().cloned())).await?;
    if out.ok() {
        return Ok(out);
    }
    Err(ActionError::CommandFailed {
        cmd: cmd.join(" "),
        container: container.into(),
        code: out.code,
        stderr: out.stderr.trim().into(),
    })
}

/// Node name → Slurm state (e.g. "idle", "down*"), as the controller sees them.
pub async fn node_states(
    engine: &impl Engine,
    controller: &str,
) -> Result<BTreeMap<String, String>, ActionError> {
    let out = checked(engine, controller, &["sinfo", "-h", "-N", "-o", "%N %T"]).await?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, s)| (n.to_string(), s.trim().to_string()))
        .collect())
}

async fn login_ready(engine: &impl Engine, login: &str) -> bool {
    engine.exec(login, &ExecSpec::new(["sinfo", "-h", "-o", "%D"])).await.is_ok_and(|o| o.ok())
}

/// Waits until the controller answers `scontrol ping`.
pub async fn wait_for_controller(
    engine: &impl Engine,
    controller: &str,
    timeout: Duration,
) -> Result<(), ActionError> {
    let start = Instant::now();
    loop {
        let out = engine.exec(controller, &ExecSpec::new(["scontrol", "ping"])).await?;
        if out.ok() && out.stdout.contains("is UP") {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(ActionError::ControllerDown(timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every compute node of the plan answers and is ready for jobs. On
/// timeout the error names each node that is not, with Slurm's reason and the tail of
/// its container's log.
pub async fn wait_for_nodes<E: Engine>(
    engines: &[E],
    plan: &Plan,
    timeout: Duration,
    mut on_poll: impl FnMut(usize, usize),
) -> Result<(), ActionError> {
    let controller = &plan.controller().name;
    let engine = &engines[plan.controller().host];
    let start = Instant::now();
    loop {
        let states = node_states(engine, controller).await.unwrap_or_default();
        let ready = plan
            .compute_nodes
            .iter()
            .filter(|n| states.get(*n).is_some_and(|s| READY_STATES.contains(&s.as_str())))
            .count();
        on_poll(ready, plan.compute_nodes.len());
        // The login node is ready once its client commands reach the controller.
        if ready == plan.compute_nodes.len() && login_ready(engine, &plan.login().name).await {
            return Ok(());
        }
        if start.elapsed() > timeout {
            let mut report = String::new();
            let reasons = engine
                .exec(controller, &ExecSpec::new(["sinfo", "-h", "-N", "-o", "%N|%E"]))
                .await
                .map(|o| o.stdout)
                .unwrap_or_default();
            if !login_ready(engine, &plan.login().name).await {
                let tail = engine.logs(&plan.login().name, "15").await.unwrap_or_else(|e| e.to_string());
                report.push_str(
                    "  login: its Slurm commands cannot reach the controller\n  last lines of its log:\n",
                );
                for line in tail.lines() {
                    report.push_str(&format!("    | {line}\n"));
                }
            }
            for node in &plan.compute_nodes {
                let state = states.get(node).map_or("not registered", String::as_str);
                if READY_STATES.contains(&state) {
                    continue;
                }
                let reason = reasons
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{node}|")))
                    .filter(|r| !r.is_empty() && *r != "none")
                    .unwrap_or("-");
                // The node's log lives on its own host's engine.
                let tail = match plan.containers.iter().find(|c| &c.hostname == node) {
                    Some(c) => engines[c.host].logs(&c.name, "15").await.unwrap_or_else(|e| e.to_string()),
                    None => String::new(),
                };
                report.push_str(&format!("  {node}: {state} (reason: {reason})\n  last lines of its log:\n"));
                for line in tail.lines() {
                    report.push_str(&format!("    | {line}\n"));
                }
            }
            return Err(ActionError::NodesNotReady {
                cluster: plan.cluster.clone(),
                waited: timeout.as_secs(),
                report,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Makes running compute nodes register with the controller again: Slurm forgets them
/// (refused, and harmless, while they run jobs) and their slurmd, on SIGHUP, re-reads
/// its configuration and registers, without disturbing running job steps.
pub async fn reregister_nodes<E: Engine>(
    engines: &[E],
    controller: &str,
    nodes: &[&crate::plan::ContainerPlan],
) -> Result<(), ActionError> {
    let control = &engines[0];
    for node in nodes {
        control
            .exec(controller, &ExecSpec::new(["scontrol", "delete", &format!("nodename={}", node.hostname)]))
            .await?;
        let root = ExecSpec { user: Some("root".into()), ..ExecSpec::new(["pkill", "-HUP", "-x", "slurmd"]) };
        engines[node.host].exec(&node.name, &root).await?;
    }
    Ok(())
}

/// The cluster's munge key, read from the controller (which makes it on first start),
/// for nodes on other hosts. It travels only over the engines' API connections.
pub async fn read_munge_key(
    engine: &impl Engine,
    controller: &str,
    timeout: Duration,
) -> Result<Vec<u8>, ActionError> {
    use base64::Engine as _;
    let start = Instant::now();
    let read = ExecSpec {
        user: Some("root".into()),
        ..ExecSpec::shell("test -s /etc/munge/munge.key && base64 -w0 /etc/munge/munge.key")
    };
    loop {
        let out = engine.exec(controller, &read).await?;
        if out.ok()
            && let Ok(key) = base64::engine::general_purpose::STANDARD.decode(out.stdout.trim())
        {
            return Ok(key);
        }
        if start.elapsed() > timeout {
            return Err(ActionError::CommandFailed {
                cmd: "read the munge key".into(),
                container: controller.into(),
                code: out.code,
                stderr: "the controller made no munge key".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Forgets compute nodes that no longer exist (dynamic nodes stay registered until
/// deleted). A node Slurm does not know is not an error.
pub async fn delete_nodes(
    engine: &impl Engine,
    controller: &str,
    nodes: &[String],
) -> Result<(), ActionError> {
    for node in nodes {
        match checked(engine, controller, &["scontrol", "delete", &format!("nodename={node}")]).await {
            Err(ActionError::CommandFailed { stderr, .. }) if stderr.contains("Invalid node name") => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// Sets compute nodes' Slurm state (`drain`, `down`, `resume`) with a reason users
/// see in `sinfo -R`.
pub async fn set_node_state(
    engine: &impl Engine,
    controller: &str,
    nodes: &[String],
    state: &str,
    reason: &str,
) -> Result<(), ActionError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let mut cmd = vec![
        "scontrol".to_string(),
        "update".into(),
        format!("nodename={}", nodes.join(",")),
        format!("state={state}"),
    ];
    if state != "resume" {
        cmd.push(format!("reason={reason}"));
    }
    checked(engine, controller, &cmd).await?;
    Ok(())
}

/// Ids of the jobs that have any of `nodes` allocated (running or completing).
pub async fn jobs_on(
    engine: &impl Engine,
    controller: &str,
    nodes: &[String],
) -> Result<Vec<String>, ActionError> {
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let out = checked(engine, controller, &["squeue", "-h", "-w", &nodes.join(","), "-o", "%i"]).await?;
    Ok(out.stdout.split_whitespace().map(String::from).collect())
}

/// Makes the shared /home's GlusterFS volume span every storage host of the plan:
/// the first host's storage container probes the others, creates the volume (one
/// brick per host, replicated to all) or adds the bricks of new hosts, and starts it.
/// Each host's storage container then mounts it by itself. Returns what changed.
pub async fn converge_storage<E: Engine>(engines: &[E], plan: &Plan) -> Result<String, ActionError> {
    let Some(first) = plan.storage.first() else {
        return Ok(String::new());
    };
    let mut cmd = vec![crate::plan::STORAGE_PATH.to_string(), "converge".into()];
    cmd.extend(plan.storage.iter().map(|s| s.address.clone()));
    let out = checked(&engines[first.host], &first.container, &cmd).await?;
    // The script reports each change on stderr ("slurmbox-storage: created ...").
    Ok(out.stderr.lines().filter_map(|l| l.strip_prefix("slurmbox-storage: ")).collect::<Vec<_>>().join("; "))
}

/// Takes a leaving host's brick out of the shared /home's volume and forgets the host
/// (run in the first host's storage container `first`). What it held stays on the
/// other hosts' bricks.
pub async fn remove_storage_peer(
    engine: &impl Engine,
    first: &str,
    address: &str,
) -> Result<(), ActionError> {
    checked(engine, first, &[crate::plan::STORAGE_PATH, "remove", address]).await?;
    Ok(())
}
