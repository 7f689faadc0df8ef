//! The GlusterFS client: the `gluster` commands slurmbox runs in a storage container
//! to ask about the shared /home's volume and peers, read from their XML
//! (`gluster --mode=script --xml`) as typed values ([`VolumeInfo`], [`VolumeProcess`],
//! [`BrickHeal`], [`Peer`], and [`VolumeHealth`], what `slurmbox status` shows).
//!
//! [`Gluster`] runs the commands through an [`Engine`], like [`crate::slurm::Slurm`];
//! the parsing ([`xml`]) is pure and tested against output of GlusterFS 11.1 captured
//! in src/gluster/fixtures/. Changing the volume stays with the storage containers'
//! script (`slurmbox-storage converge`).

pub mod xml;

#[cfg(test)]
mod recorded;

use miette::Diagnostic;

pub use xml::{Answer, BrickHeal, Peer, VolumeInfo, VolumeProcess, VolumeState};

use crate::engine::{Engine, EngineError, ExecSpec};

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum GlusterError {
    #[error("`{cmd}` failed on {container} (exit {code}): {stderr}")]
    #[diagnostic(help("is glusterd running there? `slurmbox logs` shows the storage containers' logs"))]
    Failed { cmd: String, container: String, code: i64, stderr: String },
    #[error("`{cmd}` on {container}: glusterd refused (error {errno}): {message}")]
    Refused { cmd: String, container: String, errno: i64, message: String },
    #[error("`{cmd}` on {container} printed what slurmbox cannot read: {reason}")]
    Unreadable { cmd: String, container: String, reason: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Engine(#[from] EngineError),
}

/// A volume's health, the facts `slurmbox status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeHealth {
    /// `None`: there is no such volume (yet).
    pub state: Option<VolumeState>,
    /// How many bricks the volume has.
    pub bricks: u32,
    /// How many of them are online.
    pub online: u32,
    /// Files a brick still lacks, which self-heal will copy there (all bricks together).
    pub heal_pending: u64,
    /// Files whose copies disagree (all bricks together).
    pub split_brain: u64,
}

impl VolumeHealth {
    /// The state as the storage script's `status` printed it: "Started", "Stopped",
    /// "Created", or "none".
    pub fn state_name(&self) -> &str {
        self.state.as_ref().map_or("none", VolumeState::as_str)
    }
}

/// GlusterFS's commands in one storage container.
pub struct Gluster<'a, E> {
    engine: &'a E,
    container: &'a str,
}

impl<'a, E: Engine> Gluster<'a, E> {
    pub fn new(engine: &'a E, container: &'a str) -> Self {
        Gluster { engine, container }
    }

    /// Runs `gluster --mode=script --xml ARGS` and reads its XML with `parse`. gluster
    /// prints XML also when glusterd refuses (and some refusals exit non-zero): only
    /// output that is not XML is a failure of the command.
    async fn xml<T>(
        &self,
        args: &[&str],
        parse: impl FnOnce(&str) -> Result<Answer<T>, xml::XmlError>,
    ) -> Result<T, GlusterError> {
        let cmd: Vec<&str> =
            ["gluster", "--mode=script", "--xml"].into_iter().chain(args.iter().copied()).collect();
        let out = self.engine.exec(self.container, &ExecSpec::new(cmd.iter().copied())).await?;
        let cmd = cmd.join(" ");
        let container = self.container.to_string();
        if !out.stdout.trim_start().starts_with('<') {
            let said = if out.stderr.trim().is_empty() { &out.stdout } else { &out.stderr };
            let code = if out.ok() { -1 } else { out.code };
            return Err(GlusterError::Failed { cmd, container, code, stderr: said.trim().into() });
        }
        match parse(&out.stdout) {
            Ok(Answer::Done(t)) => Ok(t),
            Ok(Answer::Refused { errno, message }) => {
                Err(GlusterError::Refused { cmd, container, errno, message })
            }
            Err(reason) => Err(GlusterError::Unreadable { cmd, container, reason }),
        }
    }

    /// The volume (`volume info VOLUME`); `None` when there is no such volume.
    pub async fn volume_info(&self, volume: &str) -> Result<Option<VolumeInfo>, GlusterError> {
        match self.xml(&["volume", "info", volume], xml::parse_volume_info).await {
            Ok(volumes) => Ok(volumes.into_iter().find(|v| v.name == volume)),
            Err(GlusterError::Refused { message, .. }) if message.contains("does not exist") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The volume's bricks and daemons, and which run (`volume status VOLUME`);
    /// refused while the volume is not started.
    pub async fn volume_status(&self, volume: &str) -> Result<Vec<VolumeProcess>, GlusterError> {
        self.xml(&["volume", "status", volume], xml::parse_volume_status).await
    }

    /// Each brick's files waiting for self-heal or in split-brain (`volume heal VOLUME
    /// info summary`); refused for a volume that is not started or not replicated.
    pub async fn heal_summary(&self, volume: &str) -> Result<Vec<BrickHeal>, GlusterError> {
        self.xml(&["volume", "heal", volume, "info", "summary"], xml::parse_heal_summary).await
    }

    /// The other hosts' glusterd (`peer status`).
    pub async fn peers(&self) -> Result<Vec<Peer>, GlusterError> {
        self.xml(&["peer", "status"], xml::parse_peer_status).await
    }

    /// The volume's state, bricks online and files to heal. A volume that is not
    /// started has no brick online and nothing to heal (glusterd refuses to say).
    pub async fn volume_health(&self, volume: &str) -> Result<VolumeHealth, GlusterError> {
        let Some(info) = self.volume_info(volume).await? else {
            return Ok(VolumeHealth::default());
        };
        let online = match self.volume_status(volume).await {
            Ok(processes) => processes.iter().filter(|p| p.is_brick() && p.online).count(),
            Err(GlusterError::Refused { .. }) => 0,
            Err(e) => return Err(e),
        };
        let (heal_pending, split_brain) = match self.heal_summary(volume).await {
            Ok(bricks) => bricks.iter().fold((0, 0), |(h, s), b| (h + b.heal_pending, s + b.split_brain)),
            Err(GlusterError::Refused { .. }) => (0, 0),
            Err(e) => return Err(e),
        };
        Ok(VolumeHealth {
            bricks: info.bricks.len() as u32,
            state: Some(info.state),
            online: online as u32,
            heal_pending,
            split_brain,
        })
    }
}
