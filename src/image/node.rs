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

/// Sets `gpu` to the packages only UCX's ROCm transport needs in the tree `$1`, one a line.
macro_rules! unused_gpu_runtimes {
    () => {
        concat!(
        // One line (a Dockerfile's RUN holds it too). The awk program reads dpkg's status file:
        // every installed package's dependencies, except UCX's on HIP and HSA; `only` is what
        // those two reach, `used` what every other package reaches; it prints `only` less `used`.
        r#"gpu=$(awk -v RS= -F '\n' '"#,
        r#"index($0, "\nStatus: install ok installed") { d = ""; "#,
        r#"for (i = 1; i <= NF; i++) { if ($i ~ /^Package: /) p = substr($i, 10); else if ($i ~ /^(Pre-)?Depends: /) d = d "," substr($i, index($i, ":") + 1) } "#,
        r#"pkg[p] = 1; n = split(d, a, /[,|]/); "#,
        r#"for (i = 1; i <= n; i++) { sub(/^ +/, "", a[i]); sub(/[ :(].*/, "", a[i]); "#,
        r#"if (a[i] != "" && !(p == "libucx0" && a[i] ~ /^lib(amdhip64|hsa-runtime64)-/)) dep[p, ++nd[p]] = a[i]; else if (a[i] != "") gpu[a[i]] = 1 } } "#,
        r#"function reach(p, mark,  i) { if (!(p in pkg) || (p in mark)) return; mark[p] = 1; for (i = 1; i <= nd[p]; i++) reach(dep[p, i], mark) } "#,
        r#"END { for (p in gpu) reach(p, only); for (p in pkg) if (!(p in only)) reach(p, used); for (p in only) if (!(p in used)) print p }"#,
        r#"' "$1/var/lib/dpkg/status")"#,
        )
    };
}

/// OpenMPI needs UCX, and Debian's UCX package needs AMD's GPU runtime (HIP, HSA) for its
/// ROCm transport, and with it LLVM and Z3: about 240 MB of the node image's 490, which
/// serve nothing in a container without AMD's GPU and its driver. Their files
/// go, with UCX's ROCm modules, unless something else installed needs them (a site's
/// `[software]` package): what only that edge of UCX's dependencies reaches, the hook's
/// awk finds in dpkg's status file. The packages stay installed for dpkg and apt, as
/// with the documentation left out (apt installs more on top without complaint).
const UNUSED_GPU_RUNTIMES_HOOK: &str = concat!(
    unused_gpu_runtimes!(),
    "; ",
    r#"echo "left out, as nothing uses them:" $gpu >&2; "#,
    // Their files, and UCX's ROCm modules once HSA goes; removed inside the tree.
    r#"for p in $gpu; do cat "$1/var/lib/dpkg/info/$p.list" "$1/var/lib/dpkg/info/$p":*.list 2>/dev/null || true; done > "$1/tmp/unused-files"; "#,
    r#"case "$gpu" in *libhsa-runtime64-*) grep '/ucx/lib[a-z_]*_rocm\.so' "$1"/var/lib/dpkg/info/libucx0*.list >> "$1/tmp/unused-files" ;; esac; "#,
    r#"chroot "$1" sh -c 'while read -r f; do if [ -L "$f" ] || [ ! -d "$f" ]; then rm -f "$f"; fi; done < /tmp/unused-files; rm /tmp/unused-files'"#,
);

/// Shell run by mmdebstrap on the finished tree (`$1` is its root): every node
/// image's, then `$extra`.
macro_rules! node_hooks {
    ($($extra:expr),*) => {
        &[
            SHARED_IDS_HOOK,
            NO_MUNGE_KEY_HOOK,
            UNUSED_GPU_RUNTIMES_HOOK,
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
            // hwloc loads every plugin in its folder each time it makes a topology, which
            // slurmstepd does for every job: the OpenCL, OpenGL and oneAPI Level Zero ones
            // (each with its vendor loader) serve neither Slurm (it finds GPUs through
            // NVML or RSMI) nor MPI here, and cost a job about 3 ms of CPU through the
            // container's file system (300 trivial jobs: 16% less CPU on the nodes). The
            // PCI and XML ones stay.
            r#"rm -f "$1"/usr/lib/*/hwloc/hwloc_opencl.so "$1"/usr/lib/*/hwloc/hwloc_gl.so "$1"/usr/lib/*/hwloc/hwloc_levelzero.so"#,
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

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// What the hook leaves out, from a dpkg status file: what only UCX's ROCm edge
    /// reaches, and nothing another installed package (a site's) still needs.
    #[test]
    fn only_what_nothing_but_ucx_needs_is_left_out() {
        let status = |extra: &str| {
            let tree = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(tree.path().join("var/lib/dpkg")).unwrap();
            let packages = [
                (
                    "libucx0",
                    "libc6 (>= 2.38), libamdhip64-5 (>= 4.5.2), libhsa-runtime64-1 (>= 5.7.1), libibverbs1",
                ),
                ("libamdhip64-5", "libamd-comgr2, libhsa-runtime64-1, libc6"),
                ("libamd-comgr2", "libllvm17t64 (>= 1:17), libc6"),
                ("libllvm17t64", "libz3-4, libc6"),
                ("libhsa-runtime64-1", "libelf1t64, libc6"),
                ("libelf1t64", "libc6"),
                ("libz3-4", "libc6"),
                ("libibverbs1", "libc6"),
                ("libc6", ""),
                ("openmpi-bin", "libucx0, libc6 | libc6.1"),
            ];
            let mut text: String = packages
                .iter()
                .map(|(p, d)| {
                    format!(
                        "Package: {p}\nStatus: install ok installed\nPre-Depends: libc6\nDepends: {d}\n\n"
                    )
                })
                .collect();
            text += "Package: libz3-dev\nStatus: deinstall ok config-files\nDepends: libz3-4\n\n";
            text += extra;
            std::fs::write(tree.path().join("var/lib/dpkg/status"), text).unwrap();
            let script = concat!(unused_gpu_runtimes!(), "; echo $gpu");
            let out = Command::new("sh").args(["-ec", script, "hook"]).arg(tree.path()).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let mut left_out: Vec<String> =
                String::from_utf8(out.stdout).unwrap().split_whitespace().map(String::from).collect();
            left_out.sort();
            left_out
        };
        let all =
            ["libamd-comgr2", "libamdhip64-5", "libelf1t64", "libhsa-runtime64-1", "libllvm17t64", "libz3-4"];
        assert_eq!(status(""), all);
        // A site's package that needs LLVM keeps it and Z3; the rest still goes.
        let llvm =
            status("Package: python3-site\nStatus: install ok installed\nDepends: libllvm17t64:any (>= 1)\n");
        assert_eq!(llvm, ["libamd-comgr2", "libamdhip64-5", "libelf1t64", "libhsa-runtime64-1"]);
        // One that needs HIP keeps the whole runtime (and so UCX's ROCm modules).
        assert!(
            status("Package: hip-site\nStatus: install ok installed\nDepends: libamdhip64-5\n").is_empty()
        );
    }
}
