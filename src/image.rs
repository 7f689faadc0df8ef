//! The node image: one image per Slurm release, used by every role. And the storage
//! image, for clusters whose shared /home slurmbox provides (GlusterFS).
//!
//! It holds Debian's own packages (Slurm, munge, sackd, OpenMPI with PMIx, mpi4py,
//! numpy) and nothing cluster-specific: no key, no slurm.conf, no users. Those reach the
//! containers when they are created. The tag carries a digest of the recipe below, so a
//! changed recipe means a new tag and an unchanged one is never rebuilt.
//!
//! Building needs no registry: `mmdebstrap` writes a Debian root filesystem as a tar
//! stream straight into the engine's import (`docker import`).
//!
//! There is one image per architecture too (`slurmbox/node` for amd64,
//! `slurmbox/node-arm64` for arm64), so a cluster can mix a GPU server and a rack of
//! Raspberry Pis. An image for another architecture than this machine's is built
//! through qemu-user emulation (binfmt_misc), which mmdebstrap uses by itself.

use std::path::PathBuf;
use std::process::Stdio;

use miette::Diagnostic;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::io::ReaderStream;

use crate::engine::{Engine, EngineError};
use crate::progress::Progress;
use crate::spec::{Arch, SlurmVersion};

/// The image repository for amd64; other architectures add theirs (`slurmbox/node-arm64`).
pub const REPOSITORY: &str = "slurmbox/node";
/// The storage image's repository (amd64; `slurmbox/storage-arm64` for arm64).
pub const STORAGE_REPOSITORY: &str = "slurmbox/storage";
/// The accounting image's repository (MariaDB and slurmdbd of one Slurm release).
pub const ACCOUNTING_REPOSITORY: &str = "slurmbox/accounting";
/// The Debian release the storage image comes from (GlusterFS 11).
const STORAGE_SUITE: &str = "trixie";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// The UID and GID of the munge account in every node image (see [`CUSTOMIZE`]).
pub const MUNGE_ID: u32 = 900;
/// The slurm account's, as Debian's package makes it.
pub const SLURM_ID: u32 = 64030;

/// Debian packages in every node image.
const PACKAGES: &[&str] = &[
    "slurmctld",
    "slurmd",
    "slurm-client",
    "sackd",
    "munge",
    "openmpi-bin",
    "python3-mpi4py",
    "python3-numpy",
    "procps",
    // slurmbox-init makes the container's own cgroup mounts writable (limits); forky
    // no longer pulls it in.
    "mount",
    // Users: accounts from the files slurmbox keeps in a volume (libnss-extrausers) or
    // from LDAP (nslcd, ldapsearch for their keys), and sshd on the login node.
    "libnss-extrausers",
    "nslcd",
    "libnss-ldapd",
    "ldap-utils",
    "openssh-server",
    "tini",
    "ca-certificates",
];

/// Shell run by mmdebstrap on the finished tree (`$1` is its root).
const CUSTOMIZE: &[&str] = &[
    // The accounts the nodes share get the same IDs in every image, whatever suite and
    // architecture: Debian gives slurm 64030 itself, munge the next free system ID
    // (100 in trixie, 101 in forky), and the munge key volume belongs to that ID.
    // [`MUNGE_ID`] is in neither's range of dynamic IDs in use.
    r#"chroot "$1" sh -ec 'u=$(id -u munge); g=$(id -g munge); groupmod -g 900 munge; usermod -u 900 -g 900 munge; find / -xdev -uid "$u" -exec chown -h 900 {} +; find / -xdev -gid "$g" -exec chgrp -h 900 {} +; [ "$(id -u slurm):$(id -g slurm)" = 64030:64030 ]'"#,
    // The munge package makes a key at install time. A key baked into an image would be
    // shared by every cluster built from it; each cluster makes its own instead.
    r#"rm -f "$1/etc/munge/munge.key""#,
    // Nodes may declare more CPUs than the host has (a Pi lab, a workshop laptop);
    // PRRTE (OpenMPI 5's launcher, packaged on its own from forky on) would then refuse
    // to bind ranks to cores. Bind to none.
    // (Debian's files may lack a final newline: each setting starts on a line of its own.)
    r#"for f in "$1/etc/openmpi/prte-mca-params.conf" "$1/etc/prrte/prte-mca-params.conf"; do if [ -f "$f" ]; then printf '\nhwloc_default_binding_policy = none\n' >> "$f"; fi; done"#,
    // Ranks talk over the cluster network, eth0 in every node container. OpenMPI 6
    // (forky) otherwise finds no "reachable" interface pair between containers.
    // On a host's network (clusters over several hosts) the plan names the hosts'
    // network instead (OMPI_MCA_btl_tcp_if_include), so ranks never pick a bridge such
    // as docker0 that every host has with the same address.
    r#"printf '\nbtl_tcp_if_include = eth0\n' >> "$1/etc/openmpi/openmpi-mca-params.conf""#,
    // Debian's plugstack.conf includes a glob Slurm cannot parse; nothing uses it here.
    r#"rm -f "$1/etc/slurm/plugstack.conf""#,
    // Accounts: the image's own files, then the cluster's (its accounts volume), then
    // LDAP where the cluster has a directory (without nslcd running, that lookup fails
    // at once).
    r#"sed -i -E 's/^(passwd|group|shadow):.*/\1: files extrausers ldap/' "$1/etc/nsswitch.conf""#,
    // Host keys baked into an image would be every cluster's; the login node makes its
    // own on first start. And no private key at all may be in the image.
    r#"rm -f "$1"/etc/ssh/ssh_host_*"#,
    r#"if grep -rlsI -D skip --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev -e 'PRIVATE KEY-----' "$1/etc" "$1/root" "$1/var" >&2; then echo 'a private key is in the node image' >&2; exit 1; fi"#,
];

/// Debian packages in the storage image: GlusterFS's server (glusterd and the brick
/// processes) and its FUSE client, which mounts the volume for the host's nodes.
const STORAGE_PACKAGES: &[&str] =
    &["glusterfs-server", "glusterfs-client", "mount", "attr", "procps", "tini", "ca-certificates"];

/// Debian packages in the accounting image: MariaDB's server and slurmdbd (of the same
/// release as the cluster's Slurm), munge to authenticate slurmctld.
const ACCOUNTING_PACKAGES: &[&str] =
    &["mariadb-server", "slurmdbd", "munge", "procps", "tini", "ca-certificates"];

/// The accounting image shares the node image's account IDs (the munge key volume).
const ACCOUNTING_CUSTOMIZE: &[&str] = &[
    CUSTOMIZE[0],
    CUSTOMIZE[1],
    // The database files on the cluster's volume belong to the mysql account: the same
    // ID in every release's image (Debian's differs between them), so a cluster moving
    // to another Slurm release keeps its database.
    r#"chroot "$1" sh -ec 'u=$(id -u mysql); g=$(id -g mysql); groupmod -g 901 mysql; usermod -u 901 -g 901 mysql; find / -xdev -uid "$u" -exec chown -h 901 {} +; find / -xdev -gid "$g" -exec chgrp -h 901 {} +'"#,
    // What slurmdbd asks of MariaDB (Slurm's accounting guide), sized for a small
    // cluster's machine, and no name lookups for connecting clients.
    r#"printf '[mysqld]\ninnodb_buffer_pool_size = 256M\ninnodb_log_file_size = 64M\ninnodb_lock_wait_timeout = 900\ninnodb_snapshot_isolation = OFF\nmax_allowed_packet = 64M\nskip_name_resolve = ON\n' > "$1/etc/mysql/mariadb.conf.d/90-slurmbox.cnf""#,
    // The package made an empty database (root by socket only, no password anywhere):
    // Docker copies it into each cluster's new volume, which saves its first start.
];

const STORAGE_CUSTOMIZE: &[&str] = &[
    // glusterd names itself by the UUID in glusterd.info, made on first start. One baked
    // into the image would give every host the same identity, and peers refuse that.
    r#"rm -f "$1/var/lib/glusterd/glusterd.info""#,
    // Geo-replication (copying a volume to another site) is not used. Where its helper
    // is installed, every start of glusterd runs it some fifteen times (a Python
    // program each time) to write its settings: about 2.5 s of a core before glusterd
    // answers. Without it glusterd says "geo-replication module not installed" and
    // starts at once.
    r#"rm -f "$1"/usr/lib/*/glusterfs/gsyncd"#,
];

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

/// Which image: a node image for a Slurm release, or the storage image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Node(SlurmVersion),
    Storage,
    Accounting(SlurmVersion),
}

/// Everything that decides an image's contents.
pub struct Recipe {
    pub kind: Kind,
    pub arch: Arch,
}

impl Recipe {
    /// The node image for `slurm` on `arch`.
    pub fn new(slurm: SlurmVersion, arch: Arch) -> Recipe {
        Recipe { kind: Kind::Node(slurm), arch }
    }

    /// The storage image (GlusterFS) on `arch`.
    pub fn storage(arch: Arch) -> Recipe {
        Recipe { kind: Kind::Storage, arch }
    }

    /// The accounting image (MariaDB, slurmdbd) for `slurm` on `arch`.
    pub fn accounting(slurm: SlurmVersion, arch: Arch) -> Recipe {
        Recipe { kind: Kind::Accounting(slurm), arch }
    }

    /// What the image is, for messages: "Slurm 24.11 node image", "storage image".
    pub fn what(&self) -> String {
        match self.kind {
            Kind::Node(slurm) => format!("Slurm {slurm} node image"),
            Kind::Storage => "storage image".into(),
            Kind::Accounting(slurm) => format!("Slurm {slurm} accounting image"),
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
        };
        let repository = match self.arch {
            Arch::Amd64 => repository.to_string(),
            other => format!("{repository}-{other}"),
        };
        format!("{repository}:{version}-{}", self.digest())
    }

    fn mmdebstrap_args(&self, mirror: &str) -> Vec<String> {
        let mut args = vec![format!("--architectures={}", self.arch)];
        let (suite, packages, customize) = self.parts();
        args.extend(mmdebstrap_args(suite, packages, customize));
        args.push(mirror.to_string());
        args
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
        // Containers need no documentation: smaller images, faster imports.
        "--dpkgopt=path-exclude=/usr/share/doc/*".into(),
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

/// Makes sure a remote host's engine (`target`) has the image `tag`, streaming it from
/// `local` (where [`ensure`] put it) when it is missing. Only a missing or outdated
/// image is sent: the tag names the recipe. `what` names the step ("Image",
/// "Storage image").
pub async fn send_if_missing<E: Engine>(
    local: &E,
    target: &E,
    host: &str,
    tag: &str,
    what: &str,
    progress: &Progress,
) -> Result<(), ImageError> {
    let step = progress.step(format!("{what} on {host}"));
    if target.image_exists(tag).await? {
        step.done_with("present");
        return Ok(());
    }
    step.message(format!("sending {tag}"));
    local.send_image(tag, target).await?;
    step.done_with("sent");
    Ok(())
}

/// Where the build lock lives (one build of an image at a time on this machine).
fn lock_path() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("slurmbox")
}

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
pub async fn ensure(
    engine: &impl Engine,
    recipe: &Recipe,
    sources: &Sources,
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
    let dir = lock_path();
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
        build(engine, recipe, &sources.mirror, &step).await?;
    } else {
        build_with_engine(engine, recipe, sources, &step).await?;
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

/// `text` as one single-quoted shell word.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl Recipe {
    fn parts(&self) -> (&'static str, &'static [&'static str], &'static [&'static str]) {
        match self.kind {
            Kind::Node(slurm) => (slurm.debian_suite(), PACKAGES, CUSTOMIZE),
            Kind::Storage => (STORAGE_SUITE, STORAGE_PACKAGES, STORAGE_CUSTOMIZE),
            Kind::Accounting(slurm) => (slurm.debian_suite(), ACCOUNTING_PACKAGES, ACCOUNTING_CUSTOMIZE),
        }
    }

    /// The image's labels: its Slurm release and its recipe's digest.
    fn label(&self) -> String {
        match self.kind {
            Kind::Node(slurm) | Kind::Accounting(slurm) => {
                format!("LABEL io.slurmbox.slurm={slurm} io.slurmbox.recipe={}", self.digest())
            }
            Kind::Storage => format!("LABEL io.slurmbox.recipe={}", self.digest()),
        }
    }

    /// The same recipe for an engine that builds from Debian's base image of the suite
    /// (`base:suite`): the same packages from `mirror`, without their documentation,
    /// then the same hooks on the finished tree (here `/`), the same changes and labels.
    pub fn dockerfile(&self, base: &str, mirror: &str) -> String {
        let (suite, packages, customize) = self.parts();
        let mut f = format!("FROM {base}:{suite}\n");
        f += "RUN printf 'path-exclude=/usr/share/doc/*\\npath-exclude=/usr/share/man/*\\npath-exclude=/usr/share/locale/*\\n' \\\n";
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

/// Builds `recipe`'s image with the engine itself: pulls Debian's base image, then runs
/// [`Recipe::dockerfile`]. For machines without mmdebstrap (macOS, Windows, most
/// Linux desktops) whose engine reaches a registry.
async fn build_with_engine(
    engine: &impl Engine,
    recipe: &Recipe,
    sources: &Sources,
    step: &crate::progress::Step,
) -> Result<(), ImageError> {
    let what = recipe.what();
    if recipe.arch != Arch::native() {
        return Err(ImageError::NoBuilder { what });
    }
    let base = format!("{}:{}", sources.base, recipe.parts().0);
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
    engine.build_image(&dockerfile, &recipe.tag(), &line).await.map_err(|e| ImageError::EngineBuildFailed {
        what,
        reason: e.to_string(),
        tail: tail.lock().expect("the build's lines").join("\n"),
    })
}

async fn build(
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
        return Err(ImageError::BuildFailed {
            what,
            status: status.code().map_or("signal".into(), |c| c.to_string()),
            tail,
            mirror: mirror.to_string(),
        });
    }
    engine.tag_image(&imported?, &recipe.tag()).await?;
    Ok(())
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
        let recipe = Recipe::storage(Arch::Amd64);
        let f = recipe.dockerfile("localhost:5000/debian", DEFAULT_MIRROR);
        assert!(f.starts_with("FROM localhost:5000/debian:trixie\n"), "{f}");
        assert!(
            f.contains("apt-get install -y --no-install-recommends glusterfs-server glusterfs-client "),
            "{f}"
        );
        // Each hook runs on the tree `/`, quoted whole for sh.
        assert!(f.contains("RUN sh -ec 'rm -f \"$1/var/lib/glusterd/glusterd.info\"' hook /\n"), "{f}");
        assert!(f.contains("ENTRYPOINT [\"/usr/bin/tini\", \"--\"]\n"));
        assert!(f.ends_with(&format!("LABEL io.slurmbox.recipe={}\n", recipe.digest())), "{f}");
        let node =
            Recipe::new(SlurmVersion::V26_05, Arch::Amd64).dockerfile("debian", "http://mirror/debian");
        assert!(node.starts_with("FROM debian:forky\n") && node.contains("#http://mirror/debian#"), "{node}");
        // A hook's own single quotes survive: sh -ec '...'"'"'...' splits nowhere.
        assert!(node.contains(r#"chroot "$1" sh -ec '\''u=$(id -u munge)"#), "{node}");
    }

    #[tokio::test]
    async fn a_site_registry_is_pulled_from_before_anything_is_built() {
        let engine = RecordingEngine::new();
        let recipe = Recipe::storage(Arch::Amd64);
        let there = Sources::in_registry("registry.example.org:5000/site/", &recipe.tag());
        assert!(there.starts_with("registry.example.org:5000/site/storage:gluster-"), "{there}");
        engine.offer(&there);
        let sources =
            Sources { registry: Some("registry.example.org:5000/site".into()), ..Sources::mirror("m") };
        let tag = ensure(&engine, &recipe, &sources, false, &quiet()).await.unwrap();
        assert_eq!(tag, recipe.tag());
        assert!(engine.has_image(&tag));
        let calls = engine.calls();
        assert!(calls.contains(&Call::PullImage { image: there.clone() }), "{calls:?}");
        assert!(!calls.iter().any(|c| matches!(c, Call::BuildImage { .. } | Call::ImportImage { .. })));
    }

    #[tokio::test]
    async fn without_mmdebstrap_the_engine_builds_from_debians_base_image() {
        let engine = RecordingEngine::new();
        let recipe = Recipe::storage(Arch::native());
        let sources = Sources::mirror(DEFAULT_MIRROR);
        let p = quiet();
        let err = build_with_engine(&engine, &recipe, &sources, &p.step("x")).await.unwrap_err();
        assert!(matches!(&err, ImageError::NoSource { base, .. } if base == "debian:trixie"), "{err:?}");

        engine.offer("debian:trixie");
        build_with_engine(&engine, &recipe, &sources, &p.step("x")).await.unwrap();
        assert!(engine.has_image(&recipe.tag()));
        let built = engine.calls().into_iter().find_map(|c| match c {
            Call::BuildImage { tag, dockerfile } => Some((tag, dockerfile)),
            _ => None,
        });
        assert_eq!(built, Some((recipe.tag(), recipe.dockerfile("debian", DEFAULT_MIRROR))));
    }

    #[test]
    fn shared_accounts_get_fixed_ids_in_every_image() {
        let hook = CUSTOMIZE[0];
        assert!(hook.contains(&format!("groupmod -g {MUNGE_ID} munge")), "{hook}");
        assert!(hook.contains(&format!("usermod -u {MUNGE_ID} -g {MUNGE_ID} munge")), "{hook}");
        assert!(hook.contains(&format!("= {SLURM_ID}:{SLURM_ID} ]")), "{hook}");
    }

    /// Existing images are found by their tags: a reshaped recipe must name the same ones.
    #[test]
    fn the_tags_of_todays_recipes_stay_the_same() {
        assert_eq!(Recipe::new(SlurmVersion::V24_11, Arch::Amd64).tag(), "slurmbox/node:24.11-dd742527adb3");
        assert_eq!(Recipe::storage(Arch::Amd64).tag(), "slurmbox/storage:gluster-a5475bf3e79e");
        assert_eq!(
            Recipe::accounting(SlurmVersion::V24_11, Arch::Amd64).tag(),
            "slurmbox/accounting:24.11-34677fea17fc"
        );
        assert_eq!(
            Recipe::new(SlurmVersion::V26_05, Arch::Arm64).tag(),
            "slurmbox/node-arm64:26.05-ae76a8cbd0bc"
        );
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
        let s = Recipe::storage(Arch::Amd64).tag();
        assert!(s.starts_with("slurmbox/storage:gluster-"), "{s}");
        assert!(Recipe::storage(Arch::Arm64).tag().starts_with("slurmbox/storage-arm64:gluster-"));
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
