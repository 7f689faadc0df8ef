//! `slurmbox backup FILE`: the controller's state (queued jobs, the next job ID, node and
//! reservation state) and the accounting database (a consistent dump) in one file, from
//! a running cluster, so that it can be rebuilt or moved to other hosts with
//! `slurmbox restore FILE`. The file is a tar of [`MANIFEST`], [`STATE`] and [`DATABASE`],
//! readable by its owner alone; it holds no key or password (a new cluster makes its own).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::Diagnostic;

use super::{Cluster, Context, running_node};
use crate::cli::BackupArgs;
use crate::components::{accounting, controller};
use crate::engine::Engine;

/// What the backup is of, as JSON.
pub const MANIFEST: &str = "slurmbox-backup.json";
/// The controller's StateSaveLocation, a gzipped tar.
pub const STATE: &str = "slurmctld-state.tar.gz";
/// The accounting database, gzipped SQL (absent for a cluster without accounting).
pub const DATABASE: &str = "accounting.sql.gz";
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

/// A backup read back.
pub struct Backup {
    pub manifest: Manifest,
    pub state: Vec<u8>,
    pub database: Option<Vec<u8>>,
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

pub async fn run(ctx: &Context, args: BackupArgs) -> miette::Result<ExitCode> {
    let handle = ctx.cluster_controller(&args.cluster).await?;
    let step = ctx.progress.step(format!("Backing up cluster {:?}", handle.name));
    let backup = take(&handle).await?;
    write(&args.path, &backup)?;
    step.done_with(describe(&backup));
    println!("{}", args.path.display());
    Ok(ExitCode::SUCCESS)
}

/// "controller state 12 KiB, accounting database 80 KiB (Slurm 24.11.5)".
pub fn describe(backup: &Backup) -> String {
    let kib = |n: usize| n.div_ceil(1024);
    match &backup.database {
        Some(db) => format!(
            "controller state {} KiB, accounting database {} KiB (Slurm {})",
            kib(backup.state.len()),
            kib(db.len()),
            backup.manifest.slurm
        ),
        None => format!("controller state {} KiB (Slurm {})", kib(backup.state.len()), backup.manifest.slurm),
    }
}

/// Reads a running cluster's state and database.
pub async fn take(handle: &Cluster) -> miette::Result<Backup> {
    let containers = handle.containers().await?;
    let ctld = running_node(&handle.name, &containers, crate::contract::CONTROLLER_HOST)?;
    let engine = handle.control();
    let slurm = release(engine, &ctld.name).await?;
    let has_db = containers.iter().any(|c| c.labels.get(crate::plan::LABEL_NODE).is_some_and(|n| n == "db"));
    let database = if has_db {
        let db = running_node(&handle.name, &containers, accounting::DB_HOST)?;
        Some(accounting::dump(engine, &db.name).await?)
    } else {
        None
    };
    // The state after the dump: a job the database has is in the state too.
    let state = controller::save_state(engine, &ctld.name).await?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let manifest = Manifest {
        format: FORMAT,
        cluster: handle.name.clone(),
        slurm,
        created,
        slurmbox: env!("CARGO_PKG_VERSION").into(),
        accounting: database.is_some(),
    };
    Ok(Backup { manifest, state, database })
}

/// The Slurm release the controller runs ("24.11.5").
pub async fn release<E: Engine>(engine: &E, controller: &str) -> miette::Result<String> {
    let out = crate::engine::checked(engine, controller, &crate::engine::ExecSpec::new(["slurmctld", "-V"]))
        .await?;
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
    let mut entries: Vec<(&str, &[u8])> = vec![(MANIFEST, &manifest), (STATE, &backup.state)];
    if let Some(db) = &backup.database {
        entries.push((DATABASE, db));
    }
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
    let (mut manifest, mut state, mut database) = (None, None, None);
    for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = entry.path().map_err(|e| bad(e.to_string()))?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| bad(e.to_string()))?;
        match name.as_str() {
            MANIFEST => manifest = Some(data),
            STATE => state = Some(data),
            DATABASE => database = Some(data),
            _ => {}
        }
    }
    let manifest: Manifest =
        serde_json::from_slice(&manifest.ok_or_else(|| bad(format!("it has no {MANIFEST}")))?)
            .map_err(|e| bad(format!("its {MANIFEST}: {e}")))?;
    if manifest.format != FORMAT {
        return Err(bad(format!("it is of format {}, this slurmbox reads {FORMAT}", manifest.format)));
    }
    let state = state.ok_or_else(|| bad(format!("it has no {STATE}")))?;
    if manifest.accounting && database.is_none() {
        return Err(bad(format!("it has no {DATABASE}")));
    }
    Ok(Backup { manifest, state, database })
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
            state: b"state".to_vec(),
            database: Some(b"sql".to_vec()),
        };
        write(&path, &backup).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let back = read(&path).unwrap();
        assert_eq!((back.manifest.cluster.as_str(), back.state.as_slice()), ("lab", b"state".as_slice()));
        assert_eq!(back.database.as_deref(), Some(b"sql".as_slice()));
        assert_eq!(describe(&back), "controller state 1 KiB, accounting database 1 KiB (Slurm 24.11.5)");

        std::fs::write(&path, b"not a tar").unwrap();
        assert!(matches!(read(&path), Err(BackupError::Unreadable { .. })));
    }
}
