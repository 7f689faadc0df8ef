//! Settings read from the environment once, when slurmbox starts (`main` builds them
//! and hands them to every command in its `Context`): the folders
//! slurmbox keeps its files in and the local engine's address. Nothing deeper reads
//! these variables; a function that needs one takes it from here.

use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// slurmbox's folder of the user's config: `$XDG_CONFIG_HOME/slurmbox` (when that
    /// is an absolute path), else `~/.config/slurmbox`. The clusters this machine
    /// brought up are remembered there (the registry module).
    pub config_dir: PathBuf,
    /// slurmbox's folder of the user's cache: `$XDG_CACHE_HOME/slurmbox`, else
    /// `~/.cache/slurmbox`. The image build lock lives there.
    pub cache_dir: PathBuf,
    /// `DOCKER_HOST`: the local engine's address, when set.
    pub docker_host: Option<String>,
}

impl Settings {
    /// The settings of this process's environment.
    pub fn from_env() -> Settings {
        Settings::from_vars(|key| std::env::var_os(key))
    }

    /// The settings of the environment `var` looks variables up in. Without HOME,
    /// the folders are under the system's temporary folder.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Settings {
        let home = |sub: &str| var("HOME").map(|h| PathBuf::from(h).join(sub));
        let config = var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| home(".config"))
            .unwrap_or_else(std::env::temp_dir);
        let cache = var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| home(".cache"))
            .unwrap_or_else(std::env::temp_dir);
        Settings {
            config_dir: config.join("slurmbox"),
            cache_dir: cache.join("slurmbox"),
            docker_host: var("DOCKER_HOST").and_then(|h| h.into_string().ok()),
        }
    }

    /// The address slurmbox connects to for the local engine: DOCKER_HOST when it is
    /// an `ssh://` URL, which slurmbox reaches through its own ssh tunnel. `None`: the
    /// Docker client's defaults, which honour a `tcp://` or `unix://` DOCKER_HOST.
    pub fn local_engine(&self) -> Option<&str> {
        self.docker_host.as_deref().filter(|h| h.starts_with("ssh://"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        Settings::from_vars(|key| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| OsString::from(v)))
    }

    #[test]
    fn folders_follow_xdg_else_home() {
        let s = settings(&[("HOME", "/home/ada")]);
        assert_eq!(s.config_dir, PathBuf::from("/home/ada/.config/slurmbox"));
        assert_eq!(s.cache_dir, PathBuf::from("/home/ada/.cache/slurmbox"));
        let s = settings(&[("HOME", "/home/ada"), ("XDG_CONFIG_HOME", "/cfg"), ("XDG_CACHE_HOME", "/cache")]);
        assert_eq!(s.config_dir, PathBuf::from("/cfg/slurmbox"));
        assert_eq!(s.cache_dir, PathBuf::from("/cache/slurmbox"));
        // A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
        let s = settings(&[("HOME", "/home/ada"), ("XDG_CONFIG_HOME", "cfg")]);
        assert_eq!(s.config_dir, PathBuf::from("/home/ada/.config/slurmbox"));
        assert_eq!(settings(&[]).config_dir, std::env::temp_dir().join("slurmbox"));
    }

    #[test]
    fn only_an_ssh_docker_host_is_slurmbox_s_to_reach() {
        assert_eq!(
            settings(&[("DOCKER_HOST", "ssh://pi@10.0.0.2")]).local_engine(),
            Some("ssh://pi@10.0.0.2")
        );
        assert_eq!(settings(&[("DOCKER_HOST", "tcp://10.0.0.2:2375")]).local_engine(), None);
        assert_eq!(settings(&[]).local_engine(), None);
    }
}
