//! Editing a spec file: `slurmbox host add/remove` and `slurmbox user add/remove`
//! change a spec by editing its text, so the user's comments and layout stay; the
//! result is parsed and checked like any spec before it is written, whole and in one
//! step ([`SpecFile`]).

use std::path::{Path, PathBuf};

use miette::Diagnostic;

use super::{ClusterSpec, SpecError, UserSpec};

/// A spec file being edited: where it is, and its text as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecFile {
    pub path: PathBuf,
    pub text: String,
}

impl SpecFile {
    /// Reads the spec file at `path`.
    pub fn read(path: PathBuf) -> Result<SpecFile, SpecError> {
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(SpecFile { path, text }),
            Err(source) => Err(SpecError::Read { path, source }),
        }
    }

    /// The file's name in messages and errors.
    pub fn origin(&self) -> String {
        self.path.display().to_string()
    }

    /// The spec the file holds, checked.
    pub fn spec(&self) -> Result<ClusterSpec, SpecError> {
        ClusterSpec::parse(&self.origin(), &self.text)
    }

    /// `edited`, the file's text after an edit, checked like any spec (errors name
    /// this file).
    pub fn check(&self, edited: &str) -> Result<ClusterSpec, SpecError> {
        ClusterSpec::parse(&self.origin(), edited)
    }

    /// Replaces the file with `text`, whole and in one step ([`write_atomic`]).
    pub fn write(&self, text: &str) -> Result<(), WriteError> {
        write_atomic(&self.path, text).map_err(|source| WriteError { path: self.origin(), source })
    }
}

/// A spec file that could not be written; it still holds what it held before.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    pub path: String,
    pub source: std::io::Error,
}

// ---- `slurmbox host add/remove` ------------------------------------------------------

/// The spec text with one more `[[host]]` table at its end.
pub fn with_host(text: &str, name: &str, engine: &str, address: Option<&str>) -> Result<String, EditError> {
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| EditError(e.to_string()))?;
    let hosts = doc
        .entry("host")
        .or_insert(toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| EditError("`host` is not a list of [[host]] tables".into()))?;
    let mut table = toml_edit::Table::new();
    table["name"] = toml_edit::value(name);
    table["engine"] = toml_edit::value(engine);
    if let Some(address) = address {
        table["address"] = toml_edit::value(address);
    }
    hosts.push(table);
    Ok(doc.to_string())
}

/// The spec text without the `[[host]]` table named `name`; `None` when it has none.
pub fn without_host(text: &str, name: &str) -> Result<Option<String>, EditError> {
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| EditError(e.to_string()))?;
    let Some(hosts) = doc.get_mut("host").and_then(|h| h.as_array_of_tables_mut()) else {
        return Ok(None);
    };
    let Some(i) = hosts.iter().position(|t| t.get("name").and_then(|n| n.as_str()) == Some(name)) else {
        return Ok(None);
    };
    hosts.remove(i);
    if hosts.is_empty() {
        doc.remove("host");
    }
    Ok(Some(doc.to_string()))
}

/// Replaces the file at `path` with `text` in one step: written next to it, then
/// renamed over it, so a crash leaves the old spec or the new one, never half of one.
/// The file keeps its permissions.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.slurmbox-{}", std::process::id()));
    let write = || {
        std::fs::write(&tmp, text)?;
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("cannot edit the spec: {0}")]
#[diagnostic(help("fix the file by hand (`slurmbox up -f FILE` checks it), then run this again"))]
pub struct EditError(pub(crate) String);

// ---- `slurmbox user add/remove` ------------------------------------------------------

fn document(text: &str) -> Result<toml_edit::DocumentMut, EditError> {
    text.parse().map_err(|e: toml_edit::TomlError| EditError(e.to_string()))
}

fn user_tables(doc: &mut toml_edit::DocumentMut) -> Result<&mut toml_edit::ArrayOfTables, EditError> {
    doc.entry("user")
        .or_insert(toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| EditError("`user` is not a list of [[user]] tables".into()))
}

fn user_table(user: &UserSpec) -> toml_edit::Table {
    let mut table = toml_edit::Table::new();
    table["name"] = toml_edit::value(user.name.as_str());
    table["uid"] = toml_edit::value(i64::from(user.uid));
    if user.gid != user.uid {
        table["gid"] = toml_edit::value(i64::from(user.gid));
    }
    if !user.ssh_keys.is_empty() {
        let keys: toml_edit::Array = user.ssh_keys.iter().map(String::as_str).collect();
        table["ssh_keys"] = toml_edit::value(keys);
    }
    if !user.login {
        table["login"] = toml_edit::value(false);
    }
    table
}

/// The spec text with `user` in it: its `[[user]]` table replaced (same name) or added
/// at the end. `implicit` are the users the spec has without saying so (the default
/// user, when it has no `[[user]]` table): they are written out first, so that adding
/// one does not take them away.
pub fn with_user(text: &str, user: &UserSpec, implicit: &[UserSpec]) -> Result<String, EditError> {
    let mut doc = document(text)?;
    let had_none = doc.get("user").is_none();
    let tables = user_tables(&mut doc)?;
    if had_none {
        for u in implicit.iter().filter(|u| u.name != user.name) {
            tables.push(user_table(u));
        }
    }
    let found =
        tables.iter().position(|t| t.get("name").and_then(|n| n.as_str()) == Some(user.name.as_str()));
    match found {
        Some(i) => {
            let table = tables.get_mut(i).expect("found above");
            // Keep the table's own comments and order; set what `user` says.
            let fresh = user_table(user);
            for key in ["gid", "ssh_keys", "login"] {
                if !fresh.contains_key(key) {
                    table.remove(key);
                }
            }
            for (key, value) in fresh.iter() {
                table[key] = value.clone();
            }
        }
        None => tables.push(user_table(user)),
    }
    Ok(doc.to_string())
}

/// The spec text without the `[[user]]` table named `name`; `None` when it has none.
pub fn without_user(text: &str, name: &str) -> Result<Option<String>, EditError> {
    let mut doc = document(text)?;
    let Some(tables) = doc.get_mut("user").and_then(|h| h.as_array_of_tables_mut()) else {
        return Ok(None);
    };
    let found = tables.iter().position(|t| t.get("name").and_then(|n| n.as_str()) == Some(name));
    let Some(i) = found else {
        return Ok(None);
    };
    tables.remove(i);
    if tables.is_empty() {
        doc.remove("user");
    }
    Ok(Some(doc.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ClusterSpec;

    #[test]
    fn hosts_are_added_and_removed_keeping_comments() {
        let text = "# the lab\nname = \"lab\"\n[home]\nhost_path = \"/gfsv/home\" # shared\n[[host]]\nname = \"pi1\"\nengine = \"ssh://pi@10.0.0.1\"\n";
        let added = with_host(text, "pi2", "ssh://pi@10.0.0.2", Some("10.0.0.2")).unwrap();
        assert!(added.starts_with(text), "{added}");
        let spec = ClusterSpec::parse("c.toml", &added).unwrap();
        let names: Vec<&str> = spec.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["pi1", "pi2"]);
        assert_eq!(without_host(&added, "pi2").unwrap().as_deref(), Some(text));
        assert_eq!(without_host(&added, "pi9").unwrap(), None);
        let first = with_host("name = \"x\"\n", "a", "tcp://a:2375", None).unwrap();
        assert_eq!(ClusterSpec::parse("c.toml", &first).unwrap().hosts[0].engine, "tcp://a:2375");
        assert_eq!(without_host(&first, "a").unwrap().as_deref(), Some("name = \"x\"\n"));
    }

    #[test]
    fn a_spec_file_is_read_checked_and_written_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, "name = \"lab\"\n").unwrap();
        let file = SpecFile::read(path.clone()).unwrap();
        assert_eq!(file.spec().unwrap().name, "lab");
        let edited = with_host(&file.text, "pi1", "ssh://pi@10.0.0.1", None).unwrap();
        assert_eq!(file.check(&edited).unwrap().hosts[0].name, "pi1");
        let e = file.check("name = 1\n").unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:1:8:", path.display())), "{e}");
        file.write(&edited).unwrap();
        assert_eq!(SpecFile::read(path.clone()).unwrap().text, edited);
        let missing = SpecFile::read(dir.path().join("none.toml")).unwrap_err();
        assert!(matches!(missing, SpecError::Read { .. }), "{missing}");
        let nowhere = SpecFile { path: dir.path().join("no/such/folder.toml"), text: String::new() };
        let e = nowhere.write("name = \"x\"\n").unwrap_err().to_string();
        assert!(e.starts_with("cannot write ") && e.contains("folder.toml"), "{e}");
    }

    #[test]
    fn spec_files_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, "name = \"a\"\n").unwrap();
        write_atomic(&path, "name = \"b\"\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "name = \"b\"\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
    }

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx8ZkZ6l0kqQm1o7b0Y2v3o5b6T5d8v2QxX1f0yZ9aB alice@laptop";

    #[test]
    fn adding_a_user_keeps_the_implicit_default_user_and_comments() {
        let text = "# the lab's cluster\nname = \"lab\"\n";
        let alice = UserSpec { ssh_keys: vec![KEY.into()], ..UserSpec::new("alice", 1001) };
        let defaults = ClusterSpec::default_cluster().users;
        let edited = with_user(text, &alice, &defaults).unwrap();
        assert!(edited.starts_with("# the lab's cluster\n"), "{edited}");
        let spec = ClusterSpec::parse("c.toml", &edited).unwrap();
        assert_eq!(spec.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["researcher", "alice"]);
        assert_eq!(spec.users[1], alice);

        // Again, with login taken away: the same table changes.
        let edited =
            with_user(&edited, &UserSpec { login: false, ssh_keys: vec![], ..alice.clone() }, &defaults)
                .unwrap();
        let spec = ClusterSpec::parse("c.toml", &edited).unwrap();
        assert_eq!(spec.users.len(), 2);
        assert_eq!(spec.users[1], UserSpec { login: false, ..UserSpec::new("alice", 1001) });

        let removed = without_user(&edited, "alice").unwrap().unwrap();
        assert_eq!(ClusterSpec::parse("c.toml", &removed).unwrap().users.len(), 1);
        assert_eq!(without_user(&removed, "carol").unwrap(), None);
    }
}
