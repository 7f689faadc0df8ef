//! The spec's `[software]` table: Debian packages a site adds to every node image
//! (`packages = ["python3-scipy", "r-base-core"]`), and containers in jobs
//! (`containers = true`: Slurm's `srun --container` with crun). Only the packages'
//! names are checked here (Debian's syntax, no repeats); whether the archive has them
//! is apt's to say when the image is built (the image module).

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::SpecError;

/// The site's packages in every node image (login and compute nodes), in the spec's
/// order; empty: the node image as slurmbox makes it.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct SoftwareSpec {
    pub packages: Vec<String>,
    /// Researchers run job steps in their own images (`srun --container`).
    pub containers: bool,
}

/// The OCI runtime Slurm starts job steps' containers with (`containers = true`).
pub const CONTAINER_RUNTIME: &str = "crun";

impl SoftwareSpec {
    /// The packages the node image gets on top of its own: the site's, and the
    /// container runtime where jobs use containers.
    pub fn image_packages(&self) -> Vec<String> {
        let mut packages = self.packages.clone();
        if self.containers && !packages.iter().any(|p| p == CONTAINER_RUNTIME) {
            packages.push(CONTAINER_RUNTIME.into());
        }
        packages
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSoftware {
    packages: Option<Vec<Spanned<String>>>,
    containers: Option<bool>,
}

/// Debian policy (5.6.1): at least two characters, lowercase letters, digits, `+`,
/// `-` and `.`, starting with a letter or digit. Anything else cannot name a package,
/// and would reach apt's command line as an option or a pattern.
fn is_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

pub(super) fn check_software(
    raw: &RawSoftware,
    err: &impl Fn(Range<usize>, String, String) -> SpecError,
) -> Result<SoftwareSpec, SpecError> {
    let mut packages: Vec<String> = Vec::new();
    for name in raw.packages.iter().flatten() {
        let n = name.get_ref();
        if !is_package_name(n) {
            return Err(err(
                name.span(),
                format!("{n:?} is not a Debian package name"),
                "write the package's name alone, as `apt-get install` takes it: lowercase letters, digits, \
                 '+', '-' and '.' (e.g. \"python3-scipy\"); no versions or architectures"
                    .into(),
            ));
        }
        if packages.contains(n) {
            return Err(err(
                name.span(),
                format!("package {n:?} is listed twice"),
                "remove one of them".into(),
            ));
        }
        packages.push(n.clone());
    }
    Ok(SoftwareSpec { packages, containers: raw.containers.unwrap_or(false) })
}

#[cfg(test)]
mod tests {
    use crate::spec::ClusterSpec;

    use crate::spec::error_of;

    #[test]
    fn the_site_packages_are_read_in_order() {
        let text = "[software]\npackages = [\"python3-scipy\", \"r-base-core\", \"g++\", \"libc6.1\"]\n";
        let spec = ClusterSpec::parse("c.toml", text).unwrap();
        assert_eq!(spec.software.packages, ["python3-scipy", "r-base-core", "g++", "libc6.1"]);
        assert!(ClusterSpec::parse("c.toml", "").unwrap().software.packages.is_empty());
        assert!(ClusterSpec::parse("c.toml", "[software]\n").unwrap().software.packages.is_empty());
    }

    #[test]
    fn containers_bring_their_runtime_into_the_image() {
        let plain = ClusterSpec::parse("c.toml", "[software]\npackages = [\"htop\"]\n").unwrap().software;
        assert!(!plain.containers);
        assert_eq!(plain.image_packages(), ["htop"]);
        let text = "[software]\npackages = [\"htop\"]\ncontainers = true\n";
        let on = ClusterSpec::parse("c.toml", text).unwrap().software;
        assert_eq!(on.image_packages(), ["htop", "crun"]);
    }

    #[test]
    fn what_cannot_be_a_package_name_is_refused_at_its_place() {
        assert_eq!(
            error_of("[software]\npackages = [\"python3-scipy\", \"Python3-Numpy\"]\n"),
            "cluster.toml:2:30: \"Python3-Numpy\" is not a Debian package name"
        );
        for bad in ["-y", "x", "scipy=1.2", "scipy:arm64", "python3-*", "a b", ""] {
            let text = format!("[software]\npackages = [{bad:?}]\n");
            assert!(error_of(&text).contains("is not a Debian package name"), "{bad}");
        }
    }

    #[test]
    fn a_package_listed_twice_is_refused() {
        assert_eq!(
            error_of("[software]\npackages = [\"r-base-core\", \"htop\", \"r-base-core\"]\n"),
            "cluster.toml:2:36: package \"r-base-core\" is listed twice"
        );
        assert!(error_of("[software]\npackage = [\"htop\"]\n").contains("unknown field `package`"));
    }
}
