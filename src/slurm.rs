//! The one Slurm client: every `scontrol`, `sinfo`, `squeue`, `sacct` and `sacctmgr`
//! command slurmbox runs, and the reading of what comes back as typed values ([`Node`],
//! [`NodeState`], [`Job`], [`JobState`], [`AccountedJob`], [`Association`]); changes to
//! the accounting database are typed too ([`SacctmgrChange`]).
//!
//! [`Slurm`] runs the commands in one container (the controller, or the login node as
//! a user) through an [`Engine`]. Slurm is read through its JSON output with
//! data_parser v0.0.42 (`--json=v0.0.42`), which Slurm 24.11 and 26.05 both print; the
//! parsing ([`parse_nodes`], [`parse_sinfo`], [`parse_jobs`], [`parse_ping`]) is pure
//! and tested against output captured from both versions (src/slurm/fixtures/).

mod job;
mod node;
mod sacctmgr;

#[cfg(test)]
mod recorded;

use std::collections::BTreeMap;

use miette::Diagnostic;
use serde::Deserialize;

pub use job::{AccountedJob, Job, JobState, parse_jobs, parse_sacct};
pub use node::{CHANGE_REASON, Node, NodeBase, NodeFlag, NodeState, SinfoNode, parse_nodes, parse_sinfo};
pub use sacctmgr::{
    Applied, Association, ControllerAssoc, SacctmgrChange, SlurmUser, UNRESOLVED_UID, controller_knows,
    parse_assoc_mgr, parse_associations, parse_sacctmgr_users,
};

use crate::engine::{Engine, EngineError, ExecOutput, ExecSpec};

/// The flag choosing Slurm's JSON output and the data_parser version slurmbox reads.
pub const JSON: &str = "--json=v0.0.42";

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum SlurmError {
    #[error("`{cmd}` failed on {container} (exit {code}): {stderr}")]
    Failed { cmd: String, container: String, code: i64, stderr: String },
    #[error("`{cmd}` on {container} printed what slurmbox cannot read: {reason}")]
    #[diagnostic(help(
        "slurmbox reads Slurm's JSON output with data_parser v0.0.42, which Slurm 24.11 and 26.05 print"
    ))]
    Unreadable { cmd: String, container: String, reason: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Engine(#[from] EngineError),
}

/// A state to put compute nodes in with [`Slurm::update_nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeUpdate<'a> {
    /// No new jobs; running ones finish. The reason shows in `sinfo -R`.
    Drain { reason: &'a str },
    /// Out of service at once, ending the jobs that hold them.
    Down { reason: &'a str },
    /// Back in service.
    Resume,
}

/// What [`Slurm::delete_node`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// Slurm did not know the node.
    Unknown,
}

/// Slurm's commands in one container.
pub struct Slurm<'a, E> {
    engine: &'a E,
    container: &'a str,
    user: Option<&'a str>,
    /// Seconds after which a command is ended (`timeout`), if any.
    limit: Option<u32>,
}

impl<'a, E: Engine> Slurm<'a, E> {
    /// Runs commands in `container` as the image's default user (root).
    pub fn new(engine: &'a E, container: &'a str) -> Self {
        Slurm { engine, container, user: None, limit: None }
    }

    /// Runs commands as `user`, in their home, as they would type them.
    pub fn as_user(self, user: &'a str) -> Self {
        Slurm { user: Some(user), ..self }
    }

    /// Ends each command after `seconds` (`timeout`; it then fails with exit 124): for
    /// commands that wait on a daemon that may not answer yet.
    pub fn within(self, seconds: u32) -> Self {
        Slurm { limit: Some(seconds), ..self }
    }

    async fn exec(&self, args: &[&str]) -> Result<ExecOutput, EngineError> {
        let limit = self.limit.map(|s| s.to_string());
        let timeout = limit.as_deref().map(|s| ["timeout", s]);
        let spec = ExecSpec::new(timeout.into_iter().flatten().chain(args.iter().copied()));
        let spec = match self.user {
            Some(user) => spec.as_user(user),
            None => spec,
        };
        self.engine.exec(self.container, &spec).await
    }

    /// Runs a command; one that fails is an error carrying it and its stderr.
    async fn checked(&self, args: &[&str]) -> Result<String, SlurmError> {
        let out = self.exec(args).await?;
        if out.ok() {
            return Ok(out.stdout);
        }
        Err(SlurmError::Failed {
            cmd: args.join(" "),
            container: self.container.into(),
            code: out.code,
            stderr: out.stderr.trim().into(),
        })
    }

    /// Runs a command with [`JSON`] appended and reads its output with `parse`.
    async fn json<T>(
        &self,
        args: &[&str],
        parse: impl FnOnce(&str) -> Result<T, serde_json::Error>,
    ) -> Result<T, SlurmError> {
        let args: Vec<&str> = args.iter().copied().chain([JSON]).collect();
        let out = self.checked(&args).await?;
        parse(&out).map_err(|e| SlurmError::Unreadable {
            cmd: args.join(" "),
            container: self.container.into(),
            reason: e.to_string(),
        })
    }

    /// Whether a controller answers (`scontrol ping`).
    pub async fn controller_up(&self) -> Result<bool, SlurmError> {
        Ok(self.pings().await?.iter().any(|p| p.responding))
    }

    /// Every controller slurm.conf names, the primary first, and whether it answers
    /// (`scontrol ping`). Its exit status says whether all answered: what it prints is
    /// read either way.
    pub async fn pings(&self) -> Result<Vec<Ping>, SlurmError> {
        let args = ["scontrol", "ping", JSON];
        let out = self.exec(&args).await?;
        match parse_pings(&out.stdout) {
            Ok(pings) => Ok(pings),
            Err(e) if out.ok() => Err(SlurmError::Unreadable {
                cmd: args.join(" "),
                container: self.container.into(),
                reason: e.to_string(),
            }),
            Err(_) => Err(SlurmError::Failed {
                cmd: args.join(" "),
                container: self.container.into(),
                code: out.code,
                stderr: out.stderr.trim().into(),
            }),
        }
    }

    /// Whether Slurm's client commands here reach the controller (`sinfo` succeeds):
    /// what a login node needs. Any failure, the engine's included, is a no.
    pub async fn answers(&self) -> bool {
        self.exec(&["sinfo", "-h", "-o", "%D"]).await.is_ok_and(|o| o.ok())
    }

    /// Every node the controller knows (`scontrol show nodes`).
    pub async fn nodes(&self) -> Result<Vec<Node>, SlurmError> {
        self.json(&["scontrol", "show", "nodes"], parse_nodes).await
    }

    /// Node name → state, as the controller sees them.
    pub async fn node_states(&self) -> Result<BTreeMap<String, NodeState>, SlurmError> {
        Ok(self.nodes().await?.into_iter().map(|n| (n.name, n.state)).collect())
    }

    /// The nodes as `sinfo` lists them, one each, sorted by name.
    pub async fn sinfo(&self) -> Result<Vec<SinfoNode>, SlurmError> {
        self.json(&["sinfo"], parse_sinfo).await
    }

    /// Forgets a node (`scontrol delete`); dynamic nodes stay registered until then.
    /// Slurm refuses while the node runs jobs.
    pub async fn delete_node(&self, node: &str) -> Result<Deleted, SlurmError> {
        match self.checked(&["scontrol", "delete", &format!("nodename={node}")]).await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(SlurmError::Failed { stderr, .. }) if stderr.contains("Invalid node name") => {
                Ok(Deleted::Unknown)
            }
            Err(e) => Err(e),
        }
    }

    /// Puts nodes in a state (`scontrol update`); nothing to do for no nodes.
    pub async fn update_nodes(&self, nodes: &[String], update: NodeUpdate<'_>) -> Result<(), SlurmError> {
        if nodes.is_empty() {
            return Ok(());
        }
        let names = format!("nodename={}", nodes.join(","));
        let (state, reason) = match update {
            NodeUpdate::Drain { reason } => ("state=drain", Some(reason)),
            NodeUpdate::Down { reason } => ("state=down", Some(reason)),
            NodeUpdate::Resume => ("state=resume", None),
        };
        let reason = reason.map(|r| format!("reason={r}"));
        let mut args = vec!["scontrol", "update", &names, state];
        args.extend(reason.as_deref());
        self.checked(&args).await?;
        Ok(())
    }

    /// Every job in the queue (`squeue`).
    pub async fn jobs(&self) -> Result<Vec<Job>, SlurmError> {
        self.json(&["squeue"], parse_jobs).await
    }

    /// The jobs that have any of `nodes` allocated (running or completing there).
    pub async fn jobs_on(&self, nodes: &[String]) -> Result<Vec<Job>, SlurmError> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        self.json(&["squeue", "-w", &nodes.join(",")], parse_jobs).await
    }

    /// Puts a batch job back in the queue (`scontrol requeue`): it ends where it runs
    /// and starts again from the beginning. Slurm refuses jobs that are not batch jobs.
    pub async fn requeue(&self, job: u64) -> Result<(), SlurmError> {
        self.checked(&["scontrol", "requeue", &job.to_string()]).await?;
        Ok(())
    }

    /// Every job accounting knows, since the epoch (`sacct -a -X`).
    pub async fn accounted_jobs(&self) -> Result<Vec<AccountedJob>, SlurmError> {
        self.json(&["sacct", "-a", "-X", "-S", "1970-01-01T00:00:00", "-E", "now"], parse_sacct).await
    }

    /// Whether slurmdbd answers `sacctmgr` (`sacctmgr list cluster`) within `seconds`.
    /// It is asked every 0.1 s inside the container, all in one exec: an exec costs the
    /// engine several times what the question costs, and `up` asks while the cluster's
    /// daemons start and want the same CPU.
    pub async fn accounting_answers_within(&self, seconds: u32) -> Result<bool, EngineError> {
        let script = format!(
            "end=$((SECONDS + {seconds})); \
             until timeout 5 sacctmgr -n list cluster format=cluster >/dev/null 2>&1; do \
             [ \"$SECONDS\" -lt \"$end\" ] || exit 1; sleep 0.1; done"
        );
        Ok(self.exec(&["bash", "-c", &script]).await?.ok())
    }

    /// Every association of the accounting database (`sacctmgr show associations`).
    pub async fn associations(&self) -> Result<Vec<Association>, SlurmError> {
        self.json(&["sacctmgr", "show", "associations"], parse_associations).await
    }

    /// Every user of the accounting database (`sacctmgr show users`).
    pub async fn accounting_users(&self) -> Result<Vec<SlurmUser>, SlurmError> {
        self.json(&["sacctmgr", "show", "users"], parse_sacctmgr_users).await
    }

    /// The associations slurmctld holds (`scontrol show assoc_mgr`), which it learns
    /// from slurmdbd a moment after they are made.
    pub async fn controller_associations(&self) -> Result<Vec<ControllerAssoc>, SlurmError> {
        Ok(parse_assoc_mgr(&self.checked(&["scontrol", "-o", "show", "assoc_mgr", "flags=assoc"]).await?))
    }

    /// Makes `changes` in order (`sacctmgr -i`, one call each, all in one exec); what
    /// each did, in the same order, or the first failure.
    pub async fn apply(&self, changes: &[SacctmgrChange]) -> Result<Vec<Applied>, SlurmError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        // One exec for them all: each `sacctmgr -i` call's output and status come back.
        let script = sacctmgr::batch_script(changes);
        let out = self.exec(&["bash", "-c", &script]).await?;
        let done = sacctmgr::split_batch(&out.stdout);
        let mut applied = Vec::with_capacity(changes.len());
        for (i, change) in changes.iter().enumerate() {
            let cmd =
                || ["sacctmgr", "-i"].into_iter().map(String::from).chain(change.args()).collect::<Vec<_>>();
            let Some((code, said)) = done.get(i) else {
                // The batch ended before this one (the exec itself failed).
                return Err(SlurmError::Failed {
                    cmd: cmd().join(" "),
                    container: self.container.into(),
                    code: out.code,
                    stderr: [out.stdout.trim(), out.stderr.trim()].join("\n").trim().into(),
                });
            };
            match sacctmgr::outcome(*code, said, "") {
                Some(outcome) => applied.push(outcome),
                None => {
                    return Err(SlurmError::Failed {
                        cmd: cmd().join(" "),
                        container: self.container.into(),
                        code: *code,
                        stderr: said.clone(),
                    });
                }
            }
        }
        Ok(applied)
    }
}

#[derive(Deserialize)]
struct PingDoc {
    pings: Vec<Ping>,
}

/// One controller, as `scontrol ping` saw it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ping {
    /// Its name in slurm.conf (`SlurmctldHost`).
    pub hostname: String,
    pub responding: bool,
    /// "primary", "backup1", ...
    pub mode: String,
}

/// Parses `scontrol ping --json=v0.0.42`: each controller, the primary first.
pub fn parse_pings(json: &str) -> Result<Vec<Ping>, serde_json::Error> {
    let doc: PingDoc = serde_json::from_str(json)?;
    Ok(doc.pings)
}

/// Parses `scontrol ping --json=v0.0.42`: whether any controller (primary or backup)
/// answered.
pub fn parse_ping(json: &str) -> Result<bool, serde_json::Error> {
    Ok(parse_pings(json)?.iter().any(|p| p.responding))
}

/// The controller in charge: the first that answers (a primary that is back takes
/// control again from the backup).
pub fn in_charge(pings: &[Ping]) -> Option<&Ping> {
    pings.iter().find(|p| p.responding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_says_whether_the_controller_answers() {
        for up in [
            include_str!("slurm/fixtures/24.11-ping-up.json"),
            include_str!("slurm/fixtures/26.05-ping-up.json"),
        ] {
            assert!(parse_ping(up).unwrap());
        }
        for down in [
            include_str!("slurm/fixtures/24.11-ping-down.json"),
            include_str!("slurm/fixtures/26.05-ping-down.json"),
        ] {
            assert!(!parse_ping(down).unwrap());
        }
        assert!(parse_ping("Slurmctld(primary) at controller is UP").is_err());
    }
}
