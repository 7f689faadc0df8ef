//! Images: the node image (one per Slurm release, used by every role), and the images
//! of parts that have their own containers (storage, accounting).
//!
//! A [`Recipe`] is plain data: a Debian suite, its packages, and shell hooks run on the
//! finished tree. The node image's is here ([`node`]); the storage and accounting
//! images' belong to their parts (`components::glusterfs::image_recipe`,
//! `components::accounting::image_recipe`), which this module never imports. The tag
//! carries a digest of the recipe, so a changed recipe means a new tag and an
//! unchanged one is never rebuilt.
//!
//! Building needs no registry: `mmdebstrap` writes a Debian root filesystem as a tar
//! stream straight into the engine's import (`docker import`); without it the engine
//! builds from Debian's base image ([`build`]). Images reach other hosts' engines
//! straight from this one ([`send`]).
//!
//! There is one image per architecture too (`slurmbox/node` for amd64,
//! `slurmbox/node-arm64` for arm64), so a cluster can mix a GPU server and a rack of
//! Raspberry Pis. An image for another architecture than this machine's is built
//! through qemu-user emulation (binfmt_misc), which mmdebstrap uses by itself.

mod build;
mod node;
mod send;

use std::path::{Path, PathBuf};

use miette::Diagnostic;
use sha2::{Digest, Sha256};

pub use node::{MUNGE_ID, NO_MUNGE_KEY_HOOK, SHARED_IDS_HOOK, SLURM_ID};
pub use send::send_if_missing;

use crate::engine::{Engine, EngineError};
use crate::progress::Progress;
use crate::spec::{Arch, SlurmVersion};

/// The image repository for amd64; other architectures add theirs (`slurmbox/node-arm64`).
pub const REPOSITORY: &str = "slurmbox/node";
/// The storage image's repository (amd64; `slurmbox/storage-arm64` for arm64).
pub const STORAGE_REPOSITORY: &str = "slurmbox/storage";
/// The accounting image's repository (MariaDB and slurmdbd of one Slurm release).
pub const ACCOUNTING_REPOSITORY: &str = "slurmbox/accounting";
/// The controller's image (the node image with slurmrestd and the JWT plugin).
pub const CONTROLLER_REPOSITORY: &str = "slurmbox/controller";
/// The metrics image (Prometheus), the same for every Slurm release.
pub const METRICS_REPOSITORY: &str = "slurmbox/metrics";
/// The dashboard's image (nginx and the pages' libraries), the same for every release.
pub const WEB_REPOSITORY: &str = "slurmbox/web";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Dockerfile-style changes applied on import.
const CHANGES: &[&str] = &[
    // tini is PID 1: it reaps zombies and forwards signals to slurmbox-init.
    r#"ENTRYPOINT ["/usr/bin/tini", "--"]"#,
    "ENV LANG=C.UTF-8",
];

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ImageError {
    #[error("building the {what} needs mmdebstrap, which is not installed")]
    #[diagnostic(help(
        "install it (Debian/Ubuntu: `apt-get install mmdebstrap`) and run the command again; an engine that \
         reaches a registry builds this machine's own architecture without it"
    ))]
    NoBuilder { what: String },
    #[error(
        "cannot build the {what}: mmdebstrap is not installed, and the engine could not pull {base}: {reason}"
    )]
    #[diagnostic(help(
        "install mmdebstrap (Debian/Ubuntu: `apt-get install mmdebstrap`) to build from Debian's archive alone; or \
         let the engine reach Docker Hub, or name a registry with Debian's images in SLURMBOX_BASE_IMAGE \
         (`registry.example.org/debian`); or pull the images from a site registry (`registry` in the spec)"
    ))]
    NoSource { what: String, base: String, reason: String },
    #[error("the engine failed to build the {what}: {reason}; the build's last lines:\n{tail}")]
    #[diagnostic(help(
        "check that the Debian mirror is reachable from containers, or pass another with --mirror"
    ))]
    EngineBuildFailed { what: String, reason: String, tail: String },
    #[error("mmdebstrap failed to build the {what} (exit status {status}); its last lines:\n{tail}")]
    #[diagnostic(help(
        "check that the Debian mirror ({mirror}) is reachable, or pass another with --mirror"
    ))]
    BuildFailed { what: String, status: String, tail: String, mirror: String },
    #[error(
        "cannot build the {what}: Debian {suite} has no package {package:?} of the spec's [software]; apt says: {apt}"
    )]
    #[diagnostic(help(
        "correct or remove {package:?} in the spec's [software] packages (https://packages.debian.org/{suite}/ \
         lists the suite's packages); no container was changed"
    ))]
    UnknownPackage { what: String, suite: String, package: String, apt: String },
    #[error("cannot run mmdebstrap: {0}")]
    Spawn(std::io::Error),
    #[error(
        "building the {arch} image on this {native} machine needs qemu-user emulation, which is not set up"
    )]
    #[diagnostic(help(
        "Debian/Ubuntu: `apt-get install qemu-user-static binfmt-support`; if /proc/sys/fs/binfmt_misc is empty, \
         `mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc`. Or run slurmbox once on an {arch} machine."
    ))]
    NoEmulation { arch: Arch, native: Arch },
    #[error("cannot take the image build lock {}: {source}", path.display())]
    Lock { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Engine(#[from] EngineError),
}

impl ImageError {
    /// Whether the spec must change first (the exit module makes that exit 2): a
    /// package of its `[software]` the archive does not have.
    pub fn is_usage(&self) -> bool {
        matches!(self, ImageError::UnknownPackage { .. })
    }
}

/// Which image: a node image for a Slurm release, the storage image, or the
/// accounting image for a Slurm release. It names the repository and the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Node(SlurmVersion),
    Storage,
    Accounting(SlurmVersion),
    Controller(SlurmVersion),
    Metrics,
    Web,
}

impl Kind {
    /// The progress step that has it on a host: "Image on pi2".
    pub fn step(&self) -> &'static str {
        match self {
            Kind::Node(_) => "Image",
            Kind::Storage => "Storage image",
            Kind::Accounting(_) => "Accounting image",
            Kind::Controller(_) => "Controller image",
            Kind::Metrics => "Metrics image",
            Kind::Web => "Dashboard image",
        }
    }
}

/// Everything that decides an image's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipe {
    pub kind: Kind,
    pub arch: Arch,
    /// The Debian release it comes from (`trixie`).
    pub suite: &'static str,
    /// Debian packages it holds.
    pub packages: &'static [&'static str],
    /// Shell run on the finished tree (`$1` is its root).
    pub hooks: &'static [&'static str],
}

impl Recipe {
    /// What the image is, for messages: "Slurm 24.11 node image", "storage image".
    pub fn what(&self) -> String {
        match self.kind {
            Kind::Node(slurm) => format!("Slurm {slurm} node image"),
            Kind::Storage => "storage image".into(),
            Kind::Accounting(slurm) => format!("Slurm {slurm} accounting image"),
            Kind::Controller(slurm) => format!("Slurm {slurm} controller image"),
            Kind::Metrics => "metrics image".into(),
            Kind::Web => "dashboard image".into(),
        }
    }

    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        // Everything but the mirror, which does not change what gets installed.
        for part in self.mmdebstrap_args("").iter().map(String::as_str).chain(CHANGES.iter().copied()) {
            h.update([0]);
            h.update(part);
        }
        hex::encode(&h.finalize()[..6])
    }

    /// `slurmbox/node:24.11-<digest>` (amd64), `slurmbox/node-arm64:24.11-<digest>`,
    /// `slurmbox/storage:gluster-<digest>`.
    pub fn tag(&self) -> String {
        let (repository, version) = match self.kind {
            Kind::Node(slurm) => (REPOSITORY, slurm.to_string()),
            Kind::Storage => (STORAGE_REPOSITORY, "gluster".to_string()),
            Kind::Accounting(slurm) => (ACCOUNTING_REPOSITORY, slurm.to_string()),
            Kind::Controller(slurm) => (CONTROLLER_REPOSITORY, slurm.to_string()),
            Kind::Metrics => (METRICS_REPOSITORY, "prometheus".to_string()),
            Kind::Web => (WEB_REPOSITORY, "nginx".to_string()),
        };
        let repository = match self.arch {
            Arch::Amd64 => repository.to_string(),
            other => format!("{repository}-{other}"),
        };
        format!("{repository}:{version}-{}", self.digest())
    }

    fn mmdebstrap_args(&self, mirror: &str) -> Vec<String> {
        let mut args = vec![format!("--architectures={}", self.arch)];
        args.extend(mmdebstrap_args(self.suite, self.packages, self.hooks));
        args.push(mirror.to_string());
        args
    }

    /// The image's labels: its Slurm release and its recipe's digest.
    fn label(&self) -> String {
        match self.kind {
            Kind::Node(slurm) | Kind::Accounting(slurm) | Kind::Controller(slurm) => {
                format!("LABEL io.slurmbox.slurm={slurm} io.slurmbox.recipe={}", self.digest())
            }
            Kind::Storage | Kind::Metrics | Kind::Web => {
                format!("LABEL io.slurmbox.recipe={}", self.digest())
            }
        }
    }
}

/// mmdebstrap's arguments for a Debian root filesystem written as a tar stream to
/// stdout, ready for `docker import`: `suite` with `packages`, then the `customize`
/// shell hooks (`$1` is the tree). The mirror goes last, after these.
pub fn mmdebstrap_args(suite: &str, packages: &[&str], customize: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--variant=apt".to_string(),
        "--mode=auto".to_string(),
        format!("--include={}", packages.join(",")),
        // Snapshot and offline mirrors serve Release files past their Valid-Until
        // date (testing's lasts a week). Signatures are still checked.
        "--aptopt=Acquire::Check-Valid-Until \"false\"".into(),
        // Containers need no documentation: smaller images, faster imports. Each
        // package's copyright file stays: the licences go with the software.
        "--dpkgopt=path-exclude=/usr/share/doc/*".into(),
        "--dpkgopt=path-include=/usr/share/doc/*/copyright".into(),
        "--dpkgopt=path-exclude=/usr/share/man/*".into(),
        "--dpkgopt=path-exclude=/usr/share/locale/*".into(),
    ];
    args.extend(customize.iter().map(|c| format!("--customize-hook={c}")));
    args.extend([suite.to_string(), "-".into()]);
    args
}

/// Where images come from, in this order: the engine already has it; a site's registry
/// has it (`registry`, filled by `slurmbox image push`); else it is built here, by
/// mmdebstrap from the Debian `mirror` where mmdebstrap is installed (no registry
/// needed: air-gapped machines), or else by the engine from a Debian base image it
/// pulls (`base`: Docker Hub's `debian`, or a site's copy of it).
#[derive(Debug, Clone)]
pub struct Sources {
    pub mirror: String,
    pub registry: Option<String>,
    pub base: String,
}

impl Sources {
    /// Only a mirror: the defaults for the rest.
    pub fn mirror(mirror: &str) -> Sources {
        Sources { mirror: mirror.into(), registry: None, base: DEFAULT_BASE.into() }
    }

    /// `tag` as the site's registry names it: `registry.example.org/slurmbox/node:24.11-…`.
    pub fn in_registry(registry: &str, tag: &str) -> String {
        format!("{}/{}", registry.trim_end_matches('/'), tag.strip_prefix("slurmbox/").unwrap_or(tag))
    }
}

/// The repository of Debian's base images an engine builds from (`debian:trixie`).
pub const DEFAULT_BASE: &str = "debian";

/// Whether this machine runs `arch` binaries: natively, or through a qemu-user
/// interpreter registered with binfmt_misc (`qemu-aarch64`, ...).
fn can_run(arch: Arch) -> bool {
    if arch == Arch::native() {
        return true;
    }
    let machine = match arch {
        Arch::Amd64 => "x86_64",
        Arch::Arm64 => "aarch64",
    };
    let Ok(entries) = std::fs::read_dir("/proc/sys/fs/binfmt_misc") else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name().to_string_lossy().contains(machine)
            && std::fs::read_to_string(e.path()).is_ok_and(|s| s.starts_with("enabled"))
    })
}

/// Returns the tag of `recipe`'s image, building the image first if the engine lacks it.
/// The build lock (one build of an image at a time on this machine) lives in
/// `cache_dir` (slurmbox's cache folder: see [`crate::settings::Settings`]).
pub async fn ensure(
    engine: &impl Engine,
    recipe: &Recipe,
    sources: &Sources,
    cache_dir: &Path,
    force: bool,
    progress: &Progress,
) -> Result<String, ImageError> {
    let arch = recipe.arch;
    let tag = recipe.tag();
    let step = progress.step(format!("Image {tag}"));
    if !force && engine.image_exists(&tag).await? {
        step.done_with("cached");
        return Ok(tag);
    }
    if let (false, Some(registry)) = (force, &sources.registry) {
        let there = Sources::in_registry(registry, &tag);
        step.message(format!("pulling {there}"));
        match engine.pull_image(&there).await {
            Ok(()) => {
                engine.tag_image(&there, &tag).await?;
                // Only slurmbox's own name stays (removing a tag leaves the image).
                let _ = engine.remove_image(&there).await;
                step.done_with(format!("pulled from {registry}"));
                return Ok(tag);
            }
            // Not pushed there yet: built here as below (`slurmbox image push` puts it there).
            Err(e) => tracing::info!("{there} is not in the registry ({e}); building it"),
        }
    }
    // Tests and users may run several `up`s at once: build each image only once.
    let dir = cache_dir.to_path_buf();
    let lock = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::File::create(dir.join("image-build.lock")))
        .map_err(|source| ImageError::Lock { path: dir.clone(), source })?;
    step.message("waiting for another build of this image");
    let lock_file = lock.try_clone().map_err(|source| ImageError::Lock { path: dir.clone(), source })?;
    tokio::task::spawn_blocking(move || lock_file.lock())
        .await
        .expect("lock task panicked")
        .map_err(|source| ImageError::Lock { path: dir.clone(), source })?;
    if !force && engine.image_exists(&tag).await? {
        step.done_with("built by another slurmbox");
        return Ok(tag);
    }
    if !can_run(arch) {
        step.fail("no emulation for it here");
        return Err(ImageError::NoEmulation { arch, native: Arch::native() });
    }
    if arch != Arch::native() {
        step.message(format!("building for {arch} under emulation: several minutes"));
    }
    if on_path("mmdebstrap") {
        build::with_mmdebstrap(engine, recipe, &sources.mirror, &step).await?;
    } else {
        build::with_engine(engine, recipe, sources, &step).await?;
    }
    drop(lock);
    step.done_with("built");
    Ok(tag)
}

/// Whether `program` is in one of $PATH's folders.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::engine::recording::{Call, RecordingEngine};

    fn quiet() -> Progress {
        Progress::new(true)
    }

    #[test]
    fn the_dockerfile_holds_the_recipe() {
        let recipe = Recipe::new(SlurmVersion::V24_11, Arch::Amd64);
        let f = recipe.dockerfile("localhost:5000/debian", DEFAULT_MIRROR);
        assert!(f.starts_with("FROM localhost:5000/debian:trixie\n"), "{f}");
        assert!(f.contains("apt-get install -y --no-install-recommends slurmctld slurmd "), "{f}");
        // Each hook runs on the tree `/`, quoted whole for sh.
        assert!(f.contains("RUN sh -ec 'rm -f \"$1/etc/munge/munge.key\"' hook /\n"), "{f}");
        assert!(f.contains("ENTRYPOINT [\"/usr/bin/tini\", \"--\"]\n"));
        assert!(
            f.ends_with(&format!("LABEL io.slurmbox.slurm=24.11 io.slurmbox.recipe={}\n", recipe.digest())),
            "{f}"
        );
        let node =
            Recipe::new(SlurmVersion::V26_05, Arch::Amd64).dockerfile("debian", "http://mirror/debian");
        assert!(node.starts_with("FROM debian:forky\n") && node.contains("#http://mirror/debian#"), "{node}");
        // A hook's own single quotes survive: sh -ec '...'"'"'...' splits nowhere.
        assert!(node.contains(r#"chroot "$1" sh -ec '\''u=$(id -u munge)"#), "{node}");
    }

    #[tokio::test]
    async fn a_site_registry_is_pulled_from_before_anything_is_built() {
        let engine = RecordingEngine::new();
        let recipe = Recipe::new(SlurmVersion::V24_11, Arch::Amd64);
        let there = Sources::in_registry("registry.example.org:5000/site/", &recipe.tag());
        assert!(there.starts_with("registry.example.org:5000/site/node:24.11-"), "{there}");
        engine.offer(&there);
        let sources =
            Sources { registry: Some("registry.example.org:5000/site".into()), ..Sources::mirror("m") };
        let cache = tempfile::tempdir().unwrap();
        let tag = ensure(&engine, &recipe, &sources, cache.path(), false, &quiet()).await.unwrap();
        assert_eq!(tag, recipe.tag());
        assert!(engine.has_image(&tag));
        let calls = engine.calls();
        assert!(calls.contains(&Call::PullImage { image: there.clone() }), "{calls:?}");
        assert!(!calls.iter().any(|c| matches!(c, Call::BuildImage { .. } | Call::ImportImage { .. })));
    }

    #[tokio::test]
    async fn without_mmdebstrap_the_engine_builds_from_debians_base_image() {
        let engine = RecordingEngine::new();
        let recipe = Recipe::new(SlurmVersion::V24_11, Arch::native());
        let sources = Sources::mirror(DEFAULT_MIRROR);
        let p = quiet();
        let err = build::with_engine(&engine, &recipe, &sources, &p.step("x")).await.unwrap_err();
        assert!(matches!(&err, ImageError::NoSource { base, .. } if base == "debian:trixie"), "{err:?}");

        engine.offer("debian:trixie");
        build::with_engine(&engine, &recipe, &sources, &p.step("x")).await.unwrap();
        assert!(engine.has_image(&recipe.tag()));
        let built = engine.calls().into_iter().find_map(|c| match c {
            Call::BuildImage { tag, dockerfile } => Some((tag, dockerfile)),
            _ => None,
        });
        assert_eq!(built, Some((recipe.tag(), recipe.dockerfile("debian", DEFAULT_MIRROR))));
    }

    #[test]
    fn shared_accounts_get_fixed_ids_in_every_image() {
        let hook = SHARED_IDS_HOOK;
        assert!(hook.contains(&format!("groupmod -g {MUNGE_ID} munge")), "{hook}");
        assert!(hook.contains(&format!("usermod -u {MUNGE_ID} -g {MUNGE_ID} munge")), "{hook}");
        assert!(hook.contains(&format!("= {SLURM_ID}:{SLURM_ID} ]")), "{hook}");
    }

    /// Existing images are found by their tags: a reshaped recipe must name the same ones
    /// (a recipe that builds other images names new ones: hwloc's GPU plugins left out).
    /// (The storage and accounting images' are pinned with their recipes, in their parts.)
    #[test]
    fn the_tags_of_todays_recipes_stay_the_same() {
        assert_eq!(Recipe::new(SlurmVersion::V24_11, Arch::Amd64).tag(), "slurmbox/node:24.11-363128099ae5");
        assert_eq!(
            Recipe::new(SlurmVersion::V26_05, Arch::Arm64).tag(),
            "slurmbox/node-arm64:26.05-397db67201ad"
        );
    }

    /// A spec without `[software]` names the same images as before the table existed;
    /// with it, the node image is another one, whatever the packages' order, and the
    /// controller's stays (no job runs there).
    #[test]
    fn site_packages_make_another_node_image_and_only_that() {
        let plain = Recipe::new(SlurmVersion::V24_11, Arch::Amd64);
        assert_eq!(plain.with_software(&[]), plain);
        let site = |list: &[&str]| {
            let list: Vec<String> = list.iter().map(|p| p.to_string()).collect();
            plain.with_software(&list)
        };
        let scipy = site(&["python3-scipy", "r-base-core"]);
        assert_ne!(scipy.tag(), plain.tag());
        assert!(scipy.tag().starts_with("slurmbox/node:24.11-"), "{}", scipy.tag());
        assert_eq!(site(&["r-base-core", "python3-scipy"]).tag(), scipy.tag());
        assert_ne!(site(&["python3-scipy"]).tag(), scipy.tag());
        assert_eq!(&scipy.packages[scipy.packages.len() - 2..], ["python3-scipy", "r-base-core"]);
        assert!(
            scipy
                .dockerfile("debian", DEFAULT_MIRROR)
                .contains(" ca-certificates python3-scipy r-base-core ")
        );
        let include = scipy.mmdebstrap_args(DEFAULT_MIRROR).into_iter().find(|a| a.starts_with("--include="));
        assert!(include.is_some_and(|i| i.ends_with(",tini,ca-certificates,python3-scipy,r-base-core")));
        assert!(scipy.is_site_package("r-base-core") && !scipy.is_site_package("slurmd"));
        assert!(!plain.is_site_package("r-base-core"));
    }

    #[test]
    fn tags_are_versioned_by_release_architecture_and_recipe() {
        let a = Recipe::new(SlurmVersion::V24_11, Arch::Amd64).tag();
        let b = Recipe::new(SlurmVersion::V26_05, Arch::Amd64).tag();
        let c = Recipe::new(SlurmVersion::V24_11, Arch::Arm64).tag();
        assert!(a.starts_with("slurmbox/node:24.11-"), "{a}");
        assert!(b.starts_with("slurmbox/node:26.05-"), "{b}");
        assert!(c.starts_with("slurmbox/node-arm64:24.11-"), "{c}");
        assert_ne!(a.rsplit('-').next(), b.rsplit('-').next());
        assert_ne!(a.rsplit('-').next(), c.rsplit('-').next());
    }

    #[test]
    fn mmdebstrap_builds_the_right_suite_without_a_munge_key() {
        let args = Recipe::new(SlurmVersion::V26_05, Arch::Arm64).mmdebstrap_args(DEFAULT_MIRROR);
        assert_eq!(args[0], "--architectures=arm64");
        assert_eq!(&args[args.len() - 3..], ["forky", "-", DEFAULT_MIRROR]);
        let no_key = format!("rm -f \"$1{}\"", crate::contract::MUNGE_KEY);
        assert!(args.iter().any(|a| a.contains(&no_key)), "{args:?}");
    }
}
