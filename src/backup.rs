//! Backups of a running cluster (`slurmbox backup FILE`, `slurmbox restore FILE`): one
//! file, a tar of [`MANIFEST`] and each part's share (the controller's state, the
//! accounting database: see the parts' `backup` hooks), readable by its owner alone; it
//! holds no key or password (a new cluster makes its own). Taking one and putting one
//! back ask every part for its share; this module knows the file, not the parts.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use miette::Diagnostic;

use crate::cluster::{Cluster, Model, running_node};
pub use crate::components::Part;
use crate::components::{PARTS, PartError};
use crate::contract;
use crate::engine::{Engine, ExecSpec, checked};

/// What the backup is of, as JSON.
pub const MANIFEST: &str = "slurmbox-backup.json";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The cluster's name: Slurm's state and database are keyed by it.
    pub cluster: String,
    /// The Slurm release that wrote them ("24.11.5").
    pub slurm: String,
    /// Seconds since 1970 when the backup was taken.
    pub created: u64,
    pub slurmbox: String,
    pub accounting: bool,
}

/// A backup, taken or read back: its manifest, and each part's share by file name.
pub struct Backup {
    pub manifest: Manifest,
    pub shares: BTreeMap<String, Vec<u8>>,
}

impl Backup {
    /// What the backup holds for `part`.
    pub fn share(&self, part: Part) -> Option<&[u8]> {
        let (file, _) = part.backup_file()?;
        self.shares.get(file).map(Vec::as_slice)
    }
}

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum BackupError {
    #[error("cannot write the backup to {path}: {source}")]
    #[diagnostic(help("pick a path in a folder you may write to"))]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a slurmbox backup: {why}")]
    #[diagnostic(help("`slurmbox backup FILE` makes one from a running cluster"))]
    Unreadable { path: PathBuf, why: String },
}

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum RestoreError {
    #[error("the backup is of cluster {backup:?}, not {cluster:?}")]
    #[diagnostic(help(
        "Slurm keys its state and database by the cluster's name: restore it into a cluster named {backup:?} \
         (`name = \"{backup}\"` in its spec, or --name {backup})"
    ))]
    OtherCluster { backup: String, cluster: String },
    #[error("the backup was written by Slurm {backup}, and cluster {cluster:?} runs the older {running}")]
    #[diagnostic(help(
        "Slurm reads older state, never newer: bring the cluster up on the backup's release first"
    ))]
    Newer { backup: String, running: String, cluster: String },
}

/// Every part's backup file and what it holds, in the parts' order.
fn files() -> impl Iterator<Item = (&'static str, &'static str)> {
    PARTS.into_iter().filter_map(Part::backup_file)
}

/// "controller state 12 KiB, accounting database 80 KiB (Slurm 24.11.5)".
pub fn describe(backup: &Backup) -> String {
    let kib = |n: usize| n.div_ceil(1024);
    let held: Vec<String> = files()
        .filter_map(|(file, what)| Some(format!("{what} {} KiB", kib(backup.shares.get(file)?.len()))))
        .collect();
    format!("{} (Slurm {})", held.join(", "), backup.manifest.slurm)
}

/// Reads a running cluster's shares, each part's in the reverse of the parts' order.
pub async fn take(cluster: &Cluster, model: &Model) -> miette::Result<Backup> {
    let ctld = running_node(&cluster.name, &model.containers, contract::CONTROLLER_HOST)?;
    let slurm = release(cluster.engine(ctld), &ctld.name).await?;
    let mut shares = BTreeMap::new();
    for part in PARTS.into_iter().rev() {
        if let (Some(bytes), Some((file, _))) = (part.backup(cluster, model).await?, part.backup_file()) {
            shares.insert(file.to_string(), bytes);
        }
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let accounting = Part::Accounting.backup_file().is_some_and(|(file, _)| shares.contains_key(file));
    let manifest = Manifest {
        format: FORMAT,
        cluster: cluster.name.clone(),
        slurm,
        created,
        slurmbox: env!("CARGO_PKG_VERSION").into(),
        accounting,
    };
    Ok(Backup { manifest, shares })
}

/// Whether `backup` can go into this cluster: its own, written by the Slurm it runs or
/// an older one, and every part able to take its share back. Nothing changes here.
pub async fn check(cluster: &Cluster, model: &Model, backup: &Backup) -> miette::Result<()> {
    if backup.manifest.cluster != cluster.name {
        return Err(RestoreError::OtherCluster {
            backup: backup.manifest.cluster.clone(),
            cluster: cluster.name.clone(),
        }
        .into());
    }
    let ctld = running_node(&cluster.name, &model.containers, contract::CONTROLLER_HOST)?;
    let running = release(cluster.engine(ctld), &ctld.name).await?;
    if version(&backup.manifest.slurm) > version(&running) {
        return Err(RestoreError::Newer {
            backup: backup.manifest.slurm.clone(),
            running,
            cluster: cluster.name.clone(),
        }
        .into());
    }
    for part in PARTS {
        part.restorable(cluster, model, backup.share(part))?;
    }
    Ok(())
}

/// Puts each part's share back: first every part stops what would write meanwhile
/// (slurmdbd), then each takes its share, in the parts' order (the controller's state,
/// then the database), then each makes the cluster whole again (the controller answers,
/// the nodes register with it).
pub async fn put_back(cluster: &Cluster, model: &Model, backup: &Backup) -> Result<(), PartError> {
    for part in PARTS {
        part.before_restore(cluster, model, backup.share(part)).await?;
    }
    for part in PARTS {
        if let Some(share) = backup.share(part) {
            part.restore(cluster, model, share).await?;
        }
    }
    for part in PARTS {
        part.after_restore(cluster, model).await?;
    }
    Ok(())
}

/// "24.11.5" as (24, 11, 5), to compare releases.
fn version(text: &str) -> Vec<u64> {
    text.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The Slurm release the controller runs ("24.11.5").
pub async fn release<E: Engine>(engine: &E, controller: &str) -> miette::Result<String> {
    let out = checked(engine, controller, &ExecSpec::new(["slurmctld", "-V"])).await?;
    Ok(out.stdout.split_whitespace().last().unwrap_or_default().to_string())
}

/// Writes the backup next to its final path and renames it there: a crash leaves the
/// old file or the new one, never half of one. Mode 0600 (accounting data is private).
pub fn write(path: &Path, backup: &Backup) -> Result<(), BackupError> {
    let err = |source| BackupError::Write { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(err)?;
    let mut tar = tar::Builder::new(tmp);
    let manifest = serde_json::to_vec_pretty(&backup.manifest).expect("the manifest serializes");
    let mut entries: Vec<(&str, &[u8])> = vec![(MANIFEST, &manifest)];
    entries.extend(files().filter_map(|(file, _)| Some((file, backup.shares.get(file)?.as_slice()))));
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(backup.manifest.created);
        header.set_cksum();
        tar.append_data(&mut header, name, data).map_err(err)?;
    }
    let mut tmp = tar.into_inner().map_err(err)?;
    tmp.flush().map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Reads a backup file back, checking that it has what a restore needs.
pub fn read(path: &Path) -> Result<Backup, BackupError> {
    let bad = |why: String| BackupError::Unreadable { path: path.to_path_buf(), why };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut tar = tar::Archive::new(file);
    let (mut manifest, mut shares) = (None, BTreeMap::new());
    for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = entry.path().map_err(|e| bad(e.to_string()))?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| bad(e.to_string()))?;
        if name == MANIFEST {
            manifest = Some(data);
        } else if let Some((file, _)) = files().find(|(file, _)| *file == name) {
            shares.insert(file.to_string(), data);
        }
    }
    let manifest: Manifest =
        serde_json::from_slice(&manifest.ok_or_else(|| bad(format!("it has no {MANIFEST}")))?)
            .map_err(|e| bad(format!("its {MANIFEST}: {e}")))?;
    if manifest.format != FORMAT {
        return Err(bad(format!("it is of format {}, this slurmbox reads {FORMAT}", manifest.format)));
    }
    // Every backup has the controller's state; one of a cluster with accounting, its
    // database.
    for part in PARTS {
        let Some((file, _)) = part.backup_file() else { continue };
        let wanted = part != Part::Accounting || manifest.accounting;
        if wanted && !shares.contains_key(file) {
            return Err(bad(format!("it has no {file}")));
        }
    }
    Ok(Backup { manifest, shares })
}

/// How many jobs a cluster's accounting knows, and the highest job ID (for `restore`'s
/// report); `None` where accounting cannot say.
pub async fn jobs<E: Engine>(engine: &E, controller: &str) -> Option<(usize, u64)> {
    let jobs = crate::slurm::Slurm::new(engine, controller).accounted_jobs().await.ok()?;
    Some((jobs.len(), jobs.iter().map(|j| j.id).max().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::{accounting, controller};

    #[test]
    fn releases_compare_by_number() {
        // Number by number, not as text: "24.11.10" sorts before "24.11.5" as a string,
        // and "9.1" after "24.11".
        assert!(version("24.11.5") < version("24.11.10"));
        assert!(version("24.11.10") > version("24.11.5"));
        assert!(version("9.1.0") < version("24.11.0"));
        // A later release series is newer whatever its patch level.
        assert!(version("24.11.99") < version("26.05.1"));
        assert!(version("26.05.0") > version("24.11.5"));
        // The same release is neither newer nor older.
        assert_eq!(version("24.11.5"), version("24.11.5"));
        assert_ne!(version("24.11.5"), version("24.11.6"));
    }

    #[test]
    fn a_backup_reads_back_as_written_and_only_its_owner_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.backup");
        let backup = Backup {
            manifest: Manifest {
                format: FORMAT,
                cluster: "lab".into(),
                slurm: "24.11.5".into(),
                created: 1_700_000_000,
                slurmbox: "0.1.0".into(),
                accounting: true,
            },
            shares: BTreeMap::from([
                (controller::BACKUP_FILE.to_string(), b"state".to_vec()),
                (accounting::BACKUP_FILE.to_string(), b"sql".to_vec()),
            ]),
        };
        write(&path, &backup).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let back = read(&path).unwrap();
        assert_eq!(back.manifest.cluster, "lab");
        assert_eq!(back.share(Part::Controller), Some(b"state".as_slice()));
        assert_eq!(back.share(Part::Accounting), Some(b"sql".as_slice()));
        assert_eq!(describe(&back), "controller state 1 KiB, accounting database 1 KiB (Slurm 24.11.5)");

        std::fs::write(&path, b"not a tar").unwrap();
        assert!(matches!(read(&path), Err(BackupError::Unreadable { .. })));
    }

    #[test]
    fn a_backup_without_the_controllers_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.backup");
        let manifest = Manifest {
            format: FORMAT,
            cluster: "lab".into(),
            slurm: "24.11.5".into(),
            created: 1_700_000_000,
            slurmbox: "0.1.0".into(),
            accounting: false,
        };
        write(&path, &Backup { manifest, shares: BTreeMap::new() }).unwrap();
        let Err(BackupError::Unreadable { why, .. }) = read(&path) else {
            panic!("read a backup without state")
        };
        assert_eq!(why, "it has no slurmctld-state.tar.gz");
    }
}
