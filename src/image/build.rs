//! Building an image from its [`Recipe`]: with mmdebstrap from a Debian mirror
//! alone (no registry: air-gapped machines), or by the engine from Debian's base image
//! through a Dockerfile holding the same recipe.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::io::ReaderStream;

use super::{CHANGES, ImageError, Recipe, Sources};
use crate::engine::Engine;
use crate::spec::Arch;

/// `text` as one single-quoted shell word.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl Recipe {
    /// The same recipe for an engine that builds from Debian's base image of the suite
    /// (`base:suite`): the same packages from `mirror`, without their documentation,
    /// then the same hooks on the finished tree (here `/`), the same changes and labels.
    pub fn dockerfile(&self, base: &str, mirror: &str) -> String {
        let (suite, packages, customize) = (self.suite, self.packages, self.hooks);
        let mut f = format!("FROM {base}:{suite}\n");
        f += "RUN printf 'path-exclude=/usr/share/doc/*\\npath-include=/usr/share/doc/*/copyright\\npath-exclude=/usr/share/man/*\\npath-exclude=/usr/share/locale/*\\n' \\\n";
        f += "      > /etc/dpkg/dpkg.cfg.d/slurmbox-nodoc \\\n";
        f += &format!(
            " && sed -i 's#http://deb.debian.org/debian#{mirror}#' $(ls /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null) \\\n"
        );
        f += " && apt-get -o 'Acquire::Check-Valid-Until=false' update \\\n";
        f += &format!(
            " && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {} \\\n",
            packages.join(" ")
        );
        f += " && rm -rf /var/lib/apt/lists/*\n";
        for hook in customize {
            f += &format!("RUN sh -ec {} hook /\n", quoted(hook));
        }
        for change in CHANGES {
            f += &format!("{change}\n");
        }
        f += &self.label();
        f += "\n";
        f
    }
}

/// The error for a failed build whose last lines are `tail`: a site package apt could
/// not find is named as such (the spec must change), else `other`.
fn failure(recipe: &Recipe, tail: &str, other: ImageError) -> ImageError {
    // apt: "E: Unable to locate package python3-nosuch", the same in both builders.
    const APT: &str = "E: Unable to locate package ";
    let missing = tail.lines().find_map(|line| {
        let (_, package) = line.split_once(APT)?;
        Some(package.trim()).filter(|p| recipe.is_site_package(p))
    });
    match missing {
        Some(package) => ImageError::UnknownPackage {
            what: recipe.what(),
            suite: recipe.suite.to_string(),
            package: package.to_string(),
            apt: format!("{APT}{package}"),
        },
        None => other,
    }
}

/// Builds `recipe`'s image with the engine itself: pulls Debian's base image, then runs
/// [`Recipe::dockerfile`]. For machines without mmdebstrap (macOS, Windows, most
/// Linux desktops) whose engine reaches a registry.
pub(super) async fn with_engine(
    engine: &impl Engine,
    recipe: &Recipe,
    sources: &Sources,
    step: &crate::progress::Step,
) -> Result<(), ImageError> {
    let what = recipe.what();
    if recipe.arch != Arch::native() {
        return Err(ImageError::NoBuilder { what });
    }
    let base = format!("{}:{}", sources.base, recipe.suite);
    step.message(format!("pulling {base}"));
    if let Err(e) = engine.pull_image(&base).await {
        return Err(ImageError::NoSource { what, base, reason: e.to_string() });
    }
    let dockerfile = recipe.dockerfile(&sources.base, &sources.mirror);
    let tail = std::sync::Mutex::new(Vec::<String>::new());
    let line = |l: &str| {
        step.message(format!("build: {l}"));
        let mut tail = tail.lock().expect("the build's lines");
        tail.push(l.to_string());
        if tail.len() > 30 {
            tail.remove(0);
        }
    };
    engine.build_image(&dockerfile, &recipe.tag(), &line).await.map_err(|e| {
        let tail = tail.lock().expect("the build's lines").join("\n");
        failure(
            recipe,
            &tail,
            ImageError::EngineBuildFailed { what, reason: e.to_string(), tail: tail.clone() },
        )
    })
}

/// Builds `recipe`'s image with mmdebstrap, its tar stream imported by the engine as
/// it is written; an incomplete import never carries the tag.
pub(super) async fn with_mmdebstrap(
    engine: &impl Engine,
    recipe: &Recipe,
    mirror: &str,
    step: &crate::progress::Step,
) -> Result<(), ImageError> {
    let what = recipe.what();
    let mut child = tokio::process::Command::new("mmdebstrap")
        .args(recipe.mmdebstrap_args(mirror))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ImageError::NoBuilder { what: what.clone() },
            _ => ImageError::Spawn(e),
        })?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");

    // mmdebstrap's own progress lines become the step's message; the last ones are kept
    // for the error report.
    let step_msg = step.clone();
    let log = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut tail: Vec<String> = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            step_msg.message(format!("mmdebstrap: {}", line.trim()));
            tail.push(line);
            if tail.len() > 30 {
                tail.remove(0);
            }
        }
        tail.join("\n")
    });
    let mut changes: Vec<String> = CHANGES.iter().map(|c| c.to_string()).collect();
    changes.push(recipe.label());
    let platform = format!("linux/{}", recipe.arch);
    let imported = engine.import_image(&changes, &platform, ReaderStream::new(stdout)).await;
    let status = child.wait().await.map_err(ImageError::Spawn)?;
    let tail = log.await.unwrap_or_default();
    if !status.success() {
        // Whatever reached the engine is incomplete: never let it carry the tag.
        if let Ok(id) = &imported
            && !id.is_empty()
        {
            let _ = engine.remove_image(id).await;
        }
        let status = status.code().map_or("signal".into(), |c| c.to_string());
        let other = ImageError::BuildFailed { what, status, tail: tail.clone(), mirror: mirror.to_string() };
        return Err(failure(recipe, &tail, other));
    }
    engine.tag_image(&imported?, &recipe.tag()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SlurmVersion;

    fn other() -> ImageError {
        ImageError::BuildFailed {
            what: "x".into(),
            status: "25".into(),
            tail: "t".into(),
            mirror: "m".into(),
        }
    }

    /// mmdebstrap's and `docker build`'s last lines name the package apt lacks; only one
    /// the spec added is the spec's mistake.
    #[test]
    fn a_site_package_apt_cannot_find_is_named() {
        let recipe = Recipe::new(SlurmVersion::V24_11, Arch::Amd64).with_software(&["python3-nosuch".into()]);
        let tail = "Building dependency tree...\nE: Unable to locate package python3-nosuch\nE: setup failed";
        let err = failure(&recipe, tail, other());
        assert!(err.is_usage(), "{err:?}");
        assert_eq!(
            err.to_string(),
            "cannot build the Slurm 24.11 node image: Debian trixie has no package \"python3-nosuch\" of the \
             spec's [software]; apt says: E: Unable to locate package python3-nosuch"
        );
        let docker = "#5 41.2 E: Unable to locate package python3-nosuch";
        assert!(failure(&recipe, docker, other()).is_usage());
        // One of slurmbox's own missing is the mirror's fault, not the spec's.
        let own = failure(&recipe, "E: Unable to locate package slurmd", other());
        assert!(matches!(own, ImageError::BuildFailed { .. }), "{own:?}");
        assert!(!failure(&recipe, "E: Release file expired", other()).is_usage());
    }
}
