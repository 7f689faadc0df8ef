//! The node image's recipe: one image per Slurm release, used by every role.
//!
//! It holds Debian's own packages (Slurm, munge, sackd, OpenMPI with PMIx, mpi4py,
//! numpy) and nothing cluster-specific: no key, no slurm.conf, no users. Those reach the
//! containers when they are created. A site adds its own packages with
//! [`Recipe::with_software`] (the spec's `[software]`).

use std::sync::Mutex;

use super::{Kind, Recipe};
use crate::spec::{Arch, SlurmVersion};

/// The UID and GID of the munge account in every node image (see [`SHARED_IDS_HOOK`]).
pub const MUNGE_ID: u32 = 900;
/// The slurm account's, as Debian's package makes it.
pub const SLURM_ID: u32 = 64030;

/// Debian packages in every node image, then `$extra`.
macro_rules! node_packages {
    ($($extra:literal),*) => {
        &[
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
            $($extra,)*
        ]
    };
}

/// Debian packages in every node image.
const PACKAGES: &[&str] = node_packages!();

/// The controller's image: the node image's packages, and slurmrestd with Slurm's JWT
/// plugin (slurmctld signs and checks tokens; slurmrestd runs from it too).
const CONTROLLER_PACKAGES: &[&str] = node_packages!("slurmrestd", "slurm-wlm-jwt-plugin");

/// The accounts the nodes share get the same IDs in every image, whatever suite and
/// architecture: Debian gives slurm 64030 itself, munge the next free system ID
/// (100 in trixie, 101 in forky), and the munge key volume belongs to that ID.
/// [`MUNGE_ID`] is in neither's range of dynamic IDs in use.
pub const SHARED_IDS_HOOK: &str = r#"chroot "$1" sh -ec 'u=$(id -u munge); g=$(id -g munge); groupmod -g 900 munge; usermod -u 900 -g 900 munge; find / -xdev -uid "$u" -exec chown -h 900 {} +; find / -xdev -gid "$g" -exec chgrp -h 900 {} +; [ "$(id -u slurm):$(id -g slurm)" = 64030:64030 ]'"#;

/// The munge package makes a key at install time. A key baked into an image would be
/// shared by every cluster built from it; each cluster makes its own instead.
pub const NO_MUNGE_KEY_HOOK: &str = r#"rm -f "$1/etc/munge/munge.key""#;

/// Shell run by mmdebstrap on the finished tree (`$1` is its root): every node
/// image's, then `$extra`.
macro_rules! node_hooks {
    ($($extra:expr),*) => {
        &[
            SHARED_IDS_HOOK,
            NO_MUNGE_KEY_HOOK,
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
            $($extra,)*
        ]
    };
}

/// Shell run by mmdebstrap on every node image's finished tree.
const HOOKS: &[&str] = node_hooks!();

/// The controller's image also has slurmrestd's own account, which it drops to
/// (assets/slurmbox-rest.sh): neither root nor Slurm's, and not nobody either (Slurm
/// 26.05's slurmrestd refuses that name).
const CONTROLLER_HOOKS: &[&str] = node_hooks!(
    r#"chroot "$1" useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin slurmrestd"#
);

impl Recipe {
    /// The node image for `slurm` on `arch`.
    pub fn new(slurm: SlurmVersion, arch: Arch) -> Recipe {
        Recipe {
            kind: Kind::Node(slurm),
            arch,
            suite: slurm.debian_suite(),
            packages: PACKAGES,
            hooks: HOOKS,
        }
    }

    /// The controller's image for `slurm` on `arch`: a node image with slurmrestd and
    /// the JWT plugin, which only slurmctld, slurmdbd and slurmrestd load.
    pub fn controller(slurm: SlurmVersion, arch: Arch) -> Recipe {
        Recipe {
            kind: Kind::Controller(slurm),
            packages: CONTROLLER_PACKAGES,
            hooks: CONTROLLER_HOOKS,
            ..Recipe::new(slurm, arch)
        }
    }
}

impl Recipe {
    /// This node image with the site's packages (the spec's `[software]`) after its
    /// own. They are sorted, so that their order in the spec names the same image; with
    /// none, the recipe (and so its tag) is exactly the node image's.
    ///
    /// The controller's image does not take them: no job runs on the controller, and
    /// so a changed list rebuilds one image and makes the nodes again, never
    /// slurmctld's container.
    pub fn with_software(self, site: &[String]) -> Recipe {
        if site.is_empty() {
            return self;
        }
        let mut site: Vec<&str> = site.iter().map(String::as_str).collect();
        site.sort_unstable();
        site.dedup();
        Recipe { packages: joined(self.packages, &site), ..self }
    }

    /// Whether apt's missing `package` is one the site added rather than one of
    /// slurmbox's own (those the archive has, unless the mirror is broken).
    pub(super) fn is_site_package(&self, package: &str) -> bool {
        matches!(self.kind, Kind::Node(_)) && self.packages.contains(&package) && !PACKAGES.contains(&package)
    }
}

/// `base` then `site` as one list that lasts as long as the program. A [`Recipe`] is
/// plain `Copy` data of static lists (every part's own are constants); a spec's
/// packages are only known at run time, so each distinct list is made once and kept.
fn joined(base: &'static [&'static str], site: &[&str]) -> &'static [&'static str] {
    static LISTS: Mutex<Vec<&'static [&'static str]>> = Mutex::new(Vec::new());
    let want: Vec<&str> = base.iter().copied().chain(site.iter().copied()).collect();
    let mut lists = LISTS.lock().expect("the package lists");
    if let Some(list) = lists.iter().find(|l| l[..] == want[..]) {
        return list;
    }
    let list: Vec<&'static str> = base
        .iter()
        .copied()
        .chain(site.iter().map(|p| &*Box::leak(p.to_string().into_boxed_str())))
        .collect();
    let list: &'static [&'static str] = Box::leak(list.into_boxed_slice());
    lists.push(list);
    list
}
