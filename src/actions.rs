//! Things done to a running cluster through its daemons: waiting for the controller
//! and the nodes, forgetting removed nodes and re-registering kept ones (through the
//! [`Slurm`] client), copying the munge key, shaping the shared /home's volume (through
//! the storage script).

use std::time::{Duration, Instant};

use miette::Diagnostic;

use crate::engine::{Engine, ExecOutput, ExecSpec};
use crate::plan::Plan;
use crate::slurm::{Slurm, SlurmError};

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
    Slurm(#[from] SlurmError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

/// Runs a command (the storage script, ...) in `container`; a failure is an error
/// carrying the command and its stderr.
pub async fn checked<S: AsRef<str>>(
    engine: &impl Engine,
    container: &str,
    cmd: &[S],
) -> Result<ExecOutput, ActionError> {
    let cmd: Vec<String> = cmd.iter().map(|c| c.as_ref().to_string()).collect();
    let out = engine.exec(container, &ExecSpec::new(cmd.iter().cloned())).await?;
    if out.ok() {
        return Ok(out);
    }
    // What the script said of its failure: its stderr, else its stdout (some tools,
    // gluster among them, report errors there), else that it said nothing.
    let said = [out.stderr.trim(), out.stdout.trim()].into_iter().find(|t| !t.is_empty());
    Err(ActionError::CommandFailed {
        cmd: cmd.join(" "),
        container: container.into(),
        code: out.code,
        stderr: said.unwrap_or("(it printed nothing)").into(),
    })
}

/// Bytes a command in `container` printed as base64 (how binary output leaves a container).
pub fn decode_base64(container: &str, what: &str, text: &str) -> Result<Vec<u8>, ActionError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|e| ActionError::CommandFailed {
        cmd: format!("read {what}"),
        container: container.into(),
        code: 0,
        stderr: format!("its output is not base64: {e}"),
    })
}

/// Waits until the controller answers `scontrol ping`.
pub async fn wait_for_controller(
    engine: &impl Engine,
    controller: &str,
    timeout: Duration,
) -> Result<(), ActionError> {
    let slurm = Slurm::new(engine, controller);
    let start = Instant::now();
    loop {
        match slurm.controller_up().await {
            Ok(true) => return Ok(()),
            // Not up yet, or its commands cannot reach it yet.
            Ok(false) | Err(SlurmError::Failed { .. }) => {}
            Err(e) => return Err(e.into()),
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
    let engine = &engines[plan.controller().host];
    let slurm = Slurm::new(engine, &plan.controller().name);
    let login = Slurm::new(engine, &plan.login().name);
    let start = Instant::now();
    loop {
        // Not answering yet counts as no node ready.
        let nodes = slurm.nodes().await.unwrap_or_default();
        let state = |name: &str| nodes.iter().find(|n| n.name == name);
        let ready =
            plan.compute_nodes.iter().filter(|n| state(n).is_some_and(|n| n.state.is_ready())).count();
        on_poll(ready, plan.compute_nodes.len());
        // The login node is ready once its client commands reach the controller.
        if ready == plan.compute_nodes.len() && login.answers().await {
            return Ok(());
        }
        if start.elapsed() > timeout {
            let mut report = String::new();
            if !login.answers().await {
                let tail = engine.logs(&plan.login().name, "15").await.unwrap_or_else(|e| e.to_string());
                report.push_str(
                    "  login: its Slurm commands cannot reach the controller\n  last lines of its log:\n",
                );
                for line in tail.lines() {
                    report.push_str(&format!("    | {line}\n"));
                }
            }
            for node in &plan.compute_nodes {
                let found = state(node);
                if found.is_some_and(|n| n.state.is_ready()) {
                    continue;
                }
                let state = found.map_or("not registered".to_string(), |n| n.state.to_string());
                let reason = found.and_then(|n| n.reason.as_deref()).unwrap_or("-");
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
/// Each node is (its host's engine, its container, its Slurm name).
pub async fn reregister_nodes<E: Engine>(
    control: &E,
    controller: &str,
    nodes: &[(&E, &str, &str)],
) -> Result<(), ActionError> {
    let slurm = Slurm::new(control, controller);
    for (engine, container, node) in nodes {
        match slurm.delete_node(node).await {
            // Refused while it runs jobs: it stays known, which is what re-registering wants.
            Ok(_) | Err(SlurmError::Failed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let root = ExecSpec { user: Some("root".into()), ..ExecSpec::new(["pkill", "-HUP", "-x", "slurmd"]) };
        engine.exec(container, &root).await?;
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
    let slurm = Slurm::new(engine, controller);
    for node in nodes {
        slurm.delete_node(node).await?;
    }
    Ok(())
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
    // Every host mounts the volume now, all at once, rather than at its own next look.
    let mounts = plan
        .storage
        .iter()
        .map(|s| checked(&engines[s.host], &s.container, &[crate::plan::STORAGE_PATH, "mount"]));
    let mounted = futures_util::future::join_all(mounts).await;
    mounted.into_iter().collect::<Result<Vec<_>, _>>()?;
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
