//! The clusters this machine brought up, remembered like kubectl's contexts: one small
//! file per cluster under the user's config folder (`$XDG_CONFIG_HOME/slurmbox/clusters`,
//! else `~/.config/slurmbox/clusters`: see [`Settings`]), holding where its spec file is
//! and a copy of the spec. So `--name NAME` finds a cluster over several hosts from any
//! folder, and `slurmbox list` shows them; `host` and `user` edit the spec file `up` was
//! given when no -f names one. `up` writes the entry, `down --purge` removes it; what
//! runs is still only ever asked of the engines.

use std::path::{Path, PathBuf};

use miette::Diagnostic;

use crate::settings::Settings;
use crate::spec::{self, ClusterSpec};

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum RegistryError {
    #[error("cannot write {path}: {source}")]
    #[diagnostic(help("slurmbox remembers clusters there; check that folder's owner and free space"))]
    Write { path: String, source: std::io::Error },
}

/// What is remembered of one cluster.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub name: String,
    /// The spec file `up` was given (absolute), if any.
    pub spec_file: Option<PathBuf>,
    /// The spec's text as `up` last read it: used when the file is gone.
    pub spec: String,
    /// The hosts, by name (empty: the local engine).
    pub hosts: Vec<String>,
    pub slurm: String,
}

impl Entry {
    pub fn new(spec: &ClusterSpec, spec_file: Option<&Path>, text: String) -> Entry {
        Entry {
            name: spec.name.clone(),
            spec_file: spec_file.map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())),
            spec: text,
            hosts: spec.hosts.iter().map(|h| h.name.clone()).collect(),
            slurm: spec.slurm.to_string(),
        }
    }

    /// The cluster's spec: from its file while that still names this cluster, else the
    /// copy kept here (named as the cluster was).
    pub fn load(&self) -> Result<ClusterSpec, spec::SpecError> {
        if let Some(path) = &self.spec_file
            && let Ok(found) = ClusterSpec::load(path)
            && found.name == self.name
        {
            return Ok(found);
        }
        let origin = format!("the copy of {}'s spec slurmbox kept", self.name);
        ClusterSpec::parse(&origin, &self.spec).map(|spec| ClusterSpec { name: self.name.clone(), ..spec })
    }
}

/// The remembered clusters: one file per cluster in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    /// The registry in slurmbox's config folder (`clusters/`).
    pub fn new(settings: &Settings) -> Registry {
        Registry::at(settings.config_dir.join("clusters"))
    }

    /// The registry in `dir`.
    pub fn at(dir: PathBuf) -> Registry {
        Registry { dir }
    }

    /// The folder entries live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    /// The entry of cluster `name`, if this machine brought it up (an unreadable entry
    /// counts as none).
    pub fn find(&self, name: &str) -> Option<Entry> {
        let text = std::fs::read_to_string(self.path(name)).ok()?;
        toml::from_str(&text).ok()
    }

    /// Every remembered cluster, by name.
    pub fn list(&self) -> Vec<Entry> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut all: Vec<Entry> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
            .filter_map(|e| toml::from_str(&std::fs::read_to_string(e.path()).ok()?).ok())
            .collect();
        all.sort_by(|a: &Entry, b| a.name.cmp(&b.name));
        all
    }

    /// The spec file a command edits: `file` (-f) when given, else the one `up` was
    /// given for cluster `name` (the default cluster's without one), if it had one.
    pub fn spec_file(&self, file: Option<&Path>, name: Option<&str>) -> Option<PathBuf> {
        if let Some(file) = file {
            return Some(file.to_path_buf());
        }
        self.find(name.unwrap_or(spec::DEFAULT_NAME)).and_then(|e| e.spec_file)
    }

    /// Remembers (or updates) a cluster.
    pub fn remember(&self, entry: &Entry) -> Result<(), RegistryError> {
        let path = self.path(&entry.name);
        let text = toml::to_string(entry).expect("an entry serializes");
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| spec::write_atomic(&path, &text))
            .map_err(|source| RegistryError::Write { path: path.display().to_string(), source })
    }

    /// Forgets a cluster (nothing to do if it was not remembered).
    pub fn forget(&self, name: &str) -> Result<(), RegistryError> {
        match std::fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(RegistryError::Write { path: self.path(name).display().to_string(), source: e })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_loads_its_file_and_falls_back_to_its_copy() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pilab.toml");
        let text = "name = \"pilab\"\n[compute]\ncount = 3\n";
        std::fs::write(&file, text).unwrap();
        let spec = ClusterSpec::parse("c.toml", text).unwrap();
        let entry = Entry::new(&spec, Some(&file), text.into());
        let back: Entry = toml::from_str(&toml::to_string(&entry).unwrap()).unwrap();
        assert_eq!(back, entry);
        std::fs::write(&file, "name = \"pilab\"\n[compute]\ncount = 4\n").unwrap();
        assert_eq!(entry.load().unwrap().compute.count, 4, "the file, as it is now");
        std::fs::write(&file, "name = \"other\"\n").unwrap();
        assert_eq!(
            entry.load().unwrap().compute.count,
            3,
            "a file that names another cluster is not this one's"
        );
        std::fs::remove_file(&file).unwrap();
        assert_eq!(entry.load().unwrap().compute.count, 3, "the copy, once the file is gone");
    }

    #[test]
    fn clusters_are_remembered_listed_and_forgotten_in_the_registry_folder() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::at(dir.path().join("clusters"));
        assert!(registry.list().is_empty() && registry.find("pilab").is_none());
        let text = "name = \"pilab\"\n";
        let entry = Entry::new(&ClusterSpec::parse("c.toml", text).unwrap(), None, text.into());
        registry.remember(&entry).unwrap();
        assert_eq!(registry.find("pilab"), Some(entry.clone()));
        assert_eq!(registry.list(), [entry]);
        registry.forget("pilab").unwrap();
        registry.forget("pilab").unwrap();
        assert!(registry.list().is_empty());
    }

    #[test]
    fn a_command_edits_the_given_spec_file_else_the_remembered_one() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::at(dir.path().join("clusters"));
        let given = Path::new("given.toml");
        assert_eq!(registry.spec_file(Some(given), Some("lab")), Some(given.to_path_buf()));
        assert_eq!(registry.spec_file(None, Some("lab")), None, "never brought up");
        let file = dir.path().join("lab.toml");
        let spec = ClusterSpec::parse("c.toml", "name = \"lab\"\n").unwrap();
        registry.remember(&Entry::new(&spec, Some(&file), String::new())).unwrap();
        assert_eq!(registry.spec_file(None, Some("lab")), Some(file));
        let default = ClusterSpec::default_cluster();
        registry.remember(&Entry::new(&default, None, String::new())).unwrap();
        assert_eq!(registry.spec_file(None, None), None, "brought up without a file");
    }
}
