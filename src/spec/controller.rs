//! The `controller` key: a host's name (`controller = "h1"`), or a `[controller]`
//! table with `host`, `backup` (a second slurmctld that takes over when the first stops
//! answering) and `state_path` (a folder both reach, for the state they share).

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use toml::Spanned;

use super::check::checked_folder;
use super::{HostSpec, SpecError};

/// Where the controllers run and keep their state.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ControllerSpec {
    /// A backup slurmctld: `None` without one.
    pub backup: Option<BackupPlace>,
    /// A folder at this path on the controllers' hosts holds their state
    /// (StateSaveLocation); `None`: a volume slurmbox makes (on one host a Docker
    /// volume, across hosts a GlusterFS volume).
    pub state_path: Option<PathBuf>,
}

impl ControllerSpec {
    pub fn is_default(&self) -> bool {
        *self == ControllerSpec::default()
    }

    /// Whether the controllers keep their state on a GlusterFS volume slurmbox runs: a
    /// backup on another host, and no site's folder for it.
    pub fn state_on_glusterfs(&self) -> bool {
        matches!(self.backup, Some(BackupPlace::Host(_))) && self.state_path.is_none()
    }

    /// The hosts (indices into `hosts`, the controller's first) with a brick of the
    /// state's GlusterFS volume: the primary's, the backup's, then the first other one,
    /// so that with a host lost two of three copies agree. Empty unless the state is on
    /// GlusterFS.
    pub fn state_brick_hosts(&self, hosts: &[HostSpec]) -> Vec<usize> {
        let Some(BackupPlace::Host(backup)) = self.backup.as_ref().filter(|_| self.state_on_glusterfs())
        else {
            return vec![];
        };
        let mut bricks = vec![0];
        bricks.extend(hosts.iter().position(|h| &h.name == backup));
        bricks.extend((0..hosts.len()).find(|h| !bricks.contains(h)));
        bricks
    }
}

/// Where the backup controller runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum BackupPlace {
    /// A second container on the controller's host: it protects against the daemon or
    /// its container dying, not against the host.
    SameHost,
    /// On this `[[host]]` (never the controller's).
    Host(String),
}

/// What the key may hold: a host's name, or the table.
#[derive(Debug)]
pub(super) enum RawController {
    Host(Spanned<String>),
    Table(RawControllerTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControllerTable {
    host: Option<Spanned<String>>,
    backup: Option<Spanned<RawBackup>>,
    state_path: Option<Spanned<String>>,
}

#[derive(Debug)]
pub(super) enum RawBackup {
    On(bool),
    Host(String),
}

impl<'de> Deserialize<'de> for RawController {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawController;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [[host]] name, or a table with host, backup and state_path")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawController, E> {
                // A plain string has no span of its own here: the key's is used.
                Ok(RawController::Host(Spanned::new(0..0, s.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawController, A::Error> {
                // Handed on as it is, so that the fields keep their places in the file.
                RawControllerTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawController::Table)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawBackup {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawBackup;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [[host]] name, or true")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<RawBackup, E> {
                Ok(RawBackup::On(b))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawBackup, E> {
                Ok(RawBackup::Host(s.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl RawController {
    /// The controller's host name, if the spec names one (`controller = "h1"` or
    /// `[controller] host = "h1"`); a plain string gets the key's span.
    pub(super) fn host(raw: &Spanned<RawController>) -> Option<Spanned<String>> {
        match raw.get_ref() {
            RawController::Host(name) => Some(Spanned::new(raw.span(), name.get_ref().clone())),
            RawController::Table(t) => t.host.clone(),
        }
    }
}

/// Checks `backup` and `state_path` against the hosts (controller's first).
pub(super) fn check_controller(
    raw: Option<&Spanned<RawController>>,
    hosts: &[HostSpec],
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<ControllerSpec, SpecError> {
    let Some(RawController::Table(table)) = raw.map(Spanned::get_ref) else {
        return Ok(ControllerSpec::default());
    };
    let mut spec = ControllerSpec::default();
    if let Some(backup) = &table.backup {
        spec.backup = check_backup(backup, hosts, err)?;
    }
    if let Some(path) = &table.state_path {
        spec.state_path = Some(checked_folder(
            path,
            "controller.state_path",
            "the controllers' state is kept inside it: name a folder of its own that every controller's host mounts at this path, e.g. state_path = \"/gfsv/slurmctld\"",
            err,
        )?);
    }
    Ok(spec)
}

fn check_backup(
    backup: &Spanned<RawBackup>,
    hosts: &[HostSpec],
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<Option<BackupPlace>, SpecError> {
    let name = match backup.get_ref() {
        RawBackup::On(false) => return Ok(None),
        // One host: a second container there; several: the next host in the spec.
        RawBackup::On(true) => match hosts.get(1) {
            None => return Ok(Some(BackupPlace::SameHost)),
            Some(h) => return Ok(Some(BackupPlace::Host(h.name.clone()))),
        },
        RawBackup::Host(name) => name,
    };
    let Some(i) = hosts.iter().position(|h| &h.name == name) else {
        let hint = if hosts.is_empty() {
            "this cluster runs on one engine and has no [[host]] names: backup = true makes a second controller there".to_string()
        } else {
            let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
            format!("name one of {}", names.join(", "))
        };
        return Err(err(backup.span(), format!("backup {name:?} is not one of the [[host]] names"), hint));
    };
    match (i, hosts.len()) {
        (0, 1) => Ok(Some(BackupPlace::SameHost)),
        (0, _) => Err(err(
            backup.span(),
            format!("backup {name:?} is the controller's own host"),
            "a backup on the same host does not survive that host: name another [[host]]".into(),
        )),
        _ => Ok(Some(BackupPlace::Host(name.clone()))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ClusterSpec, error_of};
    use super::*;

    fn spec(text: &str) -> ClusterSpec {
        ClusterSpec::parse("cluster.toml", text).unwrap()
    }

    const TWO_HOSTS: &str = "[home]\nhost_path = \"/gfsv/home\"\n[[host]]\nname = \"a\"\nengine = \"tcp://a:2375\"\n[[host]]\nname = \"b\"\nengine = \"tcp://b:2375\"\n";

    #[test]
    fn a_plain_host_name_still_names_the_controller() {
        let s = spec(&format!("controller = \"b\"\n{TWO_HOSTS}"));
        assert_eq!(s.hosts[0].name, "b");
        assert!(s.controller.is_default());
        let t = spec(&format!("[controller]\nhost = \"b\"\n{TWO_HOSTS}"));
        assert_eq!(t.hosts[0].name, "b");
    }

    #[test]
    fn backup_true_is_a_second_container_on_one_host_and_the_next_host_on_several() {
        assert_eq!(spec("[controller]\nbackup = true\n").controller.backup, Some(BackupPlace::SameHost));
        assert_eq!(spec("[controller]\nbackup = false\n").controller.backup, None);
        let s = spec(&format!("[controller]\nbackup = true\nstate_path = \"/gfsv/state\"\n{TWO_HOSTS}"));
        assert_eq!(s.controller.backup, Some(BackupPlace::Host("b".into())));
        assert_eq!(s.controller.state_path, Some(PathBuf::from("/gfsv/state")));
    }

    #[test]
    fn a_backup_must_be_another_known_host() {
        let e = error_of(&format!("[controller]\nbackup = \"c\"\n{TWO_HOSTS}"));
        assert!(e.starts_with("cluster.toml:2:10: backup \"c\" is not one of the [[host]] names"), "{e}");
        let e = error_of(&format!("[controller]\nhost = \"b\"\nbackup = \"b\"\n{TWO_HOSTS}"));
        assert!(e.starts_with("cluster.toml:3:10: backup \"b\" is the controller's own host"), "{e}");
        // Without state_path, the state goes to a GlusterFS volume slurmbox runs.
        let s = spec(&format!("[controller]\nbackup = \"b\"\n{TWO_HOSTS}"));
        assert!(s.controller.state_on_glusterfs());
        let s = spec(&format!("[controller]\nbackup = \"b\"\nstate_path = \"/gfsv/s\"\n{TWO_HOSTS}"));
        assert!(!s.controller.state_on_glusterfs());
        assert!(!spec("[controller]\nbackup = true\n").controller.state_on_glusterfs());
        let e = error_of("[controller]\nbackup = \"x\"\n");
        assert!(e.starts_with("cluster.toml:2:10: backup \"x\" is not one of the [[host]] names"), "{e}");
        let e = error_of("[controller]\nbackup = 3\n");
        assert!(e.starts_with("cluster.toml:2:10:"), "{e}");
    }

    #[test]
    fn state_path_is_no_system_folder() {
        let e = error_of("[controller]\nbackup = true\nstate_path = \"/etc\"\n");
        assert!(e.starts_with("cluster.toml:3:14: controller.state_path \"/etc\" is a system folder"), "{e}");
        let e = error_of("[controller]\nstate_path = \"state\"\n");
        assert!(e.contains("controller.state_path must be an absolute path"), "{e}");
        let e = error_of("[controller]\nbackups = true\n");
        assert!(e.contains("unknown field `backups`"), "{e}");
    }
}
